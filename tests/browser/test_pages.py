"""The observer's other pages as a person sees them (issue 21), each at a desktop's 1280 px and a phone's 390 px,
with no console error: the upload form's event search and whole answers, the alert list's imported columns,
search and filters, errors as pages, no sideways scrolling, keyboard use, sexagesimal positions, the delete
question, "my datapoints" logged out, the observatory page and the datapoint page. Screenshots of each page
go to test-artifacts/browser/ (``pages_<name>_<width>.png``)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from tests.browser.conftest import FIELD, login, shot, watched_page

pytestmark = pytest.mark.integration

WIDTHS = (1280, 390)
EVENT = "Gaia23sim"
IVORN = f"ivo://gaia/alerts#{EVENT}"
TNS = "AT2023sim"
HEADER = "#Name, Date, RaDeg, DecDeg, AlertMag, HistoricMag, HistoricStdDev, Class, Published, Comment, TNSid\n"


def _alerts_csv(ra: float, dec: float) -> str:
    """Gaia's alerts.csv: the event on the test field, a CV near it without data, one far away."""
    return HEADER + (
        f'{EVENT},2023-05-01 02:07:38,{ra:.6f},{dec:.6f},18.70,20.22,0.64,"SN",2023-05-02 08:19:08,'
        f'"~2 mag brightening, a faint host",{TNS}\n'
        f'Gaia23near,2023-05-03 05:11:02,{(ra + 0.01) % 360:.6f},{dec:.6f},17.55,,,"CV",2023-05-04 08:21:40,'
        '"outburst of a known CV",AT2023near\n'
        'Gaia23far,2023-05-05 11:00:00,10.0,-80.0,19.10,19.3,0.1,"unknown",2023-05-06 09:00:00,"elsewhere",\n'
    )


def _upload(web, catalogue: bytes, mjd: float, hashtag: str | None = None) -> requests.Response:
    return requests.post(
        f"{web.url}/api/v1/uploads",
        data={
            "hashtag": hashtag or web.hashtag,
            "EventID": IVORN,
            "MJD": str(mjd),
            "expTime": "60",
            "dryRun": "0",
            "outputFormat": "json",
        },
        files={"sexCat": ("field.cat", catalogue)},
        timeout=120,
    )


@pytest.fixture(scope="module")
def data(web, tmp_path_factory) -> dict:
    """The imported alerts, two stored points of the event (one per observatory) and one refused upload."""
    a = web.truth["alert"]
    csv = tmp_path_factory.mktemp("alerts") / "alerts.csv"
    csv.write_text(_alerts_csv(a["ra"], a["dec"]))
    web.stack.cli("alerts", "import", str(csv))
    catalogue = (FIELD / "sex_ascii_head.cat").read_bytes()
    ours = _upload(web, catalogue, 60300.5)
    assert ours.status_code == 200, ours.text
    theirs = _upload(web, catalogue, 60301.5, web.other_hashtag)
    assert theirs.status_code == 200, theirs.text
    lines = catalogue.decode().splitlines()
    rows = [line for line in lines if line.strip() and not line.startswith("#")]
    few = [line for line in lines if line.startswith("#")] + sorted(rows, key=lambda r: float(r.split()[5]))[:8]
    refused = _upload(web, ("\n".join(few) + "\n").encode(), 60302.5)
    assert refused.status_code == 400 and refused.json()["error"] == "too_few_stars", refused.text
    observatory = requests.get(f"{web.url}/observatories", timeout=30)
    assert observatory.status_code == 200
    return {"ours": ours.json(), "theirs": theirs.json(), "catalogue": catalogue}


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def screen(request, chromium, web) -> Iterator:
    """A fresh page at the parametrised width; any page error, console error or dialog fails the test."""
    yield from watched_page(chromium, web.url, request.param)


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= page.width, f"{page.url} scrolls sideways at {page.width} px: {width} px wide"


