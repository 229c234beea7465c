"""A photcal stack on a 3-node JetStream cluster (R3 streams), as the production overlay runs it."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS, free_port_block
from tools.devstack import Stack
from tools.infra import NatsCluster, free_port, mongo_server, nats_cluster

FIELD = Path(__file__).resolve().parents[1] / "data" / "fields" / "north_V"
IVORN_NODES = "ivo://gaia/alerts#SimClusterNodes"
IVORN_CATALOG = "ivo://gaia/alerts#SimClusterCatalog"

#: quick redelivery, so that work held by a lost node or a killed service comes back within the test;
#: no cone cache, so that every upload asks the catalogue service (killed in one test)
CLUSTER_ENV = {
    "PHOTCAL_NATS_REPLICAS": "3",
    "PHOTCAL_ACK_WAIT": "8",
    "PHOTCAL_RETRY_DELAY": "0.5",
    "PHOTCAL_CALIBRATE_CONCURRENCY": "2",
    "PHOTCAL_BACKEND_TIMEOUT": "3",
    "PHOTCAL_UPLOAD_TIMEOUT": "30",
    "PHOTCAL_CONE_CACHE_TTL": "0",
    "PHOTCAL_LOG_LEVEL": "INFO",
    # every table through the uploads bucket (an R3 object store), not inline in the message
    "PHOTCAL_INLINE_TABLE_BYTES": "1000",
}


class ClusterStack:
    def __init__(self, cluster: NatsCluster, stack: Stack, hashtag: str, catalogue: bytes, logs: Path) -> None:
        self.cluster, self.stack, self.hashtag, self.catalogue, self.logs = cluster, stack, hashtag, catalogue, logs


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory) -> Iterator[ClusterStack]:
    tmp = tmp_path_factory.mktemp("cluster")
    # one block: each node's client, route and monitoring port, then the gateway's and the services' 5
    base = free_port_block(14)
    cluster = nats_cluster(
        tmp / "nats", [base, base + 1, base + 2], [base + 3, base + 4, base + 5], [base + 6, base + 7, base + 8]
    )
    mongo = mongo_server(tmp / "mongodata", free_port())
    port = base + 9
    stack = Stack(
        env=dict(os.environ)
        | CLUSTER_ENV
        | {
            "PHOTCAL_NATS_URL": cluster.url,  # all three nodes, comma-separated
            "PHOTCAL_MONGO_URL": mongo.url,
            "PHOTCAL_MONGO_DB": f"tcluster{random.randint(0, 10**6)}",
            "PHOTCAL_DATA_DIR": str(tmp / "data"),
            "PHOTCAL_HASHTAG_PEPPER": "cluster-pepper",
            "PHOTCAL_HTTP_PORT": str(port),
        },
        port=port,
    )
    try:
        cluster.start()
        mongo.start()
        # the field's best reference alone (APASS V): the other surveys would only lengthen the set-up
        stack.cli("catalog", "load", "--survey", "APASS", str(FIELD / "ref_APASS.csv"))
        truth = json.loads((FIELD / "truth.json").read_text())
        hashtag = stack.add_observatory()
        for ivorn in (IVORN_NODES, IVORN_CATALOG):
            stack.cli(
                "alert", "add", "--ivorn", ivorn, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"])
            )
        stack.start()
    except BaseException:
        attach_logs("setup", [node.log_path for node in cluster.nodes] + [stack.log_path])
        stack.stop()
        mongo.stop()
        cluster.stop()
        raise
    try:
        yield ClusterStack(cluster, stack, hashtag, (FIELD / "sex_cpcs.cat").read_bytes(), tmp)
    finally:
        stack.stop()
        mongo.stop()
        cluster.stop()


@pytest.fixture
def on_failure_attach_logs(request, cluster_stack):
    """A failed test prints each node's and the stack's log tail, and keeps the whole logs in test-artifacts/."""
    yield cluster_stack
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    attach_logs(
        request.node.name, [node.log_path for node in cluster_stack.cluster.nodes] + [cluster_stack.stack.log_path]
    )


def attach_logs(name: str, logs: Sequence[Path | None]) -> None:
    keep = ARTIFACTS / "cluster" / name
    keep.mkdir(parents=True, exist_ok=True)
    for path in logs:
        if path and path.exists():
            shutil.copy(path, keep / path.name)
            tail = path.read_text(errors="replace")[-4000:]
            print(f"\n===== {path.name} (last 4000 chars; whole log in {keep}) =====\n{tail}")
