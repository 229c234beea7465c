"""Webhook subscriptions: an observatory's URL subscribed to an alert, to every alert, or to its own uploads.

``scope_key`` is what an event is matched by (single-field index): ``all``, ``alert|<ivorn>`` or
``mine|<observatory_id>``. A subscription whose POSTs keep failing is paused (``state``, with
``paused_reason``) by the notify service; its owner resumes it.
"""

from __future__ import annotations

import uuid
from typing import Any

from pymongo import ReturnDocument

from shared.contracts.messages import utcnow
from shared.contracts.webhooks import (
    EVENTS_BEFORE_RECALIBRATIONS,
    WEBHOOK_EVENTS,
    Subscription,
    SubscriptionScope,
    WebhookEvent,
)
from shared.db.client import Database


def scope_key(scope: SubscriptionScope, *, ivorn: str | None = None, observatory_id: str = "") -> str:
    if scope == "alert":
        return f"alert|{ivorn}"
    if scope == "mine":
        return f"mine|{observatory_id}"
    return "all"


def _view(doc: dict[str, Any]) -> Subscription:
    sid = doc["subscription_id"]
    links = {
        "self": f"/api/v1/subscriptions/{sid}",
        "deliveries": f"/api/v1/subscriptions/{sid}/deliveries",
        "resume": f"/api/v1/subscriptions/{sid}/resume",
    }
    return Subscription.model_validate(doc | {"links": links})


async def add_subscription(
    db: Database,
    observatory_id: str,
    url: str,
    scope: SubscriptionScope,
    ivorn: str | None,
    *,
    events: list[WebhookEvent] | None = None,
) -> Subscription:
    """A new active subscription; ``events`` what it is posted (default: results and recalibrations)."""
    wanted = set(WEBHOOK_EVENTS if events is None else events)
    doc = {
        "subscription_id": uuid.uuid4().hex[:16],
        "observatory_id": observatory_id,
        "url": url,
        "scope": scope,
        "ivorn": ivorn if scope == "alert" else None,
        "scope_key": scope_key(scope, ivorn=ivorn, observatory_id=observatory_id),
        "events": [e for e in WEBHOOK_EVENTS if e in wanted],
        "state": "active",
        "paused_reason": None,
        "paused_at": None,
        "consecutive_failures": 0,
        "created_at": utcnow(),
    }
    await db.subscriptions.insert_one(dict(doc))
    return _view(doc)


async def list_subscriptions(db: Database, observatory_id: str) -> list[Subscription]:
    cursor = db.subscriptions.find({"observatory_id": observatory_id}, {"_id": 0})
    docs = [doc async for doc in cursor]
    return [_view(doc) for doc in sorted(docs, key=lambda d: str(d["created_at"]))]


async def get_subscription(
    db: Database, subscription_id: str, observatory_id: str | None = None
) -> Subscription | None:
    """The subscription; with ``observatory_id``, only if it is that observatory's (else None: not told apart)."""
    doc = await db.subscriptions.find_one({"subscription_id": subscription_id}, {"_id": 0})
    if doc is None or (observatory_id is not None and doc.get("observatory_id") != observatory_id):
        return None
    return _view(doc)


async def owner_of(db: Database, subscription_id: str) -> str | None:
    doc = await db.subscriptions.find_one({"subscription_id": subscription_id}, {"observatory_id": 1})
    return None if doc is None else str(doc["observatory_id"])


async def delete_subscription(db: Database, subscription_id: str, observatory_id: str) -> bool:
    res = await db.subscriptions.delete_one({"subscription_id": subscription_id, "observatory_id": observatory_id})
    return res.deleted_count == 1


async def matching(
    db: Database,
    *,
    ivorn: str,
    observatory_id: str | None,
    new_datapoint: bool,
    event: WebhookEvent = "calibrated",
) -> list[dict[str, Any]]:
    """The subscriptions an event goes to (documents, with ``observatory_id``), those asking for ``event``.

    ``mine``: the uploading observatory's, for every result; ``alert`` and ``all``: only a new
    datapoint (a stored, successful calibration): another observatory's failures and dry runs are
    its own business. A recalibration changes a stored datapoint: ``new_datapoint`` is true for it.
    """
    keys = [scope_key("mine", observatory_id=observatory_id)] if observatory_id else []
    if new_datapoint:
        keys += ["all", scope_key("alert", ivorn=ivorn)]
    found: list[dict[str, Any]] = []
    for key in keys:  # one equality query a key: what the embedded database serves through its index
        found += [doc async for doc in db.subscriptions.find({"scope_key": key}, {"_id": 0})]
    # asked for in Python: a document stored before ``events`` existed has none (results only)
    return [doc for doc in found if event in doc.get("events", EVENTS_BEFORE_RECALIBRATIONS)]


async def record_failure(db: Database, subscription_id: str, pause_after: int, reason: str) -> bool:
    """One more failed POST in a row; True if this one paused the subscription (``pause_after`` in a row)."""
    doc = await db.subscriptions.find_one_and_update(
        {"subscription_id": subscription_id},
        {"$inc": {"consecutive_failures": 1}},
        return_document=ReturnDocument.AFTER,
    )
    if doc is None or doc.get("state") == "paused" or int(doc.get("consecutive_failures", 0)) < pause_after:
        return False
    paused = await db.subscriptions.update_one(
        {"subscription_id": subscription_id, "state": "active"},
        {
            "$set": {
                "state": "paused",
                "paused_at": utcnow(),
                "paused_reason": f"paused after {doc['consecutive_failures']} failed deliveries in a row; "
                f"the last: {reason}. Fix the receiver, then POST /api/v1/subscriptions/{subscription_id}/resume",
            }
        },
    )
    return paused.modified_count == 1


async def record_success(db: Database, subscription_id: str) -> None:
    await db.subscriptions.update_one({"subscription_id": subscription_id}, {"$set": {"consecutive_failures": 0}})


async def resume(db: Database, subscription_id: str, observatory_id: str) -> Subscription | None:
    doc = await db.subscriptions.find_one_and_update(
        {"subscription_id": subscription_id, "observatory_id": observatory_id},
        {"$set": {"state": "active", "paused_reason": None, "paused_at": None, "consecutive_failures": 0}},
        projection={"_id": 0},
        return_document=ReturnDocument.AFTER,
    )
    return None if doc is None else _view(doc)
