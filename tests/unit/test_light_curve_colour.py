"""The target's colour from the alert's own detections the same night (an observer's B and V frames)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.calibrate.core import FitSettings, calibrate_frame, fit_zeropoint
from services.calibrate.core.inputs import NearbyDetection
from services.calibrate.core.results import TargetMeasurement
from services.calibrate.core.target import light_curve_colour
from tools.datasets import make_field


def _fit(ct: float, n: int = 300, seed: int = 5):
    rng = np.random.default_rng(seed)
    colour = rng.normal(0.7, 0.3, n)
    inst = rng.uniform(10.0, 15.0, n)
    ref = inst + 2.0 + ct * colour + rng.normal(0.0, 0.01, n)
    return fit_zeropoint(ref, np.full(n, 0.01), inst, np.full(n, 0.005), colour)


def _target(inst: float, err: float = 0.01) -> TargetMeasurement:
    return TargetMeasurement(detected=True, mag=None, inst_mag=inst, inst_mag_err=err)


def _det(band: str, mag: float, dt_days: float = 0.02, err: float = 0.02, survey: str = "APASS") -> NearbyDetection:
    return NearbyDetection(survey=survey, band=band, mag=mag, mag_err=err, dt_days=dt_days, label="followup 7")


@pytest.mark.parametrize("ct", [-0.15, 0.0, 0.12])
def test_a_v_frame_and_a_b_detection_give_the_true_b_minus_v(ct):
    """m_V = m_inst + ZP + CT c and B = m_V + c: the colour is solved for, not taken at the median."""
    fit = _fit(ct)
    c_true, inst = 1.3, 14.0
    v_true = inst + fit.zeropoint + fit.colour_term * c_true
    got = light_curve_colour([_det("B", v_true + c_true)], "APASS", ("B", "V"), "V", _target(inst), fit, FitSettings())
    assert got is not None
    assert got.value == pytest.approx(c_true, abs=1e-9)
    assert "APASS B followup 7 (+0.5 h)" in got.source and "light curve" in got.source
    # the B point's and this frame's errors over |1 + CT|, and 0.1 mag/day over 0.02 d, in quadrature
    assert 0.02 / abs(1 + fit.colour_term) < got.err < 0.04


def test_a_b_frame_and_a_v_detection_solve_the_other_way():
    fit = _fit(0.1)
    c_true, inst = 0.2, 13.0
    b_true = inst + fit.zeropoint + fit.colour_term * c_true
    got = light_curve_colour([_det("V", b_true - c_true)], "APASS", ("B", "V"), "B", _target(inst), fit, FitSettings())
    assert got is not None and got.value == pytest.approx(c_true, abs=1e-9)


def test_a_frame_outside_the_colour_takes_both_bands_from_the_light_curve():
    fit = _fit(0.05)
    near = [_det("g", 16.0, 0.1), _det("r", 15.6, -0.2), _det("r", 15.0, 0.45)]
    got = light_curve_colour(near, "PS1", ("g", "r"), "i", _target(14.0), fit, FitSettings())
    assert got is None  # the detections are APASS's, the frame PS1's: other systems give no PS1 colour
    near = [
        _det("g", 16.0, 0.1, survey="PS1"),
        _det("r", 15.6, -0.2, survey="PS1"),
        _det("r", 15.0, 0.45, survey="PS1"),
    ]
    got = light_curve_colour(near, "PS1", ("g", "r"), "i", _target(14.0), fit, FitSettings())
    assert got is not None and got.value == pytest.approx(0.4)  # the nearest r in time, not the later one
    assert got.err == pytest.approx(math.hypot(0.02, 0.02, 0.1 * 0.2))


@pytest.mark.parametrize(
    ("near", "why"),
    [
        ([], "no detections"),
        ([_det("B", 15.0, dt_days=0.8)], "outside the night's window"),
        ([_det("V", 15.0)], "the frame's own band gives no colour"),
        ([_det("B", math.nan)], "no magnitude"),
    ],
)
def test_no_light_curve_colour(near, why):
    fit = _fit(0.1)
    assert light_curve_colour(near, "APASS", ("B", "V"), "V", _target(14.0), fit, FitSettings()) is None, why


def test_an_undetected_target_or_no_colour_term_takes_no_colour():
    fit = _fit(0.1)
    b = [_det("B", 15.0)]
    gone = TargetMeasurement(detected=False, mag=None)
    assert light_curve_colour(b, "APASS", ("B", "V"), "V", gone, fit, FitSettings()) is None
    rng = np.random.default_rng(4)
    inst = rng.uniform(10.0, 15.0, 50)
    flat = fit_zeropoint(inst + 2.0, np.full(50, 0.01), inst, np.full(50, 0.01), None)
    assert light_curve_colour(b, "APASS", ("B", "V"), "V", _target(14.0), flat, FitSettings()) is None
    off = FitSettings(lightcurve_colour_window_days=0.0)
    assert light_curve_colour(b, "APASS", ("B", "V"), "V", _target(14.0), fit, off) is None


def test_a_blue_transient_in_a_red_field_is_calibrated_at_its_measured_colour():
    """A V frame of a blue target (B-V 0.35) among redder stars, CT 0.15, with a B detection of the same
    night: the answer moves by the colour term times the offset, lands on the truth within its smaller
    error, and says where the colour came from."""
    rng = np.random.default_rng(61)
    fld = make_field(rng, target_v=15.5, target_bv=0.35, ct=0.15)
    assert fld.target_true_mag is not None
    plain = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, force_filter="APASS/V")
    b_detection = NearbyDetection("APASS", "B", 15.5 + 0.35, 0.02, -0.05, "followup 12 from Loiano")
    known = calibrate_frame(
        fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, force_filter="APASS/V", nearby=[b_detection]
    )
    t0, t1 = plain.target, known.target
    assert t0.mag is not None and t1.mag is not None and t0.mag_err is not None and t1.mag_err is not None
    assert t0.colour_source is None
    assert t1.colour_source is not None and "followup 12 from Loiano" in t1.colour_source
    assert t1.assumed_colour == pytest.approx(0.35, abs=0.05)
    assert abs(t1.mag - fld.target_true_mag) < abs(t0.mag - fld.target_true_mag)
    assert abs(t1.mag - fld.target_true_mag) < t1.mag_err < t0.mag_err
    assert any("from its own light curve" in w for w in known.warnings)
    # the zero point and the calibrators do not change: only the target's colour does
    assert known.zeropoint == pytest.approx(plain.zeropoint, abs=1e-12) and known.ncalibrators == plain.ncalibrators


def test_a_colour_less_certain_than_the_calibrators_spread_is_not_used():
    """A B point from a V frame forced to B (error 2.4 mag) says nothing of the colour: the V frame is
    calibrated at the calibrators' median, as without it, and its error does not grow."""
    rng = np.random.default_rng(61)
    fld = make_field(rng, target_v=15.5, target_bv=0.35, ct=0.15)
    plain = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, force_filter="APASS/V")
    vague = NearbyDetection("APASS", "B", 15.9, 2.4, -0.05, "followup 13")
    got = calibrate_frame(
        fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, force_filter="APASS/V", nearby=[vague]
    )
    assert got.target.colour_source is None and got.target.mag == plain.target.mag
    assert got.target.mag_err == plain.target.mag_err and got.warnings == plain.warnings
