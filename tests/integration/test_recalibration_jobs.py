"""Recalibration jobs through the work queue, as an administrator runs them (issue 19).

The whole stack with APASS and Gaia DR3 loaded calibrates three real uploads
of two events against APASS; a dry run re-fits one event's points in Gaia's G
band and reports the diff without changing anything; apply makes the new
calibration the points' current one (version 2, the old one in the history),
the light curve serves it, one ``photcal.recalibrated.v1`` event per changed
point; the other event's point and every unchanged point stay as they were.
A point deleted between a dry run and its apply is skipped and reported. The
calibrate service killed during a job: the job finishes, every point once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import nats
import pytest
from pymongo import MongoClient

from shared.contracts.messages import RecalibratedEvent
from shared.contracts.subjects import STREAM_RESULTS, SUBJECT_RECALIBRATED
from tests.integration.conftest import Stack, field_dir, wait_until
from tests.integration.test_end_to_end import curl_upload, get_json
from tests.integration.test_faults import post_async_upload

pytestmark = pytest.mark.integration

NORTH, SOUTH = field_dir("north_V"), field_dir("south_r")
IVORN_A, IVORN_B = "ivo://gaia/alerts#SimNorthV", "ivo://gaia/alerts#SimSouthR"
#: quick redelivery, so that a killed worker's tasks come back within the test
FAST_REDELIVERY = {"PHOTCAL_ACK_WAIT": "6", "PHOTCAL_RETRY_DELAY": "0.5", "PHOTCAL_BACKEND_TIMEOUT": "3"}


def call(method: str, url: str, body: Any = None) -> tuple[int, dict]:
    """(HTTP status, JSON body) of a JSON request; never raises on an error status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def add_admin(stack: Stack) -> str:
    out = stack.cli(
        "observatory", "add", "--name", "Admin", "--lon", "0", "--lat", "0", "--filters", "V", "--admin"
    ).stdout
    found = re.search(r"hashtag: (\S+)", out)
    assert found is not None, out
    return found.group(1)


def add_alert(stack: Stack, ivorn: str, field) -> dict:
    truth = json.loads((field / "truth.json").read_text())
    ra, dec = str(truth["alert"]["ra"]), str(truth["alert"]["dec"])
    stack.cli("alert", "add", "--ivorn", ivorn, "--ra", ra, "--dec", dec, "--url", "http://example.org/e")
    return truth


def two_fields_stack(stack: Stack, **env: str) -> tuple[str, str, dict, dict]:
    """APASS and Gaia DR3 over both fields; an observatory, an administrator, two events; started."""
    for survey in ("APASS", "GAIA"):
        stack.cli(
            "catalog", "load", "--survey", survey, str(NORTH / f"ref_{survey}.csv"), str(SOUTH / f"ref_{survey}.csv")
        )
    hashtag, admin = stack.add_observatory(), add_admin(stack)
    truth_a, truth_b = add_alert(stack, IVORN_A, NORTH), add_alert(stack, IVORN_B, SOUTH)
    stack.env.update(env)
    stack.start()
    return hashtag, admin, truth_a, truth_b


def store(stack: Stack, field, hashtag: str, ivorn: str, catalogue: str, mjd: float) -> dict:
    code, answer = curl_upload(stack, field / catalogue, hashtag, ivorn, dry_run=0, mjd=str(mjd))
    assert code in (200, 201) and answer["stored"], answer
    return answer


def wait_for_state(stack: Stack, admin: str, job_id: str, state: str, timeout: float = 120) -> dict:
    def reached():
        code, job = call("GET", f"{stack.url}/api/v1/recalibrations/{job_id}?hashtag={admin}")
        assert code == 200, job
        assert job["state"] != "failed", job
        return job if job["state"] == state else None

    return wait_until(reached, timeout=timeout, interval=0.5)


def items_of(stack: Stack, admin: str, job_id: str, query: str = "") -> list[dict]:
    code, page = call("GET", f"{stack.url}/api/v1/recalibrations/{job_id}/items?hashtag={admin}{query}")
    assert code == 200, page
    return page["items"]


