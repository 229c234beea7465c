"""Every failure answers JSON with a stable code and a message; never a traceback."""

from __future__ import annotations

import json

from aiohttp import web

from shared import webframe
from shared.contracts.errors import ErrorCode
from shared.errors import PhotcalError, RateLimited
from shared.logging import get_logger

log = get_logger(__name__)

_HTTP_CODES = {
    400: (ErrorCode.BAD_REQUEST, "the request could not be read"),
    404: (ErrorCode.NOT_FOUND, "no such page: see the README for the API"),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "this path does not take that method"),
    413: (ErrorCode.TOO_LARGE, "the upload is larger than the server accepts"),
}


#: BHTOM shows a CPCS error body to its user only when it has at most this many characters
#: (and retries the upload otherwise)
CPCS_BODY_LIMIT = 100

#: what fits that limit, for the codes whose full message does not (the full one stays at
#: /api/v1/uploads/{X-Upload-ID} and on the /api/v1 paths); other long messages are cut,
#: so they say what is wrong first
SHORT_MESSAGES: dict[str, str] = {  # ErrorCode keys; looked up by the code string a body carries
    ErrorCode.DUPLICATE_DATAPOINT: "this datapoint is already stored",
    ErrorCode.TOO_FEW_STARS: "too few calibration stars in the field",
    ErrorCode.NO_STARS_MATCHED: "no star matched: check WCS, matchDist",
    ErrorCode.FIELD_NOT_COVERED: "no reference stars cover this field",
    ErrorCode.BAD_ASTROMETRY: "no photometric relation: check WCS",
    ErrorCode.POOR_FIT: "calibration too poor to trust",
    ErrorCode.NO_USABLE_SOURCES: "no usable magnitude in the catalogue",
    ErrorCode.MISSING_COLUMNS: "catalogue lacks MAG_AUTO/ALPHA_J2000",
    ErrorCode.TIMEOUT: "still calibrating: see X-Upload-ID",
    ErrorCode.TARGET_OUTSIDE_FRAME: "the event is outside this frame",
    ErrorCode.CATALOG_UNAVAILABLE: "catalogue service down: try later",
}


def compact_json(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def cpcs_error_body(message: str, code: str) -> dict[str, str]:
    """The error body for a CPCS path: the message, or a shorter one, so the body fits BHTOM's limit."""
    body = {"message": message, "status": "error", "error": code}
    room = CPCS_BODY_LIMIT - len(compact_json(body | {"message": ""}))
    if len(compact_json(message)) - 2 <= room:
        return body
    short = SHORT_MESSAGES.get(code, "")
    if short and len(compact_json(short)) - 2 <= room:
        body["message"] = short
    else:  # cut where it still says what is wrong
        cut = message[: max(room - 1, 0)]
        while cut and len(compact_json(cut + "…")) - 2 > room:
            cut = cut[:-1]
        body["message"] = cut + "…"
    return body


def is_cpcs_path(path: str) -> bool:
    """Paths CPCS clients call (every path but the JSON API's /api/...)."""
    return not path.startswith("/api/")


def error_response(exc: PhotcalError, path: str = "/api/") -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else {}
    body = exc.to_dict()
    if "upload_id" in body:  # a 503/504 after the upload was accepted: where to find its result
        headers["X-Upload-ID"] = body["upload_id"]
    if is_cpcs_path(path):
        body = cpcs_error_body(body["message"], body["error"])  # the upload id is in the header
    return web.json_response(body, status=exc.http_status, headers=headers, dumps=compact_json)


def error_page_response(message: str, code: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """An error as a page of the site (shared/webframe.py): what a browser on an HTML route is shown."""
    return web.Response(
        text=webframe.error_page(message, code, status),
        content_type="text/html",
        status=status,
        headers=(headers or {}) | {"Cache-Control": "no-store"},
    )


#: an unknown path asked by a browser: where to go instead of "see the README"
_PAGE_MESSAGES = {404: "There is no page at this address: the links below lead to the site's pages."}


@web.middleware
async def json_errors(request: web.Request, handler):
    """Every error as JSON with a stable code; on an HTML route asked by a browser, as a page of the site."""
    try:
        return await handler(request)
    except PhotcalError as exc:
        log.info("request_refused", path=request.path, status=exc.http_status, error=exc.code)
        if webframe.wants_page(request.path, request.headers.get("Accept", "")):
            headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
            return error_page_response(exc.message, exc.code, exc.http_status, headers)
        return error_response(exc, request.path)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code, message = _HTTP_CODES.get(exc.status, (ErrorCode.HTTP_ERROR, exc.reason))
        if webframe.wants_page(request.path, request.headers.get("Accept", "")):
            return error_page_response(_PAGE_MESSAGES.get(exc.status, message), code, exc.status)
        body = {"message": message, "status": "error", "error": code}
        return web.json_response(body, status=exc.status, dumps=compact_json)
    except ConnectionError:
        raise  # the client left mid-request: runtime's _observe_http logs and counts it, no 500
    except Exception:
        log.exception("unhandled_error", path=request.path)
        return web.json_response(
            {
                "message": "internal error; the operators have been told",
                "status": "error",
                "error": ErrorCode.INTERNAL_ERROR,
            },
            status=500,
        )
