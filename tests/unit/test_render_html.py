"""The HTML answer (CPCS's default outputFormat) renders every answer shape and never raises.

It is rendered after the datapoint was stored: an exception there is a 500 for a
stored point, and the client's retry a 409. So every field of CalibrationResult
is tried missing in turn, as NaN and infinities, as long and hostile text.
"""

from __future__ import annotations

import math
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.render import render_result_html
from shared.contracts.messages import CalibrationResult
from shared.webframe import NAV_ITEMS

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "&lt;already escaped&gt;",
    "\u202etxt.exe",
    "a\x00b\x1b[31mred",
    "x" * 5000,
]


def full_detection(**over) -> CalibrationResult:
    fields: dict[str, Any] = dict(
        message="calibrated: V = 16.012 ± 0.021",
        status="ok",
        upload_id="u1",
        ivorn="ivo://gaia/alerts#Gaia21eeo",
        alert_name="Gaia21eeo",
        observatory="Obs",
        mjd=59000.5,
        exptime=60.0,
        comment="fine night",
        survey="APASS",
        filter="V",
        mag=16.012,
        mag_err=0.021,
        ra=150.0,
        dec=20.0,
        limit_mag=19.3,
        limit_method="completeness",
        detected=True,
        zeropoint=2.3,
        zeropoint_err=0.004,
        colour_term=0.05,
        colour_term_err=0.01,
        colour="B-V",
        npoints=120,
        nmatched=300,
        outlier_fraction=0.05,
        scatter=0.03,
        n_sources=900,
        dry_run=False,
        stored=True,
        followup_id=7,
        calibration_id="u1",
        image_link="http://localhost/plots/u1.png",
    )
    return CalibrationResult(**(fields | over))


OPTIONAL = [name for name, f in CalibrationResult.model_fields.items() if not f.is_required() and f.default is None]


class _Structure(HTMLParser):
    """Collects the tags and the text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.hrefs: list[str | None] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href"))

    def handle_data(self, data) -> None:
        self.text.append(data)


ALLOWED_TAGS = {"html", "head", "meta", "title", "body", "h1", "p", "table", "tr", "th", "td", "img", "a"}
#: the site's frame (shared/webframe.py): its stylesheet, navigation and main
FRAME_TAGS = {"link", "header", "nav", "div", "main"}
#: the links every page has (navigation, skip link, the ways on after an upload): fixed paths of this origin
FRAME_HREFS = {"#main", "/", "/login", "/upload", "/uploads"} | {href for href, _, _ in NAV_ITEMS}


def assert_page(result: CalibrationResult) -> str:
    page = render_result_html(result)
    assert page.startswith("<!doctype html>")
    parsed = _Structure()
    parsed.feed(page)
    assert set(parsed.tags) <= ALLOWED_TAGS | FRAME_TAGS, set(parsed.tags) - ALLOWED_TAGS - FRAME_TAGS
    assert parsed.tags.count("img") <= 1 and parsed.tags.count("table") == 1
    # beside the frame's fixed links, the one link: the stored datapoint's page, on this origin
    own = [h for h in parsed.hrefs if h not in FRAME_HREFS]
    assert own == ([] if result.followup_id is None else [f"/datapoints/{result.followup_id}"])
    text = "".join(parsed.text)
    shown = [result.message, result.ivorn, result.observatory, result.comment]
    for value in shown + ([result.error] if result.status == "error" else []):
        if value:
            assert value in text  # shown, as text
    return page


def test_a_detection_without_mag_err_renders():
    """On main: TypeError formatting None (a 500 after the datapoint was stored)."""
    page = assert_page(full_detection(mag_err=None))
    assert "16.012 (error unknown)" in page


@pytest.mark.parametrize("name", OPTIONAL)
def test_every_optional_field_missing_in_turn(name):
    assert_page(full_detection(**{name: None}))


def test_every_optional_field_missing_at_once():
    assert_page(full_detection(**dict.fromkeys(OPTIONAL)))


def test_a_limit_and_an_error_answer():
    page = assert_page(full_detection(detected=False, mag=None, mag_err=None, limit_mag=19.55))
    assert "not detected" in page and "19.55 (completeness)" in page
    page = assert_page(
        CalibrationResult(
            status="error",
            error="target_outside_frame",
            http_status=400,
            message="the event is outside this frame",
            upload_id="u",
            ivorn="ivo://x/y#z",
        )
    )
    assert "Calibration failed" in page and "target_outside_frame" in page


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e308, -0.0])
def test_non_finite_numbers(value):
    numbers = ("mag", "mag_err", "limit_mag", "zeropoint", "zeropoint_err", "colour_term", "scatter", "mjd")
    assert_page(full_detection(**dict.fromkeys(numbers, value)))


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_strings_are_escaped(hostile):
    texts = ("message", "ivorn", "observatory", "comment", "survey", "filter", "colour", "limit_method", "error")
    page = assert_page(full_detection(**dict.fromkeys(texts, hostile), image_link="javascript:alert(1)"))
    assert "<script" not in page and "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "javascript:" not in page


floats = st.none() | st.floats(allow_nan=True, allow_infinity=True)
texts = st.none() | st.text(max_size=300) | st.sampled_from(HOSTILE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from(["ok", "error"]),
    message=st.text(max_size=300) | st.sampled_from(HOSTILE),
    ivorn=st.text(max_size=100) | st.sampled_from(HOSTILE),
    comment=st.text(max_size=300) | st.sampled_from(HOSTILE),
    observatory=texts,
    survey=texts,
    filter=texts,
    colour=texts,
    limit_method=texts,
    error=texts,
    image_link=texts,
    mag=floats,
    mag_err=floats,
    limit_mag=floats,
    zeropoint=floats,
    zeropoint_err=floats,
    colour_term=floats,
    scatter=floats,
    mjd=floats,
    detected=st.none() | st.booleans(),
    stored=st.booleans(),
    dry_run=st.booleans(),
    npoints=st.none() | st.integers(-10, 10**12),
    followup_id=st.none() | st.integers(0, 10**12),
)
def test_any_calibration_result_renders(**fields):
    assert_page(CalibrationResult(upload_id="u", **fields))


def test_a_stored_point_links_its_datapoint_page_and_a_failure_shows_its_plot():
    stored = render_result_html(full_detection(followup_id=42))
    assert '<a href="/datapoints/42" id="datapoint-link">' in stored
    failed = full_detection(
        status="error",
        error="too_few_stars",
        message="too few calibration stars",
        followup_id=None,
        stored=False,
        image_link="http://127.0.0.1:8080/plots/abc123.png",
    )
    page = assert_page(failed)
    assert 'src="http://127.0.0.1:8080/plots/abc123.png"' in page and "/datapoints/" not in page
