"""The gateway's publish (services/ingest/publish.py) against a real 3-node cluster losing a node.

Smaller than the stack test beside it: the publish alone, so that each way of
losing a node is met for sure (the node we are connected to; the stream's leader).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from services.ingest.publish import publish_upload
from shared.contracts.messages import UploadRequested
from shared.contracts.subjects import STREAM_UPLOADS
from shared.natsio import connect, ensure_streams
from tests.conftest import free_port_block
from tools.infra import NatsCluster, nats_cluster

pytestmark = [pytest.mark.integration]


@pytest.fixture
def cluster(tmp_path) -> Iterator[NatsCluster]:
    base = free_port_block(9)
    nodes = nats_cluster(
        tmp_path, [base, base + 1, base + 2], [base + 3, base + 4, base + 5], [base + 6, base + 7, base + 8]
    )
    try:
        yield nodes.start()
    finally:
        nodes.stop()


def upload(i: int) -> UploadRequested:
    return UploadRequested(
        upload_id=f"{i:032x}",
        ivorn="ivo://gaia/alerts#SimPublish",
        alert_ra=150.0,
        alert_dec=30.0,
        observatory_id="o1",
        observatory_name="Test",
        mjd=60000.0 + i,
        n_sources=0,
    )


async def publish_all(js, ids: range) -> tuple[int, list[str]]:
    """(accepted, refusals): a refusal is the gateway's 503 (BackendUnavailable) with its cause."""
    answers = await asyncio.gather(*(publish_upload(js, upload(i), 10**6, 3) for i in ids), return_exceptions=True)
    refused = [f"{a!r} from {a.__cause__!r}" for a in answers if isinstance(a, BaseException)]
    return len(answers) - len(refused), refused


async def stored_messages(js) -> int:
    return (await js.stream_info(STREAM_UPLOADS)).state.messages


async def test_uploads_arriving_while_the_gateway_moves_to_another_node_are_accepted(cluster):
    nc = await connect(cluster.url, "photcal-ingest")
    try:
        js = nc.jetstream(timeout=3)
        await ensure_streams(js, 3)
        await publish_all(js, range(10))
        cluster.kill(await asyncio.to_thread(cluster.client_node, "photcal-ingest"))
        while nc.is_connected:  # the client has seen its node go; it is moving to another
            await asyncio.sleep(0.001)
        accepted, refused = await publish_all(js, range(10, 30))
        assert refused == [] and accepted == 20
        assert await stored_messages(js) == 30
    finally:
        await nc.close()


async def test_uploads_while_the_stream_elects_a_new_leader_are_accepted_once(cluster):
    nc = await connect(cluster.url, "photcal-ingest")
    try:
        js = nc.jetstream(timeout=3)
        await ensure_streams(js, 3)
        await publish_all(js, range(10))
        leader = await asyncio.to_thread(cluster.stream_leader, STREAM_UPLOADS)
        cluster.kill(leader)
        accepted, refused = await publish_all(js, range(10, 30))
        assert refused == [] and accepted == 20
        # one copy each, whatever the retries (the same Nats-Msg-Id)
        assert await stored_messages(js) == 30
    finally:
        await nc.close()
