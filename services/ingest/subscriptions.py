"""``/api/v1/subscriptions`` and ``/api/v1/webhook-secret`` (issue 22): an observatory's webhooks.

Thin adapters: the hashtag (field, query, cookie or login, as for every /api/v1 write) names the
owner; the documents are ``shared/db/subscriptions.py``, ``shared/db/deliveries.py`` and
``shared/db/webhook_secrets.py``; the POSTs are the notify service's.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from services.ingest.auth import authenticate, hashtag_of
from services.ingest.cache import required
from services.ingest.recalibrations import _json_body
from services.ingest.state import Gateway
from shared.contracts.errors import ErrorCode
from shared.contracts.webhooks import (
    DELIVERY_STATES,
    DeliveryList,
    SubscriptionList,
    SubscriptionRequest,
    WebhookSecretView,
)
from shared.db import deliveries as outbox
from shared.db import subscriptions as subs
from shared.db.alerts import find_alert
from shared.db.observatories import Observatory
from shared.db.webhook_secrets import rotate_secret, secret_of
from shared.errors import BadInput, NotFound
from shared.webhooks import check_url

MAX_PAGE = 500


async def _owner(request: web.Request, gw: Gateway, body: dict | None = None) -> Observatory:
    hashtag = (body or {}).pop("hashtag", None)
    form = {"hashtag": str(hashtag)} if hashtag else None
    return await authenticate(gw.db, gw.pepper, hashtag_of(request, form))


def _subscription_id(request: web.Request) -> str:
    sid = request.match_info["subscription_id"]
    if not sid.isalnum() or len(sid) > 64:
        raise BadInput("a subscription id is the hexadecimal id its creation answered", code=ErrorCode.BAD_FIELD)
    return sid


def _json(model) -> web.Response:
    return web.Response(text=model.model_dump_json(), content_type="application/json")


async def handle_create(request: web.Request) -> web.Response:
    """POST /api/v1/subscriptions: {url, scope: alert (with ivorn) | all | mine} -> 201 with the subscription."""
    gw: Gateway = request.app["gateway"]
    body = await _json_body(request)
    owner = await _owner(request, gw, body)
    try:
        wanted = SubscriptionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadInput(
            f'{where}: {first["msg"]} (send {{"url": "https://...", "scope": "alert"|"all"|"mine", '
            '"ivorn": ... with scope alert, "events": ["calibrated", "recalibrated"] or one of them})',
            code=ErrorCode.BAD_FIELD,
        ) from exc
    url = await check_url(wanted.url, allow_private=gw.settings.callback_allow_private)
    ivorn = None
    if wanted.scope == "alert":
        if not wanted.ivorn:
            raise BadInput(
                "ivorn: a subscription to an alert names it (its ivorn or name)", code=ErrorCode.MISSING_FIELD
            )
        alert = await required(lambda: find_alert(gw.db, wanted.ivorn or ""))
        if alert is None:
            raise NotFound(f"unknown event {wanted.ivorn[:200]}", code=ErrorCode.UNKNOWN_EVENT)
        ivorn = alert.ivorn
    elif wanted.ivorn:
        raise BadInput(
            f"ivorn: only a subscription with scope alert names one, not {wanted.scope}", code=ErrorCode.BAD_FIELD
        )
    created = await required(
        lambda: subs.add_subscription(gw.db, owner.observatory_id, url, wanted.scope, ivorn, events=wanted.events)
    )
    return web.Response(text=created.model_dump_json(), content_type="application/json", status=201)


async def handle_list(request: web.Request) -> web.Response:
    gw: Gateway = request.app["gateway"]
    owner = await _owner(request, gw)
    found = await required(lambda: subs.list_subscriptions(gw.db, owner.observatory_id))
    return _json(SubscriptionList(subscriptions=found))


async def _own(request: web.Request, gw: Gateway, owner: Observatory):
    sid = _subscription_id(request)
    found = await required(lambda: subs.get_subscription(gw.db, sid, owner.observatory_id))
    if found is None:
        raise NotFound(f"this observatory has no subscription {sid}", code=ErrorCode.UNKNOWN_SUBSCRIPTION)
    return found


async def handle_get(request: web.Request) -> web.Response:
    """GET /api/v1/subscriptions/{id}: with its state (active, paused) and why it is paused."""
    gw: Gateway = request.app["gateway"]
    return _json(await _own(request, gw, await _owner(request, gw)))


async def handle_delete(request: web.Request) -> web.Response:
    """DELETE /api/v1/subscriptions/{id}: nothing more is recorded for it; its undelivered deliveries are failed."""
    gw: Gateway = request.app["gateway"]
    owner = await _owner(request, gw)
    sid = _subscription_id(request)
    if not await required(lambda: subs.delete_subscription(gw.db, sid, owner.observatory_id)):
        raise NotFound(f"this observatory has no subscription {sid}", code=ErrorCode.UNKNOWN_SUBSCRIPTION)
    await required(lambda: outbox.drop_undelivered(gw.db, sid))
    return web.json_response({"status": "ok", "message": f"subscription {sid} deleted", "subscription_id": sid})


async def handle_deliveries(request: web.Request) -> web.Response:
    """GET /api/v1/subscriptions/{id}/deliveries?state=failed&skip=&limit=: newest first; failed = dead letters."""
    gw: Gateway = request.app["gateway"]
    owner = await _owner(request, gw)
    found = await _own(request, gw, owner)
    state = request.query.get("state") or None
    if state is not None and state not in DELIVERY_STATES:
        raise BadInput(f"state: one of {', '.join(DELIVERY_STATES)}", code=ErrorCode.BAD_FIELD)
    skip, limit = _int(request, "skip", 0, 1_000_000, 0), _int(request, "limit", 1, MAX_PAGE, 50)
    listed = await required(
        lambda: outbox.list_deliveries(gw.db, found.subscription_id, state=state, skip=skip, limit=limit)  # type: ignore[arg-type]
    )
    return _json(DeliveryList(subscription_id=found.subscription_id, deliveries=listed, skip=skip, limit=limit))


async def handle_resume(request: web.Request) -> web.Response:
    """POST /api/v1/subscriptions/{id}/resume: active again; its held and failed deliveries are posted again."""
    gw: Gateway = request.app["gateway"]
    body = await _body(request)
    owner = await _owner(request, gw, body)
    sid = _subscription_id(request)
    resumed = await required(lambda: subs.resume(gw.db, sid, owner.observatory_id))
    if resumed is None:
        raise NotFound(f"this observatory has no subscription {sid}", code=ErrorCode.UNKNOWN_SUBSCRIPTION)
    released = await required(lambda: outbox.release(gw.db, sid))
    return web.json_response(resumed.model_dump(mode="json") | {"released": released})


async def handle_secret_get(request: web.Request) -> web.Response:
    """GET /api/v1/webhook-secret: the secret the observatory's deliveries are signed with (made on first read)."""
    gw: Gateway = request.app["gateway"]
    owner = await _owner(request, gw)
    doc = await required(lambda: secret_of(gw.db, owner.observatory_id))
    return _json(WebhookSecretView(observatory=owner.name, secret=doc["secret"], created_at=doc["created_at"]))


async def handle_secret_rotate(request: web.Request) -> web.Response:
    """POST /api/v1/webhook-secret/rotate: a new secret; deliveries from now on are signed with it."""
    gw: Gateway = request.app["gateway"]
    body = await _body(request)
    owner = await _owner(request, gw, body)
    doc = await required(lambda: rotate_secret(gw.db, owner.observatory_id))
    return _json(WebhookSecretView(observatory=owner.name, secret=doc["secret"], created_at=doc["created_at"]))


async def _body(request: web.Request) -> dict:
    """A bodiless POST (the hashtag in the query), a JSON one, or a form's fields."""
    if not request.can_read_body:
        return {}
    if request.content_type == "application/json":
        return await _json_body(request)
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


def _int(request: web.Request, name: str, low: int, high: int, default: int) -> int:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise BadInput(f"{name}: a whole number from {low} to {high}", code=ErrorCode.BAD_FIELD)
    return int(value)
