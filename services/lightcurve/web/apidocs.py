"""The API's OpenAPI document (``GET /api/v1/openapi.json``) and the page that shows it (``GET /api/docs``).

The document is built from the route table's entries in ``shared/contracts/openapi.py`` by
``python -m tools.openapi`` into ``static/openapi.json`` (a unit test keeps it equal to a fresh
build); this service reads it once and serves it as it is. The page is the site's layout around a
small viewer of ours (``static/apidocs.js``) that fetches the document: nothing from another origin.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiohttp import web

from services.lightcurve.web.common import render

DOCUMENT = Path(__file__).resolve().parents[1] / "static" / "openapi.json"


@cache
def _document_text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


async def api_openapi(request: web.Request) -> web.Response:
    return web.Response(
        text=_document_text(),
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
    )


async def api_docs(request: web.Request) -> web.Response:
    content = (
        '<p class="hint">Every route of the API, generated from the models that define its bodies. '
        'The machine-readable document: <a href="/api/v1/openapi.json" id="openapi-link">'
        "<code>/api/v1/openapi.json</code></a> (OpenAPI 3.1).</p>"
        '<div id="api-docs" data-src="/api/v1/openapi.json"><p class="hint">Loading the document…</p></div>'
        '<noscript><p class="msg">This page lists the routes with JavaScript; without it, read '
        '<a href="/api/v1/openapi.json">the document</a>.</p></noscript>'
    )
    return await render(request, "API", content, scripts=("/static/apidocs.js",), styles=("/static/apidocs.css",))
