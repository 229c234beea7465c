"""The live alert intake: the intake service reads the Gaia alerts list from a local HTTP server on its
schedule, adds new alerts, updates changed ones and leaves the rest, says so in its log and metrics,
and counts a failing list; ``photcal alerts poll --once URL`` does one reading for an operator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_alerts_import import HEADER, PHOTCAL, ROWS, _alerts
from tests.threaded_app import serve_in_thread
from tools.infra import free_port, terminate, wait_for_port

pytestmark = pytest.mark.integration

FIRST = HEADER + "".join(ROWS)  # two alerts and a row with an unreadable RA
#: a day later: Gaia21eeo classified, Gaia21eep as it was, one new alert
SECOND = (
    HEADER
    + ROWS[0].replace('"unknown"', '"SN Ia"')
    + ROWS[1]
    + 'Gaia21efa,2021-09-10 01:00:00,10.5,-20.25,18.1,19.9,0.3,"unknown",2021-09-10 08:00:00,"new",\n'
)


class Feed:
    """What the local "gsaweb" serves now, and how often it was asked."""

    def __init__(self) -> None:
        self.body = FIRST
        self.status = 200
        self.requests = 0

    async def handle(self, _request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(text=self.body, status=self.status, content_type="text/csv")


@pytest.fixture
def feed() -> Iterator[tuple[Feed, str]]:
    served = Feed()
    app = web.Application()
    app.router.add_get("/alerts/alerts.csv", served.handle)
    with serve_in_thread(app) as port:
        yield served, f"http://127.0.0.1:{port}/alerts/alerts.csv"


@pytest.fixture
def env(mongo_proc, tmp_path, fresh_db_name) -> dict[str, str]:
    return dict(os.environ) | {
        "PHOTCAL_MONGO_URL": mongo_proc.url,
        "PHOTCAL_MONGO_DB": fresh_db_name,
        "PHOTCAL_DATA_DIR": str(tmp_path / "data"),
        "PHOTCAL_HASHTAG_PEPPER": "test-pepper",
    }


def metrics(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("photcal_intake_")
    }


def readings(log: Path) -> list[dict]:
    """The service's report of each reading: its ``alerts_feed_read`` log lines."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    events = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in events if e.get("event") == "alerts_feed_read"]


def wait_for_reading(log: Path, after: int, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = readings(log)
        if len(done) > after:
            return done[after]
        time.sleep(0.1)
    raise AssertionError(f"no reading {after + 1} in {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


def counts_of(reading: dict) -> tuple[int, int, int, int]:
    return reading["added"], reading["updated"], reading["unchanged"], reading["skipped"]


def test_the_intake_service_adds_updates_leaves_alone_and_counts_failures(env, feed, tmp_path):
    served, url = feed
    port = free_port()
    log = tmp_path / "intake.log"
    service_env = env | {
        "PHOTCAL_INTAKE_PORT": str(port),
        "PHOTCAL_ALERTS_FEED_ENABLED": "1",
        "PHOTCAL_ALERTS_FEED_URL": url,
        "PHOTCAL_ALERTS_FEED_INTERVAL": "0.5",
        "PHOTCAL_ALERTS_FEED_RETRY": "0.5",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.intake"], env=service_env, stdout=out, stderr=out)
    try:
        wait_for_port(port, 60, proc)
        first = wait_for_reading(log, 0)
        assert counts_of(first) == (2, 0, 0, 1)
        stored = _alerts(env)
        assert sorted(stored) == ["ivo://gaia/alerts#Gaia21eeo", "ivo://gaia/alerts#Gaia21eep"]
        assert stored["ivo://gaia/alerts#Gaia21eeo"]["extra"]["Class"] == "unknown"
        # the same list again: nothing changes, and the reading says so
        again = wait_for_reading(log, 1)
        assert counts_of(again) == (0, 0, 2, 1)
        assert _alerts(env) == stored

        served.body = SECOND
        seen = len(readings(log))
        while counts_of(reading := wait_for_reading(log, seen)) == (0, 0, 2, 1):  # a reading begun before
            seen += 1
        assert counts_of(reading) == (1, 1, 1, 0)
        now = _alerts(env)
        assert sorted(now) == sorted([*stored, "ivo://gaia/alerts#Gaia21efa"])
        eeo = now["ivo://gaia/alerts#Gaia21eeo"]
        assert eeo["extra"]["Class"] == "SN Ia"
        assert (eeo["alert_id"], eeo["created"]) == (
            stored["ivo://gaia/alerts#Gaia21eeo"]["alert_id"],
            stored["ivo://gaia/alerts#Gaia21eeo"]["created"],
        )
        assert now["ivo://gaia/alerts#Gaia21eep"] == stored["ivo://gaia/alerts#Gaia21eep"]
        assert counts_of(wait_for_reading(log, seen + 1)) == (0, 0, 3, 0)

        before = metrics(port)
        assert before[("photcal_intake_alerts_total", (("outcome", "added"),))] == 3
        assert before[("photcal_intake_alerts_total", (("outcome", "updated"),))] == 1
        last_success = before[("photcal_intake_feed_last_success_timestamp_seconds", ())]
        assert time.time() - 30 < last_success <= time.time()

        # the list goes away: failures are counted by reason, the last success stays where it was
        served.status = 503
        asked = served.requests
        deadline = time.monotonic() + 30
        while metrics(port).get(("photcal_intake_feed_failures_total", (("reason", "http_status"),)), 0) < 2:
            assert time.monotonic() < deadline, "the failing list was not counted"
            time.sleep(0.2)
        assert served.requests > asked
        after = metrics(port)
        assert after[("photcal_intake_feed_last_success_timestamp_seconds", ())] == last_success
        assert after[("photcal_intake_feed_polls_total", (("outcome", "failed"),))] >= 2
        assert "alerts_feed_failed" in log.read_text()

        # a graceful stop
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        terminate(proc)


def _poll(env: dict[str, str], url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PHOTCAL, "alerts", "poll", "--once", url], env=env, capture_output=True, text=True, timeout=120
    )


def test_photcal_alerts_poll_once_reports_what_it_did(env, feed):
    served, url = feed
    first = _poll(env, url)
    assert first.returncode == 0, first.stderr
    assert f"{url}: alerts 2 added, 0 updated, 0 unchanged, 1 rows skipped" in first.stdout
    again = _poll(env, url)
    assert f"{url}: alerts 0 added, 0 updated, 2 unchanged, 1 rows skipped" in again.stdout
    served.body = "<html>maintenance</html>\n"
    broken = _poll(env, url)
    assert broken.returncode == 1
    assert "not a Gaia alerts.csv" in broken.stderr and "(not_alerts_csv)" in broken.stderr
    assert len(_alerts(env)) == 2


def test_photcal_alerts_poll_once_names_an_unreachable_list(env):
    gone = f"http://127.0.0.1:{free_port()}/alerts.csv"
    done = _poll(env, gone)
    assert done.returncode == 1
    assert f"{gone} could not be read" in done.stderr and "(unreachable)" in done.stderr
