"""Failures visible (issue 19) and the datapoint page (issue 21), through a real stack over real HTTP.

A refused upload (too few calibration stars) gets the plot of its best failing fit, served at its
image_link; the observatory's upload list (JSON and the "my uploads" page) shows it with its reason,
beside a stored one and a dry run; the stored point's datapoint page and JSON show its calibration,
candidates, plot and provenance, a deleted point is shown marked deleted, an unknown id is a 404.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from shared.db import connect_database
from shared.db.datapoints import store_datapoint
from tests.integration.conftest import Stack, field_dir
from tests.integration.test_end_to_end import curl_upload
from tests.integration.test_gateway_hardening import call, form, own_origin, set_cookies
from tools.devstack import standalone_stack, stop_all

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
IVORN = "ivo://gaia/alerts#SimFailures"


def _few_star_catalogue(folder: Path, n: int = 8) -> Path:
    """The field's catalogue cut to its ``n`` brightest sources: they match reference stars, too few pass the cuts."""
    lines = (FIELD / "sex_ascii_head.cat").read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    rows = [line for line in lines if line.strip() and not line.startswith("#")]
    brightest = sorted(rows, key=lambda row: float(row.split()[5]))[:n]  # column 6: MAG_AUTO
    path = folder / "few_stars.cat"
    path.write_text("\n".join(header + brightest) + "\n")
    return path


def _log_in(stack: Stack, hashtag: str) -> str:
    body, headers = form({"hashtag": hashtag, "next": "/uploads"})
    status, answer_headers, raw = call(stack, "POST", "/login", body, headers | {"Origin": own_origin(stack)})
    assert status == 303, raw[:300]
    return SimpleCookie(set_cookies(answer_headers)["photcal_session"])["photcal_session"].value


def _get(stack: Stack, path: str, cookie: str | None = None) -> tuple[int, dict, bytes]:
    status, headers, raw = call(stack, "GET", path, headers={"Cookie": f"photcal_session={cookie}"} if cookie else {})
    return status, dict(headers), raw


def _json(stack: Stack, path: str) -> tuple[int, dict]:
    status, _, raw = _get(stack, path)
    return status, json.loads(raw)


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory):
    """A stack with one refused upload, one stored, one dry run (all with plots), of one observatory."""
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("failures"), PHOTCAL_MONGO_DB="failures", PHOTCAL_UPLOAD_TIMEOUT="60"
    )
    try:
        truth = stack.load_field(FIELD)
        hashtag = stack.add_observatory("Failing Observatory")
        other = stack.add_observatory("Other Observatory")
        added = stack.cli("observatory", "add", "--name", "Admin", "--lon", "0", "--lat", "0", "--admin").stdout
        found = re.search(r"hashtag: (\S+)", added)
        assert found is not None, added
        stack.hashtags["Admin"] = found.group(1)
        a = truth["alert"]
        stack.cli(
            "alert", "add", "--ivorn", IVORN, "--ra", str(a["ra"]), "--dec", str(a["dec"]), "--name", "SimFailures"
        )
        stack.start()
        plot = ("-F", "noPlot=0")
        few = _few_star_catalogue(tmp_path_factory.mktemp("few"))
        failed = curl_upload(stack, few, hashtag, IVORN, dry_run=0, mjd="60001.25", extra=plot)
        stored = curl_upload(
            stack, FIELD / "sex_fits1.fits", hashtag, IVORN, dry_run=0, mjd=str(truth["mjd"]), extra=plot
        )
        dry = curl_upload(stack, FIELD / "sex_ascii_head.cat", hashtag, IVORN, dry_run=1, mjd="60002.5", extra=plot)
        yield stack, hashtag, other, failed, stored, dry
    finally:
        stop_all(stack, servers)


def test_a_refused_upload_answers_with_the_plot_of_its_best_failing_fit(uploaded):
    stack, _, _, (code, failed), _, _ = uploaded
    assert code == 400 and failed["error"] == "too_few_stars", failed
    # the CPCS path answers the short body; the upload's whole answer is at /api/v1/uploads/{id}
    upload_id = failed.get("upload_id")
    if upload_id is None:
        status, listing = _json(
            stack, f"/api/v1/uploads?mine=1&state=failed&hashtag={stack.hashtags['Failing Observatory']}"
        )
        upload_id = listing["uploads"][0]["upload_id"]
    status, record = _json(stack, f"/api/v1/uploads/{upload_id}")
    assert status == 200 and record["state"] == "failed"
    result = record["result"]
    assert result["error"] == "too_few_stars" and result["candidates"]
    link = result["image_link"]
    assert link and link.endswith(f"/plots/{upload_id}.png")
    status, headers, png = _get(stack, urllib.parse.urlsplit(link).path)
    assert status == 200 and headers["Content-Type"] == "image/png" and png.startswith(b"\x89PNG\r\n\x1a\n")


