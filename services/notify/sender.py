"""The delivery loop: posts due deliveries, signed, and records each outcome.

A delivery is claimed (``shared/db/deliveries.py``: a lease, so two notify processes never post it
at once and one killed mid-POST leaves it due again), its URL checked again (DNS may have changed:
``shared/webhooks.py``), then POSTed with its observatory's signature. A 2xx answer delivers it;
anything else (another status, no answer, a refused address) is retried with exponential back-off
until ``notify_retry_for`` seconds after it was recorded, then failed (services/notify/backoff.py).
A subscription with ``notify_pause_after`` failed POSTs in a row is paused: its deliveries are held
until its owner resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from prometheus_client import Counter, Gauge, Histogram
from pymongo.errors import PyMongoError

from services.notify.backoff import retry_in
from services.notify.settings import NotifySettings
from shared.contracts.messages import utcnow
from shared.contracts.subjects import (
    HEADER_DELIVERY,
    HEADER_EVENT,
    HEADER_SIGNATURE,
    HEADER_SUBSCRIPTION,
    HEADER_UPLOAD,
)
from shared.contracts.webhooks import EVENT_SUBJECTS
from shared.db import Database, subscriptions
from shared.db import deliveries as outbox
from shared.db.webhook_secrets import secret_of
from shared.errors import BadInput
from shared.logging import correlation_id, get_logger
from shared.webhooks import PublicResolver, check_url, signature

log = get_logger(__name__)

DELIVERIES = Counter(
    "photcal_notify_deliveries_total",
    "Webhook POST attempts, by kind (callback, subscription) and outcome (delivered, retry, failed, paused)",
    ["kind", "outcome"],
)
PENDING = Gauge("photcal_notify_deliveries_pending", "Deliveries waiting to be posted (held ones not counted)")
POST_SECONDS = Histogram(
    "photcal_notify_post_duration_seconds",
    "Time a receiver took to answer a webhook POST",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
USER_AGENT = "photcal-webhooks/1"
#: seconds between two purges of the deliveries kept long enough (PHOTCAL_NOTIFY_KEEP_FOR)
PURGE_EVERY_S = 600.0


class Sender:
    def __init__(self, settings: NotifySettings, db: Database) -> None:
        self.settings, self.db = settings, db
        self.wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task] = set()

    def poke(self) -> None:
        """New deliveries were recorded: look now rather than at the next poll."""
        self.wake.set()

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=None if self.settings.callback_allow_private else PublicResolver(), limit=64
        )
        self._http = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())
        last_gauge = last_purge = 0.0
        while not self._stopping.is_set():
            self.wake.clear()
            free = self.settings.notify_concurrency - len(self._in_flight)
            claimed: list[dict[str, Any]] = []
            if free > 0:
                try:
                    claimed = await outbox.claim_due(self.db, lease_s=self.settings.lease_s, limit=free)
                except PyMongoError as exc:
                    log.warning("outbox_unavailable", error=str(exc)[:200])
            for delivery in claimed:  # at most notify_concurrency in flight: no more were claimed
                task = asyncio.create_task(self._deliver(delivery))
                self._in_flight.add(task)
                task.add_done_callback(self._done)
            if time.monotonic() - last_gauge > 5:
                last_gauge = time.monotonic()
                with contextlib.suppress(PyMongoError):
                    PENDING.set(await outbox.count_pending(self.db))
            if time.monotonic() - last_purge > PURGE_EVERY_S:
                last_purge = time.monotonic()
                with contextlib.suppress(PyMongoError):
                    if purged := await outbox.purge_expired(self.db):
                        log.info("deliveries_purged", count=purged)
            if claimed and len(claimed) == free:
                continue  # more may be due: look again at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.notify_poll_interval)

    def _done(self, task: asyncio.Task) -> None:
        """A POST finished: its slot is free, so look for more."""
        self._in_flight.discard(task)
        self.wake.set()

    async def stop(self) -> None:
        """No new claims; the POSTs in flight finish (a claim left unfinished is due again after its lease)."""
        self._stopping.set()
        self.wake.set()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self.settings.shutdown_grace)
        if self._http is not None:
            await self._http.close()

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        correlation_id.set(delivery.get("correlation_id"))
        log_ = log.bind(delivery_id=delivery["delivery_id"], upload_id=delivery["upload_id"])
        try:
            if delivery.get("subscription_id") and not await self._still_wanted(delivery):
                return
            status, error = await self._post(delivery)
            if error is None:
                await self._delivered(delivery, status, log_)
            else:
                await self._failed_attempt(delivery, status, error, log_)
        except PyMongoError as exc:  # the outcome is not recorded: the claim's lease runs out and it is tried again
            log_.warning("delivery_outcome_not_recorded", error=str(exc)[:200])
        except Exception:
            log_.exception("delivery_crashed")

    async def _still_wanted(self, delivery: dict[str, Any]) -> bool:
        """A subscription's delivery is posted only while the subscription is there and active (it may have been
        paused or deleted since the delivery was claimed or recorded)."""
        subscription_id = delivery["subscription_id"]
        found = await subscriptions.get_subscription(self.db, subscription_id)
        if found is None:
            await outbox.mark_failed(self.db, delivery["delivery_id"], None, "the subscription was deleted")
            return False
        if found.state == "paused":
            await outbox.hold_pending(self.db, subscription_id)
            return False
        return True

    async def _post(self, delivery: dict[str, Any]) -> tuple[int | None, str | None]:
        """(HTTP status, None) when delivered; (status or None, why) when not."""
        assert self._http is not None, "run() opened the session"
        url = delivery["url"]
        try:
            await check_url(url, allow_private=self.settings.callback_allow_private)
        except BadInput as exc:
            return None, exc.message
        body = delivery["body"].encode()
        secret = (await secret_of(self.db, delivery["observatory_id"]))["secret"]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            HEADER_SIGNATURE: signature(secret, body),
            HEADER_DELIVERY: delivery["delivery_id"],
            HEADER_UPLOAD: delivery["upload_id"],
            HEADER_EVENT: EVENT_SUBJECTS[delivery.get("event", "calibrated")],
        }
        if delivery.get("subscription_id"):
            headers[HEADER_SUBSCRIPTION] = delivery["subscription_id"]
        started = time.perf_counter()
        try:
            async with self._http.post(
                url,
                data=body,
                headers=headers,
                allow_redirects=False,  # a redirect could lead anywhere, a private address too
                timeout=aiohttp.ClientTimeout(total=self.settings.notify_request_timeout),
            ) as response:
                await response.content.read(64 * 1024)  # an answer is not read beyond this
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"no answer: {type(exc).__name__}: {str(exc)[:200]}"
        finally:
            POST_SECONDS.observe(time.perf_counter() - started)
        if 200 <= status < 300:
            return status, None
        return status, f"the receiver answered HTTP {status}"

    async def _delivered(self, delivery: dict[str, Any], status: int | None, log_) -> None:
        await outbox.mark_delivered(self.db, delivery["delivery_id"], status or 200, self.settings.notify_keep_for)
        if delivery.get("subscription_id"):
            await subscriptions.record_success(self.db, delivery["subscription_id"])
        DELIVERIES.labels(delivery["kind"], "delivered").inc()
        log_.info("delivered", url=delivery["url"], status=status, attempts=delivery["attempts"])

    async def _failed_attempt(self, delivery: dict[str, Any], status: int | None, error: str, log_) -> None:
        s = self.settings
        started = delivery.get("released_at") or delivery["created_at"]
        age = (utcnow() - as_utc(started)).total_seconds()
        delay = retry_in(
            delivery["attempts"],
            age,
            initial_s=s.notify_retry_initial_delay,
            max_s=s.notify_retry_max_delay,
            retry_for_s=s.notify_retry_for,
        )
        if delay is None:
            await outbox.mark_failed(self.db, delivery["delivery_id"], status, error, s.notify_keep_for)
            DELIVERIES.labels(delivery["kind"], "failed").inc()
            log_.warning("delivery_failed", url=delivery["url"], error=error, attempts=delivery["attempts"])
        else:
            await outbox.mark_retry(
                self.db, delivery["delivery_id"], status, error, utcnow() + timedelta(seconds=delay)
            )
            DELIVERIES.labels(delivery["kind"], "retry").inc()
            log_.info("delivery_retry", url=delivery["url"], error=error, retry_in_s=delay)
        subscription_id = delivery.get("subscription_id")
        if subscription_id and await subscriptions.record_failure(
            self.db, subscription_id, s.notify_pause_after, error
        ):
            held = await outbox.hold_pending(self.db, subscription_id)
            DELIVERIES.labels(delivery["kind"], "paused").inc()
            log_.warning("subscription_paused", subscription_id=subscription_id, held=held, error=error)


def as_utc(when: datetime | str) -> datetime:
    """A stored time as an aware datetime (UTC): a ``$set`` date comes back as ISO text from the embedded database."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