def recalibrated_events(stack: Stack) -> list[RecalibratedEvent]:
    """Every photcal.recalibrated.v1 message in the RESULTS stream, as a subscriber reads them."""

    async def read() -> list[RecalibratedEvent]:
        nc = await nats.connect(stack.env["PHOTCAL_NATS_URL"])
        try:
            js = nc.jetstream()
            info = await js.stream_info(STREAM_RESULTS, subjects_filter=SUBJECT_RECALIBRATED)
            expected = (info.state.subjects or {}).get(SUBJECT_RECALIBRATED, 0)
            sub = await js.subscribe(SUBJECT_RECALIBRATED, stream=STREAM_RESULTS, ordered_consumer=True)
            events: list[RecalibratedEvent] = []
            while len(events) < expected:
                msg = await sub.next_msg(timeout=5)
                events.append(RecalibratedEvent.model_validate_json(msg.data))
            await sub.unsubscribe()
            return events
        finally:
            await nc.close()

    return asyncio.run(read())


def database(stack: Stack):
    client: MongoClient[dict] = MongoClient(stack.env["PHOTCAL_MONGO_URL"], serverSelectionTimeoutMS=5000)
    return client, client[stack.env["PHOTCAL_MONGO_DB"]]


def point(db, followup_id: int) -> dict:
    doc = db.datapoints.find_one({"followup_id": followup_id}, {"_id": 0})
    assert doc is not None
    return doc


def test_dry_run_apply_and_history(stack: Stack):
    hashtag, admin, truth_a, truth_b = two_fields_stack(stack)
    client, db = database(stack)
    try:
        dry_run_then_apply(stack, db, hashtag, admin, truth_a, truth_b)
    finally:
        client.close()


