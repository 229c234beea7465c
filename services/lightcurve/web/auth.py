"""Home, log in, log out.

Every POST but /login carries the session's anti-CSRF token; /login needs a
same-origin browser request or its own form's token (shared/session.py).
"""

from __future__ import annotations

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve.pages import attr, escape, message_box
from services.lightcurve.web.common import (
    USER,
    csrf_of,
    csrf_ok,
    current_user,
    read_form,
    render,
    secret,
)
from shared import session
from shared.auth import UNKNOWN
from shared.db.client import unavailable
from shared.db.observatories import find_by_hashtag
from shared.db.sessions import revoke
from shared.hashtags import looks_like_hashtag


def safe_next(value: str | None, default: str = "/upload") -> str:
    """Only a path on this site: no scheme, no ``//host``, no backslash tricks."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or not value.isprintable():
        return default
    return value


async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/upload" if await current_user(request) else "/login")


def _login_form(next_path: str, error: str | None = None, info: str | None = None, token: str = "") -> str:
    return f"""{message_box(error, "error")}{message_box(info)}
<form method="post" action="/login" class="card narrow" id="login-form">
<input type="hidden" name="csrf" value="{attr(token)}">
<p>Log in with your observatory's hashtag (the key the administrator gave you; the same as for
<code>curl -F hashtag=...</code>).</p>
<label for="hashtag">Hashtag</label>
<input type="password" id="hashtag" name="hashtag" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{attr(next_path)}">
<button type="submit" id="login-submit">Log in</button>
</form>"""


def _login_nonce(request: web.Request) -> tuple[str, bool]:
    """The login form's pre-session nonce (its cookie), and whether it is new."""
    nonce = request.cookies.get(session.LOGIN_COOKIE, "")
    if 16 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum():
        return nonce, False
    return session.new_login_nonce(), True


def _with_login_nonce(request: web.Request, response: web.StreamResponse, nonce: str, new: bool) -> None:
    if new:
        response.set_cookie(
            session.LOGIN_COOKIE,
            nonce,
            max_age=session.MAX_AGE,
            path="/login",
            httponly=True,
            samesite="Strict",
            secure=session.cookie_secure(request),
        )


async def _login_answer(
    request: web.Request, next_path: str, *, error: str | None = None, info: str | None = None, status: int = 200
) -> web.Response:
    nonce, new = _login_nonce(request)
    token = session.login_token(nonce, secret(request))
    response = await render(request, "Log in", _login_form(next_path, error, info, token), status=status)
    _with_login_nonce(request, response, nonce, new)
    return response


async def login_page(request: web.Request) -> web.Response:
    next_path = safe_next(request.query.get("next"))
    info = "You are logged out." if request.query.get("bye") else None
    user = await current_user(request)
    if user is not None:
        info = f"You are logged in as {user.name}."
    return await _login_answer(request, next_path, info=info)


def login_allowed(request: web.Request, form) -> bool:
    """A login from our own login page: a same-origin browser request, or the form's token.

    Otherwise a page elsewhere could log its visitor in as the attacker's
    observatory (and collect what the visitor then uploads).
    """
    if session.same_origin(request.headers, session.request_origin(request)):
        return True
    token = form.get(session.CSRF_FIELD)
    return session.check_login_token(
        request.cookies.get(session.LOGIN_COOKIE), token if isinstance(token, str) else None, secret(request)
    )


async def login(request: web.Request) -> web.Response:
    form = await read_form(request)
    next_path = safe_next(form.get("next"))
    if not login_allowed(request, form):
        request[USER] = None
        return await _login_answer(
            request,
            next_path,
            status=403,
            error="This login did not come from photcal's own login page: log in here.",
        )
    hashtag = str(form.get("hashtag") or "").strip()
    observatory = None
    if looks_like_hashtag(hashtag):
        try:
            observatory = await find_by_hashtag(request.app["db"], request.app["pepper"], hashtag)
        except PyMongoError as exc:
            raise unavailable(exc) from exc
    if observatory is None:
        request[USER] = None
        error = "Give your hashtag." if not hashtag else f"That hashtag is not known: {UNKNOWN}."
        return await _login_answer(request, next_path, error=error, status=401)
    response = web.HTTPSeeOther(next_path)
    # Strict: not sent with requests other sites start; Secure behind TLS (the gateway's trusted proxy says so)
    response.set_cookie(
        session.COOKIE,
        session.encode(hashtag, secret(request)),
        max_age=session.MAX_AGE,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=session.cookie_secure(request),
    )
    raise response


async def logout_page(request: web.Request) -> web.Response:
    """GET /logout: a page with the log-out button (a link elsewhere cannot log anyone out)."""
    user = await current_user(request)
    if user is None:
        return await render(request, "Log out", '<p class="msg info" role="status">You are not logged in.</p>')
    content = f"""<form method="post" action="/logout" class="card narrow" id="logout-form">
<p>Log out of {escape(user.name)}? The login cookie stops working at once, also any copy of it.</p>
<input type="hidden" name="csrf" value="{attr(csrf_of(request))}">
<button type="submit" id="logout-confirm">Log out</button>
</form>"""
    return await render(request, "Log out", content)


async def logout(request: web.Request) -> web.Response:
    """POST /logout with the session's CSRF token: the session is revoked (every replica refuses it)."""
    form = await read_form(request)
    found = session.read(request.cookies.get(session.COOKIE), secret(request))
    if found is not None:
        if not csrf_ok(request, form):
            raise web.HTTPSeeOther("/logout")  # not from our page: ask, with our own form
        try:
            await revoke(request.app["db"], found.session_id, found.expires)
        except PyMongoError as exc:
            raise unavailable(exc) from exc
    response = web.HTTPSeeOther("/login?bye=1")
    response.del_cookie(session.COOKIE, path="/")
    raise response
