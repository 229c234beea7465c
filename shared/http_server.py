"""What every service's HTTP server does against slow, many or vanishing clients, and the headers it sends.

- **Headers in time**: a connection that has not sent a whole request (line
  and headers) within ``http_header_timeout`` seconds of opening it (or of its
  last answer, on a kept-alive connection) is closed. aiohttp's own
  ``keepalive_timeout`` is what does it (``RequestHandler`` closes a connection
  whose next request is not complete when it fires), so it is set to this.
- **Body at a minimum rate**: after ``http_body_grace`` seconds, a request
  whose body arrives at less than ``http_min_body_rate`` bytes a second on
  average is answered 408 (``slow_body``) and its connection closed.
- **Connections per IP**: at most ``http_max_connections_per_ip`` open at once
  from one peer address; more are closed as they open. Behind a proxy every
  connection comes from the proxy: raise it or set 0 (off) there.
- **A client that goes away** mid-request (an aborted upload) is not a server
  error: logged ``client_disconnected`` at info and counted with
  ``status="client_disconnected"`` (never under 5xx).
- **Headers**: ``Server: photcal`` (no versions); ``X-Content-Type-Options:
  nosniff`` on every answer; every HTML answer without its own policy gets
  :data:`HTML_CSP` and the framing and referrer headers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from aiohttp import web
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.errors import ErrorCode
from shared.errors import PhotcalError
from shared.logging import get_logger

log = get_logger(__name__)

SERVER_NAME = "photcal"
#: the status label of a request whose client went away before its answer
DISCONNECTED = "client_disconnected"


class HttpServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTCAL_", extra="ignore")

    #: seconds a client has to send a whole request line and headers (and an idle kept-alive connection lives)
    http_header_timeout: float = 20.0
    #: seconds a request body may take before its average rate is checked
    http_body_grace: float = 10.0
    #: bytes a second a request body must average after the grace (0: no check)
    http_min_body_rate: float = 10_000.0
    #: open connections one peer address may hold (0: no limit)
    http_max_connections_per_ip: int = 64


class RequestTimeout(PhotcalError):
    code = ErrorCode.SLOW_BODY
    http_status = 408


# -- headers ------------------------------------------------------------------------------------------------

#: the CPCS-style pages (shared/cpcs_http.py, the upload's HTML answer): no script at all; styled by the site's
#: stylesheet (shared/webframe.py), no inline style
HTML_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HTML_HEADERS = {
    "Content-Security-Policy": HTML_CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def hide_server_version() -> None:
    """aiohttp's default ``Server`` header names Python's and aiohttp's versions, also on the answers its HTTP
    parser makes itself (a malformed request), which no ``on_response_prepare`` sees: replace the default."""
    import aiohttp.web_response

    aiohttp.web_response.SERVER_SOFTWARE = SERVER_NAME


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: what every answer carries; the pages' own policy (pages.py) is kept."""
    response.headers["Server"] = SERVER_NAME
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        for name, value in HTML_HEADERS.items():
            response.headers.setdefault(name, value)


# -- slow bodies -----------------------------------------------------------------------------------------------


def body_rate_middleware(settings: HttpServerSettings):
    """408 for a body trickled in slower than the minimum rate (checked once a second after the grace)."""
    rate, grace = settings.http_min_body_rate, settings.http_body_grace

    @web.middleware
    async def min_body_rate(request: web.Request, handler):
        if rate <= 0 or not request.body_exists or request.content.is_eof():
            return await handler(request)
        task = asyncio.current_task()
        assert task is not None, "aiohttp runs every handler in a task"
        started = time.monotonic()
        too_slow = False
        watchdog: asyncio.TimerHandle | None = None

        def check() -> None:
            nonlocal too_slow, watchdog
            content = request.content
            if content.is_eof() or content.exception() is not None:
                return  # all arrived (or the client left): the handler's business now
            elapsed = time.monotonic() - started
            if elapsed >= grace and content.total_bytes < rate * elapsed:
                too_slow = True
                task.cancel()
                return
            watchdog = loop.call_later(1.0, check)

        loop = asyncio.get_running_loop()
        watchdog = loop.call_later(max(grace, 1.0), check)
        try:
            return await handler(request)
        except asyncio.CancelledError:
            if not too_slow:
                raise
            task.uncancel()
            log.info(
                "slow_body",
                path=request.path,
                received=request.content.total_bytes,
                seconds=round(time.monotonic() - started, 1),
            )
            # answer, then close instead of reading the rest of the body (aiohttp's "lingering" read)
            if hasattr(request.protocol, "_lingering_time"):
                request.protocol._lingering_time = 0.0
            raise RequestTimeout(
                f"the request body arrived slower than {rate / 1000:g} kB/s; send it again faster"
            ) from None
        finally:
            watchdog.cancel()

    return min_body_rate


# -- connections per address -----------------------------------------------------------------------------------


class ConnectionLimit:
    """Counts open connections per peer address on an aiohttp ``Server``; closes those over the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: Counter[str] = Counter()
        self._peer_of: dict[object, str] = {}  # the handler has __slots__: its address is kept here

    def install(self, server: web.Server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler, transport) -> None:
            made(handler, transport)
            peer = _peer(transport)
            self.open[peer] += 1
            self._peer_of[handler] = peer
            if self.limit and self.open[peer] > self.limit:
                log.info("too_many_connections", open=self.open[peer])
                transport.close()

        def connection_lost(handler, exc=None) -> None:
            peer = self._peer_of.pop(handler, None)
            if peer is not None:
                self.open[peer] -= 1
                if self.open[peer] <= 0:
                    del self.open[peer]
            lost(handler, exc)

        # the per-peer count wraps aiohttp's own callbacks on this one server instance
        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]


def _peer(transport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "unknown"
