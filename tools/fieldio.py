"""Read a simulated field (:mod:`tools.simfield`) back for calibration and scoring.

A field folder holds the SExtractor catalogues, the VizieR-style reference
extracts ``ref_<SURVEY>.csv``, ``objects.csv`` and ``truth.json``. These
helpers turn the extracts into the :class:`shared.models.SurveyStars` the
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

from shared.models import SurveyStars
from shared.surveys import SURVEYS, get_survey
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
