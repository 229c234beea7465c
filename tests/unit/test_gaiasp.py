"""GaiaSP: Gaia DR3 XP synthetic photometry (UBVRI, ugriz) as a reference survey.

The survey's names (``forceFilter=GaiaSP/V`` as CPCS clients send it, the
CLI, the catalogue columns) and, on the committed field
``tests/data/fields/south_R_gaiasp`` (an R-band frame whose filter is built
on APASS r' with a +0.14 colour term), that GaiaSP's Cousins R calibrates it
with a smaller colour term and the right truth.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from photcal_cli.main import build_parser
from services.calibrate.core import calibrate_frame
from services.catalog.extracts import read_extract
from services.catalog.layout import Columns
from services.ingest.forms import canonical_force_filter
from services.ingest.parsing import parse_catalogue
from shared.contracts.surveys import get_survey
from shared.errors import BadInput
from tools import fieldio, photsystem

FIELD = Path(__file__).parents[1] / "data" / "fields" / "south_R_gaiasp"


def test_gaiasp_is_a_survey_in_any_case():
    for name in ("GaiaSP", "gaiasp", "GAIASP"):
        assert get_survey(name).name == "GaiaSP"
    sp = get_survey("GaiaSP")
    assert sp.band_names == ["U", "B", "V", "R", "I", "u", "g", "r", "i", "z"]
    assert (sp.ra_column, sp.dec_column) == ("RA_ICRS", "DE_ICRS")
    assert sp.mag_faint == pytest.approx(17.65)
    # Cousins R and Sloan r are different bands
    assert sp.band("R").colour_name == "V-R" and sp.band("r").colour_name == "g-r"


@pytest.mark.parametrize(
    "sent,canonical",
    [
        ("GaiaSP/V", "GaiaSP/V"),
        ("gaiasp/v", "GaiaSP/V"),
        ("GaiaSP/R", "GaiaSP/R"),
        ("GaiaSP/r", "GaiaSP/r"),
        ("GAIASP/I", "GaiaSP/I"),
        ("GaiaSP/B", "GaiaSP/B"),
    ],
)
def test_force_filter_gaiasp_is_accepted(sent, canonical):
    assert canonical_force_filter(sent) == canonical


def test_force_filter_gaiasp_unknown_band_is_refused():
    with pytest.raises(BadInput) as exc:
        canonical_force_filter("GaiaSP/Y")
    assert exc.value.code == "force_filter_unavailable"


@pytest.mark.parametrize("sent", ["GaiaSP", "gaiasp", "GAIASP"])
def test_cli_takes_gaiasp_in_any_case(sent):
    args = build_parser().parse_args(["catalog", "load", "--survey", sent, "x.csv"])
    assert args.survey == "GaiaSP"
    assert build_parser().parse_args(["recalibrate", "--survey", sent]).survey == "GaiaSP"
    assert build_parser().parse_args(["catalog", "load", "--survey", "apass", "x.csv"]).survey == "APASS"


def test_cli_refuses_an_unknown_survey():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["catalog", "load", "--survey", "2MASS", "x.csv"])


def test_extract_columns_keep_cousins_and_sloan_apart(tmp_path):
    cols = Columns.for_survey(get_survey("GaiaSP"))
    path = tmp_path / "sp.csv"
    path.write_text("RA_ICRS,DE_ICRS,Rmag,e_Rmag,VMAG\n10.0,20.0,15.1,0.01,15.5\n")
    ex = read_extract(path, cols)
    assert ex.columns["Rmag"][0] == pytest.approx(15.1)
    assert np.isnan(ex.columns["rmag"][0])  # Sloan r is not Cousins R
    assert ex.columns["Vmag"][0] == pytest.approx(15.5)  # no clash: case-insensitive still works
    full = read_extract(FIELD / "ref_GaiaSP.csv", cols)
    assert not np.allclose(full.columns["Rmag"], full.columns["rmag"], equal_nan=True)


def test_acceptable_bands_count_gaiasp_twins():
    bands = photsystem.INSTRUMENT_BANDS
    assert ("GaiaSP", "V") in photsystem.acceptable_bands(bands["V"])
    assert ("GaiaSP", "R") in photsystem.acceptable_bands(bands["R"])
    assert ("GaiaSP", "V") not in photsystem.acceptable_bands(bands["R"])
    assert photsystem.acceptable_bands(bands["z"]) == [("PS1", "z")]
    assert photsystem.acceptable_bands(bands["V"], ["APASS", "GAIA"]) == [("APASS", "V")]


def test_simulated_gaiasp_extract_stops_at_the_gspc_limit():
    t = fieldio.load_truth(FIELD)
    assert "GaiaSP" in t["surveys"]
    import pandas as pd

    ref = pd.read_csv(FIELD / "ref_GaiaSP.csv")
    assert len(ref) >= 50
    assert ref.e_Vmag.max() <= 0.0362 + 1e-4 and ref.e_Rmag.max() <= 0.0362 + 1e-4
    # U is the first band to run out of S/N
    assert ref.Umag.isna().sum() > ref.Vmag.isna().sum()


@cache
def _calibrate(fmt: str, force: tuple[str, str] | None):
    truth, refs = fieldio.load_truth(FIELD), fieldio.load_references(FIELD)
    parsed = parse_catalogue((FIELD / fmt).read_bytes(), fmt)
    a = truth["alert"]
    return calibrate_frame(parsed.table, refs, a["ra"], a["dec"], 2.0, force_filter=force)


@pytest.mark.parametrize("fmt", ["sex_ascii_head.cat", "sex_ldac.fits"])
def test_forced_gaiasp_r_calibrates_an_r_frame_better_than_apass_r(fmt):
    truth = fieldio.load_truth(FIELD)
    assert truth["instrument_band"] == "R" and truth["best"] == {"survey": "APASS", "band": "r'", "colour": "g'-r'"}
    sp = _calibrate(fmt, ("GaiaSP", "R"))
    ap = _calibrate(fmt, ("APASS", "r'"))
    assert (sp.survey, sp.band, sp.colour) == ("GaiaSP", "R", "V-R")
    # the filter is near Cousins R: a colour term of about -0.09 in V-R against +0.14 in g'-r'
    assert abs(sp.colour_term) < abs(ap.colour_term)
    assert abs(sp.colour_term) < abs(truth["colour_term"])
    assert sp.colour_term == pytest.approx(-0.088, abs=3 * sp.colour_term_err + 0.01)
    true_r, _ = fieldio.true_magnitude(FIELD, "GaiaSP", "R")
    assert sp.target.detected
    assert sp.target.mag == pytest.approx(true_r, abs=0.03)
    assert abs(sp.target.mag - true_r) <= 2 * sp.target.mag_err
    true_rp, _ = fieldio.true_magnitude(FIELD, "APASS", "r'")
    assert abs(sp.target.mag - true_r) < abs(ap.target.mag - true_rp)


def test_the_band_choice_takes_gaiasp_r_for_an_r_frame():
    cal = _calibrate("sex_ascii_head.cat", None)
    band = photsystem.get_instrument_band("R")
    assert (cal.survey, cal.band) == ("GaiaSP", "R")
    assert (cal.survey, cal.band) in photsystem.acceptable_bands(band, fieldio.load_truth(FIELD)["surveys"])
