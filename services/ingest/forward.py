"""The gateway's one forwarder: reads and pages are the lightcurve service's.

Which paths it forwards is the route table's ``forwarded`` column (shared/contracts/routes.py).

It passes what an API client and a browser page both need: the query string,
the form body of a POST, redirects as redirects (not followed), ``Set-Cookie``
(the login) and the security and cache headers. The gateway's client session
keeps no cookies: a forwarded request carries its own client's.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from services.ingest.guards import SCHEME_KEY, SMALL_BODY_BYTES, TOO_LARGE
from shared.contracts.errors import ErrorCode
from shared.contracts.routes import internal_paths
from shared.errors import BackendUnavailable, BadInput, NotFound, PayloadTooLarge

MAX_FORM_BYTES = SMALL_BODY_BYTES
REQUEST_HEADERS = {
    "accept",
    "accept-language",
    "cookie",
    "content-type",
    "x-correlation-id",
    "if-none-match",
    "if-modified-since",
    # the pages' same-origin and CSRF checks (shared/session.py) are made behind us
    "origin",
    "sec-fetch-site",
    "x-csrf-token",
}
RESPONSE_HEADERS = {
    "content-type",
    "content-disposition",
    "location",
    "set-cookie",
    "cache-control",
    "etag",
    "last-modified",
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
}


#: every service's own endpoints (shared/runtime.py): the gateway answers its own, never forwards another's
INTERNAL_PATHS = internal_paths()


def upstream_path(raw_path: str) -> str:
    """The path and query to forward, exactly as the client encoded them (decoded once, by the service).

    A dot segment, plain or percent-encoded (``/lightcurve/%2e%2e/%2e%2e/metrics``), is refused: an
    HTTP client resolves it, and the request would reach another path than the one routed here.
    """
    path = raw_path.partition("?")[0]
    for segment in path.split("/"):
        if unquote(segment) in (".", ".."):
            raise BadInput("the path has a '.' or '..' segment: ask for the page itself", code=ErrorCode.BAD_PATH)
    if path.rstrip("/") in INTERNAL_PATHS:
        raise NotFound("no such page: see the README for the API")
    return raw_path


async def _read_form(request: web.Request) -> bytes:
    """The whole body (it may arrive in several chunks), refused past MAX_FORM_BYTES (decompressed)."""
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLarge(TOO_LARGE)
    return bytes(body)


def forwarder(upstream: Callable[[web.Request], tuple[aiohttp.ClientSession, str]]):
    """A handler forwarding to ``base + path?query``; ``upstream(request)`` gives the client session and base URL."""

    async def forward_page(request: web.Request) -> web.StreamResponse:
        http, base = upstream(request)
        path = upstream_path(request.raw_path)
        # as sent: never re-quoted (which would decode a %25 a second time) nor normalised; raw non-ASCII is quoted
        target = URL(base + path, encoded=path.isascii())
        body = None
        if request.method == "POST":
            if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
                raise PayloadTooLarge(TOO_LARGE)
            body = await _read_form(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() in REQUEST_HEADERS}
        # the origin the client used, as the gateway believes it (services/ingest/proxies.py):
        # the login cookie's Secure flag and the pages' same-origin checks depend on it
        headers["X-Forwarded-Proto"] = request.get(SCHEME_KEY, request.scheme)
        headers["X-Forwarded-Host"] = request.host
        try:
            async with http.request(
                request.method,
                target,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as answer:
                payload = await answer.read()
                kept = CIMultiDict((k, v) for k, v in answer.headers.items() if k.lower() in RESPONSE_HEADERS)
                return web.Response(body=payload, status=answer.status, headers=kept)
        except aiohttp.ClientError as exc:
            raise BackendUnavailable("the light-curve service is not answering; try again in a minute") from exc

    return forward_page


def to_lightcurve(request: web.Request) -> tuple[aiohttp.ClientSession, str]:
    gateway = request.app["gateway"]
    return gateway.http, gateway.settings.lightcurve_base


#: the handler for every forwarded route
forward = forwarder(to_lightcurve)