def test_the_upload_list_shows_every_upload_of_the_observatory_newest_first(uploaded):
    stack, hashtag, other, (_, failed), (code, stored), (dry_code, dry) = uploaded
    assert code == 200 and stored["stored"] is True, stored
    assert dry_code == 200 and dry["stored"] is False, dry
    status, listing = _json(stack, f"/api/v1/uploads?mine=1&hashtag={hashtag}")
    assert status == 200 and listing["total"] == 3 and listing["observatory"] == "Failing Observatory"
    rows = listing["uploads"]
    assert [r["state"] for r in rows] == ["done", "done", "failed"]  # newest first: the dry run, stored, refused
    assert rows[0]["dry_run"] is True and rows[0]["followup_id"] is None and rows[0]["mjd"] == 60002.5
    assert rows[1]["followup_id"] == stored["followup_id"] and rows[1]["filename"] == "sex_fits1.fits"
    refused = rows[2]
    assert refused["error"] == "too_few_stars" and refused["message"].startswith("too few calibration stars")
    assert refused["image_link"] and refused["filename"] == "few_stars.cat" and refused["ivorn"] == IVORN

    status, only_failed = _json(stack, f"/api/v1/uploads?mine=1&state=failed&hashtag={hashtag}")
    assert [r["upload_id"] for r in only_failed["uploads"]] == [refused["upload_id"]]
    status, page = _json(stack, f"/api/v1/uploads?mine=1&limit=1&skip=1&hashtag={hashtag}")
    assert page["total"] == 3 and [r["upload_id"] for r in page["uploads"]] == [rows[1]["upload_id"]]
    status, none = _json(stack, f"/api/v1/uploads?mine=1&hashtag={other}")
    assert status == 200 and none["total"] == 0 and none["uploads"] == []


def test_the_upload_list_refuses_everyone_s_to_a_non_administrator_and_bad_paging(uploaded):
    stack, hashtag, _, _, _, _ = uploaded
    status, body = _json(stack, f"/api/v1/uploads?hashtag={hashtag}")
    assert status == 403 and body["error"] == "not_admin" and "mine=1" in body["message"]
    status, body = _json(stack, f"/api/v1/uploads?mine=1&state=broken&hashtag={hashtag}")
    assert status == 400 and body["error"] == "bad_field" and "state" in body["message"]
    status, body = _json(stack, f"/api/v1/uploads?mine=1&limit=0&hashtag={hashtag}")
    assert status == 400 and "limit" in body["message"]
    status, body = _json(stack, "/api/v1/uploads?mine=1")
    assert status == 401


def test_the_my_uploads_page_lists_them_for_the_logged_in_observatory_only(uploaded):
    stack, hashtag, _, _, (_, stored), _ = uploaded
    status, headers, _ = _get(stack, "/uploads")
    assert status == 303 and headers["Location"].startswith("/login")  # logged out: the login page
    cookie = _log_in(stack, hashtag)
    status, _, raw = _get(stack, "/uploads", cookie)
    html = raw.decode()
    assert status == 200 and 'id="uploads-table"' in html and "My uploads (Failing Observatory)" in html
    assert html.count("<tr data-upload-id=") == 3
    assert "too_few_stars" in html and "too few calibration stars" in html
    assert f'href="/datapoints/{stored["followup_id"]}"' in html and 'class="plot"' in html
    assert 'href="/uploads" id="my-uploads"' in html  # in the navigation
    status, _, raw = _get(stack, "/uploads?state=failed", cookie)
    assert raw.decode().count("<tr data-upload-id=") == 1


def test_the_datapoint_json_and_page_show_its_calibration_plot_and_provenance(uploaded):
    stack, hashtag, _, _, (_, stored), _ = uploaded
    followup_id = stored["followup_id"]
    status, detail = _json(stack, f"/api/v1/datapoints/{followup_id}")
    assert status == 200, detail
    point, calibration = detail["datapoint"], detail["calibration"]
    assert point["followup_id"] == followup_id and point["mag"] == stored["mag"] and point["filter"] == stored["filter"]
    assert calibration["zeropoint"] == stored["zeropoint"] and calibration["npoints"] == stored["npoints"]
    assert (
        len(calibration["candidates"]) == len(stored["candidates"])
        and sum(c["chosen"] for c in calibration["candidates"]) == 1
    )
    assert detail["image_link"] == stored["image_link"]
    assert detail["provenance"]["match_radius_arcsec"] == 2.0 and detail["provenance"]["fit_settings"]
    assert detail["history"] == [] and detail["imported"] is None

    status, _, raw = _get(stack, f"/datapoints/{followup_id}")
    html = raw.decode()
    assert status == 200 and f"Datapoint {followup_id}" in html
    assert 'id="dp-calibration"' in html and 'id="dp-candidates"' in html and 'id="dp-provenance"' in html
    assert f'src="/plots/{stored["upload_id"]}.png"' in html and 'id="dp-history"' in html
    assert f"{stored['mag']:.3f}" in html

    # every light-curve point and follow-up row links its page
    _, _, raw = _get(stack, "/lightcurve/" + urllib.parse.quote(IVORN, safe=""))
    assert f'href="/datapoints/{followup_id}"' in raw.decode()
    assert re.search(rf'"id":\[{followup_id}\]', raw.decode())  # the chart's data: a click opens the page
    _, _, raw = _get(stack, "/followup")
    assert f'href="/datapoints/{followup_id}"' in raw.decode()