def _look(page, name: str) -> None:
    """What every page must be: styled (the site's stylesheet applied), with its navigation, not wider than
    the screen; and a screenshot for the reviewer."""
    assert page.locator("header nav a[href='/alerts']").count() == 1, page.url
    background = page.evaluate("() => getComputedStyle(document.querySelector('header')).backgroundColor")
    assert background == "rgb(20, 35, 59)", f"the stylesheet is not applied on {page.url}"
    _no_sideways_scroll(page)
    shot(page, f"pages_{name}_{page.width}")


def _stored_ids(data) -> tuple[int, int]:
    return data["ours"]["followup_id"], data["theirs"]["followup_id"]


# -- the upload form ----------------------------------------------------------------------------------------


def test_upload_form_offers_events_with_data_searches_takes_a_bare_name_and_shows_duplicates_whole(screen, web, data):
    page = screen
    login(page, web.hashtag)
    # before typing: the events with data are offered (the event has two points; the far one none)
    offered = page.locator("#alerts-list option")
    values = [offered.nth(i).get_attribute("value") for i in range(offered.count())]
    assert IVORN in values and "ivo://gaia/alerts#Gaia23far" not in values
    # typing asks the alerts search: a TNS name finds its event
    page.fill("#EventID", "AT2023ne")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#alerts-list option')].some(o => o.value.endsWith('#Gaia23near'))"
    )
    # every input stays inside the form's box
    outside = page.evaluate(
        """() => { const box = document.getElementById('upload-form').getBoundingClientRect();
                   return [...document.querySelectorAll('#upload-form input:not([type=hidden]), #upload-form select')]
                     .filter(e => { const r = e.getBoundingClientRect();
                                    return r.left < box.left - 0.5 || r.right > box.right + 0.5; })
                     .map(e => e.id); }"""
    )
    assert outside == [], f"inputs outside the form at {page.width} px: {outside}"
    _look(page, "upload_form")

    # a bare name, stored: the answer links the datapoint's page
    mjd = 60400.25 + page.width / 10_000
    page.set_input_files("#sexCat", str(FIELD / "sex_ascii_head.cat"))
    page.fill("#EventID", EVENT)
    page.fill("#MJD", str(mjd))
    page.uncheck("#dryRun")
    page.click("#upload-submit")
    page.wait_for_selector("#result-message.ok, #result-message.error", timeout=90_000)
    assert page.locator("#result-message.ok").count() == 1, page.inner_text("#result-message")
    assert IVORN in page.inner_text("#result-table")
    stored_href = page.get_attribute("#result-datapoint", "href")
    assert stored_href and stored_href.startswith("/datapoints/")
    page.wait_for_function("() => document.getElementById('result-plot').naturalWidth >= 1390")
    _look(page, "upload_answer")

    # the same again: the whole sentence (not the 100-character CPCS one) and a link to the stored point
    page.expected_errors.append("status of 409 (Conflict)")  # the browser logs the refused POST
    page.click("#upload-submit")
    page.wait_for_selector("#result-message.error", timeout=90_000)
    text = page.inner_text("#result-message")
    assert "already stored" in text and "same event, observatory and MJD" in text, text
    assert page.inner_text("#result-error-code") == "duplicate_datapoint"
    assert page.get_attribute("#result-stored-datapoint", "href") == stored_href
    _look(page, "upload_duplicate")
    page.click("#result-stored-datapoint")
    page.wait_for_url(f"**{stored_href}")
    assert page.inner_text("h1") == f"Datapoint {stored_href.rsplit('/', 1)[1]}"


