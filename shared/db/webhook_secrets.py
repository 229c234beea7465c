"""Each observatory's webhook secret: the key its callbacks and subscription deliveries are signed with.

Kept readable (the notify service signs with it; a receiver must be given the same string), so it is
not hashed like the hashtag; ``_id`` is the observatory_id. Made on first use (the first read by its
owner or the first delivery), replaced by :func:`rotate_secret`: the old one stops signing at once.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import TypedDict

from shared.contracts.messages import utcnow
from shared.db.client import Database, insert_once

#: what every secret starts with, so that one pasted into the wrong place is recognised
PREFIX = "whsec_"


class WebhookSecret(TypedDict):
    _id: str
    secret: str
    created_at: datetime


def new_secret() -> str:
    return PREFIX + secrets.token_hex(24)


async def secret_of(db: Database, observatory_id: str) -> WebhookSecret:
    """The observatory's secret, made now if it has none (two first uses at once agree: the first insert wins)."""
    doc = await db.webhook_secrets.find_one({"_id": observatory_id})
    if doc is None:
        await insert_once(db.webhook_secrets, {"_id": observatory_id, "secret": new_secret(), "created_at": utcnow()})
        doc = await db.webhook_secrets.find_one({"_id": observatory_id})
    assert doc is not None, "inserted or found just now"
    return WebhookSecret(_id=doc["_id"], secret=doc["secret"], created_at=doc["created_at"])


async def rotate_secret(db: Database, observatory_id: str) -> WebhookSecret:
    """A new secret for the observatory; deliveries made from now on are signed with it."""
    doc = WebhookSecret(_id=observatory_id, secret=new_secret(), created_at=utcnow())
    await db.webhook_secrets.replace_one({"_id": observatory_id}, dict(doc), upsert=True)
    return doc
