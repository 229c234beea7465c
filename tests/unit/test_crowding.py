"""Crowded frames: isolated calibrators, blended reference stars, blended targets.

The code under test: services/calibrate/core/crowding.py.
"""

from __future__ import annotations

import math

import numpy as np

from services.calibrate.core import FitSettings, calibrate_frame, crowding
from shared.arrays import SourceTable
from shared.contracts.messages import SurveyStars
from shared.contracts.surveys import APASS, PS1
from tools.datasets import gaia_from_apass, make_field

ARCSEC = 1.0 / 3600.0


def _brute_contamination(ra, dec, mag, cra, cdec, cmag, radius, self_index):
    cosd = math.cos(math.radians(float(np.median(dec))))
    out = np.zeros(len(ra))
    for i in range(len(ra)):
        d = np.hypot((cra - ra[i]) * cosd, cdec - dec[i]) * 3600.0
        near = d <= radius
        flux = 10 ** (-0.4 * cmag)
        own = flux[self_index[i]]
        out[i] = (flux[near].sum() - own) / own
    return out


def test_neighbour_light_agrees_with_brute_force():
    rng = np.random.default_rng(5)
    n = 800
    ra = 200.0 + rng.uniform(0, 0.02, n)
    dec = -20.0 + rng.uniform(0, 0.02, n)
    mag = rng.uniform(12, 19, n)
    fast = crowding.contamination(ra, dec, mag, ra, dec, mag, 4.0, self_index=np.arange(n))
    assert isinstance(fast, np.ndarray)
    slow = _brute_contamination(ra, dec, mag, ra, dec, mag, 4.0, np.arange(n))
    # the tangent-plane distance and the flat one differ by far less than any pair's distance to 4"
    assert np.mean(np.isclose(fast, slow, rtol=1e-6, atol=1e-9)) > 0.99
    assert (fast > 0).any() and (fast == 0).any()


def test_a_survey_blends_what_it_cannot_resolve_and_gaia_shows_it():
    """One star with a Gaia neighbour 1 mag fainter 5" away: a blend in APASS (8"), not in PS1 (1.2")."""
    ra0, dec0 = 150.0, 20.0
    star = SurveyStars(
        survey="X",
        ra=np.array([ra0, ra0 + 0.1]),
        dec=np.array([dec0, dec0]),
        mags={"V": np.array([14.0, 14.0]), "r": np.array([14.0, 14.0])},
        errs={"V": np.array([0.02, 0.02]), "r": np.array([0.02, 0.02])},
    )
    cosd = math.cos(math.radians(dec0))
    gaia = (
        np.array([ra0, ra0 + 5.0 * ARCSEC / cosd, ra0 + 0.1, ra0 + 0.1 + 12.0 * ARCSEC / cosd]),
        np.array([dec0, dec0, dec0, dec0]),
        np.array([14.0, 15.0, 14.0, 14.0]),
    )
    apass = crowding.reference_blend(APASS, star.model_copy(update={"survey": "APASS"}), gaia)
    assert math.isclose(apass[0], 10**-0.4, rel_tol=1e-6)  # 40 % more light: 0.37 mag too bright
    assert apass[1] == 0.0  # its neighbour is 12" away: resolved
    ps1 = crowding.reference_blend(PS1, star.model_copy(update={"survey": "PS1"}), gaia)
    assert ps1.tolist() == [0.0, 0.0]


def test_the_resolutions_are_data_of_the_surveys():
    assert APASS.resolution_arcsec >= 8.0 > PS1.resolution_arcsec > 0.4


