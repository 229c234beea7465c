"""Hashtag authentication: form field, query parameter or ``hashtag`` cookie (CPCS clients use all three).

Shared by the gateway (uploads, new events, CPCS write endpoints) and the
lightcurve service (CPCS read endpoints, which check the hashtag as CPCS did).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from pymongo.errors import PyMongoError

from shared import session
from shared.contracts.errors import ErrorCode
from shared.db import Database
from shared.db.client import unavailable
from shared.db.observatories import Observatory, find_by_hashtag
from shared.errors import Forbidden, Unauthorized
from shared.hashtags import looks_like_hashtag

# BHTOM shows an error body to its user only when it is under 100 characters: keep these short
UNKNOWN = "unknown hashtag; ask the administrator"


#: request key of a callable ``(request, hashtag)`` called when a request's hashtag is read
ON_HASHTAG = "photcal.on_hashtag"


def hashtag_of(request: web.Request, form: Mapping[str, str] | None = None) -> str | None:
    """The hashtag from the form, else the query string, else the ``hashtag`` cookie, else the browser's login."""
    for source in (form or {}, request.query, request.cookies, _SessionHashtag(request, form)):
        value = source.get("hashtag")
        if value:
            hashtag = str(value).strip()
            on_hashtag = request.get(ON_HASHTAG)  # the gateway's per-hashtag rate limit
            if on_hashtag is not None:
                on_hashtag(request, hashtag)
            return hashtag
    return None


#: BHTOM-short (CPCS paths): what a page elsewhere gets when it posts with a visitor's login
CSRF_REFUSED = "this write needs the page's csrf token: reload the page, send again"


class _SessionHashtag:
    """The hashtag in the signed session cookie that /login sets (shared/session.py), read only when asked.

    A browser sends that cookie also with a form another page (another port of
    this host is the same site) made it post: so a write taking its hashtag
    from the cookie needs the session's CSRF token or a same-origin request.
    Hashtags sent explicitly (form, query, ``hashtag`` cookie: scripts) never get here.
    """

    def __init__(self, request: web.Request, form: Mapping[str, str] | None = None) -> None:
        self.request = request
        self.form = form

    def get(self, _key: str) -> str | None:
        found = session.session_from_cookies(self.request.cookies, self.request.app)
        if found is None:
            return None
        if self.request.method in session.WRITE_METHODS and not session.write_allowed(self.request, self.form):
            raise Forbidden(CSRF_REFUSED, code=ErrorCode.CSRF_FAILED)
        return found.hashtag


async def authenticate(
    db: Database, pepper: bytes, hashtag: str | None, *, upload: bool = False, admin: bool = False, lookup=None
) -> Observatory:
    """``lookup(db, pepper, hashtag)`` replaces the database lookup.

    (The gateway's, which survives a database outage.)
    """
    if not hashtag:
        raise Unauthorized("no hashtag: send the 'hashtag' field", code=ErrorCode.MISSING_HASHTAG)
    if not looks_like_hashtag(hashtag):
        raise Unauthorized(UNKNOWN)
    try:
        observatory = await (lookup or find_by_hashtag)(db, pepper, hashtag)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    if observatory is None:
        raise Unauthorized(UNKNOWN)
    if upload and not observatory.allow_upload:
        raise Forbidden("this hashtag may not upload data")
    if admin and not observatory.is_admin:
        raise Forbidden("this needs an administrator's hashtag", code=ErrorCode.NOT_ADMIN)
    return observatory
