"""The outbox of webhook POSTs: one document a delivery, written before the event that asked for it is acked.

The notify service's consumer writes a delivery for an upload's ``callback_url`` and one for each
matching subscription (``delivery_id`` ``<upload_id>.callback`` or ``<upload_id>.<subscription_id>``;
a recalibration's ``<upload_id>.<subscription_id>.<job_id>``; unique: an event delivered twice writes
each once), then acks the event; its delivery loop posts them.

``due_key`` (ISO text, indexed; absent once delivered, failed or held) is when a pending delivery is
next to be tried. A loop *claims* one by moving its ``due_key`` a lease ahead, conditionally on the
value it read: two loops never post it at once, and a loop killed mid-POST leaves it due again when the
lease ends (at least once; the receiver de-duplicates by ``X-Photcal-Delivery``). Keys as text, as in
``shared.db.uploads``: the embedded database's ``$set`` of a date stores it as text, which sorts apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import ReturnDocument

from shared.contracts.messages import utcnow
from shared.contracts.webhooks import Delivery, DeliveryState
from shared.db.client import Database, insert_once

DeliveryKind = Literal["callback", "subscription"]
#: seconds a delivered or failed delivery is kept by default (PHOTCAL_NOTIFY_KEEP_FOR)
KEEP_S = 30 * 24 * 3600.0


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")


def delivery_id(upload_id: str, subscription_id: str | None, job_id: str | None = None) -> str:
    """One id per upload and receiver; a recalibration job's post is one more per job."""
    base = f"{upload_id}.{subscription_id or 'callback'}"
    return base if job_id is None else f"{base}.{job_id}"


async def add_delivery(
    db: Database,
    *,
    upload_id: str,
    url: str,
    observatory_id: str,
    body: bytes,
    subscription_id: str | None = None,
    held: bool = False,
    correlation_id: str | None = None,
    job_id: str | None = None,
) -> bool:
    """Record a POST to make (``held``: its subscription is paused; ``job_id``: it posts that
    recalibration job's change of the upload's datapoint); False if it was recorded already."""
    now = utcnow()
    doc: dict[str, Any] = {
        "delivery_id": delivery_id(upload_id, subscription_id, job_id),
        "kind": "subscription" if subscription_id else "callback",
        "event": "calibrated" if job_id is None else "recalibrated",
        "upload_id": upload_id,
        "job_id": job_id,
        "subscription_id": subscription_id,
        #: whose webhook secret signs it: the subscriber's, or the uploading observatory's
        "observatory_id": observatory_id,
        "url": url,
        "body": body.decode(),
        "state": "held" if held else "pending",
        "attempts": 0,
        "created_at": now,
        #: the upload's correlation id (X-Correlation-ID): the delivery's log lines carry it too
        "correlation_id": correlation_id,
    }
    if not held:
        doc["due_key"] = _iso(now)
        doc["next_attempt_at"] = now
    return await insert_once(db.deliveries, doc)


