"""The webhook outbox and subscriptions on the embedded database (shared/db/deliveries.py, subscriptions.py)."""

from __future__ import annotations

import asyncio

import pytest

from services.notify.sender import as_utc
from shared.contracts.messages import utcnow
from shared.db import connect_database
from shared.db import deliveries as outbox
from shared.db import subscriptions as subs
from shared.db.webhook_secrets import rotate_secret, secret_of

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(mongo_proc, fresh_db_name):
    database = connect_database(mongo_proc.url, fresh_db_name)
    await database.ensure_indexes()
    yield database
    await database.close()


async def record(db, upload_id: str = "u1", subscription_id: str | None = None, held: bool = False) -> bool:
    return await outbox.add_delivery(
        db,
        upload_id=upload_id,
        url="https://tom.example.org/hook",
        observatory_id="obs1",
        body=b'{"upload_id": "%s"}' % upload_id.encode(),
        subscription_id=subscription_id,
        held=held,
    )


async def test_a_delivery_is_recorded_once_and_claimed_by_one_loop_at_a_time(db):
    assert await record(db) is True
    assert await record(db) is False  # the event redelivered: nothing twice
    first, second = await asyncio.gather(
        outbox.claim_due(db, lease_s=30, limit=5), outbox.claim_due(db, lease_s=30, limit=5)
    )
    assert len(first) + len(second) == 1
    [claimed] = first or second
    assert claimed["attempts"] == 1 and claimed["delivery_id"] == "u1.callback"
    assert await outbox.claim_due(db, lease_s=30, limit=5) == []  # leased


async def test_a_lease_that_runs_out_makes_it_due_again_and_delivered_ones_never(db):
    await record(db, "u1")
    await record(db, "u2")
    [a, b] = await outbox.claim_due(db, lease_s=0.2, limit=5)
    await outbox.mark_delivered(db, a["delivery_id"], 200)
    await asyncio.sleep(0.3)  # b's loop died mid-POST
    again = await outbox.claim_due(db, lease_s=30, limit=5)
    assert [d["delivery_id"] for d in again] == [b["delivery_id"]] and again[0]["attempts"] == 2
    assert await outbox.count_pending(db) == 1  # b, leased again; a is delivered
    assert await outbox.purge_expired(db) == 0  # kept for its subscriber to read
    await outbox.mark_delivered(db, b["delivery_id"], 200, keep_s=-1)  # kept long enough already
    assert await outbox.purge_expired(db) == 1
    left = [d.delivery_id for upload_id in ("u1", "u2") for d in await outbox.deliveries_of_upload(db, upload_id)]
    assert left == [a["delivery_id"]]


async def test_a_paused_subscription_holds_its_deliveries_until_resumed(db):
    sub = await subs.add_subscription(db, "obs2", "https://tom.example.org/hook", "all", None)
    await record(db, "u1", sub.subscription_id)
    assert not await subs.record_failure(db, sub.subscription_id, 2, "HTTP 503")
    assert await subs.record_failure(db, sub.subscription_id, 2, "HTTP 503")
    paused = await subs.get_subscription(db, sub.subscription_id, "obs2")
    assert paused is not None and paused.state == "paused" and "HTTP 503" in (paused.paused_reason or "")
    assert await outbox.hold_pending(db, sub.subscription_id) == 1
    assert await outbox.claim_due(db, lease_s=30, limit=5) == []
    assert await subs.resume(db, sub.subscription_id, "obs1") is None  # not its owner
    resumed = await subs.resume(db, sub.subscription_id, "obs2")
    assert resumed is not None and resumed.state == "active" and resumed.consecutive_failures == 0
    assert await outbox.release(db, sub.subscription_id) == 1
    [claimed] = await outbox.claim_due(db, lease_s=30, limit=5)
    assert claimed["delivery_id"] == f"u1.{sub.subscription_id}"
    # its retry bound counts from the resume, whatever type the database gives the time back as
    assert abs((utcnow() - as_utc(claimed["released_at"])).total_seconds()) < 10


async def test_subscriptions_match_by_scope(db):
    alert = await subs.add_subscription(db, "obs2", "https://a.example.org/", "alert", "ivo://x#A")
    every = await subs.add_subscription(db, "obs2", "https://b.example.org/", "all", None)
    mine = await subs.add_subscription(db, "obs1", "https://c.example.org/", "mine", None)

    async def ids(ivorn: str, observatory_id: str, new_datapoint: bool) -> set[str]:
        found = await subs.matching(db, ivorn=ivorn, observatory_id=observatory_id, new_datapoint=new_datapoint)
        return {d["subscription_id"] for d in found}

    assert await ids("ivo://x#A", "obs1", True) == {alert.subscription_id, every.subscription_id, mine.subscription_id}
    assert await ids("ivo://x#B", "obs3", True) == {every.subscription_id}
    assert await ids("ivo://x#A", "obs1", False) == {mine.subscription_id}  # a dry run or a failure: its owner's only


async def test_a_webhook_secret_is_made_once_and_rotated(db):
    first = await secret_of(db, "obs1")
    assert first["secret"].startswith("whsec_") and (await secret_of(db, "obs1"))["secret"] == first["secret"]
    rotated = await rotate_secret(db, "obs1")
    assert rotated["secret"] != first["secret"] and (await secret_of(db, "obs1"))["secret"] == rotated["secret"]
