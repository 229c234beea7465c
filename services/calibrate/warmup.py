"""Compile the core's kernels before the first frame needs them (the service's start-up).

numba compiles a kernel at its first call (or loads it from the on-disk
cache, see :mod:`shared.jit`). :func:`warm_up` calibrates a small synthetic
frame whose path goes through every kernel -- the match, the robust fit
with its bright-end cut, the completeness limit and the magnitude-error
limit -- so that a worker's first upload is as fast as its hundredth.
The frame is built from the wire models the worker receives (not plain
arrays), so that the kernels are compiled for the arrays a real upload has.
"""

from __future__ import annotations

import numpy as np

from services.calibrate.core.api import calibrate_frame
from services.calibrate.core.limits import frame_limit_inst
from shared.arrays import SourceTable
from shared.contracts.messages import SurveyStars


def synthetic_frame(n_stars: int = 400, seed: int = 1) -> tuple[SourceTable, dict[str, SurveyStars]]:
    """A 10' frame at (150, 20): APASS-like stars, a logistic fall-off at V = 17, ZP 25, CT 0.1 (B-V)."""
    rng = np.random.default_rng(seed)
    ra = 150.0 + rng.uniform(-0.08, 0.08, n_stars)
    dec = 20.0 + rng.uniform(-0.08, 0.08, n_stars)
    v = rng.uniform(11.0, 19.0, n_stars)
    bv = rng.uniform(0.2, 1.4, n_stars)
    err = np.full(n_stars, 0.02)
    seen = rng.random(n_stars) < 1.0 / (1.0 + np.exp((v - 17.0) / 0.2))
    inst = v - 25.0 - 0.1 * bv + rng.normal(0.0, 0.02, n_stars)
    sources = SourceTable.from_columns(
        ra=ra[seen],
        dec=dec[seen],
        mag=inst[seen],
        mag_err=np.full(int(seen.sum()), 0.03) * 10 ** (0.2 * (v[seen] - 14)),
        flags=np.zeros(int(seen.sum()), dtype=np.int32),
    )
    stars = SurveyStars(survey="APASS", ra=ra, dec=dec, mags={"B": v + bv, "V": v}, errs={"B": err, "V": err})
    return sources, {"APASS": stars}


def warm_up() -> None:
    """Run every compiled kernel once (first call: compile or load from the cache)."""
    sources, references = synthetic_frame()
    calibrate_frame(sources, references, 150.0, 20.0, 2.0)
    # the magnitude-error limit is the fallback when no survey reaches the frame's fall-off
    frame_limit_inst(sources.mag, sources.mag_err, np.ones(len(sources), dtype=bool))
