"""The synthetic frames of :mod:`tools.datasets` obey their own model."""

from __future__ import annotations

import math

import numpy as np

from tools.datasets import ZP_COUNTS, background_sigma_for_limit, make_field


def test_synthetic_limit_is_five_sigma():
    s = background_sigma_for_limit(17.5)
    f = 10 ** (-0.4 * (17.5 - ZP_COUNTS))
    assert math.isclose(f / math.sqrt(f + s**2), 5.0, rel_tol=1e-9)


def test_synthetic_field_obeys_its_model():
    rng = np.random.default_rng(1)
    fld = make_field(rng, intrinsic=0.0, target_v=None)
    src = fld.sources
    idx = fld.truth_ref_index
    good = (idx >= 0) & (src.mag_err < 0.02)
    v = fld.references["APASS"].mags["V"][idx[good]]
    b = fld.references["APASS"].mags["B"][idx[good]]
    resid = v - (src.mag[good] + fld.zp + fld.ct * (b - v))
    ok = np.isfinite(resid)
    assert abs(np.median(resid[ok])) < 0.01