async def claim_due(db: Database, *, lease_s: float, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` due deliveries, each claimed for ``lease_s`` seconds (attempts counted), oldest due first."""
    now = utcnow()
    cursor = db.deliveries.find({"due_key": {"$lte": _iso(now)}}, {"_id": 0}).sort("due_key", 1).limit(limit)
    claimed = []
    for doc in [doc async for doc in cursor]:
        won = await db.deliveries.find_one_and_update(
            {"delivery_id": doc["delivery_id"], "due_key": doc["due_key"]},
            {
                "$set": {"due_key": _iso(now + timedelta(seconds=lease_s)), "last_attempt_at": now},
                "$inc": {"attempts": 1},
            },
            projection={"_id": 0},
            return_document=ReturnDocument.AFTER,
        )
        if won is not None:  # else another loop claimed it between the read and here
            claimed.append(won)
    return claimed


async def _finish(db: Database, delivery_id_: str, state: str, fields: dict, keep_s: float) -> None:
    """A delivery done with (``state`` delivered or failed): kept ``keep_s`` seconds more, then dropped."""
    now = utcnow()
    await db.deliveries.update_one(
        {"delivery_id": delivery_id_},
        {
            "$set": {
                "state": state,
                f"{state}_at": now,
                "expires_key": _iso(now + timedelta(seconds=keep_s)),
                "next_attempt_at": None,
                **fields,
            },
            "$unset": {"due_key": ""},
        },
    )


async def mark_delivered(db: Database, delivery_id_: str, status: int, keep_s: float = KEEP_S) -> None:
    """Delivered; the record is kept ``keep_s`` seconds more (the subscriber's list), then dropped."""
    await _finish(db, delivery_id_, "delivered", {"last_status": status, "last_error": None}, keep_s)


async def mark_retry(db: Database, delivery_id_: str, status: int | None, error: str, at: datetime) -> None:
    await db.deliveries.update_one(
        {"delivery_id": delivery_id_, "state": "pending"},
        {"$set": {"last_status": status, "last_error": error[:500], "next_attempt_at": at, "due_key": _iso(at)}},
    )


async def mark_failed(db: Database, delivery_id_: str, status: int | None, error: str, keep_s: float = KEEP_S) -> None:
    """Given up (a dead letter); kept ``keep_s`` seconds for its subscriber to read (or a resume to retry)."""
    await _finish(db, delivery_id_, "failed", {"last_status": status, "last_error": error[:500]}, keep_s)


async def hold_pending(db: Database, subscription_id: str) -> int:
    """A paused subscription's pending deliveries wait (``held``) until it is resumed."""
    res = await db.deliveries.update_many(
        {"subscription_id": subscription_id, "state": "pending"},
        {"$set": {"state": "held", "next_attempt_at": None}, "$unset": {"due_key": ""}},
    )
    return res.modified_count


async def release(db: Database, subscription_id: str) -> int:
    """A resumed subscription's held and failed deliveries are due now, their retry bound counted from now."""
    now = utcnow()
    res = await db.deliveries.update_many(
        {"subscription_id": subscription_id, "state": {"$in": ["held", "failed"]}},
        {
            "$set": {"state": "pending", "due_key": _iso(now), "next_attempt_at": now, "released_at": now},
            "$unset": {"expires_key": ""},
        },
    )
    return res.modified_count


async def drop_undelivered(db: Database, subscription_id: str) -> int:
    """A deleted subscription's pending and held deliveries are failed: nothing is posted for it any more."""
    res = await db.deliveries.update_many(
        {"subscription_id": subscription_id, "state": {"$in": ["pending", "held"]}},
        {
            "$set": {
                "state": "failed",
                "failed_at": utcnow(),
                "last_error": "the subscription was deleted",
                "expires_key": _iso(utcnow() + timedelta(seconds=KEEP_S)),
            },
            "$unset": {"due_key": ""},
        },
    )
    return res.modified_count


async def list_deliveries(
    db: Database, subscription_id: str, *, state: DeliveryState | None = None, skip: int = 0, limit: int = 50
) -> list[Delivery]:
    query: dict[str, Any] = {"subscription_id": subscription_id}
    if state is not None:
        query["state"] = state
    docs = [doc async for doc in db.deliveries.find(query, {"_id": 0, "body": 0})]
    docs.sort(key=lambda d: str(d["created_at"]), reverse=True)  # a subscription's are few enough to sort here
    return [Delivery.model_validate(doc) for doc in docs[skip : skip + limit]]


async def deliveries_of_upload(db: Database, upload_id: str) -> list[Delivery]:
    docs = [doc async for doc in db.deliveries.find({"upload_id": upload_id}, {"_id": 0, "body": 0})]
    return [Delivery.model_validate(doc) for doc in docs]


async def purge_expired(db: Database) -> int:
    """Drop the delivered and failed deliveries kept long enough (their ``expires_key`` passed)."""
    res = await db.deliveries.delete_many({"expires_key": {"$lt": _iso(utcnow())}})
    return res.deleted_count


async def count_pending(db: Database) -> int:
    """Deliveries waiting to be posted (pending: with a ``due_key``; held ones not): the backlog gauge.

    Counted through the ``due_key`` index: the collection holds a month of delivered ones beside them."""
    return await db.deliveries.count_documents({"due_key": {"$gte": ""}})


async def callback_state(db: Database, upload_id: str) -> dict[str, Any] | None:
    """An upload's callback as its status shows it: state, attempts, the receiver's last answer (no URL, no body)."""
    doc = await db.deliveries.find_one(
        {"delivery_id": delivery_id(upload_id, None)},
        {"_id": 0, "state": 1, "attempts": 1, "last_status": 1, "last_error": 1, "delivered_at": 1},
    )
    return None if doc is None else {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in doc.items()}
