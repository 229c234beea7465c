"""Outside programs read the results with the documented NATS credentials, and nothing else.

The NATS server is the embedded one every test stack runs (``tools/infra.py``), which includes the
deployed users and permissions (``deploy/k8s/base/nats-users.conf``).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import nats
import nats.errors
import pytest
from nats.js.api import DeliverPolicy

from shared.contracts.messages import CalibrationResult
from shared.contracts.subjects import SUBJECT_CALIBRATED, SUBJECT_RECALIBRATED, SUBJECT_UPLOAD
from tests.conftest import ROOT
from tests.integration.conftest import Stack, field_dir
from tests.integration.test_end_to_end import curl_upload
from tools.infra import EMBEDDED_SUBSCRIBER_PASSWORD, EMBEDDED_SUBSCRIBER_USER, free_port, nats_server

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
README = ROOT / "README.md"
INBOX = "_INBOX_subscriber"


def readme_subscriber() -> str:
    """The example subscriber of README's "Subscribing to results", as printed there."""
    section = README.read_text().split("## Subscribing to results", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "README's 'Subscribing to results' has one python example"
    return blocks[0]


def subscriber_url(stack: Stack) -> str:
    host_port = stack.env["PHOTCAL_NATS_URL"].removeprefix("nats://")
    return f"nats://{EMBEDDED_SUBSCRIBER_USER}:{EMBEDDED_SUBSCRIBER_PASSWORD}@{host_port}"


@pytest.fixture
def field_stack(stack: Stack):
    truth = stack.load_field(FIELD)
    hashtag = stack.add_observatory()
    ivorn = "ivo://gaia/alerts#SimNorthV"
    ra, dec = str(truth["alert"]["ra"]), str(truth["alert"]["dec"])
    stack.cli("alert", "add", "--ivorn", ivorn, "--ra", ra, "--dec", dec, "--name", "SimNorthV")
    stack.start()
    return stack, hashtag, ivorn


def test_the_readme_subscriber_runs_as_written_and_prints_the_upload(field_stack, tmp_path):
    stack, hashtag, ivorn = field_stack
    code = readme_subscriber()
    assert "nats://subscriber:subscriber@127.0.0.1:4222" in code, "the README names make run's NATS and credentials"
    script = tmp_path / "subscriber.py"
    script.write_text(code.replace("nats://subscriber:subscriber@127.0.0.1:4222", subscriber_url(stack)))
    proc = subprocess.Popen(
        [sys.executable, "-u", str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "listening"
        status, answer = curl_upload(stack, FIELD / "sex_cpcs.cat", hashtag, ivorn)
        assert status == 200, answer
        line = proc.stdout.readline().split()
        assert line[:4] == [SUBJECT_CALIBRATED, answer["upload_id"], ivorn, "ok"], line
        assert line[4:] == [answer["filter"], str(answer["mag"])]
    finally:
        proc.kill()
        proc.wait()


async def test_the_subscriber_user_receives_results_and_may_do_nothing_else(field_stack):
    stack, hashtag, ivorn = field_stack
    violations: list[str] = []

    async def on_error(exc: Exception) -> None:
        violations.append(str(exc))

    outside = await nats.connect(subscriber_url(stack), inbox_prefix=INBOX, error_cb=on_error)
    try:
        received: asyncio.Queue = asyncio.Queue()
        await outside.subscribe(SUBJECT_CALIBRATED, cb=received.put)
        await outside.subscribe(SUBJECT_RECALIBRATED)
        await outside.flush()
        status, answer = await asyncio.to_thread(curl_upload, stack, FIELD / "sex_cpcs.cat", hashtag, ivorn)
        assert status == 200, answer
        event = CalibrationResult.model_validate_json((await asyncio.wait_for(received.get(), 10)).data)
        assert event.upload_id == answer["upload_id"]

        # a subscriber that was away replays the stream RESULTS
        replay = await outside.jetstream().subscribe(
            SUBJECT_CALIBRATED, stream="RESULTS", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        replayed = CalibrationResult.model_validate_json((await replay.next_msg(timeout=10)).data)
        assert replayed.upload_id == answer["upload_id"]
        assert violations == []

        # it cannot publish results, uploads, or anything
        await outside.publish(SUBJECT_CALIBRATED, json.dumps(answer).encode())
        await outside.publish(SUBJECT_UPLOAD, b"{}")
        # nor read the uploads, or the services' replies (the catalogue's cones come to _INBOX.)
        await outside.subscribe(SUBJECT_UPLOAD)
        await outside.subscribe("_INBOX.>")
        await outside.flush()
        for _ in range(50):
            if len(violations) >= 4:
                break
            await asyncio.sleep(0.1)
        # nats-py lowers the server's error text
        assert sorted(violations) == sorted(
            v.lower()
            for v in [
                f'nats: permissions violation for publish to "{SUBJECT_CALIBRATED}"',
                f'nats: permissions violation for publish to "{SUBJECT_UPLOAD}"',
                f'nats: permissions violation for subscription to "{SUBJECT_UPLOAD}"',
                'nats: permissions violation for subscription to "_INBOX.>"',
            ]
        )
        # nor replay another stream
        with pytest.raises(nats.errors.TimeoutError):
            await outside.jetstream(timeout=2).subscribe(SUBJECT_UPLOAD, stream="UPLOADS", ordered_consumer=True)
    finally:
        await outside.close()
    # what it published reached nobody: the gateway's answer for that upload is the worker's only
    assert received.empty()


async def test_a_wrong_password_is_refused(field_stack):
    stack, *_ = field_stack
    url = subscriber_url(stack).replace(f":{EMBEDDED_SUBSCRIBER_PASSWORD}@", ":wrong@")
    with pytest.raises(Exception, match="(?i)authorization"):
        await nats.connect(url, allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0)


async def test_a_browser_subscribes_over_websocket_with_the_same_user(tmp_path):
    ws_port = free_port()
    server = nats_server(tmp_path / "nats", free_port(), websocket_port=ws_port).start()
    try:
        internal = await nats.connect(server.url)  # the services: no credentials
        browser = await nats.connect(
            f"ws://{EMBEDDED_SUBSCRIBER_USER}:{EMBEDDED_SUBSCRIBER_PASSWORD}@127.0.0.1:{ws_port}", inbox_prefix=INBOX
        )
        sub = await browser.subscribe(SUBJECT_CALIBRATED)
        await browser.flush()
        # core NATS is at most once, and one fresh-clone run on the loaded 2-core machine lost the single
        # message this sent: publish until one arrives (20 s at most); a browser that gets none fails
        received = None
        for _ in range(20):
            await internal.publish(SUBJECT_CALIBRATED, b'{"status": "ok"}')
            await internal.flush()
            try:
                received = await sub.next_msg(timeout=1)
                break
            except nats.errors.TimeoutError:
                continue
        assert received is not None and received.data == b'{"status": "ok"}'
        await browser.close()
        await internal.close()
    finally:
        server.stop()
