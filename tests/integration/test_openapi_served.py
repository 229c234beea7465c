"""The API's description as a client reads it: the document at /api/v1/openapi.json and its page at /api/docs."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def test_the_gateway_serves_a_valid_document_and_a_page_with_nothing_from_elsewhere(stack):
    stack.start()
    status, content_type, body = get(f"{stack.url}/api/v1/openapi.json")
    assert status == 200 and content_type.startswith("application/json")
    doc = json.loads(body)
    validate(doc)
    assert doc["paths"]["/api/v1/uploads"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "/followup/cgi/upload" in doc["paths"]

    status, content_type, body = get(f"{stack.url}/api/docs")
    page = body.decode()
    assert status == 200 and content_type.startswith("text/html")
    assert 'id="api-docs"' in page and 'data-src="/api/v1/openapi.json"' in page
    # every script, style and link the page loads is ours: no CDN, no other origin
    assert re.findall(r"(?:src|href)=\"(?:https?:)?//", page) == []
    sources = re.findall(r"(?:src|href)=\"([^\"]+)\"", page)
    assert "/static/apidocs.js" in sources
    for source in sources:
        if source.startswith("/static/"):
            status, _type, asset = get(stack.url + source)
            assert status == 200
            assert b"http://" not in asset and b"https://" not in asset, source
