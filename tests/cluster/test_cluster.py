"""The distributed deployment, failing for real: photcal on a 3-node JetStream cluster with R3 streams.

A node is killed (SIGKILL) under a stream of 100 uploads - the UPLOADS
stream's leader first, then a follower - and brought back; then the
catalogue service is killed and restarted by the supervisor. Counted in the
database itself: every upload the gateway accepted is stored exactly once,
each reaches a final state, and a node that comes back has the whole stream.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import nats
import pymongo
import pytest

from shared.contracts.subjects import OBJECT_BUCKET_UPLOADS, STREAM_RESULTS, STREAM_UPLOADS
from shared.natsio import server_urls
from tests.cluster.conftest import IVORN_CATALOG, IVORN_NODES, ClusterStack
from tests.integration.conftest import wait_until
from tests.integration.test_end_to_end import get_json
from tests.integration.test_faults import post_upload

pytestmark = [pytest.mark.integration]

N_UPLOADS = 100
#: how long an accepted upload may take to reach its final state, counted from the last upload sent
FINAL_STATE_WITHIN_S = 90
FINAL_STATES = {"done", "failed"}


class Uploads:
    """Sends uploads of distinct MJDs (``wait=0``, one in ten ``wait=1``) and sorts the answers:
    accepted, maybe queued (a 503 after sending), refused."""

    def __init__(self, cs: ClusterStack, ivorn: str, mjd0: float) -> None:
        self.cs, self.ivorn, self.mjd0 = cs, ivorn, mjd0
        self.accepted: list[str] = []
        self.maybe: set[str] = set()  # 503 after sending: JetStream may hold it all the same
        self.refused: list[dict] = []
        self.sent = 0

    def send(self) -> int:
        mjd = self.mjd0 + self.sent * 0.01
        # one in ten waits for its result (the gateway's result waiter, through the failover too)
        wait = self.sent % 10 == 5
        self.sent += 1
        status, body, _ = post_upload(
            self.cs.stack.url, self.cs.hashtag, self.ivorn, mjd, self.cs.catalogue, wait=wait, timeout=60
        )
        if status == 202 and not wait:
            self.accepted.append(body["upload_id"])
        elif status == 200 and wait:
            assert body["status"] == "ok" and body["stored"] is True, body
            self.accepted.append(body["upload_id"])
        else:
            assert status == 503 and body.get("error") == "backend_unavailable", (status, body)
            self.refused.append(body)
            if "upload_id" in body:
                self.maybe.add(body["upload_id"])
        return status


def stored(cs: ClusterStack, ivorn: str) -> list[dict]:
    url = cs.stack.env["PHOTCAL_MONGO_URL"]
    client: pymongo.MongoClient[dict] = pymongo.MongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        db = client[cs.stack.env["PHOTCAL_MONGO_DB"]]
        return list(db.datapoints.find({"ivorn": ivorn, "deleted": False}, {"upload_id": 1, "dedupe_key": 1, "mjd": 1}))
    finally:
        client.close()


def final_state(cs: ClusterStack, upload_id: str) -> str | None:
    try:
        state = get_json(f"{cs.stack.url}/api/v1/uploads/{upload_id}")["state"]
    except OSError:
        return None
    return state if state in FINAL_STATES else None


def assert_each_accepted_upload_stored_once(cs: ClusterStack, uploads: Uploads) -> None:
    accepted = set(uploads.accepted)
    assert len(accepted) == len(uploads.accepted)
    waiting = set(accepted)

    def all_final() -> bool:
        waiting.difference_update({uid for uid in list(waiting) if final_state(cs, uid)})
        return not waiting

    try:
        wait_until(all_final, timeout=FINAL_STATE_WITHIN_S, interval=1.0)
    except AssertionError as timed_out:
        raise AssertionError(
            f"{len(waiting)} accepted uploads never reached a final state: {sorted(waiting)[:5]}"
        ) from timed_out
    time.sleep(1.0)  # let any stray redelivery land before counting
    points = stored(cs, uploads.ivorn)
    by_upload = [p["upload_id"] for p in points]
    assert len(by_upload) == len(set(by_upload)), "an upload was stored twice"
    keys = [p["dedupe_key"] for p in points]
    assert len(keys) == len(set(keys)), "one observation (its unique key) was stored twice"
    assert len({round(p["mjd"], 6) for p in points}) == len(points)
    assert accepted <= set(by_upload), f"accepted but not stored: {sorted(accepted - set(by_upload))[:5]}"
    assert set(by_upload) <= accepted | uploads.maybe, "an upload the gateway refused was stored"
    states = {get_json(f"{cs.stack.url}/api/v1/uploads/{uid}")["state"] for uid in accepted}
    assert states == {"done"}


def last_seq(cs: ClusterStack, index: int, stream: str) -> int | None:
    detail = cs.cluster.stream_detail(index, stream)
    return None if detail is None else detail["state"]["last_seq"]


def assert_caught_up(cs: ClusterStack, index: int, streams=(STREAM_UPLOADS, STREAM_RESULTS), timeout: float = 60):
    """The node's copy of each stream ends at the leader's last sequence (``/jsz?streams=true``)."""

    def same() -> bool:
        for stream in streams:
            leader = cs.cluster.stream_leader(stream)
            if leader is None or last_seq(cs, index, stream) != last_seq(cs, leader, stream):
                return False
        return True

    try:
        wait_until(same, timeout=timeout, interval=0.5)
    except AssertionError as behind:
        seqs = {
            s: [last_seq(cs, i, s) if _running(cs.cluster.nodes[i].proc) else None for i in range(3)] for s in streams
        }
        raise AssertionError(f"{cs.cluster.names[index]} did not catch up: last_seq per node {seqs}") from behind


def _running(proc: subprocess.Popen | None) -> bool:
    return proc is not None and proc.poll() is None


def stream_replicas(cs: ClusterStack) -> dict[str | None, int | None]:
    """Replicas of every stream, the object-store buckets' (``OBJ_...``) included."""

    async def ask() -> dict[str | None, int | None]:
        nc = await nats.connect(server_urls(cs.cluster.url))
        try:
            return {info.config.name: info.config.num_replicas for info in await nc.jetstream().streams_info()}
        finally:
            await nc.close()

    return asyncio.run(ask())


