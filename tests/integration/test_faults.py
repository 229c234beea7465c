"""Faults lose nothing: a calibrate worker killed mid-stream, its uploads still land once each."""

from __future__ import annotations

import json
import os
import signal
import urllib.parse
import urllib.request

import pytest

from tests.integration.conftest import field_dir, wait_until
from tests.integration.test_end_to_end import get_json

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")


def post_async_upload(url: str, hashtag: str, ivorn: str, mjd: float, catalogue: bytes) -> str:
    boundary = "----photcaltest"
    fields = {"hashtag": hashtag, "EventID": ivorn, "MJD": f"{mjd:.6f}", "expTime": "60", "noPlot": "1",
              "dryRun": "0", "outputFormat": "json", "matchDist": "2"}
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="sexCat"; filename="cat.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n".encode() + catalogue + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{url}/api/v1/uploads?wait=0", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return json.loads(response.read())["upload_id"]


def test_killing_the_calibrate_worker_mid_stream_loses_and_doubles_nothing(stack):
    truth = stack.load_field(FIELD)
    hashtag = stack.add_observatory()
    ivorn = "ivo://gaia/alerts#SimKill"
    stack.cli("alert", "add", "--ivorn", ivorn, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"]))
    stack.env["PHOTCAL_CALIBRATE_CONCURRENCY"] = "2"
    stack.start()
    catalogue = (FIELD / "sex_cpcs.cat").read_bytes()
    n = 40
    upload_ids = []
    for i in range(n):
        upload_ids.append(post_async_upload(stack.url, hashtag, ivorn, 60000.0 + i * 0.01, catalogue))
        if i == 10:
            os.kill(stack.service_pid("calibrate"), signal.SIGKILL)

    def all_done():
        states = [get_json(f"{stack.url}/api/v1/uploads/{uid}")["state"] for uid in upload_ids]
        return all(s == "done" for s in states)

    wait_until(all_done, timeout=120, interval=1.0)
    assert "service_restarted" in stack.log()
    lc = get_json(f"{stack.url}/api/v1/lightcurves/{urllib.parse.quote(ivorn, safe='')}")
    mjds = sorted(round(p["mjd"], 6) for p in lc["points"])
    assert mjds == [round(60000.0 + i * 0.01, 6) for i in range(n)]
    assert len({p["followup_id"] for p in lc["points"]}) == n
