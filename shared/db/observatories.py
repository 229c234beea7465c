"""Observatories and their hashtags (only the hash is stored)."""

from __future__ import annotations

import hmac
import uuid
from typing import Any

from pydantic import BaseModel, Field
from pymongo.errors import DuplicateKeyError

from shared.contracts.errors import ErrorCode
from shared.contracts.messages import utcnow
from shared.db.client import Database
from shared.errors import Conflict
from shared.hashtags import hash_hashtag, new_hashtag


class Observatory(BaseModel):
    observatory_id: str
    name: str
    lon: float | None = None
    lat: float | None = None
    filters: list[str] = Field(default_factory=list)
    allow_upload: bool = True
    is_admin: bool = False
    revoked: bool = False


async def add_observatory(
    db: Database,
    pepper: bytes,
    *,
    name: str,
    lon: float | None,
    lat: float | None,
    filters: list[str],
    is_admin: bool = False,
    allow_upload: bool = True,
    prefix: str = "",
) -> tuple[Observatory, str]:
    """Create an observatory; returns it and its hashtag (shown once, never stored).

    ``prefix`` (CPCS's ``newuser`` field, e.g. the observer's initials) starts the
    hashtag as in CPCS's ``ZKR_...``; the rest is random.
    """
    hashtag = f"{prefix}_{new_hashtag()}" if prefix else new_hashtag()
    obs = Observatory(
        observatory_id=uuid.uuid4().hex[:12],
        name=name,
        lon=lon,
        lat=lat,
        filters=filters,
        is_admin=is_admin,
        allow_upload=allow_upload,
    )
    doc: dict[str, Any] = obs.model_dump() | {"hashtag_hash": hash_hashtag(hashtag, pepper), "created": utcnow()}
    try:
        await db.observatories.insert_one(doc)
    except DuplicateKeyError as exc:
        raise Conflict(f"an observatory named {name!r} already exists", code=ErrorCode.OBSERVATORY_EXISTS) from exc
    return obs, hashtag


async def find_by_hashtag(db: Database, pepper: bytes, hashtag: str) -> Observatory | None:
    digest = hash_hashtag(hashtag, pepper)
    doc = await db.observatories.find_one({"hashtag_hash": digest})
    # the lookup is by a keyed digest the caller cannot steer; the final check is constant-time all the same
    if doc is None or doc.get("revoked") or not hmac.compare_digest(str(doc.get("hashtag_hash", "")), digest):
        return None
    return Observatory.model_validate(doc)


async def revoke(db: Database, name: str) -> bool:
    res = await db.observatories.update_one({"name": name}, {"$set": {"revoked": True, "revoked_at": utcnow()}})
    return res.matched_count == 1


async def rotate(db: Database, pepper: bytes, name: str) -> str | None:
    """A new hashtag for an existing observatory (its datapoints stay its own); the old one stops working."""
    hashtag = new_hashtag()
    res = await db.observatories.update_one(
        {"name": name},
        {"$set": {"hashtag_hash": hash_hashtag(hashtag, pepper), "revoked": False, "rotated_at": utcnow()}},
    )
    return hashtag if res.matched_count == 1 else None


async def list_observatories(db: Database) -> list[Observatory]:
    return [Observatory.model_validate(d) async for d in db.observatories.find({}).sort("name", 1)]


async def find_observatory(db: Database, key: str) -> Observatory | None:
    """By ``observatory_id``, else by name (as registered; both unique): the observatory page's address."""
    if not key or len(key) > 200:
        return None
    doc = await db.observatories.find_one({"observatory_id": key}) or await db.observatories.find_one({"name": key})
    return None if doc is None else Observatory.model_validate(doc)