def test_a_deleted_point_is_shown_marked_and_an_unknown_one_is_a_404(uploaded):
    stack, hashtag, _, _, (_, stored), _ = uploaded
    followup_id = stored["followup_id"]
    status, _, raw = call(stack, "DELETE", f"/api/v1/datapoints/{followup_id}?hashtag={hashtag}&reason=bad+flat")
    assert status == 200, raw[:300]
    status, detail = _json(stack, f"/api/v1/datapoints/{followup_id}")
    assert status == 200 and detail["datapoint"]["deleted"] is True
    assert detail["datapoint"]["delete_reason"] == "bad flat" and detail["deleted_at"]
    status, _, raw = _get(stack, f"/datapoints/{followup_id}")
    assert status == 200 and 'id="dp-deleted"' in raw.decode() and "bad flat" in raw.decode()

    status, body = _json(stack, "/api/v1/datapoints/987654")
    assert status == 404 and body["error"] == "unknown_datapoint"
    status, headers, raw = _get(stack, "/datapoints/987654")
    assert status == 404 and headers["Content-Type"].startswith("text/html") and "987654" in raw.decode()
    status, body = _json(stack, "/api/v1/datapoints/x1")
    assert status == 400 and body["error"] == "bad_field"


def test_an_administrator_lists_every_observatory_s_uploads(uploaded):
    stack = uploaded[0]
    status, mine = _json(stack, f"/api/v1/uploads?mine=1&hashtag={stack.hashtags['Admin']}")
    assert status == 200 and mine["total"] == 0  # the administrator's own: none
    status, everyone = _json(stack, f"/api/v1/uploads?state=any&hashtag={stack.hashtags['Admin']}")
    assert status == 200 and everyone["observatory"] is None and everyone["total"] == 3
    assert {r["observatory"] for r in everyone["uploads"]} == {"Failing Observatory"}
    queued = [r["queued_at"] for r in everyone["uploads"]]
    assert queued == sorted(queued, reverse=True)


def test_an_imported_recalibrated_point_shows_its_origin_and_history(uploaded):
    """Points the CPCS import and recalibrations write (their own helpers): no calibration, each older version."""
    stack = uploaded[0]

    async def store() -> int:
        db = connect_database(stack.env["PHOTCAL_MONGO_URL"], stack.env["PHOTCAL_MONGO_DB"])
        try:
            fields = {
                "upload_id": "cpcs0001",
                "ivorn": IVORN,
                "observatory_id": "old",
                "observatory": "Old CPCS Site",
                "mjd": 59000.5,
                "survey": "GAIA",
                "filter": "G",
                "mag": 17.25,
                "mag_err": 0.05,
                "imported": "cpcs",
                "version": 2,
                "history": [
                    {
                        "version": 1,
                        "survey": "APASS",
                        "filter": "V",
                        "mag": 17.5,
                        "mag_err": 0.06,
                        "replaced_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                        "replaced_by_job": "job42",
                    }
                ],
            }
            return (await store_datapoint(db, fields)).followup_id
        finally:
            await db.close()

    followup_id = asyncio.run(store())
    status, detail = _json(stack, f"/api/v1/datapoints/{followup_id}")
    assert status == 200 and detail["imported"] == "cpcs" and detail["calibration"] is None
    assert [(v["version"], v["filter"], v["replaced_by_job"]) for v in detail["history"]] == [(1, "V", "job42")]
    status, _, raw = _get(stack, f"/datapoints/{followup_id}")
    html = raw.decode()
    assert status == 200 and "imported from cpcs, no instrumental data" in html and 'id="dp-calibration"' not in html
    history = html.split('id="dp-history"', 1)[1]
    assert "17.500 ± 0.060" in history and "job42" in history and "2026-01-02 03:04:05 UTC" in history
    assert "17.250 ± 0.050" in history and "current" in history
