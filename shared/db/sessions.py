"""Logged-out browser sessions (shared/session.py): revoked until their cookie would have expired.

One document per logout, ``{_id: session id, expires_at}``; every gateway and
lightcurve replica reads the same collection, so a cookie saved before a logout
is refused everywhere at once. MongoDB's TTL index on ``expires_at`` drops a
record once its cookie has expired anyway (the cookie's own expiry then refuses it).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from shared.db.client import Database

COLLECTION = "revoked_sessions"


async def ensure_ttl_index(db: Database) -> None:
    await db.db[COLLECTION].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl")


async def revoke(db: Database, session_id: str, expires: float) -> None:
    doc = {"_id": session_id, "expires_at": datetime.fromtimestamp(expires, UTC), "revoked_at": datetime.now(UTC)}
    try:
        await db.db[COLLECTION].insert_one(doc)
    except DuplicateKeyError:
        pass  # logged out twice: already revoked


async def is_revoked(db: Database, session_id: str) -> bool:
    return await db.db[COLLECTION].find_one({"_id": session_id}, {"_id": 1}) is not None
