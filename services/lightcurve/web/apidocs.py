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
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import PUBLISHED_MESSAGES, published_schema
from shared.errors import NotFound

DOCUMENT = Path(__file__).resolve().parents[1] / "static" / "openapi.json"
#: documentation anyone may read, from any origin (a browser subscriber's page fetches the schemas)
_PUBLIC = {"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"}


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


def _schema_index() -> dict:
    return {
        "schemas": [
            {
                "subject": subject,
                "model": model.__name__,
                "stream": stream,
                "schema_url": f"/api/v1/schemas/{subject}.json",
            }
            for subject, (model, stream) in PUBLISHED_MESSAGES.items()
        ]
    }


async def api_schemas(request: web.Request) -> web.Response:
    """GET /api/v1/schemas: the messages outside programs may subscribe to, each with its schema's URL."""
    return web.json_response(_schema_index(), headers=_PUBLIC)


async def api_schema(request: web.Request) -> web.Response:
    """GET /api/v1/schemas/{subject}.json: that message's JSON Schema (2020-12), from its pydantic model."""
    name = request.match_info["name"]
    if name not in PUBLISHED_MESSAGES:
        known = ", ".join(f"{s}.json" for s in PUBLISHED_MESSAGES)
        raise NotFound(
            f"no message schema {name[:100]!r}: the schemas are {known} (GET /api/v1/schemas lists them)",
            code=ErrorCode.UNKNOWN_SCHEMA,
        )
    return web.json_response(published_schema(name), content_type="application/schema+json", headers=_PUBLIC)
