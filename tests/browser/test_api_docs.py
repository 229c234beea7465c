"""The API page (/api/docs) as a reader sees it: every operation of the document listed, nothing fetched elsewhere."""

from __future__ import annotations

import pytest
import requests

from tests.browser.conftest import shot

pytestmark = pytest.mark.integration


def test_the_api_page_lists_every_operation_with_its_fields_and_loads_nothing_from_elsewhere(page, web):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    doc = requests.get(f"{web.url}/api/v1/openapi.json", timeout=30).json()
    operations = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}

    page.goto("/api/docs")
    page.wait_for_selector("section.api-op")
    listed = set(
        page.eval_on_selector_all("section.api-op", "nodes => nodes.map(n => n.dataset.method + ' ' + n.dataset.path)")
    )
    assert listed == {f"{method} {path}" for method, path in operations}
    upload = page.locator('section.api-op[data-method="POST"][data-path="/api/v1/uploads"]')
    fields = upload.locator("table.api-fields code").all_inner_texts()
    assert {"EventID", "MJD", "sexCat", "hashtag"} <= set(fields)
    assert "504\tstill calibrating" in upload.locator("table.api-responses").inner_text()
    # an error body's link leads to its schema: the code field, linked to the codes' enum
    upload.locator('a[href="#schema-ErrorBody"]').first.click()
    error_body = page.locator("#schema-ErrorBody")
    assert error_body.is_visible()
    assert {"message", "error"} <= set(error_body.locator("code").all_inner_texts())
    assert "bad_input" in page.locator("#schema-ErrorCode").inner_text()
    assert "CPCS compatibility API" in page.locator("main h2").all_inner_texts()
    shot(page, "api_docs")
    assert requested and all(url.startswith(web.url) for url in requested), requested
