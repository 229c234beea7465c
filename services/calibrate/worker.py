"""The JetStream consumer: at-least-once in, exactly-one datapoint out.

A message is acknowledged only after its result is stored and published.
- a user-caused failure (bad file, field not covered): an error result, ack;
- a backend fault (database, catalogue down): NAK with a delay, forever;
- anything else (a bug, a poison message): NAK, and after ``max_deliver``
  deliveries a dead letter on ``photcal.upload.dead.v1`` with the reason, then TERM.
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from services.calibrate.pipeline import Pipeline
from services.calibrate.settings import CalibrateSettings
from shared.db import Database
from shared.db.uploads import record_result
from shared.logging import correlation_id, get_logger
from shared.models import (
    CONSUMER_CALIBRATE,
    STREAM_UPLOADS,
    SUBJECT_CALIBRATED,
    SUBJECT_DEAD,
    SUBJECT_UPLOAD,
    CalibrationResult,
    DeadLetter,
    UploadRequested,
)
from shared.natsio import correlation_from, headers

log = get_logger(__name__)

#: NATS or JetStream away or restarting: the message is redelivered once it is back, never dead-lettered for it
NATS_AWAY = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)

UPLOADS = Counter("photcal_uploads_total", "Uploads calibrated, by outcome", ["outcome"])
REDELIVERIES = Counter("photcal_calibrate_redeliveries_total", "Messages seen more than once")
DEAD_LETTERS = Counter("photcal_dead_letters_total", "Uploads given up on and dead-lettered")
RETRIES = Counter("photcal_calibrate_retries_total", "NAKs because a backend was down", ["reason"])
IN_FLIGHT = Gauge("photcal_calibrate_in_flight", "Uploads being calibrated now")
PENDING = Gauge("photcal_calibrate_consumer_pending", "Messages waiting in the calibrate consumer")


def consumer_config(settings: CalibrateSettings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=CONSUMER_CALIBRATE,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.ack_wait,
        max_deliver=-1,  # backend outages retry forever; poison is dead-lettered by us
        max_ack_pending=1000,
        filter_subject=SUBJECT_UPLOAD,
    )


class Worker:
    def __init__(self, settings: CalibrateSettings, js: JetStreamContext, db: Database, pipeline: Pipeline) -> None:
        self.settings, self.js, self.db, self.pipeline = settings, js, db, pipeline
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._sub = None

    async def run(self) -> None:
        self._sub = sub = await self.js.pull_subscribe(
            SUBJECT_UPLOAD, durable=CONSUMER_CALIBRATE, stream=STREAM_UPLOADS, config=consumer_config(self.settings)
        )
        slots = asyncio.Semaphore(self.settings.calibrate_concurrency)
        while not self._stopping.is_set():
            await slots.acquire()
            if self._stopping.is_set():
                slots.release()
                break
            try:
                msgs = await sub.fetch(1, timeout=1.0)
            except NatsTimeout:
                slots.release()
                await self._update_pending(sub)
                continue
            except Exception as exc:  # NATS reconnecting: wait and fetch again
                slots.release()
                log.warning("fetch_failed", error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                task = asyncio.create_task(self._handle(msg))
                self._tasks.add(task)
                task.add_done_callback(lambda t: (self._tasks.discard(t), slots.release()))

    async def stop(self) -> None:
        """Stop fetching and let the uploads in hand finish (their acks included)."""
        self._stopping.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.settings.shutdown_grace)
        if self._sub is not None:
            # unfetched messages stay in the stream for the next worker; a drain would wait on them
            await self._sub.unsubscribe()

    async def _update_pending(self, sub) -> None:
        try:
            info = await sub.consumer_info()
            PENDING.set(info.num_pending)
        except Exception:
            pass

    async def _handle(self, msg) -> None:
        correlation_id.set(correlation_from(msg))
        deliveries = msg.metadata.num_delivered
        if deliveries > 1:
            REDELIVERIES.inc()
        IN_FLIGHT.inc()
        try:
            await self._process(msg, deliveries)
        finally:
            IN_FLIGHT.dec()

    async def _process(self, msg, deliveries: int) -> None:
        try:
            upload = UploadRequested.model_validate_json(msg.data)
        except ValidationError as exc:
            await self._dead_letter(msg, deliveries, f"not an UploadRequested: {exc.errors()[:2]}")
            return
        log_ = log.bind(upload_id=upload.upload_id, deliveries=deliveries)
        try:
            result = await self.pipeline.run(upload)
            await self._finish(result)
        except PyMongoError as exc:
            return await self._retry(msg, log_, "database", exc)
        except NATS_AWAY as exc:
            # NATS away (restarting): the message is redelivered once it is back; never a dead letter for that
            return await self._retry(msg, log_, "nats", exc)
        except Exception as exc:
            if getattr(exc, "retryable", False):
                return await self._retry(msg, log_, getattr(exc, "code", "backend"), exc)
            log_.exception("calibration_crashed")
            # deliveries also counts NAKs for backend outages: poison is judged by its own crashes
            if await self._crashes(upload.upload_id, deliveries) >= self.settings.max_deliver:
                await self._dead_letter(msg, deliveries, f"{type(exc).__name__}: {exc}", upload)
            else:
                await _settle(msg.nak(delay=self.settings.retry_delay), log_)
            return
        if not await _settle(msg.ack(), log_):
            return  # not acknowledged: redelivered after ack_wait, and stored once (idempotent writes)
        UPLOADS.labels(result.error or "ok").inc()
        log_.info(
            "upload_calibrated",
            status=result.status,
            error=result.error,
            survey=result.survey,
            filter=result.filter,
            mag=result.mag,
            stored=result.stored,
            followup_id=result.followup_id,
            duration_ms=result.duration_ms,
        )

    async def _crashes(self, upload_id: str, deliveries: int) -> int:
        """How many times this upload crashed the calibration (JetStream's count if the database is away)."""
        try:
            doc = await self.db.uploads.find_one_and_update(
                {"upload_id": upload_id}, {"$inc": {"crashes": 1}}, upsert=True, return_document=ReturnDocument.AFTER
            )
            return int(doc.get("crashes", deliveries))
        except PyMongoError:
            return deliveries

    async def _finish(self, result: CalibrationResult) -> None:
        await record_result(self.db, result)
        await self.js.publish(
            SUBJECT_CALIBRATED,
            result.model_dump_json().encode(),
            headers=headers(msg_id=f"result-{result.upload_id}"),
        )

    async def _already_done(self, upload_id: str) -> bool:
        """A result already recorded is never replaced by the dead letter's failure."""
        try:
            doc = await self.db.uploads.find_one({"upload_id": upload_id}, {"state": 1})
        except PyMongoError:
            return False
        return bool(doc) and doc.get("state") == "done"

    async def _retry(self, msg, log_, reason: str, exc: Exception) -> None:
        RETRIES.labels(reason).inc()
        log_.warning("backend_unavailable_retrying", reason=reason, error=str(exc)[:200])
        await _settle(msg.nak(delay=self.settings.retry_delay), log_)

    async def _dead_letter(self, msg, deliveries: int, reason: str, upload: UploadRequested | None = None) -> None:
        letter = DeadLetter(
            upload_id=upload.upload_id if upload else None,
            reason=reason[:1000],
            deliveries=deliveries,
            subject=msg.subject,
            payload=msg.data[:100_000].decode("utf-8", "replace"),
        )
        await self.js.publish(SUBJECT_DEAD, letter.model_dump_json().encode(), headers=headers())
        if upload is not None and not await self._already_done(upload.upload_id):
            failed = CalibrationResult(
                status="error",
                error="internal_error",
                message="the calibration failed on our side; the operators have been told",
                http_status=500,
                upload_id=upload.upload_id,
                ivorn=upload.ivorn,
                dry_run=upload.dry_run,
            )
            try:
                await self._finish(failed)
            except Exception:
                log.warning("dead_letter_result_not_published", upload_id=upload.upload_id)
        await msg.term()
        DEAD_LETTERS.inc()
        UPLOADS.labels("dead_letter").inc()
        log.error("upload_dead_lettered", upload_id=letter.upload_id, reason=letter.reason, deliveries=deliveries)


async def _settle(call, log_) -> bool:
    """An ack or NAK; with NATS away it is lost, and JetStream redelivers after ack_wait."""
    try:
        await call
        return True
    except Exception as exc:
        log_.warning("ack_not_delivered", error=repr(exc)[:200])
        return False
