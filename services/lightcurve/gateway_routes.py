"""The observer's pages as the gateway serves them: which paths, and a forwarder that keeps what pages need.

The pages live in this service (it has the database); the gateway, the one
public origin, forwards these paths here. Unlike the gateway's read forwarder,
this one passes what a browser page needs both ways: the form body of a POST,
redirects as redirects (not followed), ``Set-Cookie`` (the login), and the
security and cache headers. ``POST /upload`` and ``POST /cgi/upload`` stay the
gateway's own (the CPCS upload): only ``GET /upload`` (the form) comes here.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from shared.errors import BackendUnavailable, PayloadTooLarge

#: (method, path) the gateway forwards to the lightcurve service
PAGE_ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/logout"),
    ("POST", "/logout"),
    ("GET", "/upload"),
    ("GET", "/alerts"),
    ("GET", "/followup"),
    ("POST", "/datapoints/{followup_id:[0-9]{1,12}}/delete"),
    ("GET", "/lightcurve/{ivorn:.+}"),
    ("GET", "/events/new"),
    ("POST", "/events/new"),
    ("GET", "/static/{path:.+}"),
)
#: paths in PAGE_ROUTES the gateway must not also register with its read forwarder
PAGE_PATHS = frozenset(path for _, path in PAGE_ROUTES)

MAX_FORM_BYTES = 64 * 1024
REQUEST_HEADERS = {"accept", "accept-language", "cookie", "content-type", "x-correlation-id", "if-none-match",
                   "if-modified-since"}
RESPONSE_HEADERS = {
    "content-type", "content-disposition", "location", "set-cookie", "cache-control", "etag", "last-modified",
    "content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options",
}


def forwarder(upstream: Callable[[web.Request], tuple[aiohttp.ClientSession, str]]):
    """A handler forwarding to ``base + path?query``; ``upstream(request)`` gives the client session and base URL."""

    async def forward_page(request: web.Request) -> web.StreamResponse:
        http, base = upstream(request)
        body = None
        if request.method == "POST":
            if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
                raise PayloadTooLarge("the form is too large")
            body = await request.content.read(MAX_FORM_BYTES + 1)
            if len(body) > MAX_FORM_BYTES:
                raise PayloadTooLarge("the form is too large")
        headers = {k: v for k, v in request.headers.items() if k.lower() in REQUEST_HEADERS}
        headers["X-Forwarded-Proto"] = request.scheme
        try:
            async with http.request(
                request.method, base + request.raw_path, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as answer:
                payload = await answer.read()
                kept = CIMultiDict((k, v) for k, v in answer.headers.items() if k.lower() in RESPONSE_HEADERS)
                return web.Response(body=payload, status=answer.status, headers=kept)
        except aiohttp.ClientError as exc:
            raise BackendUnavailable("the page service is not answering; try again in a minute") from exc

    return forward_page


def add_forward_routes(router: web.UrlDispatcher, upstream) -> None:
    handler = forwarder(upstream)
    for method, path in PAGE_ROUTES:
        router.add_route(method, path, handler)
