"""The gateway's request guards: body size after decompression, the client's origin, logged-out sessions.

Body size: aiohttp decompresses a ``Content-Encoding: gzip`` body as it is read
and bounds only the bytes it hands out, by the application's
``client_max_size``. The gateway's is :data:`SMALL_BODY_BYTES` (forms and
JSON), so a 20 KB gzip of 20 MB of zeros stops after 64 KB of output on
every route; only the upload handler reads more, chunk by chunk, up to its
own limit (services/ingest/uploads.py). Compressed requests stay accepted:
the limit counts the decompressed bytes, so compression costs no memory.
"""

from __future__ import annotations

from aiohttp import http_exceptions, web
from pymongo.errors import PyMongoError

from services.ingest.proxies import TrustedProxies
from shared import session
from shared.contracts.errors import ErrorCode
from shared.db.client import unavailable
from shared.db.sessions import is_revoked
from shared.errors import BadInput, PayloadTooLarge, Unauthorized
from shared.logging import get_logger

log = get_logger(__name__)

#: the largest body a route other than the uploads reads (counted after decompression)
SMALL_BODY_BYTES = 64 * 1024
#: request key: the client's scheme as the gateway believes it (``https`` behind a trusted TLS proxy)
SCHEME_KEY = "photcal.scheme"

TOO_LARGE = "the body is over 64 KB (counted decompressed): only uploads take more"
SESSION_ENDED = "this login has ended (logged out): log in again"


def middleware(proxies: TrustedProxies):
    @web.middleware
    async def guard(request: web.Request, handler):
        scheme = proxies.scheme(request.remote, request.headers.get("X-Forwarded-Proto"), request.scheme)
        request[SCHEME_KEY] = scheme
        request[session.ORIGIN_KEY] = f"{scheme}://{request.host}"
        if request.method in session.WRITE_METHODS:
            await _refuse_ended_session(request)
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge as exc:
            raise PayloadTooLarge(TOO_LARGE) from exc
        except http_exceptions.LineTooLong as exc:  # a form part's line over aiohttp's 512 KB: too large too
            raise PayloadTooLarge(TOO_LARGE) from exc
        except http_exceptions.HttpProcessingError as exc:  # a body aiohttp could not parse as its type says
            raise BadInput("the body could not be read as its Content-Type says", code=ErrorCode.BAD_FORM) from exc

    return guard


async def _refuse_ended_session(request: web.Request) -> None:
    """A write carrying a logged-out session's cookie: 401, whatever else it carries."""
    found = session.session_from_cookies(request.cookies, request.app)
    if found is None or request.path in ("/login", "/logout"):  # logging in (or out) again replaces it
        return
    db = request.app["gateway"].db
    try:
        revoked = await is_revoked(db, found.session_id)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    if revoked:
        log.info("ended_session_refused", path=request.path)
        raise Unauthorized(SESSION_ENDED, code=ErrorCode.SESSION_ENDED)
