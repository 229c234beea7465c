"""The notify service's durable consumers of ``photcal.calibrated.v1`` and ``photcal.recalibrated.v1``:
each event into the outbox, then ack.

For each upload's result it records (``shared/db/deliveries.py``) one delivery for the upload's
``callback_url`` and one for each matching subscription; for each recalibrated datapoint, one for
each subscription in its scope that asked for recalibrations (a ``callback_url`` was for the
upload's answer only). Only then it acks: a consumer killed between the two finds the event again
and records nothing twice (the deliveries' ids are unique). The POSTs themselves are the delivery
loop's (``services/notify/sender.py``).

Each consumer is created with ``DeliverPolicy.NEW`` on its first start: a deployment adding the
notify service does not call back a month of old results; later starts resume where it stopped.
One durable per subject (not one with two filters): the results' durable of issue 22 keeps its
configuration, and one kind of event waiting never holds up the other.
"""

from __future__ import annotations

from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from services.notify.settings import NotifySettings
from shared.contracts.messages import PUBLISHED_MESSAGES, CalibrationResult, RecalibratedEvent
from shared.contracts.subjects import (
    CONSUMER_NOTIFY,
    CONSUMER_NOTIFY_RECALIBRATED,
    STREAM_RESULTS,
    SUBJECT_CALIBRATED,
    SUBJECT_RECALIBRATED,
)
from shared.db import Database
from shared.db.deliveries import add_delivery
from shared.db.subscriptions import matching
from shared.db.uploads import get_upload
from shared.dead_letters import settle
from shared.logging import correlation_id, get_logger
from shared.natsio import correlation_from
from shared.pull_consumer import PullConsumerLoop

log = get_logger(__name__)

EVENTS = Counter(
    "photcal_notify_events_total", "Events (results, recalibrations) the notify service read, by outcome", ["outcome"]
)
EVENTS_PENDING = Gauge(
    "photcal_notify_consumer_pending", "Events waiting in the notify service's consumers, by consumer", ["consumer"]
)

#: the durable that reads each subject
DURABLES = {SUBJECT_CALIBRATED: CONSUMER_NOTIFY, SUBJECT_RECALIBRATED: CONSUMER_NOTIFY_RECALIBRATED}
for _durable in DURABLES.values():  # each consumer's series is there (0) before its first reading
    EVENTS_PENDING.labels(_durable)

#: an event whose upload record is not written yet (the gateway writes it just after publishing) is
#: retried this many times, a second apart, before it is taken as it is
RECORD_WAITS = 5


def consumer_config(settings: NotifySettings, subject: str = SUBJECT_CALIBRATED) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=DURABLES[subject],
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW,
        ack_wait=settings.notify_ack_wait,
        max_deliver=-1,  # a database outage is retried until it ends: no notification is dropped
        filter_subject=subject,
    )


async def ensure_consumer(js: JetStreamContext, settings: NotifySettings) -> None:
    """The durables exist before the service says it is up: no event published after that is missed."""
    for subject in DURABLES:
        await js.add_consumer(STREAM_RESULTS, consumer_config(settings, subject))


class EventConsumer:
    """One durable's loop: ``subject`` says which events (results or recalibrations) it records."""

    def __init__(
        self,
        settings: NotifySettings,
        js: JetStreamContext,
        db: Database,
        on_recorded: Callable[[], None],
        subject: str = SUBJECT_CALIBRATED,
    ) -> None:
        self.settings, self.db, self.on_recorded, self.subject = settings, db, on_recorded, subject
        self.loop = PullConsumerLoop(
            js,
            stream=STREAM_RESULTS,
            config=consumer_config(settings, subject),
            concurrency=4,
            shutdown_grace=settings.shutdown_grace,
            pending=EVENTS_PENDING.labels(DURABLES[subject]),
            handle=self._handle,
        )

    async def run(self) -> None:
        await self.loop.run()

    async def stop(self) -> None:
        await self.loop.stop()

    async def _handle(self, msg) -> None:
        correlation_id.set(correlation_from(msg))
        model = PUBLISHED_MESSAGES[self.subject][0]
        try:
            event = model.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("event_unreadable", subject=self.subject, error=str(exc)[:300])
            EVENTS.labels("unreadable").inc()
            await settle(msg.term(), log)
            return
        assert isinstance(event, CalibrationResult | RecalibratedEvent)
        log_ = log.bind(upload_id=event.upload_id)
        try:
            if isinstance(event, RecalibratedEvent):
                recorded: int | None = await self._record_recalibration(event, msg.data)
            else:
                recorded = await self._record(event, msg.data, msg.metadata.num_delivered)
        except PyMongoError as exc:
            log_.warning("database_unavailable_retrying", error=str(exc)[:200])
            await settle(msg.nak(delay=self.settings.retry_delay), log_)
            return
        if recorded is None:
            await settle(msg.nak(delay=1.0), log_)
            return
        if await settle(msg.ack(), log_):
            EVENTS.labels("recorded" if recorded else "no_receiver").inc()
            if recorded:
                self.on_recorded()
                log_.info("deliveries_recorded", deliveries=recorded)

    async def _record(self, result: CalibrationResult, body: bytes, deliveries: int) -> int | None:
        """How many deliveries this result asks for (recorded now or before); None: its upload record is
        not there yet (try again shortly)."""
        record = await get_upload(self.db, result.upload_id)
        if (record is None or not record.get("observatory_id")) and deliveries < RECORD_WAITS:
            return None
        record = record or {}
        observatory_id = record.get("observatory_id")
        count = 0
        callback_url = record.get("callback_url")
        if callback_url and observatory_id:
            await add_delivery(
                self.db,
                upload_id=result.upload_id,
                url=callback_url,
                observatory_id=observatory_id,
                body=body,
                correlation_id=correlation_id.get(),
            )
            count += 1
        new_datapoint = result.status == "ok" and result.stored
        subscribed = await matching(
            self.db, ivorn=result.ivorn, observatory_id=observatory_id, new_datapoint=new_datapoint
        )
        return count + await self._to_subscriptions(subscribed, result.upload_id, body)

    async def _record_recalibration(self, event: RecalibratedEvent, body: bytes) -> int:
        """How many subscriptions are posted this recalibrated datapoint: those of its alert, of every
        alert, and the uploading observatory's own, that asked for recalibrations."""
        record = await get_upload(self.db, event.upload_id) or {}
        subscribed = await matching(
            self.db,
            ivorn=event.ivorn,
            observatory_id=record.get("observatory_id"),
            new_datapoint=True,
            event="recalibrated",
        )
        return await self._to_subscriptions(subscribed, event.upload_id, body, job_id=event.job_id)

    async def _to_subscriptions(
        self, subscribed: list[dict], upload_id: str, body: bytes, job_id: str | None = None
    ) -> int:
        """One delivery of ``body`` for each subscription (held if it is paused); how many."""
        for sub in subscribed:
            await add_delivery(
                self.db,
                upload_id=upload_id,
                url=sub["url"],
                observatory_id=sub["observatory_id"],
                body=body,
                subscription_id=sub["subscription_id"],
                held=sub.get("state") == "paused",
                correlation_id=correlation_id.get(),
                job_id=job_id,
            )
        return len(subscribed)
