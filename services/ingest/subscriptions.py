"""``/api/v1/subscriptions`` and ``/api/v1/webhook-secret`` (issue 22): an observatory's webhooks.

Thin adapters over ``shared/usecases/subscriptions.py`` (the subscriptions page calls the same):
the hashtag (field, query, cookie or login, as for every /api/v1 write) names the owner; each
database call goes through the gateway's guard (``required``); the POSTs are the notify service's.
"""

from __future__ import annotations

from aiohttp import web

from services.ingest.auth import authenticate, hashtag_of
from services.ingest.cache import required
from services.ingest.recalibrations import _json_body
from services.ingest.state import Gateway
from shared.contracts.errors import ErrorCode
from shared.contracts.webhooks import SubscriptionList
from shared.db.observatories import Observatory
from shared.errors import BadInput
from shared.usecases import subscriptions as usecase

MAX_PAGE = 500


async def _owner(request: web.Request, gw: Gateway, body: dict | None = None) -> Observatory:
    hashtag = (body or {}).pop("hashtag", None)
    form = {"hashtag": str(hashtag)} if hashtag else None
    return await authenticate(gw.db, gw.pepper, hashtag_of(request, form))


def _json(model) -> web.Response:
    return web.Response(text=model.model_dump_json(), content_type="application/json")


async def handle_create(request: web.Request) -> web.Response:
    """POST /api/v1/subscriptions: {url, scope: alert (with ivorn) | all | mine} -> 201 with the subscription."""
    gw: Gateway = request.app["gateway"]
    body = await _json_body(request)
    owner = await _owner(request, gw, body)
    wanted = usecase.subscription_request(body)
    created = await usecase.create_subscription(
        gw.db, owner, wanted, allow_private=gw.settings.callback_allow_private, call=required
    )
    return web.Response(text=created.model_dump_json(), content_type="application/json", status=201)


async def handle_list(request: web.Request) -> web.Response:
    gw: Gateway = request.app["gateway"]
    owner = await _owner(request, gw)
    return _json(SubscriptionList(subscriptions=await usecase.list_subscriptions(gw.db, owner, call=required)))


async def handle_get(request: web.Request) -> web.Response:
    """GET /api/v1/subscriptions/{id}: with its state (active, paused) and why it is paused."""
    gw: Gateway = request.app["gateway"]
    owner = await _owner(request, gw)
    sid = request.match_info["subscription_id"]
    return _json(await usecase.get_subscription(gw.db, owner, sid, call=required))


async def handle_delete(request: web.Request) -> web.Response:
    """DELETE /api/v1/subscriptions/{id}: nothing more is recorded for it; its undelivered deliveries are failed."""
    gw: Gateway = request.app["gateway"]
    owner = await _owner(request, gw)
    sid = request.match_info["subscription_id"]
    await usecase.delete_subscription(gw.db, owner, sid, call=required)
    return web.json_response({"status": "ok", "message": f"subscription {sid} deleted", "subscription_id": sid})


async def handle_deliveries(request: web.Request) -> web.Response:
    """GET /api/v1/subscriptions/{id}/deliveries?state=failed&skip=&limit=: newest first; failed = dead letters."""
    gw: Gateway = request.app["gateway"]
    owner = await _owner(request, gw)
    sid = request.match_info["subscription_id"]
    await usecase.get_subscription(gw.db, owner, sid, call=required)  # an unknown one is 404 before a bad query
    state = usecase.checked_state(request.query.get("state") or None)
    skip, limit = _int(request, "skip", 0, 1_000_000, 0), _int(request, "limit", 1, MAX_PAGE, 50)
    listed = await usecase.subscription_deliveries(
        gw.db, owner, sid, state=state, skip=skip, limit=limit, call=required
    )
    return _json(listed)


async def handle_resume(request: web.Request) -> web.Response:
    """POST /api/v1/subscriptions/{id}/resume: active again; its held and failed deliveries are posted again."""
    gw: Gateway = request.app["gateway"]
    body = await _body(request)
    owner = await _owner(request, gw, body)
    resumed = await usecase.resume_subscription(gw.db, owner, request.match_info["subscription_id"], call=required)
    return web.json_response(resumed.subscription.model_dump(mode="json") | {"released": resumed.released})


async def handle_secret_get(request: web.Request) -> web.Response:
    """GET /api/v1/webhook-secret: the secret the observatory's deliveries are signed with (made on first read)."""
    gw: Gateway = request.app["gateway"]
    owner = await _owner(request, gw)
    return _json(await usecase.webhook_secret(gw.db, owner, call=required))


async def handle_secret_rotate(request: web.Request) -> web.Response:
    """POST /api/v1/webhook-secret/rotate: a new secret; deliveries from now on are signed with it."""
    gw: Gateway = request.app["gateway"]
    body = await _body(request)
    owner = await _owner(request, gw, body)
    return _json(await usecase.rotate_webhook_secret(gw.db, owner, call=required))


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