def test_without_javascript_the_answer_and_its_error_are_site_pages(chromium, web, data):
    context = chromium.new_context(base_url=web.url, java_script_enabled=False, viewport={"width": 390, "height": 860})
    page = context.new_page()
    page.width = 390
    try:
        login(page, web.hashtag)
        assert page.get_attribute("#upload-form", "action") == "/api/v1/uploads"
        for attempt in ("first", "again"):
            page.set_input_files("#sexCat", str(FIELD / "sex_ascii_head.cat"))
            page.fill("#EventID", EVENT)
            page.fill("#MJD", "60410.5")
            page.uncheck("#dryRun")
            page.click("#upload-submit")
            page.wait_for_load_state()
            if attempt == "first":
                assert page.inner_text("h1") == "Calibration result"
                assert page.locator("#datapoint-link").count() == 1
                _look(page, "nojs_answer")
                stored = page.get_attribute("#datapoint-link", "href")
                page.goto("/upload")
            else:
                assert page.inner_text("h1") == "Error"
                message = page.inner_text("#msg-error")
                assert "already stored" in message and "same event, observatory and MJD" in message
                assert page.get_attribute("#datapoint-link", "href") == stored
                _look(page, "nojs_duplicate")
    finally:
        context.close()


# -- the alert list -----------------------------------------------------------------------------------------


def test_alert_list_shows_imported_metadata_and_searches_by_name_tns_and_position(screen, web, data):
    page = screen
    page.goto("/alerts?q=Gaia23")
    heads = page.locator("#alerts-table thead th").all_inner_texts()
    for title in ("Discovered (UTC)", "Alert mag", "Class", "Comment", "TNS", "Last mag (filter)"):
        assert any(h.startswith(title) for h in heads), heads
    row = page.locator(f'#alerts-table tr[data-ivorn="{IVORN}"]')
    text = row.inner_text()
    for shown in ("2023-05-01 02:07:38", "18.70", "SN", "~2 mag brightening, a faint host", TNS):
        assert shown in text, (shown, text)
    # "last mag" says its filter: the last stored point's band and survey
    assert "V APASS" in row.locator("td.last-mag").inner_text()
    _look(page, "alerts")

    def names() -> list[str]:
        return page.locator("#alerts-table tbody td:first-child").all_inner_texts()

    page.fill("#q", TNS.lower())
    page.click("#alert-search-submit")
    assert names() == [EVENT]
    # a cone: sexagesimal (hours, degrees) and degrees with a radius
    a = web.truth["alert"]
    hours = a["ra"] / 15
    h, m = int(hours), int((hours * 60) % 60)
    s = (hours * 3600) % 60
    sign = "-" if a["dec"] < 0 else "+"
    d = abs(a["dec"])
    dd, dm, ds = int(d), int((d * 60) % 60), (d * 3600) % 60
    page.fill("#q", f"{h:02d}:{m:02d}:{s:05.2f} {sign}{dd:02d}:{dm:02d}:{ds:04.1f} 0.02")
    page.click("#alert-search-submit")
    assert set(names()) >= {EVENT, "Gaia23near"} and "Gaia23far" not in names()
    assert "within 0.02°" in page.inner_text("main")
    page.fill("#q", f"{a['ra']:.5f} {a['dec']:.5f} 0.001")
    page.click("#alert-search-submit")
    assert EVENT in names() and "Gaia23near" not in names()
    _look(page, "alerts_cone")


def test_alert_list_filters_by_class_and_by_my_observatory(screen, web, data):
    page = screen
    page.goto("/alerts")
    assert page.locator("#mine").count() == 0  # logged out: the filter asks to log in
    page.select_option("#class", "CV")
    page.click("#alert-search-submit")
    assert page.locator("#alerts-table tbody td:first-child").all_inner_texts() == ["Gaia23near"]
    login(page, web.hashtag, "/alerts")
    page.check("#mine")
    page.click("#alert-search-submit")
    listed = page.locator("#alerts-table tbody td:first-child").all_inner_texts()
    assert EVENT in listed and "Gaia23near" not in listed and "Gaia23far" not in listed
    _look(page, "alerts_mine")


# -- errors are pages ---------------------------------------------------------------------------------------


