"""The recalibration consumer: one datapoint of a recalibration job per message (``photcal.recalibrate.v1``).

``compute`` fits the point's stored sources again (``shared/db/upload_sources``)
with the job's change, through the same cone and fit as a live upload
(:meth:`services.calibrate.pipeline.Pipeline.refit`), and records the diff on the
job's item; ``apply`` makes that calibration the datapoint's current one
(``shared/db/datapoints.apply_recalibration``, a compare-and-set on its version)
and publishes ``photcal.recalibrated.v1``. The item's moves are conditional on the
state they leave, so a redelivered task changes nothing twice; the worker that
moves a job's last item moves the job on (``shared/usecases/recalibrations``).

Acks as the upload worker's (services/calibrate/worker.py): a backend outage
(database, NATS, catalogue service) is NAKed with a delay until the task has
been retried for ``outage_retry_limit`` seconds; an unexpected exception is
retried until ``max_deliver`` deliveries; then, and at once for a failure asking
again cannot cure (an unknown catalogue version, a field no honest fit can be
made of), the item is ``failed`` with the error code and the task acked.
"""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from services.calibrate.pipeline import Pipeline
from services.calibrate.settings import CalibrateSettings
from shared.arrays import SourceTable
from shared.bands import parse_force_filter
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import (
    CalibrationResult,
    ForcedTarget,
    PointCalibration,
    RecalibratedEvent,
    RecalibrationChange,
    RecalibrationTask,
    UploadRequested,
)
from shared.contracts.subjects import (
    CONSUMER_RECALIBRATE,
    STREAM_RECALIBRATIONS,
    SUBJECT_RECALIBRATE,
    SUBJECT_RECALIBRATED,
)
from shared.db import Database
from shared.db.datapoints import Datapoint, apply_recalibration, datapoint_by_id
from shared.db.recalibrations import RecalibrationItem, get_item, get_job, move_item
from shared.db.upload_sources import sources_of
from shared.dead_letters import classify, settle
from shared.decisions import Action, Failure, Policy, decide
from shared.errors import PhotcalError
from shared.logging import correlation_id, get_logger
from shared.natsio import correlation_from, headers
from shared.pull_consumer import PullConsumerLoop
from shared.usecases.recalibrations import compare, finish_applying, finish_computing

log = get_logger(__name__)

TASKS = Counter(
    "photcal_recalibration_tasks_total", "Recalibration tasks handled, by action and outcome", ["action", "outcome"]
)
RETRIES = Counter(
    "photcal_recalibration_retries_total", "Recalibration tasks NAKed because a backend was down", ["reason"]
)
PENDING = Gauge("photcal_recalibrate_consumer_pending", "Messages waiting in the recalibrate consumer")

#: why a point was not recalibrated after all, by apply_recalibration's outcome
_APPLY_SKIPS = {
    "deleted": ("datapoint_deleted", "the datapoint was deleted after the dry run"),
    "moved": ("datapoint_moved", "another recalibration changed the datapoint after this one was computed"),
    "unknown": ("datapoint_unknown", "the datapoint is no longer stored"),
}


def consumer_config(settings: CalibrateSettings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=CONSUMER_RECALIBRATE,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.ack_wait,
        max_deliver=-1,  # bounded by us: outage age, crash count (see the module's docstring)
        max_ack_pending=1000,
        filter_subject=SUBJECT_RECALIBRATE,
    )


def stored_upload(record: dict[str, Any], point: Datapoint, change: RecalibrationChange) -> UploadRequested:
    """The stored upload as the pipeline takes it, with the job's change applied: ``force_filter`` ``""``
    automatic, None the upload's own; ``match_dist_arcsec`` None the upload's own. Never stored, no plot."""
    force = record.get("force_filter") if change.force_filter is None else (change.force_filter or None)
    forced_band = parse_force_filter(force)
    sources = SourceTable.model_validate(record["sources"])
    forced_target = record.get("forced_target")
    return UploadRequested(
        upload_id=str(record["upload_id"]),
        ivorn=point.ivorn,
        alert_name=point.alert_name,
        alert_ra=float(record["alert_ra"]),
        alert_dec=float(record["alert_dec"]),
        observatory_id=point.observatory_id,
        observatory_name=point.observatory,
        mjd=point.mjd,
        exptime=point.exptime,
        match_dist_arcsec=change.match_dist_arcsec or float(record.get("match_dist_arcsec") or 2.0),
        force_filter=forced_band.text if forced_band is not None else None,
        forced_band=forced_band,
        dry_run=True,
        no_plot=True,
        comment=point.comment,
        n_sources=len(sources),
        sources=sources,
        observatory_filters=list(record.get("observatory_filters") or []),
        forced_target=ForcedTarget.model_validate(forced_target) if forced_target else None,
        input_sha256=record.get("input_sha256"),
    )


