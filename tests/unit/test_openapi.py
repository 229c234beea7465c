"""The OpenAPI document: valid, a fresh build of the models, and covering every API and CPCS route."""

from __future__ import annotations

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from services.lightcurve.web.apidocs import DOCUMENT
from shared.contracts import openapi
from shared.contracts.errors import ErrorCode
from shared.contracts.routes import ROUTES, Route, Service
from shared.runtime import Runtime, ServiceSpec, start, stop
from shared.settings import CommonSettings
from tests.unit.test_route_table import ADD_ROUTES
from tools.openapi import document, document_text


@pytest.fixture(scope="module")
def doc() -> dict:
    return document()


def test_the_document_is_valid_openapi(doc):
    validate(doc)
    assert doc["openapi"].startswith("3.1")


def test_the_served_file_is_a_fresh_build():
    assert DOCUMENT.read_text(encoding="utf-8") == document_text(), (
        "services/lightcurve/static/openapi.json is not the document the models make now: "
        "run `python -m tools.openapi` and commit the file"
    )


def documented(doc: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


def test_every_api_and_cpcs_row_of_the_route_table_has_an_entry_and_is_in_the_document(doc):
    must = [r for r in ROUTES if openapi.must_be_documented(r)]
    assert len(must) > 20
    assert [r for r in must if openapi.doc_of(r) is None] == []
    for route in must:
        assert (route.method, openapi.openapi_path(route.path)[0]) in documented(doc), route


def test_a_new_api_row_without_an_entry_is_caught():
    stray = Route("GET", "/api/v1/stray", ROUTES[0].service, "stray")
    assert openapi.must_be_documented(stray) and openapi.doc_of(stray) is None


@pytest.mark.parametrize("service", list(ADD_ROUTES))
async def test_every_api_route_on_a_service_router_is_in_the_document_with_its_method(service, doc):
    """The apps as the runtime builds them: each /api/ or CPCS route they answer, the gateway's forwarded ones too."""

    async def setup(rt: Runtime) -> None:
        ADD_ROUTES[service](rt.app)

    rt = await start(
        ServiceSpec(str(service), CommonSettings(http_host="127.0.0.1"), 0, setup, uses_nats=False, uses_db=False)
    )
    try:
        served = {
            (route.method, route.resource.canonical)
            for route in rt.app.router.routes()
            if route.method != "HEAD"
            and route.resource is not None
            and not isinstance(route.resource, web.StaticResource)
        }
    finally:
        await stop(rt)
    api = {
        (method, openapi.openapi_path(path)[0])
        for method, path in served
        if path.startswith("/api/") or openapi.cpcs_base(path)
    }
    assert api <= documented(doc)
    if service in (Service.INGEST, Service.LIGHTCURVE):  # the gateway forwards the document, the lightcurve serves it
        assert {("GET", "/api/v1/openapi.json"), ("GET", "/followup/list_of_alerts/")} <= api
    if service is Service.INGEST:
        assert ("POST", "/followup/cgi/upload") in api


def test_bodies_are_the_models_schemas(doc):
    schemas = doc["components"]["schemas"]
    assert set(schemas["ErrorCode"]["enum"]) == {code.value for code in ErrorCode}
    assert schemas["ErrorBody"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorCode"}
    upload = doc["paths"]["/api/v1/uploads"]["post"]
    assert upload["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CalibrationResult"
    }
    assert upload["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/UploadQueued")
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]["allOf"]
    assert form[0] == {"$ref": "#/components/schemas/UploadForm"}
    assert {"sexCat", "hashtag"} <= set(form[1]["properties"])
    assert {"EventID", "MJD", "matchDist", "forceFilter", "dryRun"} <= set(schemas["UploadForm"]["properties"])
    detail = doc["paths"]["/api/v1/datapoints/{followup_id}"]["get"]["responses"]["200"]
    assert detail["content"]["application/json"]["schema"]["$ref"].endswith("/DatapointDetail")
    listing = doc["paths"]["/api/v1/uploads"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"mine", "state", "limit", "skip", "hashtag"}
    assert listing["security"] == [{"hashtagQuery": []}, {"hashtagCookie": []}, {"session": []}]
    # every $ref names a schema the document holds
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs <= set(schemas)


def test_cpcs_endpoints_are_tagged_as_the_compatibility_api(doc):
    for prefix in ("", "/followup"):
        for path in ("/cgi/upload", "/cgi/newevent", "/get_alert_lc_data", "/list_of_alerts/"):
            for operation in doc["paths"][prefix + path].values():
                assert operation["tags"] == [openapi.CPCS_TAG]
    assert doc["paths"]["/api/v1/alerts"]["get"]["tags"] == [openapi.API_TAG]


def test_path_patterns_become_openapi_paths():
    assert openapi.openapi_path("/api/v1/lightcurves/{ivorn:.+}") == ("/api/v1/lightcurves/{ivorn}", ["ivorn"])
    assert openapi.openapi_path("/datapoints/{followup_id:[0-9]{1,12}}/delete") == (
        "/datapoints/{followup_id}/delete",
        ["followup_id"],
    )
