"""Every failure answers JSON with a stable code and a message; never a traceback."""

from __future__ import annotations

import json

from aiohttp import web

from shared.errors import PhotcalError, RateLimited
from shared.logging import get_logger

log = get_logger(__name__)

_HTTP_CODES = {
    400: ("bad_request", "the request could not be read"),
    404: ("not_found", "no such page: see the README for the API"),
    405: ("method_not_allowed", "this path does not take that method"),
    413: ("too_large", "the upload is larger than the server accepts"),
}


def compact_json(obj) -> str:
    # BHTOM shows an error body to its user only when it is under 100 characters
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def error_response(exc: PhotcalError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return web.json_response(exc.to_dict(), status=exc.http_status, headers=headers, dumps=compact_json)


@web.middleware
async def json_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except PhotcalError as exc:
        log.info("request_refused", path=request.path, status=exc.http_status, error=exc.code)
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        body = {"message": message, "status": "error", "error": code}
        return web.json_response(body, status=exc.status, dumps=compact_json)
    except Exception:
        log.exception("unhandled_error", path=request.path)
        return web.json_response(
            {"message": "internal error; the operators have been told", "status": "error", "error": "internal_error"},
            status=500,
        )
