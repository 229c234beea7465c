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