def test_errors_on_pages_are_styled_pages_and_the_api_stays_json(screen, web, data):
    page = screen
    page.expected_errors += ["status of 404 (Not Found)", "status of 401", "status of 403"]  # the pages asked for
    answer = page.goto("/lightcurve/" + quote("ivo://gaia/alerts#NoSuchEvent", safe=""))
    assert answer is not None and answer.status == 404
    assert page.inner_text("h1") == "Not found"
    assert "unknown event" in page.inner_text("#msg-error") and page.inner_text("#error-code") == "unknown_event"
    _look(page, "error_unknown_lightcurve")
    answer = page.goto("/no/such/page")  # the gateway's own 404
    assert answer is not None and answer.status == 404 and page.inner_text("h1") == "Not found"
    _look(page, "error_unknown_path")
    answer = page.goto("/datapoints/987654321")
    assert answer is not None and answer.status == 404 and "987654321" in page.inner_text("#msg-error")
    _look(page, "error_unknown_datapoint")
    # a browser asking the JSON API or a CPCS read still gets JSON
    for path in ("/api/v1/lightcurves/NoSuchEvent", "/get_alert_lc_data?alert_name=NoSuchEvent&format=json"):
        answer = page.goto(path)
        assert answer is not None and 400 <= answer.status < 500, (path, answer.status)
        assert answer.headers["content-type"].startswith("application/json"), path


# -- phones and keyboards -----------------------------------------------------------------------------------


def test_no_page_scrolls_sideways(screen, web, data):
    page = screen
    ours, _ = _stored_ids(data)
    public = ["/", "/login", "/alerts", "/alerts?with_data=1", "/followup", "/observatories", f"/datapoints/{ours}"]
    for path in public:
        page.goto(path)
        _look(page, "page" + path.replace("/", "_").replace("?", "_").replace("=", "_"))
    login(page, web.hashtag, "/uploads")
    for path in (
        "/uploads",
        "/upload",
        "/events/new",
        "/followup?mine=1",
        f"/observatories/{quote('Web Observatory')}",
    ):
        page.goto(path)
        _look(page, "page_logged_in" + path.replace("/", "_").replace("?", "_").replace("=", "_").replace("%", "_"))


def test_forms_are_reachable_by_tab_with_a_visible_focus(screen, web, data):
    page = screen
    login(page, web.hashtag)
    page.goto("/upload")
    reached: list[str] = []
    outlines: dict[str, str] = {}
    for _ in range(40):
        page.keyboard.press("Tab")
        ident, outline = page.evaluate(
            "() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return [e.id || e.className || e.tagName, s.outlineStyle + ' ' + s.outlineWidth]; }"
        )
        reached.append(ident)
        outlines[ident] = outline
        if ident == "upload-submit":
            break
    assert reached[0] == "skip", reached  # the first Tab offers to skip the navigation
    for field in ("sexCat", "EventID", "MJD", "expTime", "matchDist", "forceFilter", "comment", "dryRun"):
        assert field in reached, (field, reached)
        assert not outlines[field].startswith("none"), (field, outlines[field])
    assert reached[-1] == "upload-submit"
    shot(page, f"pages_keyboard_focus_{page.width}", full_page=False)
    # the skip link leads to the content
    page.goto("/alerts")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"


# -- forms --------------------------------------------------------------------------------------------------


def test_new_event_takes_sexagesimal_or_degrees_and_says_when_neither_parses(screen, web, data):
    page = screen
    page.expected_errors.append("status of 400 (Bad Request)")  # the refused form's answer
    login(page, web.hashtag, "/events/new")
    page.fill("#ivorn", "ivo://web/pages#Sexa")
    page.fill("#ra", "12:34:99")
    page.fill("#dec", "-12:34:56")
    page.click("#event-submit")
    errors = " ".join(page.locator(".msg.error").all_inner_texts())
    assert "RA is decimal degrees (0 ≤ RA < 360) or sexagesimal hours such as 12:34:56.7" in errors, errors
    _look(page, "new_event_refused")
    ivorn = f"ivo://web/pages#Sexa{page.width}"
    page.fill("#ivorn", ivorn)
    page.fill("#ra", "12:34:56.7")
    page.fill("#dec", "-12:34:56")
    page.click("#event-submit")
    assert "added" in page.inner_text("#msg-ok")
    _look(page, "new_event_added")
    row = requests.get(f"{web.url}/api/v1/alerts", params={"q": ivorn}, timeout=30).json()[0]
    assert row["ra"] == pytest.approx(188.73625) and row["dec"] == pytest.approx(-12.582222, abs=1e-6)


