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
import math
from pathlib import Path

import numpy as np
import pandas as pd

from shared.contracts.messages import SurveyStars
from shared.contracts.surveys import SURVEYS, get_survey
from tools.photsystem import acceptable_bands, get_instrument_band, survey_colour, survey_magnitudes


def load_truth(folder: str | Path) -> dict:
    """The field's ``truth.json``."""
    return json.loads((Path(folder) / "truth.json").read_text())


def right_bands(truth: dict) -> list[tuple[str, str]]:
    """The survey bands that identify a field's instrument band right, for that field's surveys and sky.

    :func:`tools.photsystem.acceptable_bands` with the surveys that have data
    there and the sky's reddening (``truth["sky"]["reddening_ebv"]``; fields
    made before skies had types have none: high latitude).
    """
    reddening = (truth.get("sky") or {}).get("reddening_ebv")
    band = get_instrument_band(truth["instrument_band"])
    return acceptable_bands(band, truth["surveys"], reddening=None if reddening is None else tuple(reddening))


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


#: an isolated star: no other true object within this many FWHM ...
ISOLATION_FWHM = 4.0
#: ... brighter than the star + this (mag): a neighbour adding >= 1 % of its light
ISOLATION_DELTA_MAG = 5.0
#: stars this far above the 5-sigma limit (mag) are "well measured" (photon noise << 10 mmag)
WELL_MEASURED_MARGIN = 4.0
#: fewest isolated stars a median is taken over
MIN_ISOLATED = 5


def isolated_aperture_loss_of(
    star_x: np.ndarray,
    star_y: np.ndarray,
    star_m_inst: np.ndarray,
    cat_x: np.ndarray,
    cat_y: np.ndarray,
    cat_mag: np.ndarray,
    cat_flags: np.ndarray,
    neighbour_x: np.ndarray,
    neighbour_y: np.ndarray,
    neighbour_m_inst: np.ndarray,
    fwhm_px: float,
    delta_mag: float = ISOLATION_DELTA_MAG,
) -> tuple[float, int]:
    """Median ``MAG_AUTO - m_inst`` (mag) of the isolated candidate stars, and how many.

    Pure arrays (positions in pixels, magnitudes in the instrumental system
    ``-2.5 log10 ADU``): a candidate star counts when the catalogue has an
    unflagged (``FLAGS == 0``) source within 1 px of its true position and no
    other true object (``neighbour_*``, which may include the star itself at
    distance 0) lies within :data:`ISOLATION_FWHM` x ``fwhm_px`` while being
    less than ``delta_mag`` (default :data:`ISOLATION_DELTA_MAG`) fainter than the
    star. NaN, 0 when none counts.
    """
    from scipy.spatial import cKDTree

    star_x, star_y, star_m_inst = (np.asarray(a, float) for a in (star_x, star_y, star_m_inst))
    cat_x, cat_y, cat_mag = (np.asarray(a, float) for a in (cat_x, cat_y, cat_mag))
    nx, ny, nm = (np.asarray(a, float) for a in (neighbour_x, neighbour_y, neighbour_m_inst))
    if not len(star_x) or not len(cat_x):
        return math.nan, 0
    stars = np.column_stack([star_x, star_y])
    around = cKDTree(np.column_stack([nx, ny])).query_ball_point(stars, ISOLATION_FWHM * fwhm_px)
    dist, nearest = cKDTree(np.column_stack([cat_x, cat_y])).query(stars)
    dc, j = np.atleast_1d(dist).astype(float), np.atleast_1d(nearest).astype(int)  # per star, as an array
    losses = []
    for k, idx in enumerate(around):
        idx = np.asarray(idx, int)
        dn = np.hypot(nx[idx] - star_x[k], ny[idx] - star_y[k])
        if ((dn > 0.5) & (nm[idx] < star_m_inst[k] + delta_mag)).any():
            continue
        if dc[k] < 1.0 and int(cat_flags[j[k]]) == 0 and np.isfinite(cat_mag[j[k]]):
            losses.append(cat_mag[j[k]] - star_m_inst[k])
    if not losses:
        return math.nan, 0
    return float(np.median(losses)), len(losses)


def isolated_aperture_loss(folder: str | Path) -> tuple[float, int]:
    """The aperture loss of an isolated, well-measured star in the field's frame, mag, and
    the number of stars it is the median of.

    ``MAG_AUTO`` (``sex_fits1.fits``, zero point 0, so in ``m_inst``) minus
    the true instrumental magnitude, median over unsaturated stars of
    ``objects.csv`` inside the image and :data:`WELL_MEASURED_MARGIN` mag
    above the 5-sigma limit with no true neighbour (star, galaxy or the
    transient; ``objects.csv`` holds stars to limit + 2 mag) adding 1 % or
    more of their light within :data:`ISOLATION_FWHM` FWHM
    (:func:`isolated_aperture_loss_of`). Positive: the Kron aperture misses
    light. If fewer than :data:`MIN_ISOLATED` stars qualify the margin is
    relaxed to 2 mag; then NaN.
    """
    from astropy.io import fits

    folder = Path(folder)
    truth = load_truth(folder)
    w, h = truth["field"]["width_px"], truth["field"]["height_px"]
    fwhm_px = truth["fwhm_arcsec"] / truth["field"]["pixel_scale_arcsec"]
    obj = pd.read_csv(folder / "objects.csv")
    cat = fits.getdata(folder / "sex_fits1.fits", 1)
    inside = obj.x_image.between(0.5, w + 0.5) & obj.y_image.between(0.5, h + 0.5)
    loss, n = math.nan, 0
    # crowded frames have few isolated bright stars: then fainter ones, never less isolated
    # (a neighbour's light would bias the loss low)
    for margin in (WELL_MEASURED_MARGIN, 2.0):
        st = obj[
            (obj.kind == "star")
            & ~obj.saturated.astype(bool)
            & inside
            & (obj.m_sys < truth["limit_mag_5sigma"] - margin)
        ]
        loss, n = isolated_aperture_loss_of(
            st.x_image.to_numpy(),
            st.y_image.to_numpy(),
            st.m_inst.to_numpy(),
            np.asarray(cat["X_IMAGE"], float),
            np.asarray(cat["Y_IMAGE"], float),
            np.asarray(cat["MAG_AUTO"], float),
            np.asarray(cat["FLAGS"], int),
            obj.x_image.to_numpy(),
            obj.y_image.to_numpy(),
            obj.m_inst.to_numpy(),
            fwhm_px,
        )
        if n >= MIN_ISOLATED:
            break
    return loss, n