def new_calibration(result: CalibrationResult) -> PointCalibration:
    return PointCalibration(
        survey=result.survey,
        filter=result.filter,
        mag=result.mag,
        mag_err=result.mag_err,
        limit_mag=result.limit_mag,
        detected=bool(result.detected),
        zeropoint=result.zeropoint,
        zeropoint_err=result.zeropoint_err,
    )


class _Deterministic(Exception):
    """A failure asking again cannot cure: the item fails with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class RecalibrationWorker:
    def __init__(self, settings: CalibrateSettings, js: JetStreamContext, db: Database, pipeline: Pipeline) -> None:
        self.settings, self.js, self.db, self.pipeline = settings, js, db, pipeline
        self.policy = Policy(
            max_crashes=settings.max_deliver,
            retry_delay=settings.retry_delay,
            outage_limit_s=settings.outage_retry_limit,
        )
        self.consumer = PullConsumerLoop(
            js,
            stream=STREAM_RECALIBRATIONS,
            config=consumer_config(settings),
            concurrency=settings.recalibrate_concurrency,
            shutdown_grace=settings.shutdown_grace,
            pending=PENDING,
            handle=self._handle,
        )

    async def run(self) -> None:
        await self.consumer.run()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def _handle(self, msg) -> None:
        correlation_id.set(correlation_from(msg))
        deliveries = msg.metadata.num_delivered
        try:
            task = RecalibrationTask.model_validate_json(msg.data)
        except ValidationError as exc:
            log.error("recalibration_task_unreadable", error=str(exc.errors()[:2])[:300])
            TASKS.labels("unknown", "poison").inc()
            await settle(msg.term(), log)
            return
        log_ = log.bind(job_id=task.job_id, followup_id=task.followup_id, action=task.action, deliveries=deliveries)
        try:
            try:
                outcome = await (self._compute(task) if task.action == "compute" else self._apply(task))
            except _Deterministic as exc:
                outcome = await self._fail(task, exc.code, exc.message)
            except PhotcalError as exc:
                if exc.retryable or getattr(exc, "failure", None) == "crash":
                    raise
                outcome = await self._fail(task, exc.code, exc.message)  # the same answer every time
        except Exception as exc:
            failure, reason = classify(exc)
            # a task may wait in the queue long behind its job's others: its outage budget is the time it
            # has spent being retried, not its age in the stream
            age = (deliveries - 1) * self.policy.retry_delay
            decision = decide(failure, deliveries=deliveries, crashes=deliveries, age_s=age, policy=self.policy)
            if decision.action is Action.NAK:
                if failure is Failure.OUTAGE:
                    RETRIES.labels(reason).inc()
                    log_.warning("recalibration_backend_unavailable", reason=reason, error=str(exc)[:200])
                else:
                    log_.exception("recalibration_crashed")
                await settle(msg.nak(delay=decision.delay), log_)
                return
            log_.exception("recalibration_given_up", why=decision.why)
            code = _outage_code(reason) if failure is Failure.OUTAGE else (reason or ErrorCode.INTERNAL_ERROR)
            try:
                outcome = await self._fail(task, str(code), f"{decision.why}: {type(exc).__name__}: {exc}"[:300])
            except Exception:  # the database is away too: try again later
                await settle(msg.nak(delay=self.policy.retry_delay), log_)
                return
        if await settle(msg.ack(), log_):
            TASKS.labels(task.action, outcome).inc()
            log_.info("recalibration_task_done", outcome=outcome)

    async def _compute(self, task: RecalibrationTask) -> str:
        item = await get_item(self.db, task.job_id, task.followup_id)
        if item is None:
            return "unknown_item"
        if item.state != "pending":  # a redelivery: computed already; the job may still have to move on
            await finish_computing(self.db, self.js, task.job_id)
            return "redelivered"
        point = await datapoint_by_id(self.db, task.followup_id)
        record = None if point is None or point.deleted else await sources_of(self.db, task.upload_id)
        if point is None or point.deleted:
            moved = await self._leave(item, "skipped", reason="datapoint_deleted", message="the datapoint was deleted")
            outcome = "skipped"
        elif record is None:
            message = "stored before sources were kept: no instrumental data to calibrate again"
            moved = await self._leave(item, "skipped", reason="no_instrumental_data", message=message)
            outcome = "skipped"
        else:
            try:
                upload = stored_upload(record, point, task.change)
            except PhotcalError as exc:  # the change's force_filter for this upload
                raise _Deterministic(exc.code, exc.message) from exc
            result = await self.pipeline.refit(upload, task.change.catalogue_versions or None)
            new = new_calibration(result)
            changed, dmag = compare(item.old, new)
            moved = await self._leave(
                item, "computed", new=new, changed=changed, dmag=dmag, result=result.model_dump(mode="json")
            )
            outcome = "changed" if changed else "unchanged"
        if moved:
            await finish_computing(self.db, self.js, task.job_id)
        return outcome if moved else "redelivered"

    async def _leave(self, item: RecalibrationItem, to: str, **fields: Any) -> bool:
        return await move_item(self.db, item.job_id, item.followup_id, leaving="pending", to=to, **fields)  # type: ignore[arg-type]

    async def _fail(self, task: RecalibrationTask, code: str, message: str) -> str:
        """The item failed (compute) or is skipped (apply); the job moves on as if it had been done."""
        if task.action == "compute":
            moved = await move_item(
                self.db, task.job_id, task.followup_id, leaving="pending", to="failed", reason=code, message=message
            )
            await finish_computing(self.db, self.js, task.job_id)
        else:
            moved = await move_item(
                self.db, task.job_id, task.followup_id, leaving="computed", to="skipped", reason=code, message=message
            )
            await finish_applying(self.db, task.job_id)
        return "failed" if moved else "redelivered"

    async def _apply(self, task: RecalibrationTask) -> str:
        item = await get_item(self.db, task.job_id, task.followup_id)
        if item is None:
            return "unknown_item"
        if item.state != "computed" or item.new is None or not item.changed:
            await finish_applying(self.db, task.job_id)
            return "redelivered" if item.state in ("applied", "skipped") else "not_computed"
        from_version = item.old.version or 1
        fields = item.new.model_dump(exclude={"version"}) | {"calibration_id": f"{task.job_id}|{task.followup_id}"}
        outcome, point = await apply_recalibration(
            self.db, task.followup_id, from_version=from_version, new=fields, job_id=task.job_id
        )
        if outcome in _APPLY_SKIPS or point is None:
            reason, message = _APPLY_SKIPS.get(outcome, _APPLY_SKIPS["unknown"])
            await move_item(
                self.db, task.job_id, task.followup_id, leaving="computed", to="skipped", reason=reason, message=message
            )
            await finish_applying(self.db, task.job_id)
            return reason
        # applied now, or before a crash lost the event: publish it (the dedupe window keeps one)
        new = item.new.model_copy(update={"version": from_version + 1})
        job = await get_job(self.db, task.job_id)
        event = RecalibratedEvent(
            job_id=task.job_id,
            followup_id=task.followup_id,
            upload_id=item.upload_id,
            ivorn=point.ivorn,
            alert_name=point.alert_name,
            observatory=point.observatory,
            mjd=point.mjd,
            old=item.old,
            new=new,
            reason=job.request.reason if job else "",
        )
        await self.js.publish(
            SUBJECT_RECALIBRATED,
            event.model_dump_json().encode(),
            headers=headers(msg_id=f"{task.job_id}:{task.followup_id}"),
        )
        await move_item(self.db, task.job_id, task.followup_id, leaving="computed", to="applied", new=new)
        await finish_applying(self.db, task.job_id)
        return outcome


def _outage_code(reason: str) -> str:
    return {
        "catalog": ErrorCode.CATALOG_UNAVAILABLE,
        "database": ErrorCode.DATABASE_UNAVAILABLE,
        "nats": ErrorCode.NATS_UNAVAILABLE,
    }.get(reason, ErrorCode.BACKEND_UNAVAILABLE)
