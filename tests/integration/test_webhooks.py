"""Callbacks and subscriptions (issue 22) against a real stack: `photcal run`, nats-server, nx-27017,
and a real HTTP receiver on 127.0.0.1 checking the signature as README says a receiver does."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from aiohttp import web

from tests.integration.conftest import field_dir, wait_until
from tests.threaded_app import serve_in_thread
from tools.devstack import Stack, standalone_stack, stop_all

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
IVORN = "ivo://gaia/alerts#SimHooks"
OTHER_IVORN = "ivo://gaia/alerts#SimHooksOther"
RECAL_IVORN = "ivo://gaia/alerts#SimHooksRecal"
OBSERVER, SUBSCRIBER = "Hooks Observatory", "Hooks Subscriber"
PAUSE_AFTER = 3


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """What the test's receiver was sent; ``fail[path]``: how many more POSTs to that path answer 503."""

    port: int = 0
    posts: list[Received] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def to(self, path: str, *, status: int | None = None) -> list[Received]:
        with self.lock:
            return [p for p in self.posts if p.path == path and (status is None or p.status == status)]


@pytest.fixture(scope="module")
def receiver():
    got = Receiver()

    async def hook(request: web.Request) -> web.Response:
        path = request.match_info["path"]
        body = await request.read()
        with got.lock:
            status = 503 if got.fail[path] > 0 else 200
            if status == 503:
                got.fail[path] -= 1
            got.posts.append(Received(path, dict(request.headers), body, status))
        return web.Response(status=status, text="ok" if status == 200 else "down")

    app = web.Application()
    app.router.add_post("/{path}", hook)
    with serve_in_thread(app) as port:
        got.port = port
        yield got


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("hooks"),
        PHOTCAL_MONGO_DB="hooks",
        PHOTCAL_UPLOAD_TIMEOUT="60",
        PHOTCAL_CALLBACK_ALLOW_PRIVATE="1",  # the receiver is on 127.0.0.1
        PHOTCAL_NOTIFY_RETRY_INITIAL_DELAY="0.3",
        PHOTCAL_NOTIFY_RETRY_MAX_DELAY="1",
        PHOTCAL_NOTIFY_RETRY_FOR="120",
        PHOTCAL_NOTIFY_PAUSE_AFTER=str(PAUSE_AFTER),
        PHOTCAL_NOTIFY_POLL_INTERVAL="0.2",
    )
    try:
        stack.truth = stack.load_field(FIELD)
        stack.add_observatory(OBSERVER)
        stack.add_observatory(SUBSCRIBER)
        a = stack.truth["alert"]
        out = stack.cli("observatory", "add", "--name", "Hooks Admin", "--lon", "0", "--lat", "0", "--admin").stdout
        found = re.search(r"hashtag: (\S+)", out)
        assert found is not None, out
        stack.hashtags["Hooks Admin"] = found.group(1)
        for ivorn in (IVORN, OTHER_IVORN, RECAL_IVORN):
            stack.cli("alert", "add", "--ivorn", ivorn, "--ra", str(a["ra"]), "--dec", str(a["dec"]))
        stack.start()
        yield stack
    finally:
        stop_all(stack, servers)


_mjd = iter(60100.5 + i for i in range(1000))


def upload(site: Stack, *, ivorn: str = IVORN, dry_run: bool = True, callback_url: str | None = None) -> dict:
    fields = {
        "hashtag": site.hashtags[OBSERVER],
        "EventID": ivorn,
        "MJD": str(next(_mjd)),
        "noPlot": "1",
        "dryRun": "1" if dry_run else "0",
        "outputFormat": "json",
    }
    if callback_url is not None:
        fields["callback_url"] = callback_url
    with open(FIELD / "sex_ascii_head.cat", "rb") as catalogue:
        answer = requests.post(f"{site.url}/api/v1/uploads", data=fields, files={"sexCat": catalogue}, timeout=90)
    return {"status_code": answer.status_code} | answer.json()


