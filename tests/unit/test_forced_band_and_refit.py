"""forceFilter parsed once at the gateway and carried; a re-fit answered like a live upload."""

from __future__ import annotations

import numpy as np
import pytest

from photcal_cli.batch.recalibrate import (
    StoredUpload,
    forced_within,
    refit,
    refit_force,
)
from services.calibrate.answer import calibration_answer
from services.calibrate.core import calibrate_frame
from services.ingest.forms import read_upload_form
from shared.bands import parse_force_filter
from shared.errors import BadInput
from tools.datasets import make_field

FORM = {"EventID": "ivo://gaia/alerts#Gaia21eeo", "MJD": "60000.5"}


@pytest.mark.parametrize(
    ("sent", "text"), [("apass/v", "APASS/V"), ("GaiaSP/any", "GaiaSP/any"), ("no", "no"), ("", "no")]
)
def test_the_form_carries_the_parsed_band_and_its_canonical_text(sent, text):
    form = read_upload_form(FORM | {"forceFilter": sent})
    assert form.forceFilter == text
    assert form.forced_band == parse_force_filter(sent)
    assert (form.forced_band is None) == (text == "no")


def test_a_band_not_served_is_refused_by_the_form():
    with pytest.raises(BadInput) as caught:
        read_upload_form(FORM | {"forceFilter": "APASS/Q"})
    assert caught.value.code == "force_filter_unavailable"


def test_a_forced_band_holds_within_its_survey_only():
    single = forced_within("APASS/V", "APASS")
    assert single is not None and single.bands == [("APASS", "V")]
    assert forced_within("APASS/V", "GAIA") is None
    assert forced_within(None, "APASS") is None
    group = forced_within("GaiaSP/any", "GaiaSP")
    assert group is not None and group.group and {s for s, _ in group.bands} == {"GaiaSP"}


def test_a_refit_answers_the_live_upload_fields_rounded_the_same_way():
    rng = np.random.default_rng(5)
    fld = make_field(rng)
    stars = fld.references["APASS"]
    up = StoredUpload(
        "u1", fld.target_ra, fld.target_dec, 2.0, fld.sources, force_filter="APASS/V", ivorn="ivo://x#y", mjd=60000.5
    )
    again = refit(up, "APASS", stars, catalogue_version="v3")
    assert again.ok and again.nref == len(stars)
    live = calibration_answer(
        calibrate_frame(fld.sources, {"APASS": stars}, fld.target_ra, fld.target_dec, 2.0, ("APASS", "V")),
        2.0,
        upload_id="u1",
        ivorn="ivo://x#y",
        mjd=60000.5,
    ).model_dump(mode="json", exclude={"duration_ms", "provenance", "finished_at"})
    assert {k: v for k, v in again.result.items() if k not in ("provenance", "finished_at")} == live
    assert (again.result["survey"], again.result["filter"]) == ("APASS", "V")
    # the new calibration says what produced it: the one survey's version, the band forced within it
    provenance = again.result["provenance"]
    assert provenance["catalogues"] == [
        {"survey": "APASS", "release": provenance["catalogues"][0]["release"], "version": "v3"}
    ]
    assert provenance["force_filter"] == "APASS/V" and provenance["forced_bands"] == [["APASS", "V"]]


def test_the_refit_band_the_job_forces_else_the_uploads_own_within_the_survey():
    forced = refit_force("APASS/V", "APASS", "APASS/B")
    assert forced is not None and forced.bands == [("APASS", "B")]
    own = refit_force("APASS/V", "APASS")
    assert own is not None and own.bands == [("APASS", "V")]
    assert refit_force("GAIA/G", "APASS") is None  # another survey's band: the automatic choice within APASS
    # the observatory's V, r filters constrain the choice within APASS as they did the live upload's...
    assert refit_force(None, "APASS", None, ["V", "r"]) is None
    # ...and allow no Gaia band: against Gaia, any of its bands
    group = refit_force(None, "GAIA", None, ["V", "r"])
    assert group is not None and group.group and group.surveys == ["GAIA"]
    with pytest.raises(BadInput):
        refit_force(None, "APASS", "GAIA/G")


def test_a_band_the_field_lacks_fails_the_point_not_the_batch():
    rng = np.random.default_rng(5)
    fld = make_field(rng)
    up = StoredUpload("u1", fld.target_ra, fld.target_dec, 2.0, fld.sources, followup_id=7)
    bad = refit(up, "APASS", fld.references["APASS"], forced="GAIA/G")
    assert not bad.ok and bad.error == "bad_force_filter" and bad.followup_id == 7