def test_a_node_killed_under_100_uploads_loses_and_doubles_nothing_and_catches_up(on_failure_attach_logs):
    cs: ClusterStack = on_failure_attach_logs
    assert stream_replicas(cs)[STREAM_UPLOADS] == 3
    uploads = Uploads(cs, IVORN_NODES, 60000.0)
    killed: list[int] = []
    while uploads.sent < N_UPLOADS:
        if uploads.sent == 20:
            leader = cs.cluster.stream_leader(STREAM_UPLOADS)
            assert leader is not None
            cs.cluster.kill(leader)
            killed.append(leader)
        elif uploads.sent == 45:
            cs.cluster.restart(killed[-1], timeout=60)
            assert_caught_up(cs, killed[-1], streams=(STREAM_UPLOADS,))
        elif uploads.sent == 60:
            leader = cs.cluster.stream_leader(STREAM_UPLOADS)
            # a follower that the worker (else the gateway) is connected to, so that a client fails over too
            clients = [cs.cluster.client_node(f"photcal-{service}") for service in ("calibrate", "ingest")]
            follower = next(
                (i for i in clients if i is not None and i != leader), next(i for i in range(3) if i != leader)
            )
            cs.cluster.kill(follower)
            killed.append(follower)
        elif uploads.sent == 85:
            cs.cluster.restart(killed[-1], timeout=60)
            assert_caught_up(cs, killed[-1], streams=(STREAM_UPLOADS,))
        uploads.send()
    assert_each_accepted_upload_stored_once(cs, uploads)
    for index in range(3):
        assert_caught_up(cs, index)
    replicas = stream_replicas(cs)
    assert f"OBJ_{OBJECT_BUCKET_UPLOADS}" in replicas  # the tables went through the object store
    assert set(replicas.values()) == {3}, replicas
    # a node lost is not an outage: the other two keep a quorum, and the gateway keeps accepting
    assert len(uploads.accepted) == N_UPLOADS, f"refused while a node was down: {uploads.refused[:3]}"


def catalog_pid(cs: ClusterStack, other_than: list[int]) -> int | None:
    try:
        pid = cs.stack.service_pid("catalog")
    except (AssertionError, OSError):  # between its death and its restart; or exiting while we look
        return None
    return pid if pid not in other_than else None


def test_the_catalogue_service_killed_mid_run_every_upload_answered_once(on_failure_attach_logs):
    cs: ClusterStack = on_failure_attach_logs
    log_start = len(cs.stack.log())
    uploads = Uploads(cs, IVORN_CATALOG, 61000.0)
    killed: list[int] = []
    while uploads.sent < N_UPLOADS:
        if uploads.sent in (30, 65):
            # the supervisor restarts it (after a back-off); the second kill is of the restarted one
            pid = wait_until(lambda: catalog_pid(cs, other_than=killed), timeout=60, interval=0.2)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        uploads.send()
    assert len(uploads.accepted) == N_UPLOADS, uploads.refused[:3]
    assert_each_accepted_upload_stored_once(cs, uploads)
    log = cs.stack.log()[log_start:]
    assert log.count("service_restarted") >= 2
    assert "backend_unavailable_retrying" in log, "no upload met the catalogue service down: the test tested nothing"
