"""An observatory's webhook subscriptions and its signing secret (issue 22): each use case once.

The gateway's JSON API (``/api/v1/subscriptions``, ``/api/v1/webhook-secret``:
services/ingest/subscriptions.py) and the subscriptions page (``/subscriptions``:
services/lightcurve/web/subscriptions.py) translate their requests into these calls and their
answers out; the documents are ``shared/db/subscriptions.py``, ``shared/db/deliveries.py`` and
``shared/db/webhook_secrets.py``. Every refusal is a ``shared.errors`` exception with its stable code.

Each database call goes through ``call`` (default :func:`direct`: a database error is 503
``BackendUnavailable``); the gateway passes its guard (``services/ingest/cache.required``: a short
timeout, and 503 at once while the database is known to be down).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

from pydantic import ValidationError
from pymongo.errors import PyMongoError

from shared.contracts.errors import ErrorCode
from shared.contracts.webhooks import (
    DELIVERY_STATES,
    DeliveryList,
    Subscription,
    SubscriptionRequest,
    WebhookSecretView,
)
from shared.db import Database
from shared.db import deliveries as outbox
from shared.db import subscriptions as subs
from shared.db.alerts import find_alert
from shared.db.client import unavailable
from shared.db.observatories import Observatory
from shared.db.webhook_secrets import rotate_secret, secret_of
from shared.errors import BadInput, NotFound
from shared.webhooks import check_url

T = TypeVar("T")

#: the longest subscription id taken (ids are 16 hexadecimal digits)
MAX_ID = 64
DEFAULT_DELIVERIES = 50


class DbCall(Protocol):
    def __call__(self, fetch: Callable[[], Awaitable[T]], /) -> Awaitable[T]: ...


async def direct(fetch: Callable[[], Awaitable[T]]) -> T:
    """``fetch()``; a database error is 503 (``BackendUnavailable``)."""
    try:
        return await fetch()
    except PyMongoError as exc:
        raise unavailable(exc) from exc


class Resumed(NamedTuple):
    subscription: Subscription
    #: its held and failed deliveries made pending again
    released: int


def subscription_request(fields: Mapping[str, Any]) -> SubscriptionRequest:
    """The body of a new subscription, validated; 400 ``bad_field`` naming the first wrong field."""
    try:
        return SubscriptionRequest.model_validate(dict(fields))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadInput(
            f'{where}: {first["msg"]} (send {{"url": "https://...", "scope": "alert"|"all"|"mine", '
            '"ivorn": ... with scope alert, "events": ["calibrated", "recalibrated"] or one of them})',
            code=ErrorCode.BAD_FIELD,
        ) from exc


def checked_id(subscription_id: str) -> str:
    """A subscription id as its creation answered it; 400 ``bad_field`` otherwise."""
    if not subscription_id.isalnum() or len(subscription_id) > MAX_ID:
        raise BadInput("a subscription id is the hexadecimal id its creation answered", code=ErrorCode.BAD_FIELD)
    return subscription_id


def checked_state(state: str | None) -> str | None:
    """A delivery state to list (None: every one); 400 ``bad_field`` for another."""
    if state is not None and state not in DELIVERY_STATES:
        raise BadInput(f"state: one of {', '.join(DELIVERY_STATES)}", code=ErrorCode.BAD_FIELD)
    return state


def _unknown(subscription_id: str) -> NotFound:
    return NotFound(f"this observatory has no subscription {subscription_id}", code=ErrorCode.UNKNOWN_SUBSCRIPTION)


async def create_subscription(
    db: Database,
    owner: Observatory,
    wanted: SubscriptionRequest,
    *,
    allow_private: bool,
    call: DbCall = direct,
) -> Subscription:
    """A new subscription of ``owner``'s: the URL checked (400 ``callback_url_refused``), an alert named
    by its ivorn or name (400 ``missing_field`` without one, 404 ``unknown_event``), only scope alert
    naming one (400 ``bad_field``)."""
    url = await check_url(wanted.url, allow_private=allow_private)
    ivorn = None
    if wanted.scope == "alert":
        if not wanted.ivorn:
            raise BadInput(
                "ivorn: a subscription to an alert names it (its ivorn or name)", code=ErrorCode.MISSING_FIELD
            )
        key = wanted.ivorn
        alert = await call(lambda: find_alert(db, key))
        if alert is None:
            raise NotFound(f"unknown event {key[:200]}", code=ErrorCode.UNKNOWN_EVENT)
        ivorn = alert.ivorn
    elif wanted.ivorn:
        raise BadInput(
            f"ivorn: only a subscription with scope alert names one, not {wanted.scope}", code=ErrorCode.BAD_FIELD
        )
    # the one place a subscription is stored
    return await call(
        lambda: subs.add_subscription(db, owner.observatory_id, url, wanted.scope, ivorn, events=wanted.events)
    )


async def list_subscriptions(db: Database, owner: Observatory, *, call: DbCall = direct) -> list[Subscription]:
    """``owner``'s subscriptions, oldest first."""
    return await call(lambda: subs.list_subscriptions(db, owner.observatory_id))