def secret_of(site: Stack, name: str) -> str:
    answer = requests.get(f"{site.url}/api/v1/webhook-secret", params={"hashtag": site.hashtags[name]}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["secret"]


def readme_receiver() -> dict:
    """README's receiver snippet, run as a module (not as __main__: its server is not started)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Callbacks and subscriptions") :]
    snippet = re.search(r"```python\n(.*?)```", section, re.S)
    assert snippet is not None, "README's callbacks section has its receiver"
    namespace: dict = {"__name__": "receiver"}
    exec(compile(snippet.group(1), "README.md receiver", "exec"), namespace)
    return namespace


README_VERIFY = readme_receiver()["verify"]


def verifies(secret: str, post: Received) -> bool:
    """The receiver's check exactly as README's snippet does it."""
    return README_VERIFY(secret, post.body, post.headers["X-Photcal-Signature"])


def subscribe(
    site: Stack, url: str, scope: str, ivorn: str | None = None, name: str = SUBSCRIBER, events: list | None = None
) -> dict:
    body = {"url": url, "scope": scope} | ({"ivorn": ivorn} if ivorn else {}) | ({"events": events} if events else {})
    answer = requests.post(
        f"{site.url}/api/v1/subscriptions", params={"hashtag": site.hashtags[name]}, json=body, timeout=10
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_an_upload_with_a_callback_url_is_posted_its_result_once_signed(site: Stack, receiver: Receiver):
    secret = secret_of(site, OBSERVER)
    assert secret in site.cli("observatory", "webhook-secret", "--name", OBSERVER).stdout  # the same, by command
    result = upload(site, callback_url=receiver.url("done"))
    assert result["status_code"] == 200 and result["status"] == "ok", result
    wait_until(lambda: receiver.to("done"), timeout=30)
    time.sleep(1.5)  # a second POST would come within the poll interval
    posts = receiver.to("done")
    assert len(posts) == 1
    post = posts[0]
    assert verifies(secret, post)
    assert not verifies(secret + "x", post)  # the check can fail: another key does not verify
    assert post.headers["X-Photcal-Upload"] == result["upload_id"]
    assert post.headers["X-Photcal-Delivery"] == f"{result['upload_id']}.callback"
    sent = json.loads(post.body)
    stored = requests.get(f"{site.url}/api/v1/uploads/{result['upload_id']}", timeout=10).json()["result"]
    assert sent["upload_id"] == result["upload_id"] and sent["status"] == "ok"
    assert sent["mag"] == stored["mag"] == result["mag"] and sent["zeropoint"] == stored["zeropoint"]


def test_a_receiver_down_for_the_first_two_attempts_still_gets_the_result(site: Stack, receiver: Receiver):
    receiver.fail["flaky"] = 2
    result = upload(site, callback_url=receiver.url("flaky"))
    assert result["status"] == "ok", result
    wait_until(lambda: receiver.to("flaky", status=200), timeout=30)
    attempts = receiver.to("flaky")
    assert [p.status for p in attempts] == [503, 503, 200]
    assert {p.headers["X-Photcal-Delivery"] for p in attempts} == {f"{result['upload_id']}.callback"}
    assert verifies(secret_of(site, OBSERVER), attempts[-1])
    status = requests.get(f"{site.url}/api/v1/uploads/{result['upload_id']}", timeout=10).json()
    assert status["callback"]["state"] == "delivered" and status["callback"]["attempts"] == 3
    assert status["callback"]["last_status"] == 200


def test_the_notify_service_answers_health_readiness_and_counts_its_deliveries(site: Stack):
    base = f"http://127.0.0.1:{site.port + 6}"
    assert requests.get(base + "/healthz", timeout=10).json()["service"] == "notify"
    assert requests.get(base + "/readyz", timeout=10).json()["ready"] is True
    metrics = requests.get(base + "/metrics", timeout=10).text
    delivered = re.search(r'photcal_notify_deliveries_total\{kind="callback",outcome="delivered"\} (\S+)', metrics)
    assert delivered is not None and float(delivered.group(1)) >= 2  # the two tests above
    assert 'photcal_notify_deliveries_total{kind="callback",outcome="retry"} 2.0' in metrics


def test_a_failed_upload_is_called_back_with_its_error(site: Stack, receiver: Receiver):
    fields = {
        "hashtag": site.hashtags[OBSERVER],
        "EventID": IVORN,
        "MJD": str(next(_mjd)),
        "noPlot": "1",
        "dryRun": "1",
        "outputFormat": "json",
        "callback_url": receiver.url("failed"),
    }
    lines = (FIELD / "sex_ascii_head.cat").read_text().splitlines()
    rows = [line for line in lines if line.strip() and not line.startswith("#")]
    brightest = sorted(rows, key=lambda row: float(row.split()[5]))[:8]  # they match, too few to fit
    few = "\n".join([line for line in lines if line.startswith("#")] + brightest) + "\n"
    answer = requests.post(f"{site.url}/api/v1/uploads", data=fields, files={"sexCat": ("few.cat", few)}, timeout=90)
    assert answer.status_code >= 400 and answer.json()["status"] == "error", answer.text
    wait_until(lambda: receiver.to("failed"), timeout=30)
    sent = json.loads(receiver.to("failed")[0].body)
    assert sent["status"] == "error" and sent["error"] == answer.json()["error"]


def test_a_subscription_to_an_alert_receives_each_new_datapoint(site: Stack, receiver: Receiver):
    sub = subscribe(site, receiver.url("alert"), "alert", IVORN)
    assert sub["state"] == "active" and sub["ivorn"] == IVORN
    listed = requests.get(
        f"{site.url}/api/v1/subscriptions", params={"hashtag": site.hashtags[SUBSCRIBER]}, timeout=10
    ).json()
    assert sub["subscription_id"] in [s["subscription_id"] for s in listed["subscriptions"]]
    stored = [upload(site, dry_run=False) for _ in range(2)]
    assert all(r["status"] == "ok" and r["stored"] for r in stored), stored
    upload(site, dry_run=True)  # not a new datapoint
    upload(site, ivorn=OTHER_IVORN, dry_run=False)  # another alert's
    wait_until(lambda: len(receiver.to("alert")) >= 2, timeout=30)
    time.sleep(1.5)
    posts = receiver.to("alert")
    assert sorted(p.headers["X-Photcal-Upload"] for p in posts) == sorted(r["upload_id"] for r in stored)
    assert {json.loads(p.body)["followup_id"] for p in posts} == {r["followup_id"] for r in stored}
    secret = secret_of(site, SUBSCRIBER)  # signed with the subscriber's secret, not the uploader's
    assert all(verifies(secret, p) and p.headers["X-Photcal-Subscription"] == sub["subscription_id"] for p in posts)
    # another observatory neither sees nor deletes it; its owner does
    other = {"hashtag": site.hashtags[OBSERVER]}
    url = f"{site.url}/api/v1/subscriptions/{sub['subscription_id']}"
    assert requests.delete(url, params=other, timeout=10).json()["error"] == "unknown_subscription"
    assert requests.delete(url, params={"hashtag": site.hashtags[SUBSCRIBER]}, timeout=10).status_code == 200
    assert requests.get(url, params={"hashtag": site.hashtags[SUBSCRIBER]}, timeout=10).status_code == 404


def notify_pid(site: Stack) -> int | None:
    try:
        return site.service_pid("notify")
    except AssertionError:  # between the kill and the supervisor's restart
        return None


def test_notify_killed_between_the_event_and_the_delivery_loses_nothing(site: Stack, receiver: Receiver):
    pid = site.service_pid("notify")
    os.kill(pid, signal.SIGSTOP)  # frozen: the result waits in its stream, not yet consumed
    try:
        result = upload(site, callback_url=receiver.url("killed"))
        assert result["status"] == "ok", result
        time.sleep(1)
        assert receiver.to("killed") == []
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: notify_pid(site) not in (None, pid), timeout=30)  # the supervisor starts it again
    wait_until(lambda: receiver.to("killed"), timeout=60)
    # and a delivery recorded but not yet delivered (the receiver down) survives a kill as well
    receiver.fail["killed2"] = 10**6
    second = upload(site, callback_url=receiver.url("killed2"))
    wait_until(lambda: receiver.to("killed2"), timeout=30)
    pid = site.service_pid("notify")
    os.kill(pid, signal.SIGKILL)
    receiver.fail["killed2"] = 0
    wait_until(lambda: receiver.to("killed2", status=200), timeout=90)
    time.sleep(2)
    for path, upload_id in (("killed", result["upload_id"]), ("killed2", second["upload_id"])):
        delivered = receiver.to(path, status=200)
        assert [p.headers["X-Photcal-Delivery"] for p in delivered] == [f"{upload_id}.callback"]  # once


def test_a_failing_subscriber_is_paused_says_why_and_resumes(site: Stack, receiver: Receiver):
    receiver.fail["down"] = 10**6
    sub = subscribe(site, receiver.url("down"), "mine", name=OBSERVER)
    result = upload(site)  # a dry run: "mine" receives every result of its own uploads
    url = f"{site.url}/api/v1/subscriptions/{sub['subscription_id']}"
    owner = {"hashtag": site.hashtags[OBSERVER]}

    def paused():
        state = requests.get(url, params=owner, timeout=10).json()
        return state if state["state"] == "paused" else None

    state = wait_until(paused, timeout=60)
    assert "failed deliveries in a row" in state["paused_reason"] and "503" in state["paused_reason"]
    time.sleep(2)
    assert len(receiver.to("down")) == PAUSE_AFTER  # nothing more is tried while paused
    listed = requests.get(url + "/deliveries", params=owner, timeout=10).json()["deliveries"]
    assert [(d["upload_id"], d["state"], d["attempts"]) for d in listed] == [(result["upload_id"], "held", PAUSE_AFTER)]
    receiver.fail["down"] = 0
    resumed = requests.post(url + "/resume", params=owner, timeout=10).json()
    assert resumed["state"] == "active" and resumed["released"] == 1
    wait_until(lambda: receiver.to("down", status=200), timeout=30)
    done = requests.get(url + "/deliveries", params=owner | {"state": "delivered"}, timeout=10).json()
    assert [d["upload_id"] for d in done["deliveries"]] == [result["upload_id"]]


def test_a_recalibrated_datapoint_is_posted_to_the_subscriptions_that_asked(site: Stack, receiver: Receiver):
    both = subscribe(site, receiver.url("recal-both"), "alert", RECAL_IVORN)
    assert both["events"] == ["calibrated", "recalibrated"]  # both unless told
    results_only = subscribe(site, receiver.url("recal-results"), "alert", RECAL_IVORN, events=["calibrated"])
    own = subscribe(site, receiver.url("recal-mine"), "mine", name=OBSERVER, events=["recalibrated"])
    bad = requests.post(
        f"{site.url}/api/v1/subscriptions",
        params={"hashtag": site.hashtags[SUBSCRIBER]},
        json={"url": receiver.url("x"), "scope": "all", "events": ["deleted"]},
        timeout=10,
    )
    assert bad.status_code == 400 and bad.json()["error"] == "bad_field" and "events" in bad.json()["message"]
    stored = upload(site, ivorn=RECAL_IVORN, dry_run=False)
    assert stored["status"] == "ok" and stored["stored"] and stored["survey"] != "GAIA", stored
    wait_until(lambda: receiver.to("recal-both") and receiver.to("recal-results"), timeout=30)

    admin = {"hashtag": site.hashtags["Hooks Admin"]}
    base = f"{site.url}/api/v1/recalibrations"
    job = {"selection": {"followup_ids": [stored["followup_id"]]}, "change": {"force_filter": "GAIA/G"}}
    accepted = requests.post(base, params=admin, json=job | {"reason": "to Gaia G"}, timeout=10)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]

    def state_is(state: str):
        return lambda: requests.get(f"{base}/{job_id}", params=admin, timeout=10).json()["state"] == state

    wait_until(state_is("ready"), timeout=60, interval=0.5)
    assert requests.post(f"{base}/{job_id}/apply", params=admin, timeout=10).status_code == 202
    wait_until(state_is("applied"), timeout=60, interval=0.5)
    wait_until(lambda: len(receiver.to("recal-both")) >= 2 and receiver.to("recal-mine"), timeout=30)
    time.sleep(1.5)

    # the results-only subscription has the result and nothing more; the others the change, once, signed
    assert [p.headers["X-Photcal-Event"] for p in receiver.to("recal-results")] == ["photcal.calibrated.v1"]
    assert [p.headers["X-Photcal-Event"] for p in receiver.to("recal-both")] == [
        "photcal.calibrated.v1",
        "photcal.recalibrated.v1",
    ]
    posts = [receiver.to("recal-both")[1], *receiver.to("recal-mine")]
    assert len(posts) == 2 and all(p.headers["X-Photcal-Event"] == "photcal.recalibrated.v1" for p in posts)
    for post, sub, owner in ((posts[0], both, SUBSCRIBER), (posts[1], own, OBSERVER)):
        assert verifies(secret_of(site, owner), post)
        assert post.headers["X-Photcal-Subscription"] == sub["subscription_id"]
        assert post.headers["X-Photcal-Delivery"] == f"{stored['upload_id']}.{sub['subscription_id']}.{job_id}"
        event = json.loads(post.body)
        assert (event["job_id"], event["followup_id"], event["ivorn"]) == (job_id, stored["followup_id"], RECAL_IVORN)
        assert (event["old"]["survey"], event["old"]["filter"]) == (stored["survey"], stored["filter"])
        assert (event["new"]["survey"], event["new"]["filter"], event["reason"]) == ("GAIA", "G", "to Gaia G")
    listed = requests.get(
        f"{site.url}/api/v1/subscriptions/{own['subscription_id']}/deliveries",
        params={"hashtag": site.hashtags[OBSERVER]},
        timeout=10,
    ).json()["deliveries"]
    assert [(d["event"], d["job_id"], d["state"]) for d in listed] == [("recalibrated", job_id, "delivered")]
    for sub, name in ((both, SUBSCRIBER), (results_only, SUBSCRIBER), (own, OBSERVER)):
        url = f"{site.url}/api/v1/subscriptions/{sub['subscription_id']}"
        assert requests.delete(url, params={"hashtag": site.hashtags[name]}, timeout=10).status_code == 200


def test_private_urls_are_refused_without_the_flag(site: Stack, receiver: Receiver):
    site.stop()
    site.env = site.env | {"PHOTCAL_CALLBACK_ALLOW_PRIVATE": "0"}
    site.start()
    for url in (receiver.url("private"), "http://10.0.0.7/hook", "http://169.254.169.254/latest", "http://[::1]/x"):
        refused = upload(site, callback_url=url)
        assert refused["status_code"] == 400 and refused["error"] == "callback_url_refused", refused
        assert "address" in refused["message"]
    answer = requests.post(
        f"{site.url}/api/v1/subscriptions",
        params={"hashtag": site.hashtags[SUBSCRIBER]},
        json={"url": "http://localhost:9/hook", "scope": "all"},
        timeout=10,
    )
    assert answer.status_code == 400 and answer.json()["error"] == "callback_url_refused"
    assert (
        requests.post(
            f"{site.url}/api/v1/subscriptions",
            params={"hashtag": site.hashtags[SUBSCRIBER]},
            json={"url": "ftp://example.org/hook", "scope": "all"},
            timeout=10,
        ).json()["error"]
        == "callback_url_refused"
    )
