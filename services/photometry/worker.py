"""The JetStream consumer of frames: a frame in, its measured sources out to calibrate, exactly once.

A frame (``photcal.frame.v1``) is fetched from the object store, photometered
(services/photometry/measure.py) and republished as the same upload, with its sources
and ``forced_target``, on ``photcal.upload.v1`` with ``Nats-Msg-Id`` ``<upload_id>:measured``;
then acked. A worker killed mid-frame: the frame is redelivered and measured again, and
JetStream's de-duplication hands calibrate the upload once.

- a frame the observer must fix (``bad_image``, ``image_not_solved``,
  ``target_outside_frame``): an error result on ``photcal.calibrated.v1``, recorded, ack;
- anything else is judged by :func:`shared.decisions.decide`, as calibrate judges its own:
  an outage is NAKed with a delay, a crash retried ``max_deliver`` times, then dead-lettered
  and answered (shared/dead_letters.py).
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from services.photometry.measure import FrameMeasurer
from services.photometry.settings import PhotometrySettings
from shared.contracts.messages import UploadRequested
from shared.contracts.subjects import CONSUMER_PHOTOMETRY, STREAM_UPLOADS, SUBJECT_FRAME, SUBJECT_UPLOAD
from shared.db import Database
from shared.dead_letters import (
    DeadLetters,
    classify,
    crashes_of,
    failed_result,
    failure_result,
    settle,
    upload_age_s,
)
from shared.decisions import Action, Failure, Policy, decide
from shared.errors import PhotcalError
from shared.logging import correlation_id, get_logger
from shared.natsio import correlation_from, headers
from shared.pull_consumer import PullConsumerLoop

log = get_logger(__name__)

FRAMES = Counter("photcal_photometry_frames_total", "Frames photometered, by outcome", ["outcome"])
IN_FLIGHT = Gauge("photcal_photometry_in_flight", "Frames being photometered now")
PENDING = Gauge("photcal_photometry_consumer_pending", "Frames waiting in the photometry consumer")


def consumer_config(settings: PhotometrySettings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=CONSUMER_PHOTOMETRY,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.photometry_ack_wait,
        max_deliver=-1,  # outages retry until the upload's age limit; crashes are dead-lettered by us
        # a frame is hundreds of MB in memory: a worker holds only the frames it works on
        max_ack_pending=max(8 * settings.photometry_concurrency, 8),
        filter_subject=SUBJECT_FRAME,
    )


class Worker:
    def __init__(
        self, settings: PhotometrySettings, js: JetStreamContext, db: Database, measurer: FrameMeasurer
    ) -> None:
        self.settings, self.js, self.db, self.measurer = settings, js, db, measurer
        self.policy = Policy(
            max_crashes=settings.max_deliver,
            retry_delay=settings.retry_delay,
            outage_limit_s=settings.outage_retry_limit,
        )
        self.dead_letters = DeadLetters(js, db, settings.retry_delay, stage="photometry of the frame")
        self.consumer = PullConsumerLoop(
            js,
            stream=STREAM_UPLOADS,
            config=consumer_config(settings),
            concurrency=settings.photometry_concurrency,
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
        IN_FLIGHT.inc()
        # a solve and a large frame can outlast ack_wait: say "still working" so it is not redelivered meanwhile
        beat = asyncio.create_task(self._in_progress(msg))
        try:
            await self._process(msg, msg.metadata.num_delivered)
        finally:
            beat.cancel()
            IN_FLIGHT.dec()

    async def _in_progress(self, msg) -> None:
        while True:
            await asyncio.sleep(max(self.settings.photometry_ack_wait / 3, 0.5))
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _process(self, msg, deliveries: int) -> None:
        try:
            upload = UploadRequested.model_validate_json(msg.data)
        except ValidationError as exc:
            if await self.dead_letters.dead_letter(msg, deliveries, f"not an UploadRequested: {exc.errors()[:2]}"):
                FRAMES.labels("dead_letter").inc()
            return
        log_ = log.bind(upload_id=upload.upload_id, deliveries=deliveries)
        answered = self.dead_letters.given_up(upload.upload_id)
        if answered is not None:  # its failure was announced; only the database record is still to write
            await self.dead_letters.dead_letter(msg, deliveries, answered.message, upload, answered, announce=False)
            return
        try:
            measured = await self.measurer.measure(upload)
            await self.js.publish(
                SUBJECT_UPLOAD,
                measured.upload.model_dump_json().encode(),
                headers=headers(msg_id=f"{upload.upload_id}:measured"),
            )
        except PhotcalError as exc:
            if not exc.retryable and not getattr(exc, "failure", None):
                await self._answer_user_error(msg, upload, exc, log_)
                return
            await self._failed(msg, deliveries, upload, exc, log_)
            return
        except Exception as exc:
            await self._failed(msg, deliveries, upload, exc, log_)
            return
        if not await settle(msg.ack(), log_):
            return  # redelivered after ack_wait: measured again, and the republish is de-duplicated
        FRAMES.labels("measured").inc()
        forced = measured.upload.forced_target
        log_.info(
            "frame_measured",
            n_sources=measured.upload.n_sources,
            wcs=forced.photometry.wcs if forced else None,
            snr=forced.snr if forced else None,
            detected=forced is not None and forced.inst_mag is not None,
            duration_ms=measured.durations_ms,
        )

    async def _answer_user_error(self, msg, upload: UploadRequested, exc: PhotcalError, log_) -> None:
        """A frame the observer must fix: the upload is answered with the error, then acked."""
        failed = failed_result(upload, exc.code, exc.message, exc.http_status)
        try:
            await self.dead_letters.answer(failed)
        except Exception as backend:  # database or NATS away: judged like any outage
            await self._failed(msg, msg.metadata.num_delivered, upload, backend, log_)
            return
        if await settle(msg.ack(), log_):
            FRAMES.labels(exc.code).inc()
            log_.info("frame_refused", error=exc.code, message=exc.message[:300])

    async def _failed(self, msg, deliveries: int, upload: UploadRequested, exc: Exception, log_) -> None:
        failure, reason = classify(exc)
        crashes = await crashes_of(self.db, upload.upload_id, deliveries) if failure is Failure.CRASH else 0
        age = upload_age_s(upload)
        decision = decide(failure, deliveries=deliveries, crashes=crashes, age_s=age, policy=self.policy)
        if decision.action is Action.NAK:
            if failure is Failure.OUTAGE:
                log_.warning("backend_unavailable_retrying", reason=reason, error=str(exc)[:200], age_s=round(age, 1))
            else:
                log_.error("photometry_crashed", crashes=crashes, error=repr(exc)[:500], exc_info=exc)
            await settle(msg.nak(delay=decision.delay), log_)
            return
        if failure is Failure.CRASH:
            log_.error("photometry_crashed", crashes=crashes, error=repr(exc)[:500], exc_info=exc)
        failed = failure_result(upload, exc, failure, reason, decision, age, self.policy, self.dead_letters.stage)
        why = f"{decision.why}: {type(exc).__name__}: {exc}"
        if await self.dead_letters.dead_letter(msg, deliveries, why, upload, failed):
            FRAMES.labels("dead_letter").inc()
