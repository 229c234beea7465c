"""Selection of calibrators and the choice of the best survey/band."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.calibrate.core import FitSettings, calibrate_frame
from services.calibrate.core.calibrators import bright_end_cut, reference_quality, source_quality
from shared.arrays import SourceTable
from shared.contracts.messages import SurveyStars
from shared.errors import BadInput
from tools.datasets import gaia_from_apass, make_field


def test_source_quality_flags_and_bad_mags():
    n = 8
    src = SourceTable.from_columns(
        ra=np.full(n, 10.0),
        dec=np.full(n, 10.0),
        mag=np.array([15, 15, 15, 15, 15, 99.0, np.nan, 15]),
        mag_err=np.array([0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.9]),
        flags=np.array([0, 1, 2, 4, 8 | 1, 0, 0, 0]),
    )
    ok = source_quality(src, FitSettings())
    assert ok.tolist() == [True, True, True, False, False, False, False, False]
    one = np.array([1.0])
    ok16 = source_quality(SourceTable.from_columns(one, one, 15 * one, 0.01 * one, np.array([16])), FitSettings())
    assert not ok16[0]


def test_reference_quality_cuts():
    s = FitSettings()
    mag = np.array([12.0, 9.5, 17.5, 14.0, 14.0, np.nan, 14.0])
    err = np.array([0.02, 0.02, 0.02, 0.31, 0.02, 0.02, np.nan])
    col = np.array([0.5, 0.5, 0.5, 0.5, np.nan, 0.5, 0.5])
    ok = reference_quality(mag, err, col, 10.0, 17.0, s)
    assert ok.tolist() == [True, False, False, False, False, False, False]


def test_bright_end_cut_finds_the_bend():
    rng = np.random.default_rng(3)
    inst = np.sort(rng.uniform(10, 16, 200))
    resid = rng.normal(0, 0.02, 200)
    resid[:12] -= np.linspace(0.6, 0.08, 12)  # the 12 brightest bend away
    cut = bright_end_cut(inst, resid, 0.02, FitSettings())
    assert cut[:10].all()
    assert cut.sum() <= 14
    # straight data: nothing cut
    assert not bright_end_cut(inst, rng.normal(0, 0.02, 200), 0.02, FitSettings()).any()


def test_saturated_flagged_stars_are_not_used():
    rng = np.random.default_rng(21)
    fld = make_field(rng, flag_brighter_than=12.0)
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    flagged = (fld.sources.flags & 4) != 0
    assert flagged.sum() > 3
    # rebuild which sources were calibrators: none of the flagged
    src_mag = np.asarray(fld.sources.mag, dtype=float)
    used_inst = cal.plot.inst_mag[cal.plot.used]
    assert not np.isin(used_inst, src_mag[flagged]).any()
    assert not np.isin(cal.plot.inst_mag, src_mag[flagged]).any()


def test_non_linear_bright_end_is_cut_and_zp_recovered():
    rng = np.random.default_rng(22)
    # saturation at 2e5 counts (inst mag ~11.75) with no FLAGS set
    fld = make_field(rng, n_stars=900, sat_counts=2.0e5)
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    assert cal.band == "V"
    assert cal.nbright > 0
    bent = cal.plot.inst_mag < 12.0  # these lost > 0.12 mag
    assert bent.sum() > 3
    assert not cal.plot.used[bent].any()
    assert abs(cal.zeropoint - fld.zp) < 3 * cal.zeropoint_err + 0.01
    # without the bright-end cut and the clipping the bend would bias the fit
    loose = FitSettings(bright_max_fraction=0.0, clip_sigma=50.0)
    cal2 = calibrate_frame(
        fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, force_filter=("APASS", "V"), settings=loose
    )

    def offset(c):  # calibration error at a typical colour
        return abs(c.zeropoint + c.colour_term * 0.7 - (fld.zp + fld.ct * 0.7))

    assert offset(cal2) > offset(cal) and offset(cal2) > 0.02
    assert cal2.intrinsic_scatter > 3 * cal.intrinsic_scatter


def test_ambiguous_matches_are_dropped():
    rng = np.random.default_rng(23)
    fld = make_field(rng, target_v=None)
    stars = fld.references["APASS"]
    # a close companion (1") to the 20 brightest reference stars
    v = np.nan_to_num(np.asarray(stars.mags["V"]), nan=99.0)
    idx = np.argsort(v)[:20]
    ra = np.concatenate([stars.ra, stars.ra[idx] + 1.0 / 3600 / math.cos(math.radians(20.0))])
    dec = np.concatenate([stars.dec, stars.dec[idx]])
    mags = {k: np.concatenate([m, m[idx] + 3.0]) for k, m in stars.mags.items()}
    errs = {k: np.concatenate([e, e[idx]]) for k, e in stars.errs.items()}
    refs = {"APASS": SurveyStars(survey="APASS", ra=ra, dec=dec, mags=mags, errs=errs)}
    base = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    cal = calibrate_frame(fld.sources, refs, fld.target_ra, fld.target_dec, 2.0)
    assert cal.ncalibrators <= base.ncalibrators - 10
    brightest = np.sort(np.asarray(stars.mags["V"])[idx])
    assert not np.isin(cal.plot.ref_mag, np.asarray(stars.mags["V"])[idx]).any()
    assert brightest.size == 20


@pytest.mark.parametrize("band", ["V", "B", "r'", "g'"])
def test_best_band_is_the_instruments(band):
    rng = np.random.default_rng(30 + len(band) + ord(band[0]))
    fld = make_field(rng, band=band, ct=0.04)
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    assert (cal.survey, cal.band) == ("APASS", band)
    chosen = [c for c in cal.candidates if c.chosen]
    assert len(chosen) == 1 and chosen[0].filter == band
    assert cal.colour_term_err is not None
    assert abs(cal.colour_term - 0.04) < 3 * cal.colour_term_err + 0.01
    # the winner has the lowest score of all fitted candidates
    scores = [c.score for c in cal.candidates if c.score is not None]
    assert cal.score == pytest.approx(min(scores))
    assert len(scores) == 5


def test_apass_v_beats_gaia_g_for_a_v_instrument():
    rng = np.random.default_rng(41)
    fld = make_field(rng, band="V", ct=0.03)
    refs = dict(fld.references)
    refs["GAIA"] = gaia_from_apass(rng, refs["APASS"])
    cal = calibrate_frame(fld.sources, refs, fld.target_ra, fld.target_dec, 2.0)
    assert (cal.survey, cal.band) == ("APASS", "V")
    surveys = {c.survey for c in cal.candidates}
    assert surveys == {"APASS", "GAIA"}
    g = next(c for c in cal.candidates if c.survey == "GAIA" and c.filter == "G")
    assert g.score is not None and g.colour_term is not None and abs(g.colour_term) > 0.3


def test_score_formula():
    """score = sqrt(err(ZP + CT c0)**2 + s_int**2 + (CT**2 + var CT) * spread**2): the target's
    calibration error budget, colour spread in the band's own colour index."""
    rng = np.random.default_rng(42)
    fld = make_field(rng)
    cands: list = []
    import services.calibrate.core.api as api
    from services.calibrate.core.choice import candidate_score

    s = FitSettings()
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, settings=s)
    orig = api.choose_best
    try:

        def spy(candidates, settings=None):
            cands.extend(candidates)
            return orig(candidates, settings)

        api.choose_best = spy  # type: ignore[assignment]  # a spy taking the two arguments api passes
        calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, settings=s)
    finally:
        api.choose_best = orig
    for c in cands:
        if c.fit is None:
            continue
        f = c.fit
        expect = math.sqrt(
            f.calibration_err(f.median_colour) ** 2
            + f.intrinsic_scatter**2
            + (f.colour_term**2 + f.covariance[1, 1]) * f.colour_spread**2
        )
        assert c.score == pytest.approx(expect) == pytest.approx(candidate_score(f, s))
    # a huge colour uncertainty makes |CT| dominate: still V (smallest CT)
    s2 = FitSettings(transient_colour_scale=30.0)
    cal2 = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, settings=s2)
    assert cal2.band == cal.band == "V"


