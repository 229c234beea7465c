"""The observatory's registered filters reach the calibration: the frame is answered in one of their bands."""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import Stack, field_dir
from tests.integration.test_end_to_end import curl_upload

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")


def add_observatory(stack: Stack, name: str, filters: str) -> str:
    out = stack.cli("observatory", "add", "--name", name, "--lon", "20.0", "--lat", "50.0", "--filters", filters).stdout
    found = re.search(r"hashtag: (\S+)", out)
    assert found is not None, out
    return found.group(1)


@pytest.fixture
def filters_stack(stack: Stack):
    truth = stack.load_field(FIELD)
    b_only = add_observatory(stack, "B only", "B")
    v_and_clear = add_observatory(stack, "V and clear", "V,C")
    ivorn = "ivo://gaia/alerts#SimFilters"
    stack.cli(
        "alert",
        "add",
        "--ivorn",
        ivorn,
        "--ra",
        str(truth["alert"]["ra"]),
        "--dec",
        str(truth["alert"]["dec"]),
        "--name",
        "SimFilters",
    )
    stack.start()
    return stack, truth, {"B": b_only, "V,C": v_and_clear}, ivorn


def test_an_observatory_with_a_b_filter_is_answered_in_b_and_told_why(filters_stack):
    stack, truth, hashtags, ivorn = filters_stack
    assert (truth["best"]["survey"], truth["best"]["band"]) == ("APASS", "V")  # the frame fits V best
    code, answer = curl_upload(stack, FIELD / "sex_ascii_head.cat", hashtags["B"], ivorn)
    assert code == 200, answer
    assert answer["filter"] == "B"
    chosen = next(c for c in answer["candidates"] if c["chosen"])
    assert "your observatory's filters (B)" in chosen["note"]
    assert answer["warnings"] == [] and answer["colour_term_assumed"] is False


def test_forcefilter_overrides_the_filters_and_band_groups_are_a_choice(filters_stack):
    stack, truth, hashtags, ivorn = filters_stack
    code, answer = curl_upload(
        stack, FIELD / "sex_ascii_head.cat", hashtags["B"], ivorn, mjd="58000.6", extra=("-F", "forceFilter=APASS/B,V")
    )
    assert code == 200, answer
    assert (answer["survey"], answer["filter"]) == ("APASS", "V")


def test_a_clear_filter_among_them_leaves_the_choice_free(filters_stack):
    stack, truth, hashtags, ivorn = filters_stack
    code, answer = curl_upload(stack, FIELD / "sex_ascii_head.cat", hashtags["V,C"], ivorn, mjd="58000.7")
    assert code == 200, answer
    assert (answer["survey"], answer["filter"]) == (truth["best"]["survey"], truth["best"]["band"])
