"""The transient's calibrated magnitude, or the frame's limiting magnitude."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.calibrate.core import calibrate_frame
from services.calibrate.core.limits import completeness_limit_inst, frame_limit_inst
from services.calibrate.core.target import nearest_source
from shared.arrays import SourceTable
from tools.datasets import background_sigma_for_limit, make_field, observe


def test_frame_limit_from_mag_error_relation():
    rng = np.random.default_rng(50)
    for true_limit in (16.0, 18.3, 20.0):
        sig_b = background_sigma_for_limit(true_limit)
        inst_true = true_limit - 7 + 8 * rng.uniform(0, 1, 3000) ** 0.4
        mag, err, snr = observe(rng, inst_true, sig_b)
        det = snr > 3
        lim = frame_limit_inst(mag[det], err[det], np.ones(det.sum(), bool))
        assert lim == pytest.approx(true_limit, abs=0.15)
        # a 3-sigma limit is fainter
        lim3 = frame_limit_inst(mag[det], err[det], np.ones(det.sum(), bool), nsigma=3.0)
        assert lim3 is not None and lim is not None
        assert lim3 > lim + 0.3


def test_completeness_limit_recovers_a_logistic_fall_off():
    rng = np.random.default_rng(53)
    m = rng.uniform(14.0, 21.0, 4000)
    p = 1.0 / (1.0 + np.exp((m - 19.2) / 0.12))
    det = rng.random(m.size) < p
    lim, n = completeness_limit_inst(m, det, 0.5)
    assert lim == pytest.approx(19.2, abs=0.03) and n > 200
    lim90, _ = completeness_limit_inst(m, det, 0.9)
    assert lim90 == pytest.approx(19.2 - 0.12 * math.log(9.0), abs=0.05)


def test_completeness_limit_needs_stars_beyond_the_fall_off():
    """Reference stars that stop before the frame's fall-off (a shallow survey): no answer."""
    rng = np.random.default_rng(54)
    m = rng.uniform(12.0, 17.0, 500)
    det = rng.random(m.size) < 1.0 / (1.0 + np.exp((m - 19.2) / 0.12))
    assert completeness_limit_inst(m, det)[0] is None


def test_frame_limit_refuses_without_data():
    assert frame_limit_inst(np.array([15.0] * 5), np.array([0.1] * 5), np.ones(5, bool)) is None
    # all at the same magnitude: no relation
    assert frame_limit_inst(np.full(50, 15.0), np.full(50, 0.1), np.ones(50, bool)) is None


def test_non_detection_gives_limit_and_no_magnitude():
    rng = np.random.default_rng(51)
    fld = make_field(rng, target_v=None, inst_limit=17.8)
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    t = cal.target
    assert t.detected is False
    assert t.mag is None and t.mag_err is None and t.inst_mag is None
    true_limit = fld.inst_limit + fld.zp + fld.ct * cal.assumed_colour
    assert t.limit_mag == pytest.approx(true_limit, abs=0.2)
    assert t.inst_limit_mag == pytest.approx(fld.inst_limit, abs=0.2)
    # APASS stops at 17 mag: no survey reaches the frame's fall-off, so the 5-sigma fallback
    assert t.limit_method == "mag_err"
    assert t.assumed_colour == pytest.approx(cal.assumed_colour)


def test_detected_target_magnitude():
    rng = np.random.default_rng(52)
    fld = make_field(rng, target_v=15.5)
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    t = cal.target
    assert t.detected
    assert t.separation_arcsec is not None
    assert t.separation_arcsec < 1.0
    assert t.mag_err is not None and fld.target_true_mag is not None
    assert t.mag == pytest.approx(fld.target_true_mag, abs=4 * t.mag_err)
    # the stated formula
    assert t.inst_mag is not None
    assert t.mag == pytest.approx(t.inst_mag + cal.zeropoint + cal.colour_term * cal.assumed_colour)
    assert cal.plot.target_inst_mag == t.inst_mag
    assert t.limit_mag is not None


def test_target_errors_are_honest():
    """~68 % of calibrated target magnitudes lie within 1 sigma of the truth.

    The target's colour is unknown to the calibration; the error model
    assumes it scatters like the field stars' colours, so it is drawn from
    the same distribution as make_field's stars (B-V ~ N(0.7, 0.35)).
    """
    rng = np.random.default_rng(53)
    n_real = 150
    inside = 0
    for _ in range(n_real):
        bv = float(np.clip(rng.normal(0.7, 0.35), -0.2, 1.9))
        fld = make_field(rng, n_stars=300, target_v=float(rng.uniform(13.5, 16.5)), target_bv=bv)
        cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
        t = cal.target
        assert t.detected
        assert t.mag is not None and t.mag_err is not None and fld.target_true_mag is not None
        inside += abs(t.mag - fld.target_true_mag) < t.mag_err
    assert 0.55 <= inside / n_real <= 0.80


def test_nearest_source_picks_the_closest_within_radius():
    a = 1.0 / 3600
    src = SourceTable.from_columns(
        ra=np.array([100.0 + 1.5 * a, 100.0 + 0.7 * a, 100.0 + 5 * a, 100.0]),
        dec=np.array([0.0, 0.0, 0.0, 0.0]),
        mag=np.array([15.0, 16.0, 14.0, np.nan]),
        mag_err=np.array([0.01, 0.01, 0.01, 0.01]),
    )
    usable = np.isfinite(src.mag)
    j, sep = nearest_source(src, usable, 100.0, 0.0, 2.0)
    assert j == 1 and sep == pytest.approx(0.7, abs=1e-3)  # the NaN one at 0" is not usable
    j, sep = nearest_source(src, usable, 100.0, 0.0, 0.5)
    assert j is None and sep is None


def test_flagged_target_is_measured_with_a_note():
    rng = np.random.default_rng(54)
    fld = make_field(rng, target_v=16.0)
    flags = np.asarray(fld.sources.flags).copy()
    flags[-1] = 4  # the target is the last source
    src = SourceTable.from_columns(fld.sources.ra, fld.sources.dec, fld.sources.mag, fld.sources.mag_err, flags)
    cal = calibrate_frame(src, fld.references, fld.target_ra, fld.target_dec, 2.0)
    assert cal.target.detected and cal.target.flags == 4
    assert cal.target.note is not None
    assert "FLAGS 4" in cal.target.note
    assert cal.target.mag is not None
    assert math.isfinite(cal.target.mag)
