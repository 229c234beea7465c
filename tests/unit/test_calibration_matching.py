"""Cross-matching sources to reference stars (grid on the tangent plane, exact chords)."""

from __future__ import annotations

import numpy as np
import pytest

from services.calibrate.core.matching import (
    angular_separation_arcsec,
    arcsec_to_chord,
    chord_to_arcsec,
    match_to_reference,
)

AS = 1.0 / 3600.0


def test_chord_round_trip():
    a = np.array([0.1, 1.0, 2.0, 60.0, 3600.0])
    assert np.allclose(chord_to_arcsec(np.asarray(arcsec_to_chord(a))), a, rtol=1e-9)


def test_nearest_within_radius_and_separation():
    rng = np.random.default_rng(0)
    n = 500
    dec0 = 45.0
    ref_ra = 10 + rng.uniform(0, 0.2, n)
    ref_dec = dec0 + rng.uniform(0, 0.2, n)
    # sources: offset by known amounts 0..3 arcsec along dec
    off = rng.uniform(0, 3.0, n)
    src_ra = ref_ra.copy()
    src_dec = ref_dec + off * AS
    m = match_to_reference(src_ra, src_dec, ref_ra, ref_dec, 2.0)
    inside = off < 2.0
    # every source inside the radius found its own star (unless another is nearer)
    own = m.ref_index == np.arange(n)
    assert own[inside].mean() > 0.98
    assert (m.ref_index[~inside] != np.arange(n)[~inside]).all()
    ok = own & inside
    assert np.allclose(m.separation_arcsec[ok], off[ok], atol=1e-6)
    assert np.isnan(m.separation_arcsec[m.ref_index < 0]).all()


def test_ra_wraparound_and_high_dec():
    ref_ra = np.array([359.99995, 0.5])
    ref_dec = np.array([0.0, 89.9999])
    src_ra = np.array([0.00005, 180.5])  # 0.36" across RA=0; across the pole
    src_dec = np.array([0.0, 89.9999])
    m = match_to_reference(src_ra, src_dec, ref_ra, ref_dec, 2.0)
    assert m.ref_index[0] == 0
    assert m.separation_arcsec[0] == pytest.approx(0.36, abs=0.01)
    # (0.5, 89.9999) and (180.5, 89.9999) are 0.72" apart through the pole
    assert m.ref_index[1] == 1
    assert m.separation_arcsec[1] == pytest.approx(0.72, abs=0.01)
    sep = angular_separation_arcsec(np.array([180.5]), np.array([89.9999]), 0.5, 89.9999)
    assert sep[0] == pytest.approx(0.72, abs=0.01)


def test_ambiguous_second_reference_within_radius():
    ref_ra = np.array([100.0, 100.0, 100.0 + 30 * AS])
    ref_dec = np.array([0.0, 1.5 * AS, 0.0])
    src_ra = np.array([100.0, 100.0 + 30 * AS])
    src_dec = np.array([0.2 * AS, 0.0])
    m = match_to_reference(src_ra, src_dec, ref_ra, ref_dec, 2.0)
    assert m.ref_index.tolist() == [0, 2]
    assert m.ambiguous.tolist() == [True, False]
    assert m.good.tolist() == [False, True]
    # with a radius below the pair's separation the first is unambiguous
    m = match_to_reference(src_ra, src_dec, ref_ra, ref_dec, 1.0)
    assert m.ambiguous.tolist() == [False, False]


def test_ambiguous_two_sources_claim_one_reference():
    ref_ra = np.array([50.0, 50.0 + 60 * AS])
    ref_dec = np.array([-30.0, -30.0])
    src_ra = np.array([50.0, 50.0, 50.0 + 60 * AS])
    src_dec = np.array([-30.0 + 0.5 * AS, -30.0 - 0.9 * AS, -30.0])
    m = match_to_reference(src_ra, src_dec, ref_ra, ref_dec, 2.0)
    assert m.ref_index.tolist() == [0, 0, 1]
    assert m.ambiguous.tolist() == [True, True, False]


