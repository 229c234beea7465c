"""The observer's web in a real browser: login, upload form, answer and plot, light curve, CSV, lists, events, delete.

Each test asserts on what the page shows (text, tables, the plot's canvas, a
loaded image), not only on HTTP codes; screenshots are saved to
test-artifacts/browser/ for a person to look at.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import requests
from pymongo import MongoClient
from pymongo.database import Database

from tests.browser.conftest import FIELD, login, shot

pytestmark = pytest.mark.integration
IVORN = "ivo://gaia/alerts#WebTest1"
EVIL = '<script>alert("x")</script>'


def _add_alert(
    web,
    ivorn: str,
    name: str | None = None,
    url: str = "https://gsaweb.ast.cam.ac.uk/alerts/alert/X/",
    hashtag: str | None = None,
) -> requests.Response:
    a = web.truth["alert"]
    body = {"ivorn": ivorn, "ra": a["ra"], "dec": a["dec"], "url": url, "hashtag": hashtag or web.hashtag}
    if name:
        body["name"] = name
    return requests.post(f"{web.url}/api/v1/alerts", json=body, timeout=30)


def _upload(web, ivorn: str, mjd: float, hashtag: str, comment: str = "", dry_run: int = 0) -> dict:
    with open(FIELD / "sex_ascii_head.cat", "rb") as f:
        r = requests.post(
            f"{web.url}/cgi/upload",
            data={
                "hashtag": hashtag,
                "EventID": ivorn,
                "MJD": str(mjd),
                "expTime": "180",
                "matchDist": "2",
                "dryRun": str(dry_run),
                "noPlot": "0",
                "outputFormat": "json",
                "comment": comment,
            },
            files={"sexCat": ("field.cat", f)},
            timeout=120,
        )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def event(web) -> str:
    r = _add_alert(web, IVORN, name="WebTest1")
    assert r.status_code == 201, r.text
    return IVORN


def test_login_upload_answer_plot_lightcurve_csv(page, web, event):
    # not logged in: the form sends you to the login page and back
    page.goto("/upload")
    page.wait_for_url("**/login?next=**")
    page.fill("#hashtag", "not-a-real-hashtag-123")
    page.click("#login-submit")
    assert "not known" in page.inner_text("#msg-error")
    login(page, web.hashtag)
    assert "Web Observatory" in page.inner_text("header .user")

    # every CPCS field, with CPCS's defaults and dry run on
    assert page.input_value("#matchDist") == "2"
    assert page.input_value("#forceFilter") == "no"
    assert page.is_checked("#dryRun") and not page.is_checked("#noPlot")
    assert "APASS/V" in page.inner_text("#forceFilter")
    for field in ("#sexCat", "#EventID", "#MJD", "#expTime", "#comment"):
        assert page.locator(field).count() == 1

    page.set_input_files("#sexCat", str(FIELD / "sex_ascii_head.cat"))
    page.fill("#EventID", event)
    page.fill("#MJD", "60100.25")
    page.fill("#expTime", "180")
    page.fill("#comment", EVIL)
    page.uncheck("#dryRun")  # store it, to see it on the light curve
    shot(page, "01_upload_form")
    page.click("#upload-submit")
    page.wait_for_selector("#result-message.ok", timeout=90_000)
    table = page.inner_text("#result-table")
    assert "APASS / V" in table
    mag = float(table.split("Magnitude")[1].split()[0])
    assert abs(mag - web.truth["transient"]["mag"]) < 0.15, table
    assert "Stored\tyes" in table or "Stored yes" in table.replace("\t", " ")
    # the calibration plot is shown, and it is a real image
    page.wait_for_function(
        "() => { const i = document.getElementById('result-plot'); return i && i.complete && i.naturalWidth > 100; }"
    )
    shot(page, "02_upload_answer_with_plot")

    # the light curve: plot canvas, the point in the table, the comment as text
    page.click("#result-lightcurve")
    page.wait_for_url("**/lightcurve/**")
    page.wait_for_selector("#chart canvas")
    assert page.inner_text("#lc-ivorn") == event
    assert page.locator("#points-table tbody tr").count() == 1
    assert EVIL in page.inner_text("#points-table")
    assert page.evaluate("() => window.photcalChart.data[0].length") == 1
    # a series per band and observatory, the survey's system named (issue 21)
    assert "V (APASS, Vega) · Web Observatory (1)" in page.inner_text(".u-legend")
    shot(page, "03_lightcurve")

    # CSV download: the same point
    with page.expect_download() as info:
        page.click("#csv-link")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert len(rows) == 1 and rows[0]["filter"] == "V" and rows[0]["comment"] == EVIL
    assert abs(float(rows[0]["mag"]) - mag) < 0.001
    assert info.value.suggested_filename.endswith(".csv")


def test_upload_errors_and_dry_run_default(page, web, event):
    login(page, web.hashtag)
    page.set_input_files("#sexCat", str(FIELD / "sex_ascii_head.cat"))
    page.fill("#EventID", "ivo://gaia/alerts#NoSuchEvent")
    page.fill("#MJD", "60101.5")
    page.click("#upload-submit")
    page.wait_for_selector("#result-message.error")
    assert "unknown event" in page.inner_text("#result-message")
    shot(page, "04_upload_error")

    # dry run is on by default: calibrated, not stored
    page.fill("#EventID", event)
    page.click("#upload-submit")
    page.wait_for_selector("#result-message.ok", timeout=90_000)
    assert "no (dry run)" in page.inner_text("#result-table")


def test_lightcurve_many_observers_limits_zoom(page, web):
    ivorn = "ivo://gaia/alerts#WebCurve"
    assert _add_alert(web, ivorn).status_code == 201
    db: Database[dict] = MongoClient(web.stack.env["PHOTCAL_MONGO_URL"])["web"]
    docs = []
    for i in range(300):
        limit = i % 10 == 0
        band = "Vrg"[i % 3]
        docs.append(
            {
                "followup_id": 900_000 + i,
                "upload_id": f"curve{i}",
                "ivorn": ivorn,
                "alert_name": "WebCurve",
                "observatory_id": f"obs{i % 4}",
                "observatory": f"Observer {i % 4}",
                "mjd": 60000 + i * 0.37,
                "exptime": 60.0,
                "survey": "APASS",
                "filter": band,
                "mag": None if limit else 17 + (i % 30) / 20,
                "mag_err": None if limit else 0.05,
                "limit_mag": 19.5 if limit else None,
                "detected": not limit,
                "comment": "",
                "dedupe_key": f"curve|{i}",
                "deleted": False,
            }
        )
    db.datapoints.insert_many(docs)
    page.goto("/lightcurve/" + quote(ivorn, safe=""))
    page.wait_for_selector("#chart canvas")
    legend = page.inner_text(".u-legend")
    assert "limits" in legend and "V (" in legend and "r (" in legend and "g (" in legend
    assert page.locator("#points-table tbody tr").count() == 300
    assert "> 19.50" in page.inner_text("#points-table")
    shot(page, "05_lightcurve_300_points", full_page=False)
    x0 = page.evaluate("() => [window.photcalChart.scales.x.min, window.photcalChart.scales.x.max]")
    box = page.locator("#chart .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(200)
    x1 = page.evaluate("() => [window.photcalChart.scales.x.min, window.photcalChart.scales.x.max]")
    assert x1[1] - x1[0] < x0[1] - x0[0], "wheel zooms in"
    shot(page, "06_lightcurve_zoomed", full_page=False)
    page.click("#reset-zoom")
    x2 = page.evaluate("() => [window.photcalChart.scales.x.min, window.photcalChart.scales.x.max]")
    assert x2 == pytest.approx(x0)


def test_alert_list_10000_sortable_searchable_paginated(page, web):
    db: Database[dict] = MongoClient(web.stack.env["PHOTCAL_MONGO_URL"])["web"]
    db.alerts.insert_many(
        [
            {
                "ivorn": f"ivo://gaia/alerts#Bulk{i:05d}",
                "name": f"Bulk{i:05d}",
                "ra": (i * 0.036) % 360,
                "dec": -60 + i * 0.01,
                "url": f"https://example.org/alerts/{i}",
                "alert_id": 500_000 + i,
                "extra": {},
            }
            for i in range(10_000)
        ]
    )
    started = time.perf_counter()
    page.goto("/alerts")
    first = time.perf_counter() - started
    total = int(page.inner_text(".pager .count").split()[0].replace(",", ""))
    assert total >= 10_000
    assert page.locator("#alerts-table tbody tr").count() == 50
    assert "page 1 of" in page.inner_text(".pager .count")
    shot(page, "07_alerts", full_page=False)
    # sorted by name, ascending then descending
    page.click("th a[data-col=name]")
    names = page.locator("#alerts-table tbody tr td:first-child").all_inner_texts()
    assert names == sorted(names, key=str.lower)
    page.click("th a[data-col=name]")
    names = page.locator("#alerts-table tbody tr td:first-child").all_inner_texts()
    assert names == sorted(names, key=str.lower, reverse=True)
    # next page
    page.locator("#next-page").first.click()
    assert "page 2 of" in page.inner_text(".pager .count")
    # search
    page.fill("#q", "bulk09999")
    page.click("#alert-search button")
    rows = page.locator("#alerts-table tbody tr")
    assert rows.count() == 1 and "Bulk09999" in rows.inner_text()
    # with data only: the events that have points, with their count and last magnitude
    page.goto("/alerts?with_data=1")
    text = page.inner_text("#alerts-table")
    assert "Bulk" not in text and "WebTest1" in text
    shot(page, "08_alerts_with_data")
    print(f"/alerts with 10,000+ alerts: first load {first * 1000:.0f} ms")


def test_new_event_form_validates_and_refuses_duplicates(page, web):
    page.goto("/events/new")
    page.wait_for_url("**/login?next=**")
    login(page, web.hashtag, "/events/new")
    page.fill("#ivorn", "not an ivorn")
    page.fill("#ra", "360")
    page.fill("#dec", "-91")
    page.fill("#url", "javascript:alert(1)")
    page.evaluate("() => document.getElementById('url').type = 'text'")  # past the browser's own check
    page.click("#event-submit")
    errors = page.locator(".msg.error").all_inner_texts()
    text = " ".join(errors)
    assert "ivo://" in text and "RA" in text and "Dec" in text and "URL" in text, errors
    assert page.input_value("#ra") == "360"  # what was typed is kept
    shot(page, "09_new_event_errors")

    page.fill("#ivorn", "ivo://web/test#NewEvent1")
    page.fill("#ra", "359.5")
    page.fill("#dec", "-89.5")
    page.fill("#url", "https://example.org/new")
    page.fill("#name", EVIL)
    page.click("#event-submit")
    assert "added" in page.inner_text("#msg-ok")
    shot(page, "10_new_event_added")
    page.click("#new-event-link")
    assert EVIL in page.inner_text("h1")

    page.goto("/events/new")
    page.fill("#ivorn", "ivo://web/test#NewEvent1")
    page.fill("#ra", "1")
    page.fill("#dec", "1")
    page.click("#event-submit")
    assert "already exists" in page.inner_text(".msg.error")


def test_hostile_values_show_as_text(page, web):
    refused = _add_alert(web, "ivo://web/test#HostileUrl", name="x", url="javascript:alert(2)")
    assert refused.status_code == 400 and "http" in refused.json()["message"]
    evil_url = 'https://example.org/?q="><script>alert(2)</script>'
    r = _add_alert(web, "ivo://web/test#Hostile", name='"><img src=x onerror=alert(1)>', url=evil_url)
    assert r.status_code == 201, r.text
    page.goto("/alerts?q=onerror")
    row = page.locator("#alerts-table tbody tr")
    assert row.count() == 1
    assert '"><img src=x onerror=alert(1)>' in row.inner_text()
    assert row.locator("img").count() == 0 and row.locator("script").count() == 0
    assert row.locator("a[href^=javascript]").count() == 0
    page.goto("/lightcurve/" + quote("ivo://web/test#Hostile", safe=""))
    assert page.locator("main img").count() == 0 and page.locator("a[href^=javascript]").count() == 0
    shot(page, "11_hostile_values")


def test_followup_own_uploads_and_delete(page, web, event):
    mine = _upload(web, event, 60102.5, web.hashtag, comment="mine")
    theirs = _upload(web, event, 60102.75, web.other_hashtag, comment="theirs")
    listing = "/followup?" + urlencode({"ivorn": event})
    page.goto(listing)
    table = page.inner_text("#followup-table")
    assert "Web Observatory" in table and "Second <i>Observatory</i>" in table and "60102.50000" in table
    row = page.locator(f'tr[data-followup-id="{mine["followup_id"]}"]')
    assert row.locator("a.plot").count() == 1
    plot = row.locator("a.plot").get_attribute("href")
    assert requests.get(web.url + plot, timeout=30).headers["Content-Type"] == "image/png"
    assert row.locator("form.delete").count() == 0  # not logged in: no delete

    login(page, web.hashtag, "/followup")
    page.goto(listing)
    assert page.locator(f'tr[data-followup-id="{theirs["followup_id"]}"] form.delete').count() == 0
    row = page.locator(f'tr[data-followup-id="{mine["followup_id"]}"]')
    assert row.locator("form.delete").count() == 1
    shot(page, "12_followup_logged_in")
    row.locator("input[name=reason]").fill("wrong filter <b>oops</b>")
    row.locator("button").click()
    # asked first, with the reason shown as typed
    assert "wrong filter <b>oops</b>" in page.inner_text("#confirm-reason")
    page.click("#confirm-delete")
    page.wait_for_url("**/followup?mine=1&deleted=*")
    assert "deleted" in page.inner_text(".msg")
    deleted = page.locator(f'tr[data-followup-id="{mine["followup_id"]}"]')
    assert "deleted: wrong filter <b>oops</b>" in deleted.inner_text()  # kept in the history, with its reason
    assert "Second" not in page.inner_text("#followup-table")  # my uploads only
    shot(page, "13_my_uploads_after_delete")
    page.goto(listing)
    assert page.locator(f'tr[data-followup-id="{mine["followup_id"]}"]').count() == 0
    assert page.locator(f'tr[data-followup-id="{theirs["followup_id"]}"]').count() == 1

    # another observatory's datapoint cannot be deleted, even by a hand-made POST
    csrf = page.locator("form.inline input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(f"/datapoints/{theirs['followup_id']}/delete", form={"csrf": csrf, "reason": "x"})
    assert answer.status == 403
    # and a POST without the session's token is refused
    answer = page.request.post(f"/datapoints/{theirs['followup_id']}/delete", form={"reason": "x"})
    assert answer.status == 403


def test_session_cookie_uploads_and_logout(page, web, event):
    login(page, web.hashtag)
    # the gateway takes the login cookie for a CPCS upload too (no hashtag field), with the page's CSRF token
    csrf = page.locator("#upload-form input[name=csrf]").get_attribute("value")
    with open(FIELD / "sex_ascii_head.cat", "rb") as f:
        catalogue = f.read()
    fields = {
        "EventID": event,
        "MJD": "60103.5",
        "dryRun": "1",
        "noPlot": "1",
        "outputFormat": "json",
        "sexCat": {"name": "f.cat", "mimeType": "text/plain", "buffer": catalogue},
    }
    answer = page.request.post("/cgi/upload", multipart=fields | {"csrf": csrf}, timeout=90_000)
    assert answer.status == 200, answer.text()
    assert answer.json()["observatory"] == "Web Observatory"
    # without it (a request no page of ours made) the cookie is not enough
    answer = page.request.post("/cgi/upload", multipart=fields, timeout=90_000)
    assert answer.status == 403 and answer.json()["error"] == "csrf_failed"
    cookie = next(c for c in page.context.cookies() if c["name"] == "photcal_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and web.hashtag not in cookie["value"]
    page.click("#logout")
    page.wait_for_url("**/login?bye=1")
    assert "logged out" in page.inner_text("main")
    page.goto("/upload")
    page.wait_for_url("**/login?next=**")
    # the cookie saved before logging out is refused: the session was revoked, not only forgotten
    page.context.add_cookies([{"name": "photcal_session", "value": cookie["value"], "url": web.url}])
    page.goto("/upload")
    page.wait_for_url("**/login?next=**")
    answer = page.request.post("/cgi/upload", multipart=fields | {"csrf": csrf}, timeout=90_000)
    assert answer.status == 401 and answer.json()["error"] == "session_ended"
    # a forged or altered cookie is nobody
    page.context.add_cookies([{"name": "photcal_session", "value": cookie["value"][:-2] + "AA", "url": web.url}])
    page.goto("/upload")
    page.wait_for_url("**/login?next=**")


def _serve_attack_pages(pages: dict[str, str]):
    """An HTTP server on another port of this host (same site, another origin) serving ``pages``."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path.split("?")[0], "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_page_on_another_port_cannot_use_the_login_cookie(page, web, event):
    db: Database[dict] = MongoClient(web.stack.env["PHOTCAL_MONGO_URL"])["web"]
    observatory = db.observatories.find_one({"name": "Web Observatory"})
    assert observatory is not None
    followup_id = 990_001
    db.datapoints.insert_one(
        {
            "followup_id": followup_id,
            "upload_id": "csrf-victim",
            "ivorn": event,
            "alert_name": "WebTest1",
            "observatory_id": observatory["observatory_id"],
            "observatory": "Web Observatory",
            "mjd": 60200.5,
            "exptime": 60.0,
            "survey": "APASS",
            "filter": "V",
            "mag": 17.0,
            "mag_err": 0.05,
            "limit_mag": None,
            "detected": True,
            "comment": "",
            "dedupe_key": "csrf|victim",
            "deleted": False,
        }
    )
    target = web.url

    def auto_submit(action: str, fields: dict[str, str], enctype: str = "application/x-www-form-urlencoded") -> str:
        inputs = "".join(f'<textarea name="{k}">{v}</textarea>' for k, v in fields.items())
        return (
            f'<form id="f" method="post" action="{target}{action}" enctype="{enctype}">{inputs}</form>'
            '<script>document.getElementById("f").submit()</script>'
        )

    catalogue = (FIELD / "sex_cpcs.cat").read_text()
    attacks = {
        "/delete": auto_submit("/cgi/delpoint", {"followupid": str(followup_id), "outputFormat": "json"}),
        "/upload": auto_submit(
            "/cgi/upload",
            {
                "EventID": event,
                "MJD": "60201.5",
                "dryRun": "0",
                "noPlot": "1",
                "outputFormat": "json",
                "sexCat": catalogue,
            },
            "multipart/form-data",
        ),
        "/newevent": auto_submit(
            "/cgi/newevent", {"EventID": "ivo://gaia/alerts#CsrfEvent1", "ra": "1", "dec": "2", "outputFormat": "json"}
        ),
        "/alerts": auto_submit("/api/v1/alerts", {"ivorn": "ivo://gaia/alerts#CsrfEvent2", "ra": "1", "dec": "2"}),
        "/login": auto_submit("/login", {"hashtag": web.other_hashtag, "next": "/upload"}),
    }
    server = _serve_attack_pages(attacks)
    try:
        login(page, web.hashtag)
        evil = f"http://127.0.0.1:{server.server_address[1]}"
        assert evil != web.url  # another origin, the same site (the same host)
        for name in ("/delete", "/upload", "/newevent", "/alerts"):
            page.goto(evil + name)
            page.wait_for_url(f"{target}/**", wait_until="domcontentloaded")  # the form posted itself to us
            page.wait_for_selector("text=csrf_failed")  # and our answer is the refusal
        shot(page, "14_csrf_attack_refused")
        page.goto(evil + "/login")
        page.wait_for_url(f"{target}/login", wait_until="domcontentloaded")
        page.wait_for_selector("text=did not come from photcal's own login page")
        page.goto("/upload")
        assert "Web Observatory" in page.inner_text("header")  # still the victim, not the attacker's observatory
    finally:
        server.shutdown()
    assert (point := db.datapoints.find_one({"followup_id": followup_id})) is not None and point["deleted"] is False
    for ivorn in ("ivo://gaia/alerts#CsrfEvent1", "ivo://gaia/alerts#CsrfEvent2"):
        assert db.alerts.count_documents({"ivorn": ivorn}) == 0
    assert db.datapoints.count_documents({"mjd": 60201.5}) == 0
