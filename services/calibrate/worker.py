"""The JetStream consumer: at-least-once in, exactly-one datapoint out.

A message is acknowledged only after its result is stored and published.
- a user-caused failure (bad file, field not covered): an error result, ack;
- anything else is judged by :func:`shared.decisions.decide`:
  a backend outage (database, NATS, catalogue not answering) is NAKed with a
  delay until the upload is ``outage_retry_limit`` seconds old; a failure that
  retrying cannot cure (a malformed or refused cone reply) at once, and a
  crash after ``max_deliver`` crashes, go to ``photcal.upload.dead.v1`` with
  the reason, and the upload is answered with a specific error
  (``catalog_unavailable``, ``catalog_reply_malformed``, ...), then TERM.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from services.calibrate.pipeline import Pipeline
from services.calibrate.settings import CalibrateSettings
from shared.contracts.messages import CalibrationResult, UploadRequested
from shared.contracts.subjects import CONSUMER_CALIBRATE, STREAM_UPLOADS, SUBJECT_CALIBRATED, SUBJECT_UPLOAD
from shared.db import Database
from shared.db.uploads import record_result
from shared.dead_letters import (
    DeadLetters,
    classify,
    crashes_of,
    failure_result,
    settle,
    upload_age_s,
)
from shared.decisions import Action, Failure, Policy, decide
from shared.logging import correlation_id, get_logger
from shared.natsio import correlation_from, headers
from shared.pull_consumer import PullConsumerLoop

log = get_logger(__name__)

UPLOADS = Counter("photcal_uploads_total", "Uploads calibrated, by outcome", ["outcome"])
REDELIVERIES = Counter("photcal_calibrate_redeliveries_total", "Messages seen more than once")
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
        self.policy = Policy(
            max_crashes=settings.max_deliver,
            retry_delay=settings.retry_delay,
            outage_limit_s=settings.outage_retry_limit,
        )
        self.dead_letters = DeadLetters(js, db, settings.retry_delay, stage="calibration")
        self.consumer = PullConsumerLoop(
            js,
            stream=STREAM_UPLOADS,
            config=consumer_config(settings),
            concurrency=settings.calibrate_concurrency,
            shutdown_grace=settings.shutdown_grace,
            pending=PENDING,
            handle=self._handle,
        )

    async def run(self) -> None:
        await self.consumer.run()

    async def stop(self) -> None:
        """Stop fetching and let the messages in hand finish (their acks included)."""
        await self.consumer.stop()

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
        answered = self.dead_letters.given_up(upload.upload_id)
        if answered is not None:  # its failure was announced; only the database record is still to write
            await self._dead_letter(msg, deliveries, answered.message, upload, answered, announce=False)
            return
        try:
            result = await self.pipeline.run(upload)
            await self._finish(result, upload)
        except Exception as exc:
            failure, reason = classify(exc)
            crashes = await crashes_of(self.db, upload.upload_id, deliveries) if failure is Failure.CRASH else 0
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
                await settle(msg.nak(delay=decision.delay), log_)
                return
            if failure is Failure.CRASH:
                log_.exception("calibration_crashed", crashes=crashes)
            failed = failure_result(upload, exc, failure, reason, decision, age, self.policy)
            await self._dead_letter(msg, deliveries, f"{decision.why}: {type(exc).__name__}: {exc}", upload, failed)
            return
        if not await settle(msg.ack(), log_):
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

    async def _finish(self, result: CalibrationResult, upload: UploadRequested) -> None:
        await record_result(self.db, result, upload)
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
        """Dead letter, the upload's failure recorded and published, then TERM (shared/dead_letters.py)."""
        if await self.dead_letters.dead_letter(msg, deliveries, reason, upload, failed, announce=announce):
            UPLOADS.labels("dead_letter").inc()
