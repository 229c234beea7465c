"""The compiled kernels: warmed up once, never recompiled by a worker's first real upload."""

from __future__ import annotations

import numpy as np
import pytest

from services.calibrate.core import calibrators, choice, crowding, fitting, footprint, limits, matching, target
from services.calibrate.core.api import calibrate_frame
from services.calibrate.warmup import synthetic_frame, warm_up
from shared.arrays import SourceTable
from shared.contracts.messages import SurveyStars


def _signatures() -> dict[str, int]:
    return {
        f"{mod.__name__}.{name}": len(obj.signatures)
        for mod in (calibrators, choice, crowding, fitting, footprint, limits, matching, target)
        for name, obj in vars(mod).items()
        if hasattr(obj, "signatures")
    }


def test_a_real_upload_after_warm_up_compiles_nothing():
    """Arrays decoded from NATS are read-only: without care the first upload would wait seconds for numba."""
    warm_up()
    before = _signatures()
    sources, references = synthetic_frame(seed=7)
    # the worker's path: the gateway's columns and the catalogue's stars cross NATS as JSON
    sources = SourceTable.model_validate_json(sources.model_dump_json())
    references = {k: SurveyStars.model_validate_json(v.model_dump_json()) for k, v in references.items()}
    # and arrays straight from a buffer are read-only, a different type for numba
    for array in (
        sources.ra,
        sources.dec,
        sources.mag,
        sources.mag_err,
        references["APASS"].ra,
        references["APASS"].dec,
        *references["APASS"].mags.values(),
        *references["APASS"].errs.values(),
    ):
        array.flags.writeable = False
    calibrate_frame(sources, references, 150.0, 20.0, 2.0)
    calibrate_frame(sources, references, 150.0, 20.0, 2.0, ("APASS", "V"))
    limits.frame_limit_inst(sources.mag, sources.mag_err, np.ones(len(sources), dtype=bool))
    assert _signatures() == before


def test_warm_up_frame_calibrates_to_its_truth():
    """The synthetic frame is a real calibration: ZP 25 and CT 0.1 come back."""
    sources, references = synthetic_frame()
    result = calibrate_frame(sources, references, 150.0, 20.0, 2.0)
    assert (result.survey, result.band) == ("APASS", "V")
    assert result.zeropoint == pytest.approx(25.0, abs=0.02)
    assert result.colour_term == pytest.approx(0.1, abs=0.03)
