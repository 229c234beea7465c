"""Issue 15: reference stars at any density, and no upload that waits for ever.

A dense field (tens of thousands of reference stars in the cone: its v1 JSON
reply was over NATS's 1 MB payload, nothing was sent, and the upload was
retried for ever) is calibrated, to the same answer as without the extra
stars. A catalogue service that answers garbage, or none at all for longer
than the outage limit, gets the upload a specific error on the synchronous
answer, at ``GET /api/v1/uploads/{id}``, on ``photcal.calibrated.v1`` and a
dead letter.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from contextlib import contextmanager

import nats
import numpy as np
import pytest

from bench.densefield import dense_references, write_extracts
from services.calibrate.core.api import calibrate_frame
from services.ingest.parsing import parse_catalogue
from shared.contracts.messages import ConeReply, ConeRequest
from shared.contracts.subjects import STREAM_DEAD, SUBJECT_CONE
from tests.integration.conftest import Stack, field_dir
from tests.integration.test_end_to_end import get_json
from tests.integration.test_faults import post_upload
from tools.fieldio import load_references

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
IVORN = "ivo://gaia/alerts#DenseCone"
#: reference stars added around the frame (all surveys): ~4.5 MB as a v1 JSON reply. Below the worker's
#: brightness cut (20,000 per survey for this frame), so the answer must be the plain field's bit for bit
#: (tests/unit/test_cone_brightest.py covers fields where the cut binds)
EXTRA_STARS = 36_000


def setup_field(stack: Stack, tmp_path, *, dense: bool = False, **env: str) -> tuple[dict, str]:
    truth = stack.load_field(FIELD)
    if dense:
        # inside the worker's cone, outside the frame (a square of half-width 0.178 deg): nothing the frame
        # can match changes, so the answer must be the plain field's
        extracts, _ = dense_references(150.0, 30.0, 0.25, EXTRA_STARS, seed=15, avoid_half_width_deg=0.19)
        for survey, path in write_extracts(extracts, tmp_path / "dense").items():
            stack.cli("catalog", "load", "--survey", survey, str(path))
    hashtag = stack.add_observatory()
    stack.cli("alert", "add", "--ivorn", IVORN, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"]))
    stack.env.update({"PHOTCAL_RETRY_DELAY": "0.5", "PHOTCAL_BACKEND_TIMEOUT": "2"} | env)
    stack.start()
    return truth, hashtag


def expected_answer(truth: dict):
    """The plain field calibrated in this process (magnitudes as the catalogue stores them: float32)."""
    refs = load_references(FIELD)
    for stars in refs.values():
        for band in stars.mags:
            stars.mags[band] = stars.mags[band].astype(np.float32).astype(np.float64)
            stars.errs[band] = stars.errs[band].astype(np.float32).astype(np.float64)
    sources = parse_catalogue((FIELD / "sex_ascii_head.cat").read_bytes()).table
    return calibrate_frame(sources, refs, truth["alert"]["ra"], truth["alert"]["dec"], 2.0)


def upload(stack: Stack, hashtag: str, mjd: float = 60100.5, dry_run: str = "1") -> tuple[int, dict]:
    status, body, _ = post_upload(
        stack.url, hashtag, IVORN, mjd, (FIELD / "sex_ascii_head.cat").read_bytes(), wait=True, dryRun=dry_run
    )
    return status, body


@contextmanager
def catalog_stopped(stack: Stack):
    """The catalogue service frozen (SIGSTOP): connected, subscribed, and answering nothing."""
    pid = stack.service_pid("catalog")
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def dead_letters(nats_url: str) -> list[dict]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM_DEAD)
        if not info.state.messages:
            return []
        return [
            json.loads((await js.get_msg(STREAM_DEAD, seq)).data or b"")
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await nc.close()


def assert_given_up(stack: Stack, status: int, body: dict, code: str, http_status: int) -> dict:
    """The same failure on the synchronous answer, at GET /api/v1/uploads/{id} and in a dead letter."""
    assert (status, body.get("status"), body.get("error")) == (http_status, "error", code), body
    record = get_json(f"{stack.url}/api/v1/uploads/{body['upload_id']}")
    assert record["state"] == "failed"
    assert (record["result"]["error"], record["result"]["http_status"]) == (code, http_status)
    letters = asyncio.run(dead_letters(stack.env["PHOTCAL_NATS_URL"]))
    assert [letter["upload_id"] for letter in letters] == [body["upload_id"]], letters
    return record


def test_a_dense_field_is_calibrated_to_the_same_answer(stack, tmp_path):
    truth, hashtag = setup_field(stack, tmp_path, dense=True)
    status, body = upload(stack, hashtag)
    assert status == 200, body
    want = expected_answer(truth)
    assert (body["survey"], body["filter"], body["npoints"], body["nmatched"]) == (
        want.survey,
        want.band,
        want.npoints,
        want.nmatched,
    )
    assert body["mag"] == pytest.approx(want.target.mag, abs=2e-4)
    assert body["zeropoint"] == pytest.approx(want.zeropoint, abs=2e-4)
    assert body["limit_mag"] == pytest.approx(want.target.limit_mag, abs=2e-4)

    async def ask_v1() -> ConeReply:
        # the old subject still answers, and says why instead of going silent
        nc = await nats.connect(stack.env["PHOTCAL_NATS_URL"])
        try:
            request = ConeRequest(ra=150.0, dec=30.0, radius_deg=0.27)
            msg = await nc.request(SUBJECT_CONE, request.model_dump_json().encode(), timeout=20)
            return ConeReply.model_validate_json(msg.data)
        finally:
            await nc.close()

    v1 = asyncio.run(ask_v1())
    assert (v1.ok, v1.error) == (False, "cone_too_large")
    assert v1.message and "cone.v2" in v1.message


def test_a_malformed_cone_reply_is_answered_and_dead_lettered(stack, tmp_path):
    _, hashtag = setup_field(stack, tmp_path)

    async def upload_with_a_fake_catalogue() -> tuple[int, dict]:
        nc = await nats.connect(stack.env["PHOTCAL_NATS_URL"])

        async def garbage(msg) -> None:
            await msg.respond(b"this is not a cone reply")

        await nc.subscribe("photcal.catalog.cone.*", cb=garbage)
        await nc.flush()
        try:
            return await asyncio.to_thread(upload, stack, hashtag)
        finally:
            await nc.close()

    with catalog_stopped(stack):
        status, body = asyncio.run(upload_with_a_fake_catalogue())
    record = assert_given_up(stack, status, body, "catalog_reply_malformed", 502)
    assert "unreadable" in record["result"]["message"]


def test_a_catalogue_down_longer_than_the_limit_fails_the_upload(stack, tmp_path):
    _, hashtag = setup_field(stack, tmp_path, PHOTCAL_OUTAGE_RETRY_LIMIT="6", PHOTCAL_BACKEND_TIMEOUT="1")
    with catalog_stopped(stack):
        status, body = upload(stack, hashtag)
    record = assert_given_up(stack, status, body, "catalog_unavailable", 503)
    assert record["result"]["message"].startswith("the reference catalogue service did not answer for ")
    # and the service back, the next upload calibrates
    status, body = upload(stack, hashtag, mjd=60100.6)
    assert status == 200 and body["status"] == "ok", body
