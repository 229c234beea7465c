"""A refused calibration's plot: the best failing candidate handed over by the core, the reason in its title."""

from __future__ import annotations

import pickle
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from services.calibrate.core import calibrate_frame
from services.calibrate.core.results import CalibrationRefused
from services.calibrate.plot import build_failure_figure, failure_title, render_failure_plot
from services.ingest.parsing import parse_catalogue
from shared.arrays import SourceTable
from shared.errors import CalibrationFailed
from tools import fieldio

FIELD = Path(__file__).parents[1] / "data" / "fields" / "north_V"


@cache
def _field():
    parsed = parse_catalogue((FIELD / "sex_ascii_head.cat").read_bytes(), "sex_ascii_head.cat")
    return parsed.table, fieldio.load_references(FIELD), fieldio.load_truth(FIELD)["alert"]


def _subset(table: SourceTable, idx: np.ndarray, mag: np.ndarray | None = None, shift_deg: float = 0.0):
    column = lambda name: np.asarray(getattr(table, name))[idx]
    return SourceTable.from_columns(
        column("ra") + shift_deg,
        column("dec"),
        column("mag") if mag is None else mag[idx],
        column("mag_err"),
        column("flags"),
    )


def _refusal(sources: SourceTable, ra_offset: float = 0.0) -> CalibrationFailed:
    _, refs, alert = _field()
    with pytest.raises(CalibrationFailed) as caught:
        calibrate_frame(sources, refs, alert["ra"] + ra_offset, alert["dec"], 2.0)
    return caught.value


def test_too_few_stars_hands_over_its_best_candidate_and_the_title_says_why():
    table, _, _ = _field()
    brightest = np.sort(np.argsort(np.asarray(table.mag))[:8])  # the frame's 8 brightest: too few pass the cuts
    exc = _refusal(_subset(table, brightest))
    assert isinstance(exc, CalibrationRefused) and exc.code == "too_few_stars"
    best = exc.best
    assert not best.fitted and best.nmatched >= best.ncalibrators > 0
    assert len(best.plot.ref_mag) == best.ncalibrators and not best.plot.used.any()
    title = failure_title(best, exc.code, exc.message)
    lines = title.split("\n")
    assert lines[0] == "CALIBRATION FAILED (too_few_stars)"
    assert " ".join(lines[1:-1]).startswith("too few calibration stars")
    assert lines[-1] == (
        f"best failing candidate: {best.survey} {best.band} ({best.colour}): no fit, "
        f"{best.ncalibrators} calibration stars of {best.nmatched} matched"
    )
    fig = build_failure_figure(best, exc.code, exc.message)
    assert fig.get_suptitle() == title
    assert render_failure_plot(best, exc.code, exc.message).startswith(b"\x89PNG\r\n\x1a\n")
    again = pickle.loads(pickle.dumps(exc))  # as from a Dask worker
    assert (again.code, again.message, again.best.ncalibrators) == (exc.code, exc.message, best.ncalibrators)


def test_a_fit_refused_for_its_scatter_shows_that_fit_in_the_title():
    table, _, _ = _field()
    shuffled = np.asarray(table.mag).copy()
    np.random.default_rng(1).shuffle(shuffled)  # every star's magnitude another's: no photometric relation
    exc = _refusal(_subset(table, np.arange(len(table)), mag=shuffled))
    assert isinstance(exc, CalibrationRefused) and exc.code == "poor_fit"
    best = exc.best
    assert best.fitted and best.plot.used.any()
    title = failure_title(best, exc.code, exc.message)
    assert title.startswith("CALIBRATION FAILED (poor_fit)\ncalibration too poor to trust")
    assert f"ZP={best.zeropoint:.3f}" in title and f"scatter={best.scatter:.3f}" in title


def test_an_alert_outside_the_frame_still_plots_the_fit_of_the_frame_stars():
    table, _, _ = _field()
    exc = _refusal(_subset(table, np.arange(len(table))), ra_offset=1.0)
    assert isinstance(exc, CalibrationRefused) and exc.code == "target_outside_frame"
    assert exc.best.fitted and exc.best.npoints >= 5


def test_no_plot_when_no_source_matched_a_reference_star():
    table, _, _ = _field()
    # the frame 2 degrees away from the field's reference stars: none within reach
    exc = _refusal(_subset(table, np.arange(len(table)), shift_deg=2.0), ra_offset=2.0)
    assert exc.code == "no_stars_matched"
    assert not isinstance(exc, CalibrationRefused)
