"""Nothing lost, nothing doubled: real processes killed and restarted under a stream of uploads.

Each test runs `photcal run` against the fixture nats-server and nx-27017
(tests/conftest.py), breaks one of them in the middle of 100 uploads, and
then counts, in the database itself, that every upload the gateway accepted
(202) is exactly one stored datapoint, and that nothing else was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor

import nats
import pymongo
import pytest

from shared.contracts.messages import UploadRequested
from shared.contracts.subjects import STREAM_DEAD, SUBJECT_UPLOAD
from tests.integration.conftest import Stack, field_dir, wait_until
from tests.integration.test_end_to_end import get_json

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
N_UPLOADS = 100
#: quick redelivery so that a killed worker's messages come back within the test
FAULT_ENV = {
    "PHOTCAL_ACK_WAIT": "8",
    "PHOTCAL_RETRY_DELAY": "0.5",
    "PHOTCAL_CALIBRATE_CONCURRENCY": "2",
    "PHOTCAL_BACKEND_TIMEOUT": "3",
}


def upload_body(hashtag: str, ivorn: str, mjd: float, catalogue: bytes, **extra: str) -> tuple[bytes, str]:
    boundary = "----photcaltest"
    fields = {
        "hashtag": hashtag,
        "EventID": ivorn,
        "MJD": f"{mjd:.6f}",
        "expTime": "60",
        "noPlot": "1",
        "dryRun": "0",
        "outputFormat": "json",
        "matchDist": "2",
    } | extra
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="sexCat"; filename="cat.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n".encode()
        + catalogue
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_upload(
    url: str,
    hashtag: str,
    ivorn: str,
    mjd: float,
    catalogue: bytes,
    *,
    wait: bool = False,
    timeout: float = 60,
    **extra: str,
) -> tuple[int, dict, float]:
    """(HTTP status, JSON body, seconds) of one upload; never raises on an HTTP error status."""
    body, content_type = upload_body(hashtag, ivorn, mjd, catalogue, **extra)
    request = urllib.request.Request(
        f"{url}/api/v1/uploads?wait={1 if wait else 0}", data=body, headers={"Content-Type": content_type}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), time.perf_counter() - started
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), time.perf_counter() - started


def post_async_upload(url: str, hashtag: str, ivorn: str, mjd: float, catalogue: bytes) -> str:
    status, body, _ = post_upload(url, hashtag, ivorn, mjd, catalogue)
    assert status == 202, body
    return body["upload_id"]


def field_stack(stack: Stack, ivorn: str, **env: str) -> tuple[str, bytes]:
    truth = stack.load_field(FIELD)
    hashtag = stack.add_observatory()
    stack.cli("alert", "add", "--ivorn", ivorn, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"]))
    stack.env.update(FAULT_ENV | env)
    stack.start()
    return hashtag, (FIELD / "sex_cpcs.cat").read_bytes()


def database(stack: Stack):
    client: pymongo.MongoClient[dict] = pymongo.MongoClient(
        stack.env["PHOTCAL_MONGO_URL"], serverSelectionTimeoutMS=3000
    )
    return client, client[stack.env["PHOTCAL_MONGO_DB"]]


def stored_upload_ids(stack: Stack, ivorn: str) -> list[str]:
    client, db = database(stack)
    try:
        return [d["upload_id"] for d in db.datapoints.find({"ivorn": ivorn, "deleted": False}, {"upload_id": 1})]
    finally:
        client.close()


def assert_exactly_once(
    stack: Stack, ivorn: str, accepted: list[str], maybe: AbstractSet[str] = frozenset(), timeout: float = 60
) -> list[str]:
    """Wait until every accepted upload is stored, then check each is stored once and nothing else is."""
    wait_until(lambda: set(accepted) <= set(stored_upload_ids(stack, ivorn)), timeout=timeout, interval=0.5)
    time.sleep(1.0)  # let any stray redelivery land before counting
    stored = stored_upload_ids(stack, ivorn)
    assert len(stored) == len(set(stored)), "an upload was stored twice"
    assert set(accepted) <= set(stored)
    assert set(stored) <= set(accepted) | set(maybe), "a refused upload was stored"

    def states() -> set[str]:
        return {get_json(f"{stack.url}/api/v1/uploads/{uid}")["state"] for uid in accepted}

    # an upload whose datapoint the killed worker wrote is recorded done only when its redelivery (after
    # ack_wait) finds that datapoint: wait for the records too, within the same bound
    with contextlib.suppress(AssertionError):
        wait_until(lambda: states() == {"done"}, timeout=timeout, interval=0.5)
    assert states() == {"done"}
    return stored


def test_killing_the_calibrate_worker_mid_stream_loses_and_doubles_nothing(stack):
    ivorn = "ivo://gaia/alerts#SimKill"
    hashtag, catalogue = field_stack(stack, ivorn)
    accepted = []
    for i in range(N_UPLOADS):
        accepted.append(post_async_upload(stack.url, hashtag, ivorn, 60000.0 + i * 0.01, catalogue))
        if i == 30:
            os.kill(stack.service_pid("calibrate"), signal.SIGKILL)
    stored = assert_exactly_once(stack, ivorn, accepted, timeout=75)
    assert len(stored) == N_UPLOADS
    assert "service_restarted" in stack.log()
    lc = get_json(f"{stack.url}/api/v1/lightcurves/{urllib.parse.quote(ivorn, safe='')}")
    assert sorted(round(p["mjd"], 6) for p in lc["points"]) == [round(60000.0 + i * 0.01, 6) for i in range(N_UPLOADS)]
    assert len({p["followup_id"] for p in lc["points"]}) == N_UPLOADS


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_nats_restart_refuses_fast_meanwhile_and_loses_nothing(stack, nats_proc, how):
    """``stop``: SIGTERM (a rolling restart); ``kill``: SIGKILL (a crash; acked messages are on disk already)."""
    ivorn = "ivo://gaia/alerts#SimNatsRestart"
    hashtag, catalogue = field_stack(stack, ivorn)
    accepted: list[str] = []
    maybe: set[str] = set()
    refused_s: list[float] = []
    mjd = iter(60000.0 + i * 0.01 for i in range(10 * N_UPLOADS))

    def attempt() -> int:
        status, body, seconds = post_upload(stack.url, hashtag, ivorn, next(mjd), catalogue, timeout=30)
        if status == 202:
            accepted.append(body["upload_id"])
        else:
            assert status == 503 and body["status"] == "error" and body["error"] == "backend_unavailable", body
            refused_s.append(seconds)
            if "upload_id" in body:  # sent, not acknowledged: it may be queued all the same
                maybe.add(body["upload_id"])
        return status

    for _ in range(40):
        assert attempt() == 202
    nats_proc.stop() if how == "stop" else nats_proc.kill()
    for _ in range(10):
        attempt()
    assert len(refused_s) >= 9, "the gateway kept accepting with NATS down"
    assert max(refused_s) < 3.5, f"a refusal took {max(refused_s):.1f} s: the gateway must not hang"
    nats_proc.start()
    # the gateway reconnects by itself: uploads are accepted again without restarting anything
    wait_until(lambda: attempt() == 202, timeout=30, interval=0.5)
    while len(accepted) < N_UPLOADS:
        assert attempt() == 202
    stored = assert_exactly_once(stack, ivorn, accepted, maybe, timeout=60)
    assert len(accepted) == N_UPLOADS and len(stored) >= N_UPLOADS


def test_database_outage_the_gateway_keeps_accepting_and_the_work_completes(stack, mongo_proc):
    ivorn = "ivo://gaia/alerts#SimDbOutage"
    hashtag, catalogue = field_stack(stack, ivorn)
    accepted = []
    for i in range(30):
        accepted.append(post_async_upload(stack.url, hashtag, ivorn, 60000.0 + i * 0.01, catalogue))
    mongo_proc.stop()
    started = time.perf_counter()
    for i in range(30, 70):
        # hashtag and alert come from the gateway's memory of the database's last answers
        accepted.append(post_async_upload(stack.url, hashtag, ivorn, 60000.0 + i * 0.01, catalogue))
    accept_s = time.perf_counter() - started
    status = _status_code(f"{stack.url}/api/v1/uploads/{accepted[-1]}")
    assert status == 503
    assert accept_s < 25, f"40 uploads took {accept_s:.1f} s with the database down"
    time.sleep(2)  # the worker meets the outage too: it NAKs and retries
    mongo_proc.start()
    for i in range(70, N_UPLOADS):
        accepted.append(post_async_upload(stack.url, hashtag, ivorn, 60000.0 + i * 0.01, catalogue))
    stored = assert_exactly_once(stack, ivorn, accepted, timeout=75)
    assert len(stored) == N_UPLOADS
    assert "backend_unavailable_retrying" in stack.log()
    with urllib.request.urlopen(f"{stack.url}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert 'photcal_gateway_db_fallbacks_total{kind="observatory",outcome="hit"}' in metrics


def test_a_burst_beyond_the_workers_waits_in_the_stream_and_504s_complete_later(stack):
    """The worker is frozen (SIGSTOP) so that the burst is surely larger than it can take."""
    ivorn = "ivo://gaia/alerts#SimBurst"
    hashtag, catalogue = field_stack(stack, ivorn, PHOTCAL_UPLOAD_TIMEOUT="1", PHOTCAL_CALIBRATE_CONCURRENCY="1")
    status, first, _ = post_upload(stack.url, hashtag, ivorn, 60999.0, catalogue, wait=True)
    assert status == 200 and first["stored"] is True, first
    worker = stack.service_pid("calibrate")
    n = 40
    os.kill(worker, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(10) as pool:
            answers = list(
                pool.map(
                    lambda i: post_upload(stack.url, hashtag, ivorn, 61000.0 + i * 0.01, catalogue, wait=True), range(n)
                )
            )
        pending = asyncio.run(_consumer_pending(stack))
    finally:
        os.kill(worker, signal.SIGCONT)
    assert [status for status, _, _ in answers] == [504] * n
    for body in (body for _, body, _ in answers):
        assert body["error"] == "timeout" and body["upload_id"] in body["message"]
    assert max(seconds for *_, seconds in answers) < 5
    assert pending >= n - 1, "the burst is not waiting in the stream"
    ids = [body["upload_id"] for _, body, _ in answers]
    assert get_json(f"{stack.url}/api/v1/uploads/{ids[-1]}")["state"] == "queued"
    stored = assert_exactly_once(stack, ivorn, [first["upload_id"], *ids], timeout=60)
    assert len(stored) == n + 1
    for uid in ids[:5]:
        done = get_json(f"{stack.url}/api/v1/uploads/{uid}")
        assert done["state"] == "done" and done["result"]["stored"] is True


async def _consumer_pending(stack: Stack) -> int:
    nc = await nats.connect(stack.env["PHOTCAL_NATS_URL"])
    try:
        info = await nc.jetstream().consumer_info("UPLOADS", "calibrate")
        return info.num_pending + info.num_ack_pending
    finally:
        await nc.close()


async def test_poison_messages_are_dead_lettered_with_the_reason(stack):
    stack.env.update(FAULT_ENV | {"PHOTCAL_MAX_DELIVER": "3", "PHOTCAL_RETRY_DELAY": "0.2"})
    stack.start()
    nc = await nats.connect(stack.env["PHOTCAL_NATS_URL"])
    js = nc.jetstream()
    await js.publish(SUBJECT_UPLOAD, b"\x00\xffnot json at all", headers={"Nats-Msg-Id": "garbage-1"})
    # well-formed, but its table is said to be in the object store and is not: fails on every delivery
    missing = UploadRequested(
        upload_id="deadbeef" * 4,
        ivorn="ivo://gaia/alerts#Nowhere",
        alert_ra=10.0,
        alert_dec=20.0,
        observatory_id="x",
        observatory_name="X",
        mjd=60000.0,
        n_sources=10,
        sources_in_object_store=True,
    )
    await js.publish(SUBJECT_UPLOAD, missing.model_dump_json().encode(), headers={"Nats-Msg-Id": missing.upload_id})

    async def dead_letters() -> list[dict]:
        info = await js.stream_info(STREAM_DEAD)
        return [
            json.loads((await js.get_msg(STREAM_DEAD, seq)).data or b"")
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
            if info.state.messages
        ]

    deadline = time.monotonic() + 40
    letters: list[dict] = []
    while time.monotonic() < deadline and len(letters) < 2:
        await asyncio.sleep(0.5)
        letters = await dead_letters()
    await nc.close()
    assert len(letters) == 2, letters
    garbage = next(letter for letter in letters if letter["upload_id"] is None)
    assert "not an UploadRequested" in garbage["reason"] and garbage["deliveries"] == 1
    crashed = next(letter for letter in letters if letter["upload_id"] == missing.upload_id)
    assert crashed["deliveries"] == 3 and crashed["reason"]
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.port + 1}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert "photcal_dead_letters_total 2.0" in metrics
    assert stack.log().count('"upload_dead_lettered"') == 2
    # and nothing else keeps coming back: both were terminated
    uploads_info = None
    nc = await nats.connect(stack.env["PHOTCAL_NATS_URL"])
    uploads_info = await nc.jetstream().consumer_info("UPLOADS", "calibrate")
    await nc.close()
    assert uploads_info.num_ack_pending == 0 and uploads_info.num_pending == 0


def _status_code(url: str) -> int:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            code = response.status
    except urllib.error.HTTPError as err:
        code = err.code
    assert time.perf_counter() - started < 5, "a request hung with the database down"
    return code


def test_a_database_that_starts_after_the_services_gets_no_write_before_its_indexes(stack, mongo_proc):
    """Kubernetes may start MongoDB last: nothing is accepted or stored until the unique indexes exist."""
    ivorn = "ivo://gaia/alerts#SimLateDb"
    truth = stack.load_field(FIELD)
    hashtag = stack.add_observatory()
    stack.cli("alert", "add", "--ivorn", ivorn, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"]))
    catalogue = (FIELD / "sex_cpcs.cat").read_bytes()
    stack.env.update(FAULT_ENV)
    mongo_proc.stop()
    stack.start()
    calibrate = stack.port + 1
    assert _status_code(f"http://127.0.0.1:{calibrate}/readyz") == 503
    status, body, _ = post_upload(stack.url, hashtag, ivorn, 62000.0, catalogue)
    assert status == 503 and body["error"] == "backend_unavailable", body
    mongo_proc.start()
    # the services find the database by themselves, make the indexes, and only then take work
    wait_until(lambda: _status_code(f"http://127.0.0.1:{calibrate}/readyz") == 200, timeout=60, interval=0.5)
    accepted = [post_async_upload(stack.url, hashtag, ivorn, 62000.0 + i * 0.01, catalogue) for i in range(20)]
    stored = assert_exactly_once(stack, ivorn, accepted, timeout=60)
    assert len(stored) == 20
    assert "ensure_indexes_failed" in stack.log()
