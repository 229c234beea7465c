"""A calibration turned into the observer's answer (services/calibrate/answer.py): the whole table."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from services.calibrate.answer import calibration_answer, candidate_fit, rounded
from services.calibrate.core.results import (
    CandidateSummary,
    FrameCalibration,
    PlotData,
    TargetMeasurement,
)

EMPTY = np.zeros(0)
PLOT = PlotData(EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY.astype(bool), EMPTY.astype(bool), EMPTY.astype(bool))


def _cal(target: TargetMeasurement, **changes) -> FrameCalibration:
    fields: dict[str, Any] = {  # FrameCalibration keyword arguments, of many types
        "survey": "APASS",
        "band": "V",
        "colour": "B-V",
        "zeropoint": 21.123456,
        "zeropoint_err": 0.012345,
        "colour_term": 0.051234,
        "colour_term_err": 0.004321,
        "scatter": 0.034567,
        "intrinsic_scatter": 0.01,
        "npoints": np.int64(40),
        "nmatched": np.int64(55),
        "ncalibrators": 48,
        "nbright": 2,
        "outlier_fraction": 0.0833333,
        "score": 0.02,
        "fit_colour_term": True,
        "assumed_colour": 0.6,
        "n_sources": 300,
        "n_usable": 290,
        "target": target,
        "plot": PLOT,
        "candidates": [
            CandidateSummary("APASS", "V", "B-V", zeropoint=21.123456, score=0.0212345, npoints=40, chosen=True),
            CandidateSummary("GAIA", "G", "BP-RP", note="too few stars"),
        ],
    }
    return FrameCalibration(**(fields | changes))


def _answer(cal: FrameCalibration, match=2.0):
    return calibration_answer(cal, match, upload_id="u1", ivorn="ivo://gaia/alerts#X", mjd=60000.5, comment="c")


DETECTED = TargetMeasurement(
    True,
    mag=17.123456,
    mag_err=0.023456,
    ra=10.1234567,
    dec=-5.7654321,
    limit_mag=19.87654,
    limit_method="completeness",
)


def test_a_detection_answers_its_magnitude_rounded_and_its_position_as_measured():
    a = _answer(_cal(DETECTED))
    assert (a.status, a.survey, a.filter, a.detected) == ("ok", "APASS", "V", True)
    assert a.message == "APASS/V = 17.123 +/- 0.023"
    assert (a.mag, a.mag_err, a.limit_mag) == (17.1235, 0.0235, 19.8765)
    assert (a.ra, a.dec) == (10.1234567, -5.7654321)
    assert (a.zeropoint, a.zeropoint_err, a.colour_term, a.scatter) == (21.1235, 0.0123, 0.0512, 0.0346)
    assert (a.npoints, a.nmatched) == (40, 55) and type(a.npoints) is int
    assert (a.upload_id, a.ivorn, a.mjd, a.comment) == ("u1", "ivo://gaia/alerts#X", 60000.5, "c")


def test_a_detection_without_an_error_says_so():
    a = _answer(_cal(TargetMeasurement(True, mag=17.0, mag_err=None, ra=1.0, dec=2.0)))
    assert a.message == "APASS/V = 17.000 (error unknown)" and a.mag_err is None


@pytest.mark.parametrize(
    ("method", "words"), [("completeness", "50% completeness"), ("mag_err", "5 sigma"), (None, "limit")]
)
def test_a_non_detection_answers_the_limit_and_never_a_magnitude(method, words):
    a = _answer(
        _cal(TargetMeasurement(False, mag=17.5, mag_err=0.1, ra=1.0, dec=2.0, limit_mag=19.456, limit_method=method))
    )
    assert a.message == f"not detected: APASS/V fainter than 19.46 ({words})"
    assert (a.detected, a.mag, a.mag_err, a.ra, a.dec) == (False, None, None, None, None)
    assert a.limit_mag == 19.456 and a.limit_method == method


def test_a_non_detection_without_a_limit_names_the_match_radius():
    a = _answer(_cal(TargetMeasurement(False)), match=3.5)
    assert a.message == "not detected within 3.5 arcsec; no limit could be estimated"
    assert a.limit_mag is None


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_infinite_and_nan_numbers_are_answered_as_null(bad):
    a = _answer(_cal(DETECTED, scatter=bad, colour_term_err=bad, outlier_fraction=bad))
    assert (a.scatter, a.colour_term_err, a.outlier_fraction) == (None, None, None)
    assert json.loads(a.model_dump_json())["scatter"] is None


def test_rounded_over_its_table():
    assert [rounded(v) for v in (None, "x", math.nan, math.inf, -math.inf)] == [None] * 5
    assert rounded(np.float32(0.5)) == 0.5 and rounded(1.234567) == 1.2346 and rounded(1.234567, 2) == 1.23


def test_the_assumed_colour_term_and_the_warnings_are_passed_on():
    warning = "colour term assumed 0: too few calibrators with a colour"
    a = _answer(_cal(DETECTED, colour_term_assumed=True, warnings=[warning], colour_term=0.0, colour_term_err=None))
    assert a.colour_term_assumed and a.warnings == [warning]
    assert (a.colour_term, a.colour_term_err) == (0.0, None)


def test_every_candidate_is_listed_rounded_with_the_chosen_one_marked():
    a = _answer(_cal(DETECTED))
    assert [(c.survey, c.filter, c.chosen) for c in a.candidates] == [("APASS", "V", True), ("GAIA", "G", False)]
    assert (a.candidates[0].zeropoint, a.candidates[0].score) == (21.1235, 0.0212)
    assert a.candidates[1].zeropoint is None and a.candidates[1].note == "too few stars"
    assert candidate_fit(CandidateSummary("PS1", "r", "g-r", scatter=math.inf)).scatter is None
