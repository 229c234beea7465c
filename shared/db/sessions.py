"""Logged-out browser sessions (shared/session.py): revoked until their cookie would have expired.

One document per logout, ``{_id: session id, expires_at}``; every gateway and
lightcurve replica reads the same collection, so a cookie saved before a logout
is refused everywhere at once. MongoDB's TTL index on ``expires_at`` drops a
record once its cookie has expired anyway (the cookie's own expiry then refuses it).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TypedDict

from pymongo.errors import DuplicateKeyError

from shared.db.client import Database


class RevokedSession(TypedDict):
    #: the session id the cookie carries
    _id: str
    #: when the cookie would have expired (the TTL index's field, shared.contracts.collections.REVOKED_SESSIONS)
    expires_at: datetime
    revoked_at: datetime


async def revoke(db: Database, session_id: str, expires: float) -> None:
    doc: RevokedSession = {
        "_id": session_id,
        "expires_at": datetime.fromtimestamp(expires, UTC),
        "revoked_at": datetime.now(UTC),
    }
    with contextlib.suppress(DuplicateKeyError):  # logged out twice: already revoked
        await db.revoked_sessions.insert_one(doc)


async def is_revoked(db: Database, session_id: str) -> bool:
    return await db.revoked_sessions.find_one({"_id": session_id}, {"_id": 1}) is not None