def test_twin_bands_go_to_the_preferred_survey():
    """The same Sloan band in two surveys with colour terms equal within errors is one band:
    APASS g' is chosen over SDSS g even when SDSS's score is lower; a colour term that
    differs significantly, or another band, is not a twin."""
    from services.calibrate.core.choice import BandCandidate, choose_best
    from services.calibrate.core.fitting import fit_zeropoint

    rng = np.random.default_rng(45)
    n = 60
    colour = rng.normal(0.5, 0.3, n)
    inst = rng.uniform(12, 16, n)

    def cand(survey, band, colour_name, ct, score, noise=0.02) -> BandCandidate:
        ref = inst + 2.0 + ct * colour + rng.normal(0, noise, n)
        fit = fit_zeropoint(ref, np.full(n, noise), inst, np.full(n, 0.005), colour)
        return BandCandidate(survey=survey, band=band, colour=colour_name, fit=fit, score=score)

    apass = cand("APASS", "g'", "g'-r'", -0.06, 0.030)
    sdss = cand("SDSS", "g", "g-r", -0.06, 0.020, noise=0.01)
    assert choose_best([sdss, apass]) is apass
    # a significantly different colour term: not the same band; the frame is the band its colour term
    # says it is closest to, though the other scores lower (issue 15: PS1 z, not GaiaSP z's bright few)
    sdss_other = cand("SDSS", "g", "g-r", -0.40, 0.020, noise=0.01)
    assert choose_best([sdss_other, apass]) is apass
    apass_other = cand("APASS", "g'", "g'-r'", -0.40, 0.020)
    assert choose_best([apass_other, sdss]) is sdss
    # another band of a preferred survey is no twin either
    gaia = cand("GAIA", "BP", "BP-RP", -0.06, 0.025)
    assert choose_best([sdss, gaia]) is sdss
    # PS1 z before SDSS z
    ps1 = cand("PS1", "z", "i-z", -0.05, 0.05)
    sdz = cand("SDSS", "z", "i-z", -0.05, 0.04, noise=0.01)
    assert choose_best([sdz, ps1]) is ps1


