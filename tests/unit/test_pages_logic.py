"""The pages' pure parts (issue 21): positions as observers type them, which requests get an error page, the
alert list's search and filters, the observatory charts' ticks."""

from __future__ import annotations

import pytest

from services.lightcurve import summary
from services.lightcurve.web.events import POSITION_RULES, _in_degrees
from services.lightcurve.web.svgchart import Series, nice_ticks, scatter
from shared.coords import parse_cone, parse_dec, parse_ra, separation_deg
from shared.usecases.events import event_fields
from shared.webframe import error_page, wants_page


@pytest.mark.parametrize(
    ("text", "ra"),
    [
        ("12:34:56.7", 188.73625),
        ("12h34m56.7s", 188.73625),
        ("12 34 56.7", 188.73625),
        ("188.5", 188.5),
        ("10,5", 10.5),
    ],
)
def test_ra_in_degrees_or_sexagesimal_hours(text, ra):
    assert parse_ra(text) == pytest.approx(ra)


@pytest.mark.parametrize(
    ("text", "dec"),
    [("-12:34:56", -12.582222), ("+05:00:00", 5.0), ("-0:30:00", -0.5), ("-12d34m56s", -12.582222), ("-45.5", -45.5)],
)
def test_dec_in_degrees_or_sexagesimal(text, dec):
    assert parse_dec(text) == pytest.approx(dec, abs=1e-6)


@pytest.mark.parametrize("text", ["24:00:00", "12:60:00", "-01:00:00", "Gaia21eeo", "", "360", "nan"])
def test_what_is_no_ra_is_refused(text):
    assert parse_ra(text) is None


def test_a_cone_in_either_notation_with_or_without_a_radius():
    assert parse_cone("12:34:56.7 -12:34:56") == pytest.approx((188.73625, -12.582222, 0.05), abs=1e-6)
    assert parse_cone("188.7, -12.58 0.2") == pytest.approx((188.7, -12.58, 0.2))
    assert parse_cone("12 34 56.7 -12 34 56 0.1") == pytest.approx((188.73625, -12.582222, 0.1), abs=1e-6)
    for not_a_cone in ("Gaia21eeo", "AT2021yjn", "188.7", "188.7 -12.58 0", "188.7 -12.58 99"):
        assert parse_cone(not_a_cone) is None, not_a_cone


def test_separation_across_ra_zero():
    assert separation_deg(359.99, 0.0, 0.01, 0.0) == pytest.approx(0.02)


def test_the_new_event_form_reads_sexagesimal_and_leaves_the_rest_to_the_use_case():
    fields, problems = event_fields(_in_degrees({"ivorn": "ivo://x/y#z", "ra": "12:34:56.7", "dec": "-12:34:56"}))
    assert fields is not None and fields.ra == pytest.approx(188.73625) and not problems
    assert fields.dec == pytest.approx(-12.582222, abs=1e-6)
    _, problems = event_fields(_in_degrees({"ivorn": "ivo://x/y#z", "ra": "12:34:99", "dec": "-12:34:56"}))
    assert [p.field for p in problems] == ["ra"] and "sexagesimal" in POSITION_RULES["ra"]


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/lightcurve/ivo%3A%2F%2Fx", True),
        ("/no/such/page", True),
        ("/followup", True),
        ("/api/docs", True),
        ("/api/v1/lightcurves/x", False),
        ("/cgi/upload", False),
        ("/followup/cgi/upload", False),
        ("/get_alert_lc_data", False),
        ("/followup/list_of_alerts", False),
        ("/plots/x.png", False),
        ("/healthz", False),
    ],
)
def test_an_error_is_a_page_only_on_an_html_route_asked_by_a_browser(path, page):
    assert wants_page(path, "text/html,application/xhtml+xml,*/*;q=0.8") is page
    assert wants_page(path, "*/*") is False  # curl, scripts, CPCS clients: JSON


def test_the_error_page_escapes_and_has_the_site_frame():
    html = error_page("unknown event <script>", "unknown_event", 404)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<link rel="stylesheet" href="/static/app.css">' in html and "<nav" in html and "Not found" in html


def _rows():
    def row(i, name, ra, dec, cls=None, tns=None, observers=()):
        meta = summary.imported_metadata({"Class": cls, "TNSid": tns, "AlertMag": "18.70", "Date": "2023-05-01"})
        return {
            "id": i, "ivorn": f"ivo://gaia/alerts#{name}", "name": name, "ra": ra, "dec": dec, "url": None,
            "n_datapoints": len(observers), "last_mag": None, "last_is_limit": False, "last_mjd": None,
            **meta, "_search": f"{name} ivo://gaia/alerts#{name} {tns or ''}".lower(),
            "_observatories": frozenset(observers),
        }  # fmt: skip

    return [
        row(1, "Gaia23a", 188.73, -12.58, '"SN"', "AT2023a", ("obs1",)),
        row(2, "Gaia23b", 188.74, -12.58, "CV", None, ("obs2",)),
        row(3, "Gaia23c", 10.0, 80.0, "unknown"),
    ]


def test_alert_search_by_tns_name_by_cone_by_class_and_by_observatory():
    rows = _rows()
    assert rows[0]["alert_class"] == "SN" and rows[0]["alert_mag"] == pytest.approx(18.7)
    assert [r["name"] for r in summary.select(rows, q="at2023a")] == ["Gaia23a"]
    near = summary.select(rows, q="12:34:56 -12:34:48 0.05", sort="name", descending=False)
    assert [r["name"] for r in near] == ["Gaia23a", "Gaia23b"]
    assert [r["name"] for r in summary.select(rows, q="188.73 -12.58 0.005")] == ["Gaia23a"]
    assert [r["name"] for r in summary.select(rows, alert_class="cv")] == ["Gaia23b"]
    assert [r["name"] for r in summary.select(rows, observatory_id="obs2")] == ["Gaia23b"]
    assert summary.classes(rows) == ["CV", "SN", "unknown"]


def test_ticks_are_round_and_cover_the_range():
    assert nice_ticks(60300.1, 60410.9) == [60325, 60350, 60375, 60400]  # steps of 25 inside the range
    assert nice_ticks(27.06, 27.14, 5) == pytest.approx([27.075, 27.1, 27.125])
    assert nice_ticks(5.0, 5.0)  # a single value still gets ticks


def test_a_chart_escapes_its_labels_and_draws_a_mark_and_bar_per_point():
    svg = scatter(
        [Series("V <b>", [1.0, 2.0], [20.0, 20.5], [0.1, None])], x_label="MJD", y_label="m", title="t", chart_id="c"
    )
    assert "<b>" not in svg and svg.count("<circle") == 2 and svg.count("<line x1=") >= 1