def dry_run_then_apply(stack: Stack, db, hashtag: str, admin: str, truth_a: dict, truth_b: dict) -> None:
    base = f"{stack.url}/api/v1/recalibrations"
    a1 = store(stack, NORTH, hashtag, IVORN_A, "sex_fits1.fits", truth_a["mjd"])
    a2 = store(stack, NORTH, hashtag, IVORN_A, "sex_cpcs.cat", truth_a["mjd"] + 0.5)
    b1 = store(stack, SOUTH, hashtag, IVORN_B, "sex_fits1.fits", truth_b["mjd"])
    assert {(x["survey"], x["filter"]) for x in (a1, a2)} == {("APASS", "V")}
    a_ids = sorted([a1["followup_id"], a2["followup_id"]])

    # who may, and what is refused before anything is queued
    dry_run = {"selection": {"alerts": [IVORN_A]}, "change": {"force_filter": "GAIA/G"}, "reason": "Gaia G test"}
    code, body = call("POST", f"{base}?hashtag={hashtag}", dry_run)
    assert (code, body["error"]) == (403, "not_admin"), body
    assert call("POST", base, dry_run)[0] == 401
    code, body = call("POST", f"{base}?hashtag={admin}", {"selection": {"alerts": ["NoSuchEvent"]}})
    assert (code, body["error"]) == (400, "bad_selection") and "NoSuchEvent" in body["message"], body
    code, body = call("POST", f"{base}?hashtag={admin}", {"change": {"force_filter": "GAIA/V"}})
    assert (code, body["error"]) == (400, "force_filter_unavailable"), body
    code, body = call("POST", f"{base}?hashtag={admin}", {"change": {"catalogue_versions": {"GAIA": "v9"}}})
    assert (code, body["error"]) == (400, "unknown_catalogue_version") and "v1" in body["message"], body
    code, body = call("POST", f"{base}?hashtag={admin}", {"selection": {"mjd_min": "soon"}})
    assert code == 400 and body["message"].startswith("selection.mjd_min"), body
    code, body = call("GET", f"{base}/0123abcd?hashtag={admin}")
    assert (code, body["error"]) == (404, "unknown_recalibration"), body
    before = {i: point(db, i) for i in [*a_ids, b1["followup_id"]]}

    # the dry run: a job id at once, then the diff of the selected points only
    code, accepted = call("POST", f"{base}?hashtag={admin}", dry_run)
    assert code == 202 and accepted["total"] == 2, accepted
    job_id = accepted["job_id"]
    assert accepted["links"]["self"] == f"/api/v1/recalibrations/{job_id}"
    job = wait_for_state(stack, admin, job_id, "ready")
    assert job["progress"]["computed"] == 2 and job["progress"]["pending"] == 0, job
    summary = job["summary"]
    assert (summary["computed"], summary["changed"], summary["band_changed"], summary["failed"]) == (2, 2, 2, 0)
    items = items_of(stack, admin, job_id, "&changed=1")
    assert [i["followup_id"] for i in items] == a_ids
    for item in items:
        assert (item["old"]["survey"], item["old"]["filter"], item["old"]["version"]) == ("APASS", "V", 1), item
        assert (item["new"]["survey"], item["new"]["filter"]) == ("GAIA", "G"), item
        assert item["state"] == "computed" and item["dmag"] is not None
        assert item["dmag"] == pytest.approx(item["new"]["mag"] - item["old"]["mag"], abs=1e-3)
        assert abs(item["dmag"]) < 1.5  # G and V of the same star
    assert summary["max_abs_dmag"] == pytest.approx(max(abs(i["dmag"]) for i in items), abs=1e-4)
    # a dry run changes nothing (the light curve read now is in the light-curve service's cache)
    assert {i: point(db, i) for i in before} == before
    lc_url = f"{stack.url}/api/v1/lightcurves/{urllib.parse.quote(IVORN_A, safe='')}"
    assert {p["survey"] for p in get_json(lc_url)["points"]} == {"APASS"}
    assert recalibrated_events(stack) == []

    # apply: the selected points have their new calibration, the old one in their history
    code, applying = call("POST", f"{base}/{job_id}/apply?hashtag={admin}")
    assert code == 202 and applying["state"] in ("applying", "applied"), applying
    job = wait_for_state(stack, admin, job_id, "applied")
    assert job["summary"]["applied"] == 2 and job["progress"]["applied"] == 2, job
    new_mags = {i["followup_id"]: i["new"]["mag"] for i in items}
    for followup_id in a_ids:
        now = point(db, followup_id)
        assert (now["version"], now["survey"], now["filter"]) == (2, "GAIA", "G"), now
        assert now["mag"] == pytest.approx(new_mags[followup_id])
        assert now["calibration_id"] == f"{job_id}|{followup_id}"
        (old,) = now["history"]
        assert (old["version"], old["survey"], old["filter"], old["replaced_by_job"]) == (1, "APASS", "V", job_id)
        assert old["mag"] == before[followup_id]["mag"]
    # the other event's point is untouched
    assert point(db, b1["followup_id"]) == before[b1["followup_id"]]
    # the light curve serves the current version
    lc = get_json(lc_url)
    served = {p["followup_id"]: p for p in lc["points"]}
    for followup_id in a_ids:
        assert (served[followup_id]["survey"], served[followup_id]["filter"]) == ("GAIA", "G")
        assert served[followup_id]["mag"] == pytest.approx(new_mags[followup_id], abs=1e-3)
    # the datapoint's own page: the refit's calibration and provenance, the replaced one in the history
    detail = get_json(f"{stack.url}/api/v1/datapoints/{a1['followup_id']}")
    assert (detail["calibration"]["survey"], detail["calibration"]["filter"]) == ("GAIA", "G"), detail
    assert detail["calibration"]["calibration_id"] == f"{job_id}|{a1['followup_id']}"
    assert "GAIA" in {c["survey"] for c in detail["provenance"]["catalogues"]}
    assert detail["provenance"]["force_filter"] == "GAIA/G"
    assert [(h["version"], h["survey"]) for h in detail["history"]] == [(1, "APASS")]
    # the upload's own answer is what it was
    status = get_json(f"{stack.url}/api/v1/uploads/{a1['upload_id']}")
    assert status["result"]["survey"] == "APASS" and status["result"]["mag"] == a1["mag"]
    # beside it, the datapoint as it is now
    assert (status["datapoint"]["version"], status["datapoint"]["current"]["survey"]) == (2, "GAIA")
    assert [h["survey"] for h in status["datapoint"]["history"]] == ["APASS"]
    # one event per changed point
    events = recalibrated_events(stack)
    assert sorted(e.followup_id for e in events) == a_ids
    assert {(e.job_id, e.old.survey, e.new.survey, e.new.version, e.reason) for e in events} == {
        (job_id, "APASS", "GAIA", 2, "Gaia G test")
    }

    # apply again: nothing changes, no new event; resume has nothing to do
    code, again = call("POST", f"{base}/{job_id}/apply?hashtag={admin}")
    assert code == 200 and again["state"] == "applied" and "already" in again["message"], again
    code, resumed = call("POST", f"{base}/{job_id}/resume?hashtag={admin}")
    assert code == 200 and resumed["queued"] == 0, resumed
    time.sleep(1.0)
    assert len(recalibrated_events(stack)) == 2
    assert all(point(db, i)["version"] == 2 for i in a_ids)

    # the current code against the catalogue version named (the live one) on the other event: nothing
    # changes, so applying publishes nothing
    pinned = {"selection": {"alerts": [IVORN_B]}, "change": {"catalogue_versions": {"APASS": "v1"}}}
    code, same = call("POST", base, pinned | {"hashtag": admin})  # the hashtag in the body this time
    assert code == 202 and same["total"] == 1, same
    job = wait_for_state(stack, admin, same["job_id"], "ready")
    assert (job["summary"]["changed"], job["summary"]["unchanged"]) == (0, 1), job
    (unchanged,) = items_of(stack, admin, same["job_id"], "&result=1")
    assert unchanged["changed"] is False and unchanged["dmag"] == 0.0, unchanged
    # the refit's whole answer, with its provenance: the catalogue version asked for
    used = {c["survey"]: c["version"] for c in unchanged["result"]["provenance"]["catalogues"]}
    assert used["APASS"] == "v1" and unchanged["result"]["survey"] == "APASS", used
    code, applied = call("POST", f"{base}/{same['job_id']}/apply?hashtag={admin}")
    assert code == 202 and applied["state"] == "applied", applied
    assert point(db, b1["followup_id"]) == before[b1["followup_id"]]

    # a point deleted between the dry run and the apply is skipped and reported
    back = {"selection": {"alerts": [IVORN_A]}, "change": {"force_filter": ""}, "reason": "automatic again"}
    code, accepted = call("POST", f"{base}?hashtag={admin}", back)
    assert code == 202, accepted
    job = wait_for_state(stack, admin, accepted["job_id"], "ready")
    assert job["summary"]["changed"] == 2, job
    gone, kept = a_ids
    code, deleted = call("DELETE", f"{stack.url}/api/v1/datapoints/{gone}?hashtag={hashtag}")
    assert code == 200, deleted
    assert call("POST", f"{base}/{accepted['job_id']}/apply?hashtag={admin}")[0] == 202
    job = wait_for_state(stack, admin, accepted["job_id"], "applied")
    assert (job["summary"]["applied"], job["summary"]["skipped"]) == (1, 1), job
    assert job["summary"]["reasons"] == {"datapoint_deleted": 1}, job
    (skipped,) = items_of(stack, admin, accepted["job_id"], "&state=skipped")
    assert (skipped["followup_id"], skipped["reason"]) == (gone, "datapoint_deleted")
    assert skipped["message"]
    now = point(db, kept)
    assert (now["version"], now["survey"], now["filter"]) == (3, "APASS", "V"), now
    assert [h["version"] for h in now["history"]] == [1, 2]
    assert point(db, gone)["version"] == 2  # deleted: not recalibrated
    assert sorted(e.followup_id for e in recalibrated_events(stack)) == sorted([*a_ids, kept])


