"""Errors on the observer's pages are pages: an unknown light curve, datapoint or observatory, a bad
query, a 404 of the router, each in the site's frame with its navigation and who is logged in.

The JSON API and the CPCS endpoints keep answering JSON (``shared.http_errors.json_errors``, the
outer middleware): :func:`shared.webframe.wants_page` says which requests get a page.
"""

from __future__ import annotations

from aiohttp import web

from services.lightcurve import pages
from services.lightcurve.web.common import csrf_of, current_user
from shared import webframe
from shared.contracts.errors import ErrorCode
from shared.errors import PhotcalError, RateLimited
from shared.logging import get_logger

log = get_logger(__name__)

#: what the router's own refusals say to a person
_HTTP_MESSAGES = {
    404: (ErrorCode.NOT_FOUND, "There is no page at this address: the links below lead to the site's pages."),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "This page is not served for that method: follow a link instead."),
    413: (ErrorCode.TOO_LARGE, "The form is larger than the server accepts."),
}


async def error_page(request: web.Request, message: str, code: str, status: int) -> web.Response:
    """The page of an error, with the logged-in observatory when it can still be read."""
    try:
        user = await current_user(request)
    except PhotcalError:  # the database is what failed: the page without the login
        user = None
    html = pages.page(
        webframe.error_title(status),
        webframe.error_content(message, code, status),
        user=user.name if user else None,
        csrf=csrf_of(request),
    )
    headers = dict(pages.SECURITY_HEADERS) | {"Cache-Control": "no-store"}
    return web.Response(text=html, content_type="text/html", status=status, headers=headers)


@web.middleware
async def html_error_pages(request: web.Request, handler):
    if not webframe.wants_page(request.path, request.headers.get("Accept", "")):
        return await handler(request)
    try:
        return await handler(request)
    except PhotcalError as exc:
        log.info("page_refused", path=request.path, status=exc.http_status, error=exc.code)
        response = await error_page(request, exc.message, exc.code, exc.http_status)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_MESSAGES.get(exc.status, (ErrorCode.HTTP_ERROR, exc.reason))
        return await error_page(request, message, code, exc.status)
