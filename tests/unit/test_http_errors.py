"""Error bodies on the CPCS paths fit what BHTOM shows its users (100 characters)."""

from __future__ import annotations

import pytest

from shared.http_errors import CPCS_BODY_LIMIT, SHORT_MESSAGES, compact_json, cpcs_error_body


def test_a_short_message_is_kept_as_it_is():
    body = cpcs_error_body("unknown hashtag", "unauthorized")
    assert body == {"message": "unknown hashtag", "status": "error", "error": "unauthorized"}


@pytest.mark.parametrize("code", sorted(SHORT_MESSAGES))
def test_each_long_message_has_a_short_form_that_fits(code):
    """BHTOM retries an upload whose error body is longer: the short form must fit, whole."""
    body = cpcs_error_body("a full explanation " * 20, code)
    assert body["message"] == SHORT_MESSAGES[code]
    assert len(compact_json(body)) <= CPCS_BODY_LIMIT


def test_a_long_message_without_a_short_form_is_cut_where_it_still_says_what_is_wrong():
    message = "line 12, column 3: 'abc' is not a number; rows must hold only numbers (use '.' as the decimal point)"
    body = cpcs_error_body(message, "bad_values")
    assert len(compact_json(body)) <= CPCS_BODY_LIMIT
    assert body["message"].startswith("line 12, column 3: 'abc' is not a number") and body["message"].endswith("…")


def test_quotes_and_accents_count_as_they_are_sent():
    """JSON escapes (\\" for a quote) lengthen the body: the cut accounts for them."""
    body = cpcs_error_body('"quoted" é ' * 30, "bad_values")
    assert len(compact_json(body)) <= CPCS_BODY_LIMIT


def test_an_error_carries_its_details_beside_the_message_on_the_json_api_only():
    """A duplicate names the stored point as a key a client can use (the TOM plug-in does); the CPCS
    body stays the short one its clients show."""
    import json

    from shared.contracts.errors import ErrorCode
    from shared.errors import Conflict
    from shared.http_errors import error_response

    exc = Conflict(
        "this datapoint is already stored (followup_id 12)",
        code=ErrorCode.DUPLICATE_DATAPOINT,
        details={"followup_id": 12},
    )
    api = json.loads(str(error_response(exc, "/api/v1/uploads").text))
    assert api == {"message": exc.message, "status": "error", "error": "duplicate_datapoint", "followup_id": 12}
    cpcs = json.loads(str(error_response(exc, "/upload").text))
    assert "followup_id" not in cpcs and cpcs["error"] == "duplicate_datapoint"
