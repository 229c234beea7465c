"""Read a simulated field (:mod:`tools.simfield`) back for calibration and scoring.

A field folder holds the SExtractor catalogues, the VizieR-style reference
extracts ``ref_<SURVEY>.csv``, ``objects.csv`` and ``truth.json``. These
helpers turn the extracts into the :class:`shared.contracts.messages.SurveyStars` the
catalogue service would answer (bands keyed by band name, as
``services.catalog.store`` does), and give the transient's true magnitude in
*any* survey band from its true ``V`` and ``B-V`` through
:mod:`tools.photsystem` -- so a calibration that picks another band than the
true best one can still be scored against the truth in the band it chose.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from shared.contracts.messages import SurveyStars
from shared.contracts.surveys import SURVEYS, get_survey
from tools.photsystem import survey_colour, survey_magnitudes


def load_truth(folder: str | Path) -> dict:
    """The field's ``truth.json``."""
    return json.loads((Path(folder) / "truth.json").read_text())


def load_references(folder: str | Path) -> dict[str, SurveyStars]:
    """Every ``ref_<SURVEY>.csv`` of the folder as SurveyStars, keyed by survey name.

    Magnitudes and errors are keyed by the band name (``"V"``, ``"g'"``,
    ``"BP"``); empty cells are NaN.
    """
    refs: dict[str, SurveyStars] = {}
    for name, survey in SURVEYS.items():
        path = Path(folder) / f"ref_{name}.csv"
        if not path.exists():
            continue
        df = pd.read_csv(path)
        refs[name] = SurveyStars(
            survey=name,
            ra=df[survey.ra_column].to_numpy(float),
            dec=df[survey.dec_column].to_numpy(float),
            mags={b.name: df[b.column].to_numpy(float) for b in survey.bands},
            errs={b.name: df[b.error_column].to_numpy(float) for b in survey.bands},
        )
    return refs


def transient_row(folder: str | Path) -> pd.Series:
    """The transient's row of ``objects.csv`` (true ``V``, ``BV``, ``m_ref``, ...)."""
    obj = pd.read_csv(Path(folder) / "objects.csv")
    return obj[obj.kind == "transient"].iloc[0]


def true_magnitude(folder: str | Path, survey: str, band: str) -> tuple[float, float]:
    """The transient's true magnitude in ``survey``/``band`` and its true colour for that band, mag."""
    t = transient_row(folder)
    mags = survey_magnitudes(np.array([t.V]), np.array([t.BV]))
    name = get_survey(survey).name
    bname = get_survey(survey).band(band).name
    return float(mags[(name, bname)][0]), float(survey_colour(mags, name, bname)[0])


def true_completeness_limit(folder: str | Path, fraction: float = 0.5, radius_arcsec: float = 1.5) -> float:
    """The magnitude (``m_sys``) at which ``fraction`` of the field's stars are in its catalogue.

    The truth for a completeness-based limiting magnitude: every star of
    ``objects.csv`` inside the image (not saturated) counts as detected if
    ``sex_fits1.fits`` has a source within ``radius_arcsec``; the detected
    fraction in sliding 0.3-mag bins of true ``m_sys`` (steps of 0.05 mag)
    is interpolated linearly at ``fraction``, at its last crossing going
    faintward. Add ``colour_term * colour`` for ``m_ref`` at a colour.
    """
    from astropy.io import fits

    folder = Path(folder)
    truth = load_truth(folder)
    scale = truth["field"]["pixel_scale_arcsec"]
    w, h = truth["field"]["width_px"], truth["field"]["height_px"]
    obj = pd.read_csv(folder / "objects.csv")
    st = obj[
        (obj.kind == "star")
        & ~obj.saturated.astype(bool)
        & obj.x_image.between(0.5, w + 0.5)
        & obj.y_image.between(0.5, h + 0.5)
    ]
    cat = fits.getdata(folder / "sex_fits1.fits", 1)
    cx, cy = np.asarray(cat["X_IMAGE"], float), np.asarray(cat["Y_IMAGE"], float)
    x, y = st.x_image.to_numpy(), st.y_image.to_numpy()
    d = np.full(len(x), np.inf)
    for k in range(0, len(x), 2000):  # nearest catalogue source, in chunks
        dd = np.hypot(x[k : k + 2000, None] - cx[None, :], y[k : k + 2000, None] - cy[None, :])
        d[k : k + 2000] = dd.min(axis=1)
    det = d * scale <= radius_arcsec
    m = st.m_sys.to_numpy()
    centres = np.arange(truth["limit_mag_5sigma"] - 3.0, truth["limit_mag_5sigma"] + 1.5, 0.05)
    frac = np.array(
        [det[np.abs(m - c) <= 0.15].mean() if (np.abs(m - c) <= 0.15).sum() >= 5 else np.nan for c in centres]
    )
    ok = np.isfinite(frac)
    centres, frac = centres[ok], frac[ok]
    above = np.flatnonzero(frac >= fraction)
    i = int(above[-1])
    if i + 1 >= len(frac):
        return float(centres[i])
    f0, f1 = frac[i], frac[i + 1]
    return float(centres[i] + (f0 - fraction) / (f0 - f1) * (centres[i + 1] - centres[i]))