def _crowded_field(seed: int, blended_fraction: float = 0.45, flagged_fraction: float = 0.3):
    """A V frame whose APASS stars are, for ``blended_fraction`` of the bright ones, blends with a
    Gaia star 1 mag fainter 4" away (APASS 0.37 mag too bright, the frame resolves them), and
    ``flagged_fraction`` of whose sources SExtractor flagged deblended (a crowded frame)."""
    rng = np.random.default_rng(seed)
    fld = make_field(rng, n_stars=1500)
    apass = fld.references["APASS"]
    gaia = gaia_from_apass(rng, apass)
    v = np.asarray(apass.mags["V"])
    blended = (v < 16.5) & (rng.uniform(0, 1, len(v)) < blended_fraction)
    extra = 2.5 * math.log10(1.0 + 10**-0.4)
    mags = {k: np.where(blended, np.asarray(m) - extra, m) for k, m in apass.mags.items()}
    cosd = math.cos(math.radians(20.0))
    g = np.asarray(gaia.mags["G"])
    neighbour = {k: np.asarray(m)[blended] + 1.0 for k, m in gaia.mags.items()}
    gaia = SurveyStars(
        survey="GAIA",
        ra=np.concatenate([gaia.ra, np.asarray(gaia.ra)[blended] + 4.0 * ARCSEC / cosd]),
        dec=np.concatenate([gaia.dec, np.asarray(gaia.dec)[blended]]),
        mags={k: np.concatenate([np.asarray(m), neighbour[k]]) for k, m in gaia.mags.items()},
        errs={k: np.concatenate([np.asarray(e), np.asarray(e)[blended]]) for k, e in gaia.errs.items()},
    )
    assert len(g) + blended.sum() == len(gaia.ra)
    flags = np.asarray(fld.sources.flags).copy()
    flags[rng.uniform(0, 1, len(flags)) < flagged_fraction] |= 2
    flags[-1] = 0  # the target (last source) is not flagged here
    src = fld.sources
    sources = SourceTable.from_columns(src.ra, src.dec, src.mag, src.mag_err, flags)
    refs = {"APASS": SurveyStars(survey="APASS", ra=apass.ra, dec=apass.dec, mags=mags, errs=apass.errs), "GAIA": gaia}
    return fld, sources, refs


def test_blended_reference_stars_do_not_bias_a_crowded_frame():
    fld, sources, refs = _crowded_field(11)
    cal = calibrate_frame(sources, refs, fld.target_ra, fld.target_dec, 2.0, force_filter=("APASS", "V"))
    assert cal.target.detected
    # without the cut the blends pull the zero point ~0.1-0.15 mag bright
    assert abs(cal.target.mag - fld.target_true_mag) < 0.05 + 2 * (cal.target.inst_mag_err or 0)
    chosen = next(c for c in cal.candidates if c.chosen)
    assert "crowded field" in (chosen.note or "")
    off = calibrate_frame(
        sources,
        refs,
        fld.target_ra,
        fld.target_dec,
        2.0,
        force_filter=("APASS", "V"),
        settings=FitSettings(crowded_fraction=2.0),
    )
    assert off.target.mag - fld.target_true_mag < cal.target.mag - fld.target_true_mag - 0.05


def test_a_sparse_frame_is_calibrated_as_without_the_isolation_cut():
    """Few flagged sources: not crowded, every calibrator is kept and the answer is unchanged."""
    fld, sources, refs = _crowded_field(12, blended_fraction=0.0, flagged_fraction=0.03)
    on = calibrate_frame(sources, refs, fld.target_ra, fld.target_dec, 2.0)
    off = calibrate_frame(
        sources, refs, fld.target_ra, fld.target_dec, 2.0, settings=FitSettings(crowded_fraction=2.0, blend_flags=0)
    )
    assert (on.survey, on.band, on.npoints) == (off.survey, off.band, off.npoints)
    assert on.zeropoint == off.zeropoint and on.target.mag == off.target.mag


def test_a_blended_target_is_said_so_and_its_error_is_honest():
    rng = np.random.default_rng(13)
    fld = make_field(rng)
    flags = np.asarray(fld.sources.flags).copy()
    plain = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    flags[-1] = 3  # SExtractor: neighbours bias the photometry, deblended
    src = fld.sources
    flagged = SourceTable.from_columns(src.ra, src.dec, src.mag, src.mag_err, flags)
    cal = calibrate_frame(flagged, fld.references, fld.target_ra, fld.target_dec, 2.0)
    assert cal.target.detected and cal.target.flags == 3
    assert any("blended" in w for w in cal.warnings)
    assert not any("blended" in w for w in plain.warnings)
    s = FitSettings()
    assert cal.target.mag_err is not None and plain.target.mag_err is not None
    assert cal.target.mag_err >= math.hypot(plain.target.mag_err, s.target_blend_min_err) - 1e-9
    assert cal.target.mag == plain.target.mag  # the magnitude itself is what was measured


