"""The observer's filter decides the photometric system; reference stars without colours (issue 15, items 3-4)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from services.calibrate.core import calibrate_frame
from services.ingest.forms import canonical_force_filter
from shared.bands import ForcedBand, filter_constraint, filter_family, parse_force_filter
from shared.contracts.messages import SurveyStars, UploadRequested
from shared.errors import BadInput, CalibrationFailed
from tools.datasets import make_field

needs_sex = pytest.mark.skipif(shutil.which("source-extractor") is None, reason="source-extractor not installed")

#: two southern (no PS1) i' frames whose many Gaia stars gave RP the lowest score (seed, ra, dec)
SOUTH_I = [(11, 30.0, -45.0), (12, 60.0, -60.0)]


@pytest.fixture(scope="module")
def south_i_fields(tmp_path_factory):
    from services.ingest.parsing import parse_catalogue
    from tools import fieldio
    from tools import simfield as sf

    out = []
    for seed, ra, dec in SOUTH_I:
        folder = tmp_path_factory.mktemp(f"south_i_{seed}")
        sf.simulate_field(seed, ra, dec, "i", out=folder, keep_image=False, surveys=("APASS", "GAIA"))
        truth = fieldio.load_truth(folder)
        table = parse_catalogue((folder / "sex_fits1.fits").read_bytes(), "sex_fits1.fits").table
        out.append((folder, truth, table, fieldio.load_references(folder)))
    return out


@needs_sex
@pytest.mark.parametrize("filters", [None, ["i'"]], ids=["no filters", "i' registered"])
def test_southern_i_frames_are_answered_in_i_not_gaia_rp(south_i_fields, filters):
    from tools import fieldio

    for folder, truth, table, refs in south_i_fields:
        assert set(refs) == {"APASS", "GAIA"}
        a = truth["alert"]
        cal = calibrate_frame(table, refs, a["ra"], a["dec"], 2.0, observatory_filters=filters)
        assert (cal.survey, cal.band) == ("APASS", "i'"), folder.name
        true_i, _ = fieldio.true_magnitude(folder, "APASS", "i'")
        # the observer's i' magnitude, within its error (RP was 0.3-0.5 mag off with a 0.1 error bar)
        assert cal.target.mag is not None and cal.target.mag_err is not None
        assert abs(cal.target.mag - true_i) < 3 * cal.target.mag_err


@needs_sex
def test_gaia_rp_lost_because_of_its_colour_term_and_the_note_says_so(south_i_fields):
    folder, truth, table, refs = south_i_fields[0]
    a = truth["alert"]
    cal = calibrate_frame(table, refs, a["ra"], a["dec"], 2.0)
    rp = next(c for c in cal.candidates if (c.survey, c.filter) == ("GAIA", "RP"))
    ip = next(c for c in cal.candidates if (c.survey, c.filter) == ("APASS", "i'"))
    assert rp.score is not None and ip.score is not None
    assert rp.score < ip.score  # the precision alone would take RP
    assert ip.chosen and rp.note and "broad band" in rp.note


@needs_sex
def test_an_i_observatory_is_calibrated_to_gaia_only_when_it_asks(south_i_fields):
    folder, truth, table, refs = south_i_fields[0]
    a = truth["alert"]
    asked = calibrate_frame(table, refs, a["ra"], a["dec"], 2.0, "GAIA/any", observatory_filters=["i'"])
    assert asked.survey == "GAIA"


def _v_field(seed: int = 3, ct: float = 0.04, **kw):
    rng = np.random.default_rng(seed)
    return make_field(rng, band="V", ct=ct, **kw)


def test_registered_filters_choose_among_their_bands_and_the_note_says_why():
    fld = _v_field()
    cal = calibrate_frame(
        fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, observatory_filters=["B", "r'"]
    )
    assert (cal.survey, cal.band) in {("APASS", "B"), ("APASS", "r'")}
    chosen = next(c for c in cal.candidates if c.chosen)
    assert chosen.note and "observatory's filters (B, r')" in chosen.note
    v = next(c for c in cal.candidates if c.filter == "V")
    assert v.note and "not a band of your observatory's filters" in v.note


def test_a_clear_or_unknown_filter_among_others_does_not_constrain():
    fld = _v_field()
    free = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    for filters in (["B", "clear"], ["B", "Halpha"], ["Halpha"], []):
        cal = calibrate_frame(
            fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, observatory_filters=filters
        )
        assert (cal.survey, cal.band, cal.zeropoint) == (free.survey, free.band, free.zeropoint), filters


def test_an_unfiltered_observatory_is_calibrated_in_g_or_r():
    fld = _v_field()  # APASS only: r' is the clear band here (a V frame: V would fit better)
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, observatory_filters=["CV"])
    assert (cal.survey, cal.band) == ("APASS", "r'")


def test_filters_whose_bands_are_not_here_refuse_and_say_how_to_ask_for_another():
    fld = _v_field()  # APASS only: no z anywhere
    with pytest.raises(CalibrationFailed) as err:
        calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, observatory_filters=["z'"])
    assert err.value.code == "too_few_stars"
    assert "observatory's filters (z')" in err.value.message and "forceFilter=APASS/any" in err.value.message


def test_a_forced_band_gives_the_same_fit_as_the_automatic_choice():
    fld = _v_field(seed=5)
    auto = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    forced = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, (auto.survey, auto.band))
    assert forced.forced and not auto.forced
    for name in ("zeropoint", "zeropoint_err", "colour_term", "scatter", "npoints"):
        assert getattr(forced, name) == getattr(auto, name), name
    assert forced.target.mag == auto.target.mag and forced.target.mag_err == auto.target.mag_err


def test_a_forced_band_group_is_a_restricted_choice():
    fld = _v_field(seed=5)
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, "APASS/B,g'")
    assert (cal.survey, cal.band) in {("APASS", "B"), ("APASS", "g'")}
    assert {c.filter for c in cal.candidates} == {"B", "g'"}
    assert not cal.forced  # a choice was made
    anyband = calibrate_frame(
        fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, "APASS/any", observatory_filters=["B"]
    )
    assert (anyband.survey, anyband.band) == ("APASS", "V")  # the group overrides the filters: V fits best


def test_a_band_group_with_no_stars_here_is_refused():
    fld = _v_field()
    with pytest.raises(BadInput) as err:
        calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0, "GaiaSP/UBVRI")
    assert err.value.code == "force_filter_unavailable" and "GaiaSP" in err.value.message


# ------------------------------------------------------------------ stars without colours


def _without(stars: SurveyStars, *names: str, survey: str | None = None, rename: dict | None = None) -> SurveyStars:
    rename = rename or {}
    return SurveyStars(
        survey=survey or stars.survey,
        ra=stars.ra,
        dec=stars.dec,
        mags={rename.get(k, k): v for k, v in stars.mags.items() if k not in names},
        errs={rename.get(k, k): v for k, v in stars.errs.items() if k not in names},
    )


def test_gaia_g_without_bp_rp_still_calibrates_with_an_assumed_colour_term():
    """Like the real frame: ~95 Gaia stars matched, G but no BP/RP: no longer 'too few calibration stars'."""
    fld = _v_field(seed=7, ct=0.0)
    apass = fld.references["APASS"]
    gaia = _without(apass, "B", "g'", "r'", "i'", survey="GAIA", rename={"V": "G"})  # G only
    cal = calibrate_frame(fld.sources, {"GAIA": gaia}, fld.target_ra, fld.target_dec, 2.0)
    assert (cal.survey, cal.band) == ("GAIA", "G")
    assert cal.colour_term_assumed and cal.colour_term == 0.0 and cal.colour_term_err is None
    assert cal.npoints >= 50
    assert cal.warnings and "colour term assumed 0" in cal.warnings[0]
    assert cal.target.mag is not None and cal.target.mag_err is not None and fld.target_true_mag is not None
    assert abs(cal.target.mag - fld.target_true_mag) < 3 * cal.target.mag_err
    chosen = next(c for c in cal.candidates if c.chosen)
    assert chosen.colour_term_assumed


def test_missing_colours_inflate_the_error_but_keep_the_frames_band():
    fld = _v_field(seed=7)
    apass = fld.references["APASS"]
    full = calibrate_frame(fld.sources, {"APASS": apass}, fld.target_ra, fld.target_dec, 2.0, ("APASS", "V"))
    # B missing for nearly all stars (as BP/RP for faint and crowded Gaia DR3 stars)
    b = np.asarray(apass.mags["B"]).copy()
    b[3:] = np.nan
    sparse = SurveyStars(survey="APASS", ra=apass.ra, dec=apass.dec, mags=dict(apass.mags, B=b), errs=apass.errs)
    cal = calibrate_frame(fld.sources, {"APASS": sparse}, fld.target_ra, fld.target_dec, 2.0, ("APASS", "V"))
    assert cal.colour_term_assumed and not full.colour_term_assumed
    assert cal.target.mag_err is not None and full.target.mag_err is not None
    assert cal.target.mag is not None and fld.target_true_mag is not None
    assert cal.target.mag_err > full.target.mag_err
    assert abs(cal.target.mag - fld.target_true_mag) < 3 * cal.target.mag_err
    # g' and r' have their colours, but their colour terms show them far from this V frame
    auto = calibrate_frame(fld.sources, {"APASS": sparse}, fld.target_ra, fld.target_dec, 2.0)
    assert (auto.survey, auto.band) == ("APASS", "V") and auto.colour_term_assumed


def test_too_few_message_names_the_quality_cuts_when_those_are_the_shortage():
    fld = _v_field(seed=2)
    apass = fld.references["APASS"]
    errs = {k: np.full(len(v), 0.5) for k, v in apass.errs.items()}  # every catalogue error beyond 0.3 mag
    bad = SurveyStars(survey="APASS", ra=apass.ra, dec=apass.dec, mags=apass.mags, errs=errs)
    with pytest.raises(CalibrationFailed) as err:
        calibrate_frame(fld.sources, {"APASS": bad}, fld.target_ra, fld.target_dec, 2.0)
    assert err.value.code == "too_few_stars"
    assert "quality cuts" in err.value.message and "0.3 mag" in err.value.message


# ------------------------------------------------------------------ parsing forceFilter and filter names


@pytest.mark.parametrize(
    "value, text, group",
    [
        ("APASS/V", "APASS/V", False),
        ("apass/r", "APASS/r'", False),
        ("GaiaSP/R", "GaiaSP/R", False),
        ("GaiaSP/r", "GaiaSP/r", False),
        ("GaiaSP/any", "GaiaSP/any", True),
        ("GaiaSP/UBVRI", "GaiaSP/U,B,V,R,I", True),
        ("GaiaSP/ugriz", "GaiaSP/u,g,r,i,z", True),
        ("APASS/any", "APASS/any", True),
        ("PS1/any", "PS1/any", True),
        ("GAIA/any", "GAIA/any", True),
        ("APASS/B,V", "APASS/B,V", True),
        ("GAIA/BP", "GAIA/BP", False),
    ],
)
def test_force_filter_values_bhtom_sends(value, text, group):
    forced = parse_force_filter(value)
    assert isinstance(forced, ForcedBand) and forced.text == text and forced.group is group
    assert canonical_force_filter(value) == text
    assert parse_force_filter(forced.text) == forced  # the canonical text parses back to the same thing


@pytest.mark.parametrize("value", ["no", "None", "auto", "", "0", "any", "any/any"])
def test_force_filter_values_meaning_choose(value):
    assert parse_force_filter(value) is None and canonical_force_filter(value) == "no"


@pytest.mark.parametrize(
    "value, code",
    [
        ("APASS", "bad_force_filter"),
        ("2MASS/J", "force_filter_unavailable"),
        ("APASS/Q", "force_filter_unavailable"),
        ("GaiaSP/UBVRX", "force_filter_unavailable"),
    ],
)
def test_bad_force_filters_are_400s_under_100_characters(value, code):
    with pytest.raises(BadInput) as err:
        parse_force_filter(value)
    assert err.value.code == code and len(err.value.message) < 100


def test_the_parsed_force_filter_travels_in_the_upload_message():
    msg = UploadRequested(
        upload_id="u",
        ivorn="ivo://x#y",
        alert_ra=1.0,
        alert_dec=2.0,
        observatory_id="o",
        observatory_name="O",
        mjd=60000.0,
        n_sources=0,
        force_filter="GaiaSP/U,B,V,R,I",
        forced_band=parse_force_filter("GaiaSP/UBVRI"),
        observatory_filters=["V", "i'"],
    )
    back = UploadRequested.model_validate_json(msg.model_dump_json())
    assert back.forced_band is not None
    assert back.forced_band == msg.forced_band and back.forced_band.bands[0] == ("GaiaSP", "U")
    assert back.observatory_filters == ["V", "i'"]


@pytest.mark.parametrize(
    "name, family",
    [
        ("V", "V"),
        ("Johnson V", "V"),
        ("R", "R"),
        ("Rc", "R"),
        ("Ic", "I"),
        ("I", "I"),
        ("B", "B"),
        ("g'", "g"),
        ("r'", "r"),
        ("i'", "i"),
        ("z'", "z"),
        ("sdss_i", "i"),
        ("i", "i"),
        ("rp", "r"),
        ("G", "G"),
        ("RP", "RP"),
        ("clear", "clear"),
        ("C", "clear"),
        ("CV", "clear"),
        ("L", "clear"),
        ("none", "clear"),
        ("unfiltered", "clear"),
        ("Halpha", None),
        ("OIII", None),
    ],
)
def test_filter_names_observers_write(name, family):
    assert filter_family(name) == family


def test_filter_constraint_bands():
    c = filter_constraint(["i'"])
    assert c is not None
    assert ("APASS", "i'") in c.bands and ("GaiaSP", "i") in c.bands and ("GAIA", "RP") not in c.bands
    assert c.near == [("GaiaSP", "I")]
    r = filter_constraint(["Rc"])
    assert r is not None
    assert r.bands == [("GaiaSP", "R")] and ("APASS", "r'") in r.near
    assert filter_constraint(["V", "clear"]) is None and filter_constraint([]) is None
    clear = filter_constraint(["C", "L"])  # an unfiltered observatory: what clear photometry is reduced to
    assert clear is not None
    # Cousins R too: behind the plane's dust it calibrates a clear frame best (issue 15)
    assert ("GAIA", "G") in clear.bands and ("APASS", "r'") in clear.bands and ("GaiaSP", "R") in clear.bands
    assert ("GaiaSP", "V") not in clear.bands and ("GAIA", "RP") not in clear.bands
    assert filter_constraint(["V", "mystery"]) is None
    v_and_b = filter_constraint(["V", "B"])
    assert v_and_b is not None
    assert v_and_b.bands == [("APASS", "V"), ("GaiaSP", "V"), ("APASS", "B"), ("GaiaSP", "B")]
