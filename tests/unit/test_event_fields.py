"""A new event's fields are checked by one model, whichever door they come through (JSON, CPCS, web form)."""

from __future__ import annotations

import pytest

from shared.usecases.events import EventFields, event_fields, refusal

GOOD = {"ivorn": "ivo://gaia/alerts#Gaia21eeo", "ra": "10,5", "dec": -20, "url": "https://example.org/e", "name": " E "}


def test_good_fields_as_typed_by_observers():
    fields, problems = event_fields(GOOD)
    assert problems == []
    assert fields == EventFields(
        ivorn="ivo://gaia/alerts#Gaia21eeo", ra=10.5, dec=-20.0, url="https://example.org/e", name="E"
    )


def test_empty_text_is_no_value():
    fields, _ = event_fields(GOOD | {"url": "", "name": ""})
    assert fields is not None and fields.url is None and fields.name is None


@pytest.mark.parametrize(
    ("field", "value", "code", "words"),
    [
        ("ivorn", "not an ivorn", "bad_field", "ivo://"),
        ("ivorn", ["ivo://x/y#z"], "bad_field", "ivo://"),
        ("ra", "360", "bad_field", "0 ≤ RA < 360"),
        ("ra", "-0.1", "bad_field", "RA"),
        ("ra", "nan", "bad_field", "RA"),
        ("ra", "1e400", "bad_field", "RA"),
        ("ra", True, "bad_field", "RA"),
        ("dec", "90.5", "bad_field", "-90 ≤ Dec ≤ 90"),
        ("dec", [1], "bad_field", "Dec"),
        ("url", "javascript:alert(1)", "bad_field", "http://"),
        ("url", "https://" + "a" * 3000, "bad_field", "URL"),
        ("name", "two\nlines", "bad_alert_name", "printable"),
        ("name", "x" * 101, "bad_alert_name", "printable"),
    ],
)
def test_each_bad_field_is_named_with_its_rule(field, value, code, words):
    fields, problems = event_fields(GOOD | {field: value})
    assert fields is None
    assert [(p.field, p.code) for p in problems] == [(field, code)]
    assert words in problems[0].reason
    error = refusal(problems)
    assert error.http_status == 400 and error.code == code and error.message.startswith(f"{field}: ")


def test_a_missing_field_is_answered_first_under_the_name_the_api_uses():
    fields, problems = event_fields({"ivorn": "bad", "ra": "1"})
    assert fields is None and {p.field for p in problems} == {"ivorn", "dec"}
    error = refusal(problems, {"ivorn": "EventID"})
    assert error.code == "missing_field"
    assert error.message.startswith("dec is missing") and "EventID, ra, dec" in error.message
