"""The webhook subscriptions' use cases (shared/usecases/subscriptions.py) on the embedded database, and the
two adapters over them on a real stack (`photcal run`, nats-server, nx-27017, real HTTP): the gateway's
/api/v1/subscriptions and /api/v1/webhook-secret (same codes and bodies as before the move) and the
/subscriptions page's forms (login and token required)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import pytest
import requests
from pymongo.errors import ServerSelectionTimeoutError

from shared.contracts.webhooks import SubscriptionRequest
from shared.db import connect_database
from shared.db import deliveries as outbox
from shared.db.alerts import Alert, add_alert
from shared.db.observatories import Observatory
from shared.errors import BackendUnavailable, BadInput, NotFound
from shared.usecases import subscriptions as uc
from tools.devstack import Stack, standalone_stack, stop_all

pytestmark = pytest.mark.integration

IVORN = "ivo://gaia/alerts#Gaia23subs"
OWNER = Observatory(observatory_id="obs-owner", name="Owner Observatory")
OTHER = Observatory(observatory_id="obs-other", name="Other Observatory")
PUBLIC = "https://93.184.215.14/hook"  # a public address literal: checked without DNS (closed network)


@pytest.fixture
async def db(mongo_proc, fresh_db_name):
    database = connect_database(mongo_proc.url, fresh_db_name)
    await database.ensure_indexes()
    await add_alert(database, Alert(ivorn=IVORN, name="Gaia23subs", ra=10.0, dec=20.0))
    yield database
    await database.close()


def request(**fields) -> SubscriptionRequest:
    return uc.subscription_request(fields)


# -- the use cases ------------------------------------------------------------------------------------------


def test_a_request_is_validated_naming_the_first_wrong_field():
    assert request(url=PUBLIC, scope="all").scope == "all"
    for fields, where in (
        ({"url": PUBLIC, "scope": "some"}, "scope:"),
        ({"scope": "all"}, "url:"),
        ({"url": PUBLIC, "scope": "all", "colour": "red"}, "colour:"),
    ):
        with pytest.raises(BadInput) as refused:
            uc.subscription_request(fields)
        assert refused.value.code == "bad_field" and refused.value.message.startswith(where), refused.value.message
        assert '"scope": "alert"|"all"|"mine"' in refused.value.message


async def test_create_checks_the_url_resolves_the_alert_by_name_and_stores_once(db):
    by_name = await uc.create_subscription(
        db, OWNER, request(url=PUBLIC, scope="alert", ivorn="Gaia23subs"), allow_private=False
    )
    assert by_name.ivorn == IVORN and by_name.scope == "alert" and by_name.state == "active"
    assert by_name.links["deliveries"] == f"/api/v1/subscriptions/{by_name.subscription_id}/deliveries"
    mine = await uc.create_subscription(db, OWNER, request(url=PUBLIC, scope="mine"), allow_private=False)
    assert mine.ivorn is None
    listed = await uc.list_subscriptions(db, OWNER)
    assert [s.subscription_id for s in listed] == [by_name.subscription_id, mine.subscription_id]
    assert by_name.events == ["calibrated", "recalibrated"]  # both unless asked otherwise
    recal = await uc.create_subscription(
        db, OWNER, request(url=PUBLIC, scope="all", events=["recalibrated"]), allow_private=False
    )
    assert (await uc.get_subscription(db, OWNER, recal.subscription_id)).events == ["recalibrated"]
    assert await uc.list_subscriptions(db, OTHER) == []
    # refusals: each its code and message, nothing stored
    for wanted, allow, kind, code, text in (
        (request(url="http://127.0.0.1:9/hook", scope="all"), False, BadInput, "callback_url_refused", "loopback"),
        (request(url="ftp://example.org/x", scope="all"), True, BadInput, "callback_url_refused", "http(s) URL"),
        (request(url=PUBLIC, scope="alert"), False, BadInput, "missing_field", "ivorn: a subscription to an alert"),
        (request(url=PUBLIC, scope="alert", ivorn="Gaia99none"), False, NotFound, "unknown_event", "Gaia99none"),
        (request(url=PUBLIC, scope="all", ivorn=IVORN), False, BadInput, "bad_field", "not all"),
    ):
        with pytest.raises(kind) as refused:
            await uc.create_subscription(db, OWNER, wanted, allow_private=allow)
        assert refused.value.code == code and text in refused.value.message, refused.value.message
    assert len(await uc.list_subscriptions(db, OWNER)) == 3
    # a private address passes with PHOTCAL_CALLBACK_ALLOW_PRIVATE
    local = await uc.create_subscription(
        db, OTHER, request(url=" http://127.0.0.1:9/hook ", scope="all"), allow_private=True
    )
    assert local.url == "http://127.0.0.1:9/hook"


async def test_only_its_owner_reads_deletes_or_resumes_it_and_a_delete_drops_its_undelivered(db):
    sub = await uc.create_subscription(db, OWNER, request(url=PUBLIC, scope="all"), allow_private=False)
    sid = sub.subscription_id
    for op in (uc.get_subscription, uc.delete_subscription, uc.resume_subscription, uc.subscription_deliveries):
        with pytest.raises(NotFound) as refused:
            await op(db, OTHER, sid)
        assert refused.value.code == "unknown_subscription"
        assert refused.value.message == f"this observatory has no subscription {sid}"
    with pytest.raises(BadInput) as bad:
        await uc.get_subscription(db, OWNER, "not-an-id")
    assert bad.value.code == "bad_field"
    assert (await uc.get_subscription(db, OWNER, sid)).url == PUBLIC
    for upload_id in ("u1", "u2"):
        await outbox.add_delivery(
            db, upload_id=upload_id, url=PUBLIC, observatory_id=OWNER.observatory_id, body=b"{}", subscription_id=sid
        )
    assert await uc.delete_subscription(db, OWNER, sid) == 2  # both given up
    left = await outbox.list_deliveries(db, sid)
    assert {(d.state, d.last_error) for d in left} == {("failed", "the subscription was deleted")}
    with pytest.raises(NotFound):
        await uc.get_subscription(db, OWNER, sid)
    with pytest.raises(NotFound):
        await uc.delete_subscription(db, OWNER, sid)


async def test_resume_releases_held_and_failed_deliveries_and_deliveries_filter_by_state(db):
    sub = await uc.create_subscription(db, OWNER, request(url=PUBLIC, scope="mine"), allow_private=False)
    sid = sub.subscription_id
    await outbox.add_delivery(db, upload_id="u1", url=PUBLIC, observatory_id="o", body=b"{}", subscription_id=sid)
    await outbox.add_delivery(
        db, upload_id="u2", url=PUBLIC, observatory_id="o", body=b"{}", subscription_id=sid, held=True
    )
    await outbox.mark_failed(db, f"u1.{sid}", 503, "HTTP 503")
    every = await uc.subscription_deliveries(db, OWNER, sid)
    assert {(d.upload_id, d.state) for d in every.deliveries} == {("u1", "failed"), ("u2", "held")}
    failed = await uc.subscription_deliveries(db, OWNER, sid, state="failed")
    assert [(d.upload_id, d.last_status) for d in failed.deliveries] == [("u1", 503)]
    assert len((await uc.subscription_deliveries(db, OWNER, sid, limit=1)).deliveries) == 1
    with pytest.raises(BadInput) as bad:
        await uc.subscription_deliveries(db, OWNER, sid, state="lost")
    assert bad.value.message == "state: one of pending, held, delivered, failed"
    resumed = await uc.resume_subscription(db, OWNER, sid)
    assert resumed.subscription.state == "active" and resumed.released == 2
    pending = await uc.subscription_deliveries(db, OWNER, sid, state="pending")
    assert len(pending.deliveries) == 2


async def test_the_secret_is_made_on_first_read_and_rotated(db):
    first = await uc.webhook_secret(db, OWNER)
    assert first.observatory == OWNER.name and first.secret.startswith("whsec_")
    assert first.signature_header == "X-Photcal-Signature"
    assert (await uc.webhook_secret(db, OWNER)).secret == first.secret
    rotated = await uc.rotate_webhook_secret(db, OWNER)
    assert rotated.secret != first.secret and (await uc.webhook_secret(db, OWNER)).secret == rotated.secret
    assert (await uc.webhook_secret(db, OTHER)).secret not in (first.secret, rotated.secret)


async def test_a_database_error_is_503_through_direct_and_through_the_given_call(db):
    async def down():
        raise ServerSelectionTimeoutError("no server")

    with pytest.raises(BackendUnavailable) as refused:
        await uc.direct(down)
    assert refused.value.http_status == 503 and "database is not answering" in refused.value.message
    seen: list[str] = []

    async def counting(fetch):
        seen.append("call")
        return await fetch()

    await uc.create_subscription(db, OWNER, request(url=PUBLIC, scope="all"), allow_private=False, call=counting)
    await uc.list_subscriptions(db, OWNER, call=counting)
    assert seen == ["call", "call"]  # every database call goes through the caller's guard


# -- the adapters, over real HTTP ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Stack]:
    stack, servers = standalone_stack(tmp=tmp_path_factory.mktemp("subs"), PHOTCAL_MONGO_DB="subs")
    try:
        stack.add_observatory(OWNER.name)
        stack.add_observatory(OTHER.name)
        stack.cli("alert", "add", "--ivorn", IVORN, "--ra", "10.0", "--dec", "20.0", "--name", "Gaia23subs")
        stack.start()
        yield stack
    finally:
        stop_all(stack, servers)


def api(site: Stack, method: str, path: str, who: str = OWNER.name, **kw) -> requests.Response:
    return requests.request(
        method, f"{site.url}{path}", params={"hashtag": site.hashtags[who]} | kw.pop("params", {}), timeout=15, **kw
    )


def test_the_api_answers_as_before_the_move(site: Stack):
    created = api(site, "POST", "/api/v1/subscriptions", json={"url": PUBLIC, "scope": "alert", "ivorn": "Gaia23subs"})
    assert created.status_code == 201, created.text
    sub = created.json()
    sid = sub["subscription_id"]
    assert sub["ivorn"] == IVORN and sub["state"] == "active" and sub["consecutive_failures"] == 0
    assert set(sub) == {
        "subscription_id",
        "url",
        "scope",
        "events",
        "ivorn",
        "state",
        "paused_reason",
        "paused_at",
        "consecutive_failures",
        "created_at",
        "links",
    }

    def same(read: dict) -> bool:  # the stored time comes back at the database's millisecond
        return {k: v for k, v in read.items() if k != "created_at"} == {
            k: v for k, v in sub.items() if k != "created_at"
        }

    [listed_one] = api(site, "GET", "/api/v1/subscriptions").json()["subscriptions"]
    assert same(listed_one) and same(api(site, "GET", f"/api/v1/subscriptions/{sid}").json())
    listed = api(site, "GET", f"/api/v1/subscriptions/{sid}/deliveries").json()
    assert listed == {"subscription_id": sid, "deliveries": [], "skip": 0, "limit": 50}
    for path, params, status, code in (
        (f"/api/v1/subscriptions/{sid}/deliveries", {"state": "lost"}, 400, "bad_field"),
        (f"/api/v1/subscriptions/{sid}/deliveries", {"limit": "0"}, 400, "bad_field"),
        ("/api/v1/subscriptions/nope-nope/deliveries", {"state": "lost"}, 400, "bad_field"),
        ("/api/v1/subscriptions/0123456789abcdef/deliveries", {"state": "lost"}, 404, "unknown_subscription"),
    ):
        got = api(site, "GET", path, params=params)
        assert (got.status_code, got.json()["error"]) == (status, code), (path, params, got.text)
    for body, status, code in (
        ({"url": PUBLIC, "scope": "some"}, 400, "bad_field"),
        ({"url": PUBLIC, "scope": "alert"}, 400, "missing_field"),
        ({"url": PUBLIC, "scope": "alert", "ivorn": "Gaia99none"}, 404, "unknown_event"),
        ({"url": PUBLIC, "scope": "all", "ivorn": IVORN}, 400, "bad_field"),
        ({"url": "http://10.0.0.7/hook", "scope": "all"}, 400, "callback_url_refused"),
    ):
        got = api(site, "POST", "/api/v1/subscriptions", json=body)
        assert (got.status_code, got.json()["error"]) == (status, code), (body, got.text)
    # another observatory neither sees, resumes nor deletes it
    assert api(site, "GET", f"/api/v1/subscriptions/{sid}", who=OTHER.name).json()["error"] == "unknown_subscription"
    assert api(site, "POST", f"/api/v1/subscriptions/{sid}/resume", who=OTHER.name).status_code == 404
    resumed = api(site, "POST", f"/api/v1/subscriptions/{sid}/resume").json()
    assert resumed["state"] == "active" and resumed["released"] == 0 and resumed["subscription_id"] == sid
    deleted = api(site, "DELETE", f"/api/v1/subscriptions/{sid}")
    assert deleted.json() == {"status": "ok", "message": f"subscription {sid} deleted", "subscription_id": sid}
    assert api(site, "DELETE", f"/api/v1/subscriptions/{sid}").status_code == 404
    # the secret: read, then rotated
    first = api(site, "GET", "/api/v1/webhook-secret").json()
    assert first["observatory"] == OWNER.name and first["signature_header"] == "X-Photcal-Signature"
    rotated = api(site, "POST", "/api/v1/webhook-secret/rotate").json()
    assert rotated["secret"] != first["secret"]
    assert api(site, "GET", "/api/v1/webhook-secret").json()["secret"] == rotated["secret"]


def test_the_page_and_its_forms_ask_for_the_login_and_the_token(site: Stack):
    page = requests.get(f"{site.url}/subscriptions", allow_redirects=False, timeout=15)
    assert page.status_code == 303 and unquote(page.headers["Location"]) == "/login?next=/subscriptions"
    for path in ("/subscriptions", "/subscriptions/0123456789abcdef/delete", "/subscriptions/secret/rotate"):
        posted = requests.post(
            f"{site.url}{path}",
            data={"url": PUBLIC, "scope": "all"},
            headers={"Origin": site.url},
            allow_redirects=False,
            timeout=15,
        )
        assert posted.status_code in (303, 401, 403), (path, posted.status_code, posted.text[:300])
        if posted.status_code == 303:
            assert posted.headers["Location"].startswith("/login?next=")
    assert api(site, "GET", "/api/v1/subscriptions", who=OTHER.name).json()["subscriptions"] == []