async def get_subscription(
    db: Database, owner: Observatory, subscription_id: str, *, call: DbCall = direct
) -> Subscription:
    """One of ``owner``'s subscriptions; 404 ``unknown_subscription`` (another's is not told apart)."""
    sid = checked_id(subscription_id)
    found = await call(lambda: subs.get_subscription(db, sid, owner.observatory_id))
    if found is None:
        raise _unknown(sid)
    return found


async def delete_subscription(db: Database, owner: Observatory, subscription_id: str, *, call: DbCall = direct) -> int:
    """Delete it: nothing more is recorded for it, its undelivered deliveries are failed (their number)."""
    sid = checked_id(subscription_id)
    if not await call(lambda: subs.delete_subscription(db, sid, owner.observatory_id)):
        raise _unknown(sid)
    return await call(lambda: outbox.drop_undelivered(db, sid))


async def resume_subscription(
    db: Database, owner: Observatory, subscription_id: str, *, call: DbCall = direct
) -> Resumed:
    """Active again, its failures in a row forgotten; its held and failed deliveries are posted again."""
    sid = checked_id(subscription_id)
    resumed = await call(lambda: subs.resume(db, sid, owner.observatory_id))
    if resumed is None:
        raise _unknown(sid)
    released = await call(lambda: outbox.release(db, sid))
    return Resumed(resumed, released)


async def subscription_deliveries(
    db: Database,
    owner: Observatory,
    subscription_id: str,
    *,
    state: str | None = None,
    skip: int = 0,
    limit: int = DEFAULT_DELIVERIES,
    call: DbCall = direct,
) -> DeliveryList:
    """A subscription's deliveries, newest first (``state``: one of them only; ``failed`` ones are its dead
    letters); 400 ``bad_field`` for another state."""
    found = await get_subscription(db, owner, subscription_id, call=call)
    checked_state(state)
    listed = await call(
        lambda: outbox.list_deliveries(db, found.subscription_id, state=state, skip=skip, limit=limit)  # type: ignore[arg-type]
    )
    return DeliveryList(subscription_id=found.subscription_id, deliveries=listed, skip=skip, limit=limit)


async def webhook_secret(db: Database, owner: Observatory, *, call: DbCall = direct) -> WebhookSecretView:
    """The secret ``owner``'s deliveries are signed with (made on its first read)."""
    doc = await call(lambda: secret_of(db, owner.observatory_id))
    return WebhookSecretView(observatory=owner.name, secret=doc["secret"], created_at=doc["created_at"])


async def rotate_webhook_secret(db: Database, owner: Observatory, *, call: DbCall = direct) -> WebhookSecretView:
    """A new secret for ``owner``; deliveries from now on are signed with it, the old one stops at once."""
    doc = await call(lambda: rotate_secret(db, owner.observatory_id))
    return WebhookSecretView(observatory=owner.name, secret=doc["secret"], created_at=doc["created_at"])
