"""Through the real gateway: an administrator's VOEvent creates or updates its event, idempotently, and a
malformed one is a specific 400; the published messages' JSON Schemas are served, and validate a message."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import jsonschema  # type: ignore[import-untyped]  # (installed with openapi-spec-validator, a test dependency)
import pytest
from pymongo import MongoClient

from shared.contracts.messages import CalibrationResult
from tests.conftest import DATA
from tools.devstack import Stack, standalone_stack, stop_all

pytestmark = pytest.mark.integration

DOCUMENT = (DATA / "voevents" / "gaia_alert.xml").read_bytes()
IVORN = "ivo://example.org/transients#AT2026abc"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[tuple[Stack, str, str]]:
    stack, servers = standalone_stack(tmp=tmp_path_factory.mktemp("voevents"), PHOTCAL_MONGO_DB="voevents")
    try:
        added = stack.cli(
            "observatory", "add", "--name", "Alert Desk", "--lon", "0", "--lat", "51", "--filters", "V", "--admin"
        ).stdout
        found = re.search(r"hashtag: (\S+)", added)
        assert found is not None, added
        observer = stack.add_observatory("Plain Observatory")
        stack.start(without=("catalog", "calibrate", "photometry"))
        yield stack, found.group(1), observer
    finally:
        stop_all(stack, servers)


def call(url: str, *, data: bytes | None = None, content_type: str = "application/xml") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def post_voevent(stack: Stack, hashtag: str, document: bytes, **kw) -> tuple[int, dict]:
    return call(f"{stack.url}/api/v1/voevents?hashtag={hashtag}", data=document, **kw)


def the_alert(stack: Stack) -> dict:
    [alert] = [a for a in call(f"{stack.url}/api/v1/alerts")[1] if a["ivorn"] == IVORN]
    return alert


def stored_alert(stack: Stack) -> dict:
    client: MongoClient[dict] = MongoClient(stack.env["PHOTCAL_MONGO_URL"], serverSelectionTimeoutMS=5000)
    try:
        doc = client[stack.env["PHOTCAL_MONGO_DB"]].alerts.find_one({"ivorn": IVORN})
    finally:
        client.close()
    assert doc is not None
    return doc


def test_a_voevent_creates_its_event_once_and_updates_it_when_it_changes(gateway):
    stack, admin, _observer = gateway
    status, answer = post_voevent(stack, admin, DOCUMENT)
    assert status == 201, answer
    assert answer["ivorn"] == IVORN and answer["created"] is True and answer["changed"] is True
    alert = the_alert(stack)
    created = stored_alert(stack)["created"]
    assert (alert["ra"], alert["dec"], alert["url"]) == (150.0857, 30.0449, "https://example.org/transients/AT2026abc")
    # the same document again: nothing changes
    status, again = post_voevent(stack, admin, DOCUMENT)
    assert status == 200 and again["created"] is False and again["changed"] is False
    assert again["id"] == answer["id"] and the_alert(stack) == alert
    # an update of the event (a better position): the same event, moved
    moved = DOCUMENT.replace(b"<C1>150.0857</C1>", b"<C1>150.0858</C1>")
    status, updated = post_voevent(stack, admin, moved, content_type="text/xml")
    assert status == 200 and updated["changed"] is True and updated["id"] == answer["id"]
    # (the alert list shows a changed alert within its cache's 30 s, services/lightcurve/summary.py: read it stored)
    stored = stored_alert(stack)
    assert (stored["ra"], stored["alert_id"], stored["created"]) == (150.0858, answer["id"], created)


@pytest.mark.parametrize(
    ("document", "status", "code"),
    [
        (b"<voe:VOEvent version='2.0'", 400, "bad_voevent"),
        (
            DOCUMENT.replace(b"<Position2D", b"<Nowhere").replace(b"</Position2D>", b"</Nowhere>"),
            400,
            "voevent_incomplete",
        ),
        (
            DOCUMENT.replace(b'ivorn="ivo://example.org/transients#AT2026abc"', b'ivorn="not an ivorn"'),
            400,
            "bad_field",
        ),
    ],
)
def test_a_malformed_voevent_is_a_specific_400_and_stores_nothing(gateway, document, status, code):
    stack, admin, _observer = gateway
    before = call(f"{stack.url}/api/v1/alerts")[1]
    got, answer = post_voevent(stack, admin, document)
    assert (got, answer["error"]) == (status, code), answer
    assert answer["message"]
    assert call(f"{stack.url}/api/v1/alerts")[1] == before


def test_only_an_administrator_hands_in_voevents(gateway):
    stack, admin, observer = gateway
    status, answer = post_voevent(stack, observer, DOCUMENT)
    assert (status, answer["error"]) == (403, "not_admin")
    status, answer = call(f"{stack.url}/api/v1/voevents", data=DOCUMENT)
    assert (status, answer["error"]) == (401, "missing_hashtag")
    status, answer = post_voevent(stack, admin, b'{"ivorn": "x"}', content_type="application/json")
    assert (status, answer["error"]) == (400, "bad_voevent")
    # a document beyond the gateway's body limit (64 KB) is refused before it is parsed
    padded = DOCUMENT.replace(b"<What>", b"<What>" + b"<!-- padding -->" * 5000)
    status, answer = post_voevent(stack, admin, padded)
    assert status == 413, answer


def test_the_schemas_are_listed_and_a_published_message_validates_against_its_schema(gateway):
    stack, *_ = gateway
    status, index = call(f"{stack.url}/api/v1/schemas")
    assert status == 200
    listed = {entry["subject"]: entry for entry in index["schemas"]}
    assert set(listed) == {"photcal.calibrated.v1", "photcal.recalibrated.v1"}
    assert listed["photcal.calibrated.v1"]["model"] == "CalibrationResult"
    status, schema = call(stack.url + listed["photcal.calibrated.v1"]["schema_url"])
    assert status == 200 and schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    message = json.loads(CalibrationResult(status="ok", upload_id="u1", ivorn=IVORN, mag=15.2).model_dump_json())
    jsonschema.Draft202012Validator(schema).validate(message)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(message | {"status": "maybe"})
    status, answer = call(f"{stack.url}/api/v1/schemas/photcal.upload.v1.json")
    assert (status, answer["error"]) == (404, "unknown_schema")
    assert "photcal.calibrated.v1.json" in answer["message"]