def test_a_job_survives_the_calibrate_service_killed(stack: Stack):
    # no cone cache: every point asks the catalogue service, so the job lasts long enough to be killed in
    hashtag, admin, truth_a, _ = two_fields_stack(stack, PHOTCAL_CONE_CACHE_TTL="0", **FAST_REDELIVERY)
    catalogue = (NORTH / "sex_cpcs.cat").read_bytes()
    n = 20
    upload_ids = [post_async_upload(stack.url, hashtag, IVORN_A, 60000.0 + i * 0.01, catalogue) for i in range(n)]
    client, db = database(stack)
    try:
        wait_until(lambda: db.datapoints.count_documents({"upload_id": {"$in": upload_ids}}) == n, timeout=120)
        wait_until(lambda: db.upload_sources.count_documents({"_id": {"$in": upload_ids}}) == n, timeout=30)
        # observatory filters are kept with the sources now: the refit chooses among the same bands
        assert db.upload_sources.find_one({"_id": upload_ids[0]})["observatory_filters"] == ["V", "r"]

        worker = stack.service_pid("calibrate")
        code, accepted = call(
            "POST",
            f"{stack.url}/api/v1/recalibrations?hashtag={admin}",
            {"selection": {"alerts": [IVORN_A]}, "change": {"force_filter": "GAIA/G"}, "dry_run": False},
        )
        assert code == 202 and accepted["total"] == n, accepted
        job_id = accepted["job_id"]
        wait_until(
            lambda: db.recalibrations.count_documents({"job_id": job_id, "state": "pending"}) < n,
            timeout=60,
            interval=0.05,
        )
        os.kill(worker, signal.SIGKILL)
        left = db.recalibrations.count_documents({"job_id": job_id, "state": "pending"})
        assert left > 0, "the job finished before the kill: nothing was tested"
        # still computing, with nobody to compute: not ready to apply
        code, early = call("POST", f"{stack.url}/api/v1/recalibrations/{job_id}/apply?hashtag={admin}")
        assert (code, early["error"]) == (409, "recalibration_not_ready") and "computing" in early["message"], early
        # resumed meanwhile: its pending points are queued again, and still each is done once
        code, resumed = call("POST", f"{stack.url}/api/v1/recalibrations/{job_id}/resume?hashtag={admin}")
        assert code in (200, 202) and resumed["state"] in ("computing", "applying", "applied"), resumed

        job = wait_for_state(stack, admin, job_id, "applied", timeout=180)
        assert "service_restarted" in stack.log()
        assert job["progress"] == {"pending": 0, "computed": 0, "failed": 0, "skipped": 0, "applied": n}, job
        points = list(db.datapoints.find({"upload_id": {"$in": upload_ids}}))
        # every point computed and applied once: version 2, one old version, one event each
        assert sorted((p["version"], len(p["history"]), p["survey"]) for p in points) == [(2, 1, "GAIA")] * n
        time.sleep(1.0)
        events = recalibrated_events(stack)
        assert sorted(e.followup_id for e in events) == sorted(p["followup_id"] for p in points)
    finally:
        client.close()


