"""What every CPCS-compatible endpoint shares, in both services that serve them.

The CPCS paths (at the root and under ``/followup/``) are rows of ``shared/contracts/routes.py``.

CPCS clients send parameters in the query string or as a form (urlencoded or
multipart, e.g. ``curl -F``), GET or POST, and ask for ``json`` or ``html``
with ``outputFormat`` (uploads) or ``format`` (lists). An error is answered in
the format asked: JSON (``message`` first, short: BHTOM shows bodies under 100
characters) from the services' error middleware, or a small HTML page.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from html import escape

from aiohttp import web

from shared import webframe
from shared.contracts.errors import ErrorCode
from shared.errors import BadInput, PhotcalError, RateLimited

#: a form on a CPCS endpoint other than the upload is a few short fields
MAX_FORM_BYTES = 64 * 1024
#: the request key a handler sets once it knows the client wants HTML (errors then answer HTML too)
WANT_HTML = "cpcs_want_html"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def parse_flag(value: object) -> bool:
    """A CPCS flag: 1/0, true/false (any case), yes/no; anything else is a ValueError."""
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("use 1 or 0")


async def request_params(request: web.Request) -> dict[str, str]:
    """Query parameters, overridden by form fields (urlencoded or multipart); files are ignored."""
    params = dict(request.query.items())
    if request.method == "POST" and request.can_read_body:
        if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
            raise BadInput("the form is too large for this endpoint", code=ErrorCode.TOO_LARGE)
        ctype = request.content_type
        if ctype.startswith("multipart/") or ctype == "application/x-www-form-urlencoded":
            posted = await request.post()
            params.update({k: v for k, v in posted.items() if isinstance(v, str)})
    return {k: v.strip() for k, v in params.items()}


def wants_html(request: web.Request, params: dict[str, str], default: bool | None) -> bool:
    """``outputFormat``/``format`` as asked; absent: the endpoint's CPCS default, else the Accept header."""
    asked = (params.get("outputFormat") or params.get("format") or "").strip().lower()
    if asked in {"html", "json"}:
        return asked == "html"
    if default is not None:
        return default
    accept = request.headers.get("Accept", "")
    return accept.split(",", 1)[0].strip().lower().startswith("text/html")


def page(title: str, content: str) -> str:
    """A CPCS HTML answer in the site's frame (shared/webframe.py): its styling and navigation."""
    return webframe.frame(title, content)


def html_response(title: str, content: str, status: int = 200) -> web.Response:
    return web.Response(text=page(title, content), content_type="text/html", status=status)


def error_page(exc: PhotcalError) -> web.Response:
    """The whole message, its code and ways on, in the site's frame (``class="message"`` kept for scripts)."""
    content = (
        f'<p class="message msg error" role="alert" id="msg-error">{escape(exc.message)}</p>'
        f'<p class="error hint">error: <code id="error-code">{escape(exc.code)}</code></p>'
        + _datapoint_of(exc.message)
        + '<p><a href="/upload">Back to the upload form</a> · <a href="/uploads">my uploads</a></p>'
    )
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    response = html_response("Error", content, exc.http_status)
    if headers:
        response.headers.update(headers)
    return response


_STORED_ID = re.compile(r"\(followup_id (\d{1,12})\)")


def _datapoint_of(message: str) -> str:
    """A duplicate's message names the stored datapoint: link its page."""
    found = _STORED_ID.search(message)
    if not found:
        return ""
    return f'<p><a href="/datapoints/{found[1]}" id="datapoint-link">the stored datapoint {found[1]}</a></p>'


def html_errors(handler: Handler) -> Handler:
    """Errors answer HTML when the handler has marked the request as wanting HTML; JSON otherwise."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except PhotcalError as exc:
            if request.get(WANT_HTML):
                return error_page(exc)
            raise

    return wrapped


def table(rows: list[tuple[str, object]]) -> str:
    def cell(value) -> str:
        if value is None:
            return "&ndash;"
        if isinstance(value, float):
            return f"{value:.5f}".rstrip("0").rstrip(".")
        return escape(str(value))

    body = "".join(f"<tr><th>{escape(k)}</th><td>{cell(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"
