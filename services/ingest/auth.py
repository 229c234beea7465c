"""Hashtag authentication: form field, query parameter or ``hashtag`` cookie (CPCS clients use all three)."""

from __future__ import annotations

from aiohttp import web
from pymongo.errors import PyMongoError

from shared.db import Database
from shared.db.client import unavailable
from shared.db.observatories import Observatory, find_by_hashtag
from shared.errors import Forbidden, Unauthorized
from shared.hashtags import looks_like_hashtag


def hashtag_of(request: web.Request, form: dict[str, str] | None = None) -> str | None:
    for source in (form or {}, request.query, request.cookies):
        value = source.get("hashtag")
        if value:
            return str(value).strip()
    return None


async def authenticate(db: Database, pepper: bytes, hashtag: str | None, *, upload: bool = False) -> Observatory:
    if not hashtag:
        raise Unauthorized("hashtag is missing: send your observatory's hashtag as the 'hashtag' field", code="missing_hashtag")
    if not looks_like_hashtag(hashtag):
        raise Unauthorized("unknown hashtag: check it, or ask the administrator for one")
    try:
        observatory = await find_by_hashtag(db, pepper, hashtag)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    if observatory is None:
        raise Unauthorized("unknown hashtag: check it, or ask the administrator for one")
    if upload and not observatory.allow_upload:
        raise Forbidden("this observatory may not upload; ask the administrator")
    return observatory
