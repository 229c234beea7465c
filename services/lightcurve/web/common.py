"""What every page shares: the logged-in observatory, the anti-CSRF token, the page frame, form reading.

Logged in = a valid ``photcal_session`` cookie (shared/session.py) whose hashtag still names an
observatory, and whose session was not logged out (shared/db/sessions.py).
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve import pages
from shared import session
from shared.db.client import unavailable
from shared.db.observatories import Observatory, find_by_hashtag
from shared.db.sessions import is_revoked
from shared.hashtags import looks_like_hashtag

USER = "photcal.observatory"
PER_PAGE = 50
MAX_PER_PAGE = 500
MAX_FORM = 64 * 1024


def secret(request: web.Request) -> bytes:
    return session.secret_of(request.app)


async def current_user(request: web.Request) -> Observatory | None:
    if USER in request:
        return request[USER]
    user = None
    found = session.read(request.cookies.get(session.COOKIE), secret(request))
    if found and looks_like_hashtag(found.hashtag):
        try:
            if not await is_revoked(request.app["db"], found.session_id):
                user = await find_by_hashtag(request.app["db"], request.app["pepper"], found.hashtag)
        except PyMongoError as exc:
            raise unavailable(exc) from exc
    request[USER] = user
    return user


def csrf_of(request: web.Request) -> str | None:
    cookie = request.cookies.get(session.COOKIE)
    return session.csrf_token(cookie, secret(request)) if cookie else None


def csrf_ok(request: web.Request, form) -> bool:
    return session.check_csrf(request.cookies.get(session.COOKIE), form.get("csrf"), secret(request))


async def render(
    request: web.Request,
    title: str,
    content: str,
    *,
    status: int = 200,
    active: str = "",
    scripts: tuple[str, ...] = (),
    styles: tuple[str, ...] = (),
) -> web.Response:
    user = await current_user(request)
    html = pages.page(
        title,
        content,
        user=user.name if user else None,
        csrf=csrf_of(request),
        scripts=scripts,
        styles=styles,
        active=active,
    )
    headers = dict(pages.SECURITY_HEADERS) | {"Cache-Control": "no-store"}
    return web.Response(text=html, content_type="text/html", status=status, headers=headers)


def redirect_to_login(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))


async def read_form(request: web.Request):
    if request.content_length is not None and request.content_length > MAX_FORM:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM, actual_size=request.content_length)
    return await request.post()


def clamped_int(value, default: int, low: int = 1, high: int = 10**9) -> int:
    try:
        return min(max(int(value), low), high)
    except (TypeError, ValueError):
        return default