def test_my_datapoints_logged_out_ask_to_log_in(screen, web, data):
    page = screen
    page.goto("/followup?mine=1")
    page.wait_for_url("**/login?next=**")
    assert "mine" in page.url
    _look(page, "followup_mine_logged_out")
    page.fill("#hashtag", web.hashtag)
    page.click("#login-submit")
    page.wait_for_url("**/followup?mine=1")
    assert "Second" not in page.inner_text("#followup-table")


def test_deleting_asks_first(screen, web, data):
    page = screen
    stored = _upload(web, data["catalogue"], 60500.5 + page.width / 10_000)
    assert stored.status_code == 200, stored.text
    followup_id = stored.json()["followup_id"]
    login(page, web.hashtag, "/followup?mine=1")
    row = page.locator(f'tr[data-followup-id="{followup_id}"]')
    row.locator("input[name=reason]").fill("a test frame")
    row.locator("button").click()
    assert "Delete datapoint" in page.inner_text("#confirm-question")
    assert page.inner_text("#confirm-reason") == "a test frame"
    _look(page, "delete_question")
    page.click("#cancel-delete")  # no: nothing happens
    page.wait_for_url(f"**/datapoints/{followup_id}")
    assert page.locator("#dp-deleted").count() == 0
    page.goto("/followup?mine=1")
    row = page.locator(f'tr[data-followup-id="{followup_id}"]')
    row.locator("input[name=reason]").fill("a test frame")
    row.locator("button").click()
    page.click("#confirm-delete")
    page.wait_for_url("**/followup?mine=1&deleted=*")
    assert "deleted: a test frame" in page.locator(f'tr[data-followup-id="{followup_id}"]').inner_text()


# -- the observatory and datapoint pages --------------------------------------------------------------------


def test_observatory_page_draws_uploads_zero_points_and_limits_and_lists_failures(screen, web, data):
    page = screen
    page.goto("/followup")
    ours, _ = _stored_ids(data)
    page.locator(f'tr[data-followup-id="{ours}"] a.obs').click()  # linked from the follow-up list
    page.wait_for_url("**/observatories/**")
    assert page.inner_text("h1") == "Observatory Web Observatory"
    assert page.locator("#uploads-chart rect[fill]").count() >= 1
    stored = page.evaluate("() => document.querySelectorAll('#zeropoint-chart circle').length")
    assert stored >= 1 and stored == page.locator("#limit-chart circle").count()
    assert "V (APASS)" in page.inner_text("main")
    assert "failed uploads: their reasons are shown to the observatory" in page.inner_text("#failed-login")
    _look(page, "observatory_public")
    login(page, web.hashtag, "/uploads")
    page.click("#my-observatory")
    page.wait_for_url("**/observatories/**")
    failed = page.locator("#failed-table tbody tr").first
    assert "too_few_stars" in failed.inner_text() and "too few calibration stars" in failed.inner_text()
    _look(page, "observatory_own")
    page.click("header nav a[href='/observatories']")
    assert "Second <i>Observatory</i>" in page.inner_text("#observatories-table")


def test_datapoint_page_has_everything_and_is_linked_from_the_followup_list(screen, web, data):
    page = screen
    ours, _ = _stored_ids(data)
    page.goto("/followup")
    page.locator(f'tr[data-followup-id="{ours}"] a.dp').click()
    page.wait_for_url(f"**/datapoints/{ours}")
    for part in ("#dp-point", "#dp-calibration", "#dp-candidates", "#dp-provenance", "#dp-history"):
        assert page.locator(part).count() == 1, part
    assert page.locator("#dp-candidates tbody tr").count() == len(data["ours"]["candidates"])
    page.wait_for_function("() => document.getElementById('dp-plot').naturalWidth >= 1390")
    _look(page, "datapoint")