def test_nan_positions_and_empty_inputs():
    ref_ra = np.array([10.0, np.nan])
    ref_dec = np.array([10.0, 10.0])
    src_ra = np.array([np.nan, 10.0])
    src_dec = np.array([10.0, 10.0])
    m = match_to_reference(src_ra, src_dec, ref_ra, ref_dec, 2.0)
    assert m.ref_index.tolist() == [-1, 0]
    assert not m.ambiguous.any()
    e = match_to_reference(src_ra, src_dec, np.array([]), np.array([]), 2.0)
    assert (e.ref_index == -1).all() and len(e.ref_index) == 2
    e = match_to_reference(np.array([]), np.array([]), ref_ra, ref_dec, 2.0)
    assert len(e.ref_index) == 0


def test_far_references_are_ignored():
    # a cone much larger than the frame: stars far away never match
    rng = np.random.default_rng(2)
    ref_ra = np.concatenate([[200.0], rng.uniform(190, 210, 1000)])
    ref_dec = np.concatenate([[10.0], rng.uniform(0, 20, 1000)])
    m = match_to_reference(np.array([200.0 + 0.5 * AS]), np.array([10.0]), ref_ra, ref_dec, 2.0)
    assert m.ref_index.tolist() == [0]


def _brute_force(src_ra, src_dec, ref_ra, ref_dec, radius):
    """Nearest reference star, separation and ambiguity from all pairwise distances."""
    from services.calibrate.core.matching import radec_to_xyz

    s = radec_to_xyz(src_ra, src_dec)
    r = radec_to_xyz(ref_ra, ref_dec)
    d = np.sqrt(((s[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    d[~np.isfinite(d)] = np.inf
    chord = arcsec_to_chord(radius)
    within = d < chord
    nearest = np.where(within.any(1), np.argmin(d, axis=1), -1)
    counts = np.bincount(nearest[nearest >= 0], minlength=len(ref_ra))
    shared = (nearest >= 0) & (counts[np.maximum(nearest, 0)] > 1)
    ambiguous = (within.sum(1) > 1) | shared
    sep = np.where(nearest >= 0, chord_to_arcsec(np.min(d, axis=1).clip(0, 2)), np.nan)
    return nearest, sep, ambiguous


@pytest.mark.parametrize("ra0,dec0", [(0.0, 0.0), (359.995, 30.0), (120.0, 89.9), (10.0, -89.8), (200.0, -45.0)])
def test_grid_match_equals_brute_force(ra0, dec0):
    """The grid finds exactly the pairs all-pairs distances do: RA wrap, poles, NaNs, blends."""
    rng = np.random.default_rng(int(ra0 + dec0 + 1000))
    for radius in (1.0, 2.0, 30.0):
        n, m, w = 300, 400, 0.05
        cosd = max(np.cos(np.radians(dec0)), 0.02)
        ref_ra = (ra0 + rng.uniform(-w, w, m) / cosd) % 360.0
        ref_dec = np.clip(dec0 + rng.uniform(-w, w, m), -89.999, 89.999)
        src_ra = (ra0 + rng.uniform(-w, w, n) / cosd) % 360.0
        src_dec = np.clip(dec0 + rng.uniform(-w, w, n), -89.999, 89.999)
        k = 200  # most sources near a star, some beyond the radius
        off = rng.normal(0, radius / 2 * AS, (k, 2))
        src_ra[:k] = (ref_ra[:k] + off[:, 0] / np.cos(np.radians(ref_dec[:k]))) % 360.0
        src_dec[:k] = np.clip(ref_dec[:k] + off[:, 1], -89.999, 89.999)
        src_ra[5] = np.nan
        ref_dec[7] = np.nan
        m_ = match_to_reference(src_ra, src_dec, ref_ra, ref_dec, radius)
        nearest, sep, ambiguous = _brute_force(src_ra, src_dec, ref_ra, ref_dec, radius)
        assert np.array_equal(m_.ref_index, nearest)
        assert np.array_equal(m_.ambiguous, ambiguous)
        assert np.allclose(m_.separation_arcsec, sep, equal_nan=True, rtol=1e-9, atol=1e-9)
        assert m_.matched.sum() > 50
