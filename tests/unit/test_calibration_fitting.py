"""Robust zero-point / colour-term fit on synthetic arrays with known truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.calibrate.core.fitting import InsufficientData, fast_median, fit_zeropoint
from services.calibrate.core.settings import FitSettings


def synth(rng, n=200, zp=1.7, ct=0.12, intrinsic=0.02, colour_sd=0.35):
    """Stars obeying m_ref = m_inst + zp + ct * colour with stated and intrinsic noise."""
    colour = rng.normal(0.7, colour_sd, n)
    ref_true = rng.uniform(11, 17, n)
    e_ref = 0.01 + 0.02 * rng.uniform(0, 1, n)
    e_inst = 0.005 + 0.05 * 10 ** (0.4 * (ref_true - 17))
    inst_true = ref_true - zp - ct * colour
    ref = ref_true + rng.normal(0, 1, n) * e_ref
    inst = inst_true + rng.normal(0, 1, n) * e_inst + rng.normal(0, intrinsic, n)
    return ref, e_ref, inst, e_inst, colour


def test_fast_median_matches_numpy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 10, 101):
        a = rng.normal(size=n)
        assert fast_median(a) == pytest.approx(np.median(a))


def test_known_zeropoint_and_colour_term_recovered():
    rng = np.random.default_rng(11)
    ref, e_ref, inst, e_inst, colour = synth(rng, zp=1.7, ct=0.12)
    f = fit_zeropoint(ref, e_ref, inst, e_inst, colour)
    assert f.fit_colour_term
    assert abs(f.zeropoint - 1.7) < 3 * f.zeropoint_err
    assert abs(f.colour_term - 0.12) < 3 * f.colour_term_err
    assert f.zeropoint_err < 0.02 and f.colour_term_err < 0.02
    assert f.intrinsic_scatter == pytest.approx(0.02, abs=0.008)
    assert f.npoints >= 0.95 * len(ref)
    assert f.outlier_fraction == pytest.approx(1 - f.npoints / len(ref))
    assert f.median_colour == pytest.approx(np.median(colour[f.used]))
    # residuals are what they say
    assert np.allclose(f.residuals, ref - (inst + f.zeropoint + f.colour_term * colour))


def test_outliers_are_clipped_and_do_not_bias():
    rng = np.random.default_rng(12)
    ref, e_ref, inst, e_inst, colour = synth(rng, n=150, zp=-0.4, ct=-0.08)
    bad = rng.choice(len(ref), 30, replace=False)
    inst[bad] -= rng.uniform(0.3, 2.0, 30)  # blends: too bright
    f = fit_zeropoint(ref, e_ref, inst, e_inst, colour)
    assert f.clipped[bad].all()
    assert f.clipped.sum() <= 30 + 0.05 * len(ref)
    assert abs(f.zeropoint + 0.4) < 3 * f.zeropoint_err
    assert abs(f.colour_term + 0.08) < 3 * f.colour_term_err
    assert 0.19 <= f.outlier_fraction <= 0.26
    # a plain least-squares fit would have been pulled away
    naive = np.mean(ref - inst - (-0.08) * colour)
    assert abs(naive + 0.4) > abs(f.zeropoint + 0.4)


def test_at_most_half_rejected_and_min_stars_kept():
    rng = np.random.default_rng(13)
    ref, e_ref, inst, e_inst, colour = synth(rng, n=40)
    # a clip so tight that most stars fall outside it: capped at max_reject_fraction = 0.5
    f = fit_zeropoint(ref, e_ref, inst, e_inst, colour, FitSettings(clip_sigma=0.2))
    assert f.clipped.sum() == 20 and f.npoints == 20
    # the least deviant are the ones kept (chosen on the previous iteration's residuals)
    z = np.abs(f.residuals) / f.sigma
    least = np.argsort(z)[:20]
    assert f.used[least].mean() >= 0.8
    # 8 stars: 0.5 would allow 4 rejections, but min_stars=6 keeps 6
    f2 = fit_zeropoint(ref[:8], e_ref[:8], inst[:8], e_inst[:8], colour[:8], FitSettings(clip_sigma=0.2, min_stars=6))
    assert f2.npoints == 6
    # 40 % garbage (within the 50 % breakdown): all garbage clipped, truth recovered
    inst2 = inst.copy()
    inst2[:16] += rng.uniform(1, 3, 16)
    f3 = fit_zeropoint(ref, e_ref, inst2, e_inst, colour)
    assert f3.clipped[:16].all()
    assert abs(f3.zeropoint - 1.7) < 3 * f3.zeropoint_err


def test_too_few_stars_raise():
    rng = np.random.default_rng(14)
    ref, e_ref, inst, e_inst, colour = synth(rng, n=4)
    with pytest.raises(InsufficientData):
        fit_zeropoint(ref, e_ref, inst, e_inst, colour)
    f = fit_zeropoint(ref, e_ref, inst, e_inst, colour, FitSettings(min_stars=3))
    assert not f.fit_colour_term  # 4 < min_stars_colour_term


def test_zeropoint_only_when_colour_spread_small():
    rng = np.random.default_rng(15)
    ref, e_ref, inst, e_inst, colour = synth(rng, n=100, ct=0.1, colour_sd=0.02)
    f = fit_zeropoint(ref, e_ref, inst, e_inst, colour)
    assert not f.fit_colour_term
    assert f.colour_term == 0.0 and math.isnan(f.colour_term_err)
    # ZP absorbs CT * mean colour
    assert abs(f.zeropoint - (1.7 + 0.1 * 0.7)) < 3 * f.zeropoint_err + 0.01
    # forcing the colour term still works (badly constrained)
    f2 = fit_zeropoint(ref, e_ref, inst, e_inst, colour, fit_colour_term=True)
    assert f2.fit_colour_term and f2.colour_term_err > 0.1
    # and no colour at all
    f3 = fit_zeropoint(ref, e_ref, inst, e_inst, None)
    assert not f3.fit_colour_term


def test_clip_sigma_setting_changes_clipping():
    rng = np.random.default_rng(16)
    ref, e_ref, inst, e_inst, colour = synth(rng, n=300)
    loose = fit_zeropoint(ref, e_ref, inst, e_inst, colour, FitSettings(clip_sigma=3.5))
    tight = fit_zeropoint(ref, e_ref, inst, e_inst, colour, FitSettings(clip_sigma=1.5))
    assert tight.clipped.sum() > loose.clipped.sum()
    # Gaussian data: ~13 % beyond 1.5 sigma, ~0 beyond 3.5 sigma
    assert 0.06 < tight.outlier_fraction < 0.22
    assert loose.outlier_fraction < 0.02


@pytest.mark.parametrize("clip", [2.5, 1.5])
def test_errors_are_honest(clip):
    """Over many realisations ~68 % of ZP and CT estimates lie within 1 sigma of the truth."""
    rng = np.random.default_rng(100 + int(clip * 10))
    s = FitSettings(clip_sigma=clip)
    n_real = 400
    zp_in = ct_in = 0
    for _ in range(n_real):
        ref, e_ref, inst, e_inst, colour = synth(rng, n=60, zp=1.7, ct=0.12, intrinsic=0.03)
        f = fit_zeropoint(ref, e_ref, inst, e_inst, colour, s)
        zp_in += abs(f.zeropoint - 1.7) < f.zeropoint_err
        ct_in += abs(f.colour_term - 0.12) < f.colour_term_err
    assert 0.55 <= zp_in / n_real <= 0.80
    assert 0.55 <= ct_in / n_real <= 0.80


def test_calibration_err_at_colour():
    rng = np.random.default_rng(17)
    ref, e_ref, inst, e_inst, colour = synth(rng, n=200)
    f = fit_zeropoint(ref, e_ref, inst, e_inst, colour)
    # error at the stars' mean colour is smaller than the extrapolated ZP error at colour 0
    assert f.calibration_err(float(np.mean(colour))) < f.zeropoint_err
    assert f.calibration_err(0.0) == pytest.approx(f.zeropoint_err)


def test_colour_noise_correction_removes_colour_term_bias():
    """V against B-V: V's catalogue noise is in both y and the colour; the correction removes the bias."""
    rng = np.random.default_rng(18)
    pulls_raw, pulls_eiv = [], []
    for _ in range(200):
        n = 150
        bv = rng.normal(0.7, 0.3, n)
        v = rng.uniform(11, 17, n)
        e_v = np.full(n, 0.05)
        e_b = np.full(n, 0.06)
        v_obs = v + rng.normal(0, 1, n) * e_v
        b_obs = v + bv + rng.normal(0, 1, n) * e_b
        e_inst = np.full(n, 0.01)
        inst = v - 2.0 - 0.05 * bv + rng.normal(0, 1, n) * e_inst
        colour = b_obs - v_obs
        raw = fit_zeropoint(v_obs, e_v, inst, e_inst, colour)
        eiv = fit_zeropoint(v_obs, e_v, inst, e_inst, colour, colour_var=e_v**2 + e_b**2, colour_cov=-(e_v**2))
        pulls_raw.append((raw.colour_term - 0.05) / raw.colour_term_err)
        pulls_eiv.append((eiv.colour_term - 0.05) / eiv.colour_term_err)
    assert np.mean(pulls_raw) < -1.0  # biased without the correction
    assert abs(np.mean(pulls_eiv)) < 0.25
    assert 0.55 <= np.mean(np.abs(pulls_eiv) < 1) <= 0.80