def test_target_blend_rule():
    s = FitSettings()
    assert crowding.target_blend(0, 0.0, s) == (0.0, None)
    extra, msg = crowding.target_blend(0, 1.0, s)  # an unflagged neighbour as bright as the target
    assert msg is not None
    assert math.isclose(extra, s.target_blend_err_fraction * 2.5 * math.log10(2.0)) and "blended" in msg
    extra, msg = crowding.target_blend(2, 0.0, s)
    assert msg is not None
    assert extra == s.target_blend_min_err and "FLAGS 2" in msg


def test_empirical_error_of_a_crowded_frame_at_the_targets_signal_to_noise():
    """Faint stars measured 0.1 mag too faint with 0.05 mag of scatter: a target at their S/N carries that."""
    rng = np.random.default_rng(14)
    n = 400
    inst_err = np.where(np.arange(n) < 200, 0.01, 0.08)
    resid = np.where(inst_err > 0.05, -0.1 + rng.normal(0, 0.05, n), rng.normal(0, 0.01, n))
    inst = rng.uniform(10, 16, n)
    colour = rng.normal(0.8, 0.3, n)
    ref = inst + 1.0 + 0.1 * colour + resid
    s = FitSettings()
    faint = crowding.empirical_error(ref, inst, inst_err, colour, 1.0, 0.1, 0.07, s)
    assert faint is not None
    assert 0.1 < faint < 0.13
    bright = crowding.empirical_error(ref, inst, inst_err, colour, 1.0, 0.1, 0.012, s)
    assert bright is not None
    assert bright < 0.015
    assert crowding.empirical_error(ref, inst, inst_err, colour, 1.0, 0.1, 0.5, s) is None  # nobody that faint
    assert crowding.empirical_error(ref, inst, inst_err, colour, 1.0, 0.1, None, s) is None


def test_gaia_density_is_the_count_per_square_arcmin_in_the_frame():
    """2,000 Gaia stars spread evenly over a 10' x 10' frame, and as many again outside it: 20 per arcmin2."""
    rng = np.random.default_rng(21)
    dec0 = 40.0
    cosd = math.cos(math.radians(dec0))
    half = 5.0 / 60.0
    src_ra = 100.0 + rng.uniform(-half, half, 500) / cosd
    src_dec = dec0 + rng.uniform(-half, half, 500)
    inside_ra = 100.0 + rng.uniform(-half, half, 2000) / cosd
    inside_dec = dec0 + rng.uniform(-half, half, 2000)
    outside_ra = 100.0 + rng.uniform(2 * half, 4 * half, 2000) / cosd
    outside_dec = dec0 + rng.uniform(-half, half, 2000)
    sources = SourceTable.from_columns(
        src_ra, src_dec, np.full(500, 15.0), np.full(500, 0.01), np.zeros(500, dtype=np.int64)
    )
    gaia = (
        np.concatenate([inside_ra, outside_ra]),
        np.concatenate([inside_dec, outside_dec]),
        np.full(4000, 18.0),
    )
    density = crowding.gaia_density(sources, np.ones(500, dtype=bool), gaia)
    # the sources' box is a little smaller than the frame (500 random corners), so slightly fewer, on a smaller area
    assert 19.0 < density < 21.0
    assert crowding.gaia_density(sources, np.zeros(500, dtype=bool), gaia) == 0.0


def test_a_dense_sky_makes_a_frame_crowded_though_few_sources_are_flagged():
    """3 % flagged, no blends (not crowded by its flags), 7 Gaia stars per arcmin2: crowded only with a
    density threshold below that, and then its final fit says so."""
    fld, sources, refs = _crowded_field(12, blended_fraction=0.0, flagged_fraction=0.03)
    gaia = refs["GAIA"]
    usable = np.ones(len(sources), dtype=bool)
    density = crowding.gaia_density(sources, usable, (gaia.ra, gaia.dec, np.asarray(gaia.mags["G"])))
    assert 5.0 < density < 10.0
    default = calibrate_frame(sources, refs, fld.target_ra, fld.target_dec, 2.0)
    dense = calibrate_frame(
        sources, refs, fld.target_ra, fld.target_dec, 2.0, settings=FitSettings(crowded_gaia_per_arcmin2=5.0)
    )
    assert "crowded field" not in (next(c for c in default.candidates if c.chosen).note or "")
    assert "crowded field" in (next(c for c in dense.candidates if c.chosen).note or "")
    assert abs(dense.target.mag - fld.target_true_mag) < 0.05 + 2 * (dense.target.inst_mag_err or 0)
