"""The light-curve chart as an observer uses it, at 1280 and 390 px: a series per filter and observatory,
toggles that never clip what stays shown, tick labels that say the values they mark, hover and click,
the phase-folded view, PNG/SVG export and the magnitude systems. Every test fails on a console error.

The data are real uploads through the gateway from three observatories, with forced bands (APASS V and B,
PS1 g, SDSS g) and one frame whose target was cut out of the catalogue (a limit). Screenshots go to
test-artifacts/browser/.
"""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from PIL import Image

from tests.browser.conftest import FIELD, SHOTS, shot

pytestmark = pytest.mark.integration
IVORN = "ivo://gaia/alerts#WebChart"
PAGE = "/lightcurve/" + quote(IVORN, safe="")
WIDTHS = (1280, 390)
MJD_EPOCH = datetime(1858, 11, 17, tzinfo=UTC)
#: (observatory, forced band, MJD, target cut out: a limit)
UPLOADS = (
    ("Ondrejov", "APASS/V", 60200.5, False),
    ("Ondrejov", "APASS/V", 60203.0, False),
    ("Ondrejov", "APASS/B", 60201.0, False),
    ("Ondrejov", "APASS/V", 60206.0, True),
    ("Loiano", "APASS/V", 60202.0, False),
    ("Loiano", "APASS/V", 60204.5, False),
    ("Loiano", "PS1/g", 60202.1, False),
    ("Web Observatory", "SDSS/g", 60203.3, False),
    ("Web Observatory", "APASS/V", 60205.2, False),
)


def _catalogue(without_target: bool, alert: dict) -> bytes:
    """The field's catalogue; ``without_target``: the source at the alert removed (the target not detected)."""
    text = (FIELD / "sex_ascii_head.cat").read_text()
    if not without_target:
        return text.encode()
    lines = text.splitlines()
    rows = [line for line in lines if line.strip() and not line.startswith("#")]

    def distance(row: str) -> float:
        ra, dec = float(row.split()[3]), float(row.split()[4])
        return math.hypot((ra - alert["ra"]) * math.cos(math.radians(dec)), dec - alert["dec"])

    target = min(rows, key=distance)
    assert distance(target) < 2 / 3600, "the field's catalogue has its target"
    return ("\n".join(line for line in lines if line != target) + "\n").encode()


