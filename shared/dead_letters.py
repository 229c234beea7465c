"""What a JetStream worker does with an upload it gives up on, shared by calibrate and photometry.

:func:`classify` names the kind of failure an exception is (outage, permanent, crash) for
:func:`shared.decisions.decide`; :func:`failure_result` is the upload's answer when it is
given up on; :class:`DeadLetters` publishes the dead letter and the answer, records the
failure, then TERMs the message. Both workers answer an upload the same way, so an observer
sees the same error whichever stage gave up.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from prometheus_client import Counter
from pymongo.errors import PyMongoError

from shared.contracts.errors import ErrorCode
from shared.contracts.messages import CalibrationResult, DeadLetter, UploadRequested, utcnow
from shared.contracts.subjects import SUBJECT_CALIBRATED, SUBJECT_DEAD
from shared.db import Database
from shared.db.uploads import count_crash, record_failure
from shared.decisions import Decision, Failure, Policy
from shared.errors import PhotcalError
from shared.logging import get_logger
from shared.natsio import headers

log = get_logger(__name__)

DEAD_LETTERS = Counter("photcal_dead_letters_total", "Uploads given up on and dead-lettered")

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


def classify(exc: Exception) -> tuple[Failure, str]:
    """(kind of failure, backend or code) of an exception out of a worker's pipeline."""
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
    stage: str = "calibration",
) -> CalibrationResult:
    """The upload's answer when it is given up on: a stable code naming what failed (``stage``: the
    worker's part, named in an internal failure's message)."""
    if failure is Failure.OUTAGE:
        code, what = _OUTAGE_ANSWERS.get(reason, (getattr(exc, "code", ErrorCode.BACKEND_UNAVAILABLE), "a backend"))
        message = f"{what} did not answer for {age_s:.0f} s (limit {policy.outage_limit_s:.0f} s); upload again later"
        return failed_result(upload, code, message, 503)
    if isinstance(exc, PhotcalError) and getattr(exc, "failure", None):
        return failed_result(upload, exc.code, exc.message, exc.http_status)
    return internal_failure(upload, stage)


def internal_failure(upload: UploadRequested, stage: str = "calibration") -> CalibrationResult:
    return failed_result(
        upload, ErrorCode.INTERNAL_ERROR, f"the {stage} failed on our side; the operators have been told", 500
    )


def failed_result(
    upload: UploadRequested, code: str, message: str, http_status: int, **fields: Any
) -> CalibrationResult:
    """An ``error`` answer to ``upload`` (``fields``: more of the answer, e.g. ``duration_ms``)."""
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
        **fields,
    )


def upload_age_s(upload: UploadRequested) -> float:
    """Seconds since the gateway received the upload (0 if its clock is ahead of ours)."""
    received = upload.received_at
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return max((utcnow() - received).total_seconds(), 0.0)


async def settle(call: Awaitable[Any], log_: Any) -> bool:
    """An ack or NAK; with NATS away it is lost, and JetStream redelivers after ack_wait."""
    try:
        await call
        return True
    except Exception as exc:
        log_.warning("ack_not_delivered", error=repr(exc)[:200])
        return False


async def crashes_of(db: Database, upload_id: str, deliveries: int) -> int:
    """How many times this upload crashed a worker (JetStream's count if the database is away)."""
    try:
        crashes = await count_crash(db, upload_id)
        return deliveries if crashes is None else crashes
    except PyMongoError:
        return deliveries


class DeadLetters:
    """Dead-lettering and failure answers of one worker, with the failures still to record.

    ``stage`` names the worker in the answer of an internal failure ("the calibration failed
    on our side").
    """

    def __init__(self, js: JetStreamContext, db: Database, retry_delay: float, stage: str = "calibration") -> None:
        self.js, self.db, self.retry_delay, self.stage = js, db, retry_delay, stage
        #: uploads answered with a failure whose database record is still to write (the database was away)
        self._given_up: dict[str, CalibrationResult] = {}

    def given_up(self, upload_id: str) -> CalibrationResult | None:
        """The failure this upload was answered with, if its record is still to write."""
        return self._given_up.get(upload_id)

    async def answer(self, failed: CalibrationResult) -> None:
        """Publish and record a user-caused failure (the caller acks); raises if NATS or the database is away."""
        await record_failure(self.db, failed)
        await self.js.publish(
            SUBJECT_CALIBRATED,
            failed.model_dump_json().encode(),
            headers=headers(msg_id=f"result-{failed.upload_id}"),
        )

    async def dead_letter(
        self,
        msg: Any,
        deliveries: int,
        reason: str,
        upload: UploadRequested | None = None,
        failed: CalibrationResult | None = None,
        *,
        announce: bool = True,
    ) -> bool:
        """Dead letter, the upload's failure recorded and published, then TERM; True once TERMed.

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
                return False
        if upload is not None:
            failed = failed or internal_failure(upload, self.stage)
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
                await settle(msg.nak(delay=self.retry_delay), log)
                return False
            self._given_up.pop(upload.upload_id, None)
        if not await settle(msg.term(), log):
            return False  # NATS away: redelivered after ack_wait, and judged again
        if announce:
            DEAD_LETTERS.inc()
            log.error(
                "upload_dead_lettered",
                upload_id=upload.upload_id if upload else None,
                reason=reason[:500],
                error=failed.error if failed else None,
                deliveries=deliveries,
            )
        return announce

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