def test_force_filter_is_honoured():
    rng = np.random.default_rng(43)
    fld = make_field(rng, band="V")
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, force_filter=("apass", "b"))
    assert (cal.survey, cal.band, cal.colour) == ("APASS", "B", "B-V")
    assert cal.forced
    assert len(cal.candidates) == 1 and cal.candidates[0].chosen
    # B = V + (B-V) and inst = V - ZP - 0.05 (B-V): colour term 1.05
    assert cal.colour_term_err is not None
    assert cal.colour_term == pytest.approx(1.05, abs=3 * cal.colour_term_err + 0.01)


def test_force_filter_without_data_is_bad_input():
    rng = np.random.default_rng(44)
    fld = make_field(rng)
    args = (fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    with pytest.raises(BadInput) as e:
        calibrate_frame(*args, force_filter=("PS1", "g"))
    assert e.value.code == "force_filter_unavailable" and "PS1" in e.value.message
    with pytest.raises(BadInput) as e:
        calibrate_frame(*args, force_filter=("APASS", "u"))
    assert e.value.code == "force_filter_unavailable"
    with pytest.raises(BadInput):
        calibrate_frame(*args, force_filter=("NOSUCH", "V"))
    stars = fld.references["APASS"]
    mags = dict(stars.mags)
    mags["i'"] = np.full(len(stars), np.nan)
    refs = {"APASS": SurveyStars(survey="APASS", ra=stars.ra, dec=stars.dec, mags=mags, errs=stars.errs)}
    with pytest.raises(BadInput) as e:
        calibrate_frame(fld.sources, refs, fld.target_ra, fld.target_dec, 2.0, force_filter=("APASS", "i'"))
    assert "no APASS i' magnitudes" in e.value.message
    # the unforced run just notes the empty band
    cal = calibrate_frame(fld.sources, refs, fld.target_ra, fld.target_dec, 2.0)
    ip = next(c for c in cal.candidates if c.filter == "i'")
    assert ip.note is not None
    assert ip.score is None and "no APASS i' magnitudes" in ip.note


def test_the_passband_the_colour_term_says_wins_over_a_better_score():
    """A frame in Cousins R first scored in Sloan r (more, brighter stars there): Cousins R's much
    smaller colour term says the frame is in R, and its magnitude of a target bluer than the field
    is right where Sloan r's is off by CT x the colour difference. Within errors it stays r."""
    from services.calibrate.core.choice import BandCandidate, choose_best
    from services.calibrate.core.fitting import fit_zeropoint

    rng = np.random.default_rng(7)
    n = 200
    colour = rng.normal(1.4, 0.3, n)  # a reddened field
    inst = rng.uniform(12, 16, n)

    def cand(survey, band, colour_name, ct, score):
        ref = inst + 2.0 + ct * colour + rng.normal(0, 0.02, n)
        fit = fit_zeropoint(ref, np.full(n, 0.02), inst, np.full(n, 0.005), colour)
        return BandCandidate(survey=survey, band=band, colour=colour_name, fit=fit, score=score)

    sloan_r = cand("APASS", "r'", "g'-r'", 0.22, 0.08)
    cousins_r = cand("GaiaSP", "R", "B-V", -0.02, 0.15)
    chosen = choose_best([sloan_r, cousins_r])
    assert chosen is cousins_r
    assert "farther from it" in sloan_r.note
    # the target, 0.8 mag bluer than the field: the error of the assumed colour is CT x 0.8
    target_colour = float(np.median(colour)) - 0.8
    fits = {c.band: c.fit for c in (sloan_r, cousins_r) if c is not None and c.fit is not None}
    err = {band: abs(f.colour_term * (target_colour - f.median_colour)) for band, f in fits.items()}
    assert err["R"] < 0.05 < err["r'"]
    # colour terms equal within errors: the score decides, as before
    sloan_close = cand("APASS", "r'", "g'-r'", -0.021, 0.08)
    assert choose_best([sloan_close, cand("GaiaSP", "R", "B-V", -0.02, 0.15)]) is sloan_close