@pytest.fixture(scope="module")
def curve(web) -> dict:
    """The alert with nine uploads from three observatories; the answers by (observatory, band, MJD)."""
    a = web.truth["alert"]
    r = requests.post(
        f"{web.url}/api/v1/alerts",
        json={"ivorn": IVORN, "ra": a["ra"], "dec": a["dec"], "hashtag": web.hashtag},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    hashtags = {
        "Ondrejov": web.stack.add_observatory("Ondrejov"),
        "Loiano": web.stack.add_observatory("Loiano"),
        "Web Observatory": web.hashtag,
    }
    answers = {}
    for observatory, band, mjd, limit in UPLOADS:
        r = requests.post(
            f"{web.url}/api/v1/uploads",
            data={
                "hashtag": hashtags[observatory],
                "EventID": IVORN,
                "MJD": str(mjd),
                "expTime": "60",
                "forceFilter": band,
                "noPlot": "0",
                "dryRun": "0",
                "outputFormat": "json",
            },
            files={"sexCat": ("field.cat", _catalogue(limit, a))},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["detected"] is (not limit), answer
        answers[(observatory, band, mjd)] = answer
    return answers


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def page(request, chromium, web, curve):
    """A fresh context at the width; a JavaScript error, a console error or a dialog fails the test."""
    width = request.param
    context = chromium.new_context(base_url=web.url, viewport={"width": width, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []

    def dialog(d) -> None:
        problems.append("dialog: " + d.message)
        d.dismiss()

    def console(m) -> None:
        if m.type == "error":  # a failed resource (its URL in the location), a script's console.error
            problems.append(f"console {m.type}: {m.text} at {m.location}")

    def response(r) -> None:
        if r.status >= 400:
            problems.append(f"{r.status} for {r.url}")

    page.on("dialog", dialog)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", console)
    page.on("response", response)
    page.set_default_timeout(30_000)
    page.width = width  # the tests name their screenshots and messages by it
    yield page
    context.close()
    assert not problems, problems


def _open(page, query: str = "") -> None:
    page.goto(PAGE + query)
    page.wait_for_selector("#chart canvas")


def _no_sideways_scroll(page) -> None:
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls {overflow} px sideways at {page.width} px"


#: every mark of the shown series, in plot-area css px through uPlot's valToPos: [x, y] pairs
MARKS_JS = """() => {
  const u = window.photcalChart, d = window.photcalChartData, out = [];
  for (let k = 0; k < d.series.length; k++) {
    if (!u.series[k + 1].show) continue;
    for (let i = 0; i < d.xs.length; i++) {
      const y = d.ys[k][i];
      if (y === null) continue;
      const x = u.valToPos(d.xs[i], "x"), py = u.valToPos(y, "y");
      const what = d.isLimit[i] ? "limit" : "point";
      out.push({k, i, what, x: x, y: py});
      if (d.isLimit[i]) {
        out.push({k, i, what: "arrow tip", x, y: py + d.ARROW_PX});
        out.push({k, i, what: "limit bar", x: x - d.HEAD_PX, y: py});
        out.push({k, i, what: "limit bar", x: x + d.HEAD_PX, y: py});
      } else {
        out.push({k, i, what: "error bar", x, y: u.valToPos(y - d.errs[i], "y")});
        out.push({k, i, what: "error bar", x, y: u.valToPos(y + d.errs[i], "y")});
      }
    }
  }
  return {marks: out, width: u.over.clientWidth, height: u.over.clientHeight};
}"""


def _assert_all_inside(page, why: str) -> int:
    got = page.evaluate(MARKS_JS)
    outside = [m for m in got["marks"] if not (0 <= m["x"] <= got["width"] and 0 <= m["y"] <= got["height"])]
    assert not outside, f"{why}: marks outside the {got['width']}x{got['height']} plot area: {outside[:5]}"
    return len(got["marks"])


def _series(page) -> list[dict]:
    return page.evaluate(
        """() => window.photcalChartData.series.map((s, k) => ({filter: s.filter, survey: s.survey,
             observatory: s.observatory, show: window.photcalChart.series[k + 1].show}))"""
    )


def test_series_per_filter_and_observatory_with_systems_and_toggles(page, curve):
    _open(page)
    series = _series(page)
    assert {(s["filter"], s["survey"], s["observatory"]) for s in series} == {
        (band.split("/")[1], band.split("/")[0], obs) for obs, band, _mjd, _limit in UPLOADS
    }
    bands = page.locator("#band-toggles label")
    assert sorted(bands.all_inner_texts()) == sorted(
        ["V (APASS, Vega)", "B (APASS, Vega)", "g (PS1, AB)", "g (SDSS, AB)"]
    ), "a toggle per band, with its survey and system: PS1 g is not SDSS g"
    colours = dict(
        zip(
            [t.strip() for t in bands.all_inner_texts()],
            [bands.nth(j).locator("svg path").get_attribute("fill") for j in range(bands.count())],
            strict=True,
        )
    )
    assert len(set(colours.values())) == 4, f"a colour per band: {colours}"
    observatories = page.locator("#obs-toggles label")
    assert sorted(t.strip() for t in observatories.all_inner_texts()) == ["Loiano", "Ondrejov", "Web Observatory"]
    shapes = [observatories.nth(j).locator("svg path").get_attribute("d") for j in range(observatories.count())]
    assert len(set(shapes)) == 3, "a marker shape per observatory"
    legend = page.inner_text("#chart .u-legend")
    assert "V (APASS, Vega) · Loiano (2)" in legend and "V (APASS, Vega) · Ondrejov (2 + 1 limit)" in legend
    assert "g (PS1, AB) · Loiano (1)" in legend and "g (SDSS, AB) · Web Observatory (1)" in legend
    systems = page.inner_text("#mag-systems")
    assert "APASS B, V: Vega" in systems and "PS1 g: AB" in systems and "SDSS g: AB" in systems
    rows = page.locator("#points-table tbody tr")
    assert rows.count() == len(UPLOADS)
    assert sorted(rows.locator("td.observatory").all_inner_texts()) == sorted(o for o, *_ in UPLOADS)
    _no_sideways_scroll(page)
    shot(page, f"lightcurve_chart_{page.width}px")

    # keyboard only: to the Loiano checkbox and Space; only Loiano's series go, and the rest fit the frame
    box = page.locator('#obs-toggles input[value="Loiano"]')
    box.focus()
    page.keyboard.press("Space")
    assert not box.is_checked()
    shown = {s["observatory"]: s["show"] for s in _series(page) if s["observatory"] == "Loiano"}
    assert shown == {"Loiano": False}
    assert all(s["show"] for s in _series(page) if s["observatory"] != "Loiano")
    _assert_all_inside(page, "Loiano hidden")
    page.keyboard.press("Space")
    assert all(s["show"] for s in _series(page))


def test_hiding_any_filter_keeps_every_remaining_mark_inside_the_plot(page, curve):
    _open(page)
    everything = _assert_all_inside(page, "all shown")
    bands = page.locator("#band-toggles input")
    for j in range(bands.count()):
        bands.nth(j).uncheck()
        left = _assert_all_inside(page, f"{bands.nth(j).get_attribute('value')} hidden")
        assert 0 < left < everything
        # the rest fill the frame again: not the old range with a gap where the hidden filter was
        spread = page.evaluate(
            f"""() => {{ const m = ({MARKS_JS})(); const ys = m.marks.map(p => p.y);
                         return (Math.max(...ys) - Math.min(...ys)) / m.height; }}"""
        )
        assert spread > 0.6, f"the remaining marks span {spread:.0%} of the plot's height"
        bands.nth(j).check()
    # two at once, leaving the limit's series (APASS V) alone
    page.locator('#band-toggles input[value="B|APASS"]').uncheck()
    page.locator('#band-toggles input[value="g|PS1"]').uncheck()
    page.locator('#band-toggles input[value="g|SDSS"]').uncheck()
    _assert_all_inside(page, "only V shown")
    shot(page, f"lightcurve_only_V_{page.width}px", full_page=False)


def _decimals(label: str) -> int:
    return len(label.split(".")[1]) if "." in label else 0


def _needed_decimals(step: float) -> int:
    for d in range(8):
        scaled = step * 10**d
        if abs(scaled - round(scaled)) < 1e-6 * max(1, scaled):
            return d
    return 8


def _calendar(mjd: float, text: str) -> str:
    """The UTC date of an MJD written as ``text`` is (day, minute or second resolution, rounded; the year left
    out on a narrow plot)."""
    when = MJD_EPOCH + timedelta(days=mjd)
    if len(text) == 10:
        return (MJD_EPOCH + timedelta(days=round(mjd))).strftime("%Y-%m-%d")
    if len(text) == 16:
        return (when + timedelta(seconds=30)).strftime("%Y-%m-%d %H:%M")
    if len(text) == 11:  # a narrow plot's: no year
        return (when + timedelta(seconds=30)).strftime("%m-%d %H:%M")
    return (when + timedelta(milliseconds=500)).strftime("%m-%d %H:%M:%S")


def _ticks(page, axis: str) -> list[dict]:
    return json.loads(page.get_attribute("#chart", f"data-{axis}-ticks"))


def _step(page, axis: str) -> float:
    """The tick spacing the axis chose (recorded beside its ticks: one tick alone does not show it)."""
    return float(page.get_attribute("#chart", f"data-{axis}-step"))


def _zoom(page, axis: str, lo: float, hi: float) -> None:
    page.evaluate(f"() => window.photcalChart.setScale('{axis}', {{min: {lo}, max: {hi}}})")


def test_tick_labels_say_their_values_at_every_zoom(page, curve):
    _open(page)
    steps = set()
    for lo, hi in ((14.0, 22.0), (16.0, 19.0), (17.0, 19.5), (17.5, 18.6), (17.9, 18.3), (17.95, 18.01)):
        _zoom(page, "y", lo, hi)
        ticks, step = _ticks(page, "y"), _step(page, "y")
        assert len(ticks) >= 2, (lo, hi, ticks)
        assert ticks[1]["value"] - ticks[0]["value"] == pytest.approx(step)
        steps.add(round(step, 6))
        for t in ticks:
            assert _decimals(t["label"]) == _needed_decimals(step), (step, t)
            assert float(t["label"]) == pytest.approx(t["value"], abs=10 ** -_needed_decimals(step) / 2)
        assert len({t["label"] for t in ticks}) == len(ticks), "no two ticks say the same"
    if page.width == 1280:
        _zoom(page, "y", 17.0, 19.5)
        assert [t["label"] for t in _ticks(page, "y")][:3] == ["17.00", "17.25", "17.50"], "a 0.25 grid"
        assert 0.25 in steps
    for lo, hi in (
        (60150, 60260),
        (60190, 60215),
        (60199.7, 60206.3),
        (60200.2, 60201.3),
        (60200.45, 60200.56),
        (60200.4990, 60200.5012),
    ):
        _zoom(page, "x", lo, hi)
        ticks, step = _ticks(page, "x"), _step(page, "x")
        assert ticks, (lo, hi)
        for t in ticks:
            mjd_text, date_text = t["label"].split("\n")
            assert _decimals(mjd_text) == _needed_decimals(step), (step, t)
            assert float(mjd_text) == pytest.approx(t["value"], abs=10 ** -_needed_decimals(step) / 2)
            assert date_text == _calendar(t["value"], date_text), t
        assert len({t["label"] for t in ticks}) == len(ticks), f"no two ticks say the same: {ticks}"
    if page.width == 1280:
        _zoom(page, "x", 60188, 60212)
        labels = [t["label"] for t in _ticks(page, "x")]
        assert "60197.5\n2023-09-10 12:00" in labels, f"a 2.5-day grid says its half days: {labels}"
    shot(page, f"lightcurve_zoomed_ticks_{page.width}px", full_page=False)


def _mark_position(page, observatory: str, band: str) -> tuple[float, float, int]:
    """Where a series' first mark is drawn (page coordinates) and its datapoint id."""
    survey, filt = band.split("/")
    return tuple(
        page.evaluate(
            """([obs, survey, filt]) => {
                 const u = window.photcalChart, d = window.photcalChartData, r = u.over.getBoundingClientRect();
                 const k = d.series.findIndex(s => s.observatory === obs && s.survey === survey && s.filter === filt);
                 const i = d.ys[k].findIndex(v => v !== null);
                 return [r.left + u.valToPos(d.xs[i], "x"), r.top + u.valToPos(d.ys[k][i], "y"), d.ids[i]]; }""",
            [observatory, survey, filt],
        )
    )


def test_hover_says_what_a_point_is_and_a_click_opens_its_datapoint(page, web, curve):
    _open(page)
    answer = curve[("Loiano", "PS1/g", 60202.1)]
    x, y, followup_id = _mark_position(page, "Loiano", "PS1/g")
    assert followup_id == answer["followup_id"]
    page.mouse.move(x, y)
    tip = page.locator("#chart-tip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "Loiano" in text and "g (PS1, AB)" in text
    assert f"{answer['mag']:.3f} ± {answer['mag_err']:.3f}" in text
    assert "MJD 60202.10000 · 2023-09-15 02:24 UTC" in text
    assert f"datapoint {followup_id}" in text
    shot(page, f"lightcurve_hover_{page.width}px", full_page=False)

    limit = curve[("Ondrejov", "APASS/V", 60206.0)]
    lx, ly, _ = page.evaluate(
        """(id) => { const u = window.photcalChart, d = window.photcalChartData, r = u.over.getBoundingClientRect();
                     const i = d.ids.indexOf(id), k = d.ys.findIndex(col => col[i] !== null);
                     return [r.left + u.valToPos(d.xs[i], "x"), r.top + u.valToPos(d.ys[k][i], "y"), i]; }""",
        limit["followup_id"],
    )
    page.mouse.move(lx, ly)
    page.wait_for_function("() => document.getElementById('chart-tip').innerText.includes('not detected')")
    assert f"> {limit['limit_mag']:.2f} (not detected)" in tip.inner_text()
    assert "Ondrejov" in tip.inner_text() and f"datapoint {limit['followup_id']}" in tip.inner_text()

    # the table: the observatory and a link to each calibration plot
    row = page.locator("#points-table tbody tr", has=page.locator(f'a.dp:text-is("{followup_id}")'))
    assert row.locator("td.observatory").inner_text() == "Loiano"
    plot = row.locator("a.plot").get_attribute("href")
    assert plot == f"/plots/{answer['upload_id']}.png"
    got = requests.get(web.url + plot, timeout=30)
    assert got.status_code == 200 and got.headers["Content-Type"] == "image/png"
    assert page.locator("#points-table a.plot").count() == len(UPLOADS)

    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_url(f"**/datapoints/{followup_id}")
    assert page.inner_text("h1") == f"Datapoint {followup_id}"


def test_phase_folded_view_from_the_url_and_the_form(page, curve):
    period, t0 = 2.5, 60200.5
    _open(page, f"?period={period}&t0={t0}")
    assert page.get_attribute("#chart", "data-mode") == "phase"
    folded = page.evaluate("() => ({xs: window.photcalChartData.xs, mjds: window.photcalChartData.mjds})")
    assert len(folded["xs"]) == len(UPLOADS)
    for phase, mjd in zip(folded["xs"], folded["mjds"], strict=True):
        expected = ((mjd - t0) / period) % 1.0
        assert phase == pytest.approx(expected, abs=1e-9) and 0 <= phase < 1
    ticks, step = _ticks(page, "x"), _step(page, "x")
    assert all("\n" not in t["label"] for t in ticks), "phase ticks carry no date"
    assert all(0 <= t["value"] <= 1 for t in ticks)
    assert all(_decimals(t["label"]) == _needed_decimals(step) for t in ticks)
    assert "Folded with P = 2.5 d, T0 = MJD 60200.5" in page.inner_text("#fold-msg")
    _assert_all_inside(page, "folded")
    shot(page, f"lightcurve_folded_{page.width}px", full_page=False)

    # the form, keyboard only: a new period, Enter; the URL carries it (a link to the folded view)
    page.locator("#period").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("1.25")
    page.keyboard.press("Enter")
    page.wait_for_url("**period=1.25**")
    page.wait_for_selector("#chart canvas")
    assert page.get_attribute("#chart", "data-mode") == "phase"
    page.click("#unfold")
    page.wait_for_selector("#chart canvas")
    assert page.get_attribute("#chart", "data-mode") == "time"

    _open(page, "?period=soon")
    assert page.get_attribute("#chart", "data-mode") == "time"
    assert "positive number of days" in page.inner_text("#fold-msg")


def test_export_png_and_svg_with_the_legend(page, curve):
    _open(page)
    with page.expect_download() as got:
        page.click("#export-png")
    png = got.value
    assert png.suggested_filename == "WebChart.png"
    SHOTS.mkdir(parents=True, exist_ok=True)
    png.save_as(SHOTS / f"lightcurve_export_{page.width}px.png")  # for a reviewer, beside the screenshots
    image = Image.open(io.BytesIO(Path(png.path()).read_bytes()))
    image.load()
    assert image.format == "PNG" and image.width > 200 and image.height > 300
    # the legend under the chart is drawn: not one colour below the canvas
    canvas_height = page.evaluate("() => window.photcalChart.ctx.canvas.height")
    legend = image.crop((0, canvas_height + 24, image.width, image.height)).convert("L")
    darkest = legend.getextrema()[0]
    assert isinstance(darkest, int) and darkest < 128, "the legend's text is in the PNG"

    with page.expect_download() as got:
        page.click("#export-svg")
    svg = got.value
    assert svg.suggested_filename == "WebChart.svg"
    svg.save_as(SHOTS / f"lightcurve_export_{page.width}px.svg")
    text = Path(svg.path()).read_text(encoding="utf-8")
    assert text.startswith("<svg") and text.rstrip().endswith("</svg>")
    for entry in ("V (APASS, Vega) · Ondrejov (2 + 1 limit)", "g (PS1, AB) · Loiano (1)", "Light curve of WebChart"):
        assert entry in text
    assert "magnitude" in text and "MJD (UTC date)" in text
    # as many markers as detections, error bars and the limit's arrow drawn as paths
    assert text.count("<path") >= len(UPLOADS) * 2


def test_the_page_fits_a_phone_and_is_keyboard_operable(page, curve):
    _open(page)
    _no_sideways_scroll(page)
    # every control on the chart is reachable with Tab: a button or a checkbox
    reached = set()
    for _ in range(80):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("() => document.activeElement.id || document.activeElement.value || ''"))
    for control in (
        "zoom-in",
        "zoom-out",
        "reset-zoom",
        "export-png",
        "export-svg",
        "period",
        "t0",
        "fold-submit",
        "Loiano",
        "g|PS1",
    ):
        assert control in reached, f"{control} cannot be reached with Tab"
    # zoom from the keyboard: Enter on "zoom +" narrows both axes, "reset zoom" brings the whole curve back
    before = page.evaluate("() => [window.photcalChart.scales.x.min, window.photcalChart.scales.x.max]")
    page.locator("#zoom-in").focus()
    page.keyboard.press("Enter")
    after = page.evaluate("() => [window.photcalChart.scales.x.min, window.photcalChart.scales.x.max]")
    assert after[1] - after[0] == pytest.approx(0.8 * (before[1] - before[0]))
    page.locator("#reset-zoom").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("() => [window.photcalChart.scales.x.min, window.photcalChart.scales.x.max]") == (
        pytest.approx(before)
    )
    _assert_all_inside(page, "reset")
    shot(page, f"lightcurve_page_{page.width}px")
