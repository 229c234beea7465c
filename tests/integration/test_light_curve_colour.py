"""Two frames of one night in B and V: the second is calibrated at the colour the first one measured."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Stack, field_dir
from tests.integration.test_end_to_end import curl_upload
from tests.integration.test_observatory_filters import add_observatory

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
IVORN = "ivo://gaia/alerts#SimColour"


def test_a_v_frame_takes_the_colour_of_the_same_nights_b_detection(stack: Stack):
    truth = stack.load_field(FIELD)
    hashtag = add_observatory(stack, "Colour Observatory", "B,V")
    a = truth["alert"]
    stack.cli("alert", "add", "--ivorn", IVORN, "--ra", str(a["ra"]), "--dec", str(a["dec"]), "--name", "SimColour")
    stack.start()

    alone_code, alone = curl_upload(
        stack, FIELD / "sex_ascii_head.cat", hashtag, IVORN, mjd="58000.55", extra=("-F", "forceFilter=APASS/V")
    )
    assert alone_code == 200, alone
    assert alone["colour_source"] is None and alone["assumed_colour"] is not None  # the calibrators' median

    # the observer's B frame of the same night, stored (the field's catalogue calibrated in APASS B)
    b_code, b_point = curl_upload(
        stack,
        FIELD / "sex_ascii_head.cat",
        hashtag,
        IVORN,
        dry_run=0,
        mjd="58000.50",
        extra=("-F", "forceFilter=APASS/B"),
    )
    assert b_code == 200 and b_point["stored"] and b_point["detected"], b_point
    followup = b_point["followup_id"]

    code, answer = curl_upload(
        stack, FIELD / "sex_ascii_head.cat", hashtag, IVORN, mjd="58000.55", extra=("-F", "forceFilter=APASS/V")
    )
    assert code == 200, answer
    assert (
        answer["colour_source"] is not None
        and f"APASS B followup {followup} from Colour Observatory" in answer["colour_source"]
    )
    assert any("from its own light curve" in w for w in answer["warnings"]), answer["warnings"]
    # the colour solved from B and this frame's V: B - V, with V through the colour term at that colour
    ct, zp = answer["colour_term"], answer["zeropoint"]
    v = answer["mag"]
    assert answer["assumed_colour"] == pytest.approx(b_point["mag"] - v, abs=2e-3)
    assert v - alone["mag"] == pytest.approx(ct * (answer["assumed_colour"] - alone["assumed_colour"]), abs=2e-3)
    assert zp == pytest.approx(alone["zeropoint"], abs=1e-4)

    # a frame two nights later has no same-night colour: the calibrators' median again
    code, later = curl_upload(
        stack, FIELD / "sex_ascii_head.cat", hashtag, IVORN, mjd="58002.5", extra=("-F", "forceFilter=APASS/V")
    )
    assert code == 200 and later["colour_source"] is None, later
