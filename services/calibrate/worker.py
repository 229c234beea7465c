"""The JetStream consumer: at-least-once in, exactly-one datapoint out.

A message is acknowledged only after its result is stored and published.
- a user-caused failure (bad file, field not covered): an error result, ack;
- anything else is judged by :func:`services.calibrate.decisions.decide`:
  a backend outage (database, NATS, catalogue not answering) is NAKed with a
  delay until the upload is ``outage_retry_limit`` seconds old; a failure that
  retrying cannot cure (a malformed or refused cone reply) at once, and a
  crash after ``max_deliver`` crashes, go to ``photcal.upload.dead.v1`` with
  the reason, and the upload is answered with a specific error
  (``catalog_unavailable``, ``catalog_reply_malformed``, ...), then TERM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC

import nats.errors
import nats.js.errors
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from services.calibrate.decisions import Action, Decision, Failure, Policy, decide
from services.calibrate.pipeline import Pipeline
from services.calibrate.settings import CalibrateSettings
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import (
    CalibrationResult,
    DeadLetter,
    UploadRequested,
    utcnow,
)
from shared.contracts.subjects import (
    CONSUMER_CALIBRATE,
    STREAM_UPLOADS,
    SUBJECT_CALIBRATED,
    SUBJECT_DEAD,
    SUBJECT_UPLOAD,
)
from shared.db import Database
from shared.db.uploads import count_crash, record_failure, record_result
from shared.errors import PhotcalError
from shared.logging import correlation_id, get_logger
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
        self._sub: JetStreamContext.PullSubscription | None = None
        self.policy = Policy(
            max_crashes=settings.max_deliver,
            retry_delay=settings.retry_delay,
            outage_limit_s=settings.outage_retry_limit,
        )
        #: uploads answered with a failure whose database record is still to write (the database was away)
        self._given_up: dict[str, CalibrationResult] = {}

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
                task.add_done_callback(self._task_done(slots))

    def _task_done(self, slots: asyncio.Semaphore) -> Callable[[asyncio.Task], None]:
        """The callback that forgets a finished upload task and frees its slot."""

        def done(task: asyncio.Task) -> None:
            self._tasks.discard(task)
            slots.release()

        return done

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
        answered = self._given_up.get(upload.upload_id)
        if answered is not None:  # its failure was announced; only the database record is still to write
            await self._dead_letter(msg, deliveries, answered.message, upload, answered, announce=False)
            return
        try:
            result = await self.pipeline.run(upload)
            await self._finish(result)
        except Exception as exc:
            failure, reason = classify(exc)
            crashes = await self._crashes(upload.upload_id, deliveries) if failure is Failure.CRASH else 0
            age = upload_age_s(upload)
            decision = decide(failure, deliveries=deliveries, crashes=crashes, age_s=age, policy=self.policy)
            if decision.action is Action.NAK:
                if failure is Failure.OUTAGE:
                    RETRIES.labels(reason).inc()
                    log_.warning(
                        "backend_unavailable_retrying", reason=reason, error=str(exc)[:200], age_s=round(age, 1)
                    )
                else:
                    log_.exception("calibration_crashed", crashes=crashes)
                await _settle(msg.nak(delay=decision.delay), log_)
                return
            if failure is Failure.CRASH:
                log_.exception("calibration_crashed", crashes=crashes)
            failed = failure_result(upload, exc, failure, reason, decision, age, self.policy)
            await self._dead_letter(msg, deliveries, f"{decision.why}: {type(exc).__name__}: {exc}", upload, failed)
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
            crashes = await count_crash(self.db, upload_id)
            return deliveries if crashes is None else crashes
        except PyMongoError:
            return deliveries

    async def _finish(self, result: CalibrationResult) -> None:
        await record_result(self.db, result)
        await self.js.publish(
            SUBJECT_CALIBRATED,
            result.model_dump_json().encode(),
            headers=headers(msg_id=f"result-{result.upload_id}"),
        )

    async def _dead_letter(
        self,
        msg,
        deliveries: int,
        reason: str,
        upload: UploadRequested | None = None,
        failed: CalibrationResult | None = None,
        *,
        announce: bool = True,
    ) -> None:
        """Dead letter, the upload's failure recorded and published, then TERM.

        If the database cannot take the failure now, the message is NAKed instead and only the
        record is retried (the answer was published already): ``GET /api/v1/uploads/{id}`` must
        not say "queued" for ever.
        """
        if announce:
            letter = DeadLetter(
                upload_id=upload.upload_id if upload else None,
                reason=reason[:1000],
                deliveries=deliveries,
                subject=msg.subject,
                payload=msg.data[:100_000].decode("utf-8", "replace"),
            )
            try:
                msg_id = f"dead-{upload.upload_id}" if upload else None  # a retried announcement is stored once
                await self.js.publish(SUBJECT_DEAD, letter.model_dump_json().encode(), headers=headers(msg_id=msg_id))
            except Exception as exc:  # NATS away: the message comes back after ack_wait and is judged again
                log.warning("dead_letter_not_published", upload_id=letter.upload_id, error=repr(exc)[:200])
                return
        if upload is not None:
            failed = failed or internal_failure(upload)
            recorded = await self._record_failure(failed)
            if announce:
                try:
                    await self.js.publish(
                        SUBJECT_CALIBRATED,
                        failed.model_dump_json().encode(),
                        headers=headers(msg_id=f"result-{upload.upload_id}"),
                    )
                except Exception:
                    log.warning("dead_letter_result_not_published", upload_id=upload.upload_id)
            if not recorded:
                self._remember_given_up(failed)
                await _settle(msg.nak(delay=self.settings.retry_delay), log)
                return
            self._given_up.pop(upload.upload_id, None)
        if not await _settle(msg.term(), log):
            return  # NATS away: redelivered after ack_wait, and judged again
        if announce:
            DEAD_LETTERS.inc()
            UPLOADS.labels("dead_letter").inc()
            log.error(
                "upload_dead_lettered",
                upload_id=upload.upload_id if upload else None,
                reason=reason[:500],
                error=failed.error if failed else None,
                deliveries=deliveries,
            )

    async def _record_failure(self, failed: CalibrationResult) -> bool:
        """Record the failure unless a result is there already; False if the database is away."""
        try:
            await record_failure(self.db, failed)  # a recorded result is never replaced by a failure
            return True
        except PyMongoError as exc:
            log.warning("failure_not_recorded", upload_id=failed.upload_id, error=str(exc)[:200])
            return False

    def _remember_given_up(self, failed: CalibrationResult) -> None:
        self._given_up[failed.upload_id] = failed
        while len(self._given_up) > 10_000:
            self._given_up.pop(next(iter(self._given_up)))


def classify(exc: Exception) -> tuple[Failure, str]:
    """(kind of failure, backend or code) of an exception out of the pipeline."""
    if isinstance(exc, PyMongoError):
        return Failure.OUTAGE, "database"
    if isinstance(exc, NATS_AWAY):
        # NATS away (restarting): the message is redelivered once it is back
        return Failure.OUTAGE, "nats"
    # the project's errors carry a code; anything else is judged without one
    code: str = getattr(exc, "code", "")
    if getattr(exc, "retryable", False):
        return Failure.OUTAGE, "catalog" if code == ErrorCode.CATALOG_UNAVAILABLE else getattr(exc, "code", "backend")
    if getattr(exc, "failure", None) == "permanent":
        return Failure.PERMANENT, code
    return Failure.CRASH, getattr(exc, "code", type(exc).__name__)


#: the answer when an outage outlasts the limit: (error code, what did not answer)
_OUTAGE_ANSWERS = {
    "catalog": (ErrorCode.CATALOG_UNAVAILABLE, "the reference catalogue service"),
    "database": (ErrorCode.DATABASE_UNAVAILABLE, "the database"),
    "nats": (ErrorCode.NATS_UNAVAILABLE, "the message broker (NATS)"),
}


def failure_result(
    upload: UploadRequested,
    exc: Exception,
    failure: Failure,
    reason: str,
    decision: Decision,
    age_s: float,
    policy: Policy,
) -> CalibrationResult:
    """The upload's answer when it is given up on: a stable code naming what failed."""
    if failure is Failure.OUTAGE:
        code, what = _OUTAGE_ANSWERS.get(reason, (getattr(exc, "code", ErrorCode.BACKEND_UNAVAILABLE), "a backend"))
        message = f"{what} did not answer for {age_s:.0f} s (limit {policy.outage_limit_s:.0f} s); upload again later"
        return _failed(upload, code, message, 503)
    if isinstance(exc, PhotcalError) and getattr(exc, "failure", None):
        return _failed(upload, exc.code, exc.message, exc.http_status)
    return internal_failure(upload)


def internal_failure(upload: UploadRequested) -> CalibrationResult:
    return _failed(
        upload, ErrorCode.INTERNAL_ERROR, "the calibration failed on our side; the operators have been told", 500
    )


def _failed(upload: UploadRequested, code: str, message: str, http_status: int) -> CalibrationResult:
    return CalibrationResult(
        status="error",
        error=code,
        message=message,
        http_status=http_status,
        upload_id=upload.upload_id,
        ivorn=upload.ivorn,
        alert_name=upload.alert_name,
        observatory=upload.observatory_name,
        mjd=upload.mjd,
        exptime=upload.exptime,
        comment=upload.comment,
        dry_run=upload.dry_run,
        n_sources=upload.n_sources,
    )


def upload_age_s(upload: UploadRequested) -> float:
    """Seconds since the gateway received the upload (0 if its clock is ahead of ours)."""
    received = upload.received_at
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return max((utcnow() - received).total_seconds(), 0.0)


async def _settle(call, log_) -> bool:
    """An ack or NAK; with NATS away it is lost, and JetStream redelivers after ack_wait."""
    try:
        await call
        return True
    except Exception as exc:
        log_.warning("ack_not_delivered", error=repr(exc)[:200])
        return False