def test_a_catalogue_outage_delays_a_job_and_fails_none_of_its_points(stack: Stack):
    # no cone cache: every refit asks the catalogue service
    hashtag, admin, truth_a, _ = two_fields_stack(stack, PHOTCAL_CONE_CACHE_TTL="0", **FAST_REDELIVERY)
    a1 = store(stack, NORTH, hashtag, IVORN_A, "sex_fits1.fits", truth_a["mjd"])
    catalog = stack.service_pid("catalog")
    os.kill(catalog, signal.SIGSTOP)
    try:
        code, accepted = call(
            "POST",
            f"{stack.url}/api/v1/recalibrations?hashtag={admin}",
            {"selection": {"followup_ids": [a1["followup_id"]]}, "change": {"force_filter": "GAIA/G"}},
        )
        assert code == 202, accepted
        time.sleep(8)  # the backend timeout (3 s) twice: retried, not failed
        code, job = call("GET", f"{stack.url}/api/v1/recalibrations/{accepted['job_id']}?hashtag={admin}")
        assert job["state"] == "computing" and job["progress"]["pending"] == 1, job
    finally:
        os.kill(catalog, signal.SIGCONT)
    job = wait_for_state(stack, admin, accepted["job_id"], "ready", timeout=60)
    assert (job["summary"]["computed"], job["summary"]["failed"]) == (1, 0), job
    assert "recalibration_backend_unavailable" in stack.log()
