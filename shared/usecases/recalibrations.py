"""Recalibration: which datapoints a request selects, and how their new calibration compares with the old.

``POST /api/v1/recalibrations`` (the gateway, through the JetStream work queue)
and ``photcal recalibrate`` (lsdb/Dask, for the whole archive) both select
with :func:`select_points` and judge each refit with :func:`compare`; a job's
summary is :func:`summarize` of its items. Records: shared/db/recalibrations.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import nats.errors
from nats.js import JetStreamContext
from pymongo.errors import PyMongoError

from shared.bands import parse_force_filter
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import (
    PointCalibration,
    RecalibrationChange,
    RecalibrationRequest,
    RecalibrationSelection,
    RecalibrationTask,
)
from shared.contracts.subjects import SUBJECT_RECALIBRATE
from shared.contracts.surveys import SURVEYS, get_survey
from shared.db import Database, datapoints
from shared.db.alerts import find_alert
from shared.db.calibrations import zeropoints_of
from shared.db.client import unavailable
from shared.db.observatories import list_observatories
from shared.db.recalibrations import (
    ItemState,
    RecalibrationItem,
    RecalibrationJob,
    RecalibrationSummary,
    count_items,
    create_job,
    get_job,
    items_of_job,
    set_job,
)
from shared.errors import BackendUnavailable, BadInput, Conflict, NotFound
from shared.natsio import headers

#: two magnitudes (or limits, errors) this close are the same calibration: the answer's rounding
SAME_MAG = 0.0005


def point_calibration(doc: dict[str, Any], zeropoint: float | None = None) -> PointCalibration:
    """A stored datapoint's current calibration (``zeropoint`` from its calibration record, if known)."""
    return PointCalibration(
        survey=doc.get("survey"),
        filter=doc.get("filter"),
        mag=doc.get("mag"),
        mag_err=doc.get("mag_err"),
        limit_mag=doc.get("limit_mag"),
        detected=bool(doc.get("detected", True)),
        zeropoint=doc.get("zeropoint", zeropoint),
        zeropoint_err=doc.get("zeropoint_err"),
        version=int(doc.get("version") or 1),
    )


async def select_points(db: Database, selection: RecalibrationSelection, job_id: str) -> list[RecalibrationItem]:
    """One item per selected datapoint: ``pending``, or ``skipped`` with its reason (deleted; imported,
    without instrumental data). An alert or observatory the selection names that does not exist is a
    400 naming it (a typo must not select nothing, silently). 503 if the database is away."""
    try:
        ivorns = await _ivorns(db, selection.alerts) if selection.alerts else None
        observatory_ids = await _observatory_ids(db, selection.observatories) if selection.observatories else None
        docs = [
            doc
            async for doc in datapoints.select_datapoints(
                db,
                ivorns=ivorns,
                observatory_ids=observatory_ids,
                mjd_min=selection.mjd_min,
                mjd_max=selection.mjd_max,
                survey=selection.survey,
                band=selection.filter,
                followup_ids=selection.followup_ids or None,
                include_deleted=selection.state == "any",
            )
        ]
        # the zero point of points stored before datapoints kept one: their calibration records, in bulk
        missing = [
            str(d["upload_id"]) for d in docs if "zeropoint" not in d and d.get("calibration_id") == d.get("upload_id")
        ]
        zeropoints = await zeropoints_of(db, missing) if missing else {}
        return [_item(doc, job_id, zeropoints.get(str(doc["upload_id"]))) for doc in docs]
    except PyMongoError as exc:
        raise unavailable(exc) from exc


def _item(doc: dict[str, Any], job_id: str, zeropoint: float | None) -> RecalibrationItem:
    item = RecalibrationItem(
        job_id=job_id,
        followup_id=int(doc["followup_id"]),
        upload_id=str(doc["upload_id"]),
        ivorn=str(doc["ivorn"]),
        observatory_id=doc.get("observatory_id"),
        mjd=doc.get("mjd"),
        old=point_calibration(doc, zeropoint),
    )
    if doc.get("deleted"):
        return item.model_copy(update={"state": "skipped", "reason": "datapoint_deleted"})
    if doc.get("imported"):
        message = f"imported from {doc['imported']}: no instrumental data to calibrate again"
        return item.model_copy(update={"state": "skipped", "reason": "no_instrumental_data", "message": message})
    return item


async def _ivorns(db: Database, keys: list[str]) -> list[str]:
    found, unknown = [], []
    for key in keys:
        alert = await find_alert(db, key)
        if alert is None:
            unknown.append(key)
        else:
            found.append(alert.ivorn)
    if unknown:
        raise BadInput(
            f"no event has the ivorn or name {', '.join(unknown[:5])}: check the selection's alerts",
            code=ErrorCode.BAD_SELECTION,
        )
    return found


async def _observatory_ids(db: Database, keys: list[str]) -> list[str]:
    by_key: dict[str, str] = {}
    for obs in await list_observatories(db):
        by_key[obs.observatory_id] = obs.observatory_id
        by_key[obs.name.lower()] = obs.observatory_id
    unknown = [k for k in keys if k not in by_key and k.lower() not in by_key]
    if unknown:
        raise BadInput(
            f"no observatory has the id or name {', '.join(unknown[:5])}: check the selection's observatories",
            code=ErrorCode.BAD_SELECTION,
        )
    return [by_key.get(k) or by_key[k.lower()] for k in keys]


def _differs(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return not math.isclose(a, b, abs_tol=SAME_MAG)


def compare(old: PointCalibration, new: PointCalibration) -> tuple[bool, float | None]:
    """(changed, dmag): whether the new calibration differs from the old (band, detection, magnitude,
    limit or their errors beyond the answer's rounding), and new - old magnitude (detections) or limit
    (non-detections), mag; dmag is None across a detection and a limit."""
    changed = (
        _band(old) != _band(new)
        or old.detected != new.detected
        or any(_differs(getattr(old, f), getattr(new, f)) for f in ("mag", "mag_err", "limit_mag", "zeropoint_err"))
    )
    dmag = None
    if old.detected and new.detected and old.mag is not None and new.mag is not None:
        dmag = round(new.mag - old.mag, 4)
    elif not old.detected and not new.detected and old.limit_mag is not None and new.limit_mag is not None:
        dmag = round(new.limit_mag - old.limit_mag, 4)
    return changed, dmag


def _band(point: PointCalibration) -> tuple[str, str]:
    return (point.survey or "").lower(), point.filter or ""


def summarize(items: list[RecalibrationItem]) -> RecalibrationSummary:
    """A job's figures from its items (every state)."""
    states = Counter(i.state for i in items)
    done = [i for i in items if i.state in ("computed", "applied")]
    changed = [i for i in done if i.changed]
    moves = [abs(i.dmag) for i in changed if i.dmag is not None]
    return RecalibrationSummary(
        computed=len(done),
        changed=len(changed),
        unchanged=len(done) - len(changed),
        failed=states["failed"],
        skipped=states["skipped"],
        applied=states["applied"],
        band_changed=sum(
            1
            for i in changed
            if i.new is not None
            and ((i.old.survey or "").lower(), i.old.filter) != ((i.new.survey or "").lower(), i.new.filter)
        ),
        median_abs_dmag=round(statistics.median(moves), 4) if moves else None,
        max_abs_dmag=round(max(moves), 4) if moves else None,
        reasons=dict(Counter(i.reason or "" for i in items if i.state in ("failed", "skipped"))),
    )


# --- the job through the JetStream work queue (the gateway's routes and the calibrate service's worker) --------

#: tasks published at once, their acks awaited together (a few thousand points take seconds)
PUBLISH_BATCH = 500

CatalogueVersions = Callable[[], Awaitable[dict[str, list[str]]]]


def new_job_id() -> str:
    return uuid.uuid4().hex


async def check_change(change: RecalibrationChange, catalogue_versions: CatalogueVersions) -> None:
    """400 now for a change no point could take: a force_filter the bands module cannot parse, a catalogue
    version that is not on disk (``catalogue_versions()`` asks the catalogue service which are)."""
    if change.force_filter:
        parse_force_filter(change.force_filter)  # BadInput bad_force_filter / force_filter_unavailable
    if not change.catalogue_versions:
        return
    on_disk = await catalogue_versions()
    for survey, version in change.catalogue_versions.items():
        try:
            name = get_survey(survey).name
        except KeyError:
            raise BadInput(
                f"catalogue_versions: no survey {survey[:20]!r} ({', '.join(SURVEYS)})", code=ErrorCode.UNKNOWN_SURVEY
            ) from None
        if version not in on_disk.get(name, []):
            have = ", ".join(on_disk.get(name, [])) or "none loaded"
            raise BadInput(
                f"catalogue_versions: {name} has no version {version[:20]!r} on disk ({have}): "
                "`photcal catalog list` names them",
                code=ErrorCode.UNKNOWN_CATALOGUE_VERSION,
            )


async def create_recalibration(
    db: Database,
    js: JetStreamContext,
    request: RecalibrationRequest,
    *,
    created_by: str | None,
    catalogue_versions: CatalogueVersions,
) -> RecalibrationJob:
    """Check the change, select the points, store the job and its items, queue one compute task per pending
    item; the job is ``computing`` (or, when nothing is pending, ``ready``/``applied`` at once)."""
    await check_change(request.change, catalogue_versions)
    if request.change.force_filter:  # stored in the surveys' own spelling, as an upload's
        forced = parse_force_filter(request.change.force_filter)
        request = request.model_copy(
            update={"change": request.change.model_copy(update={"force_filter": forced.text if forced else ""})}
        )
    job_id = new_job_id()
    items = await select_points(db, request.selection, job_id)
    job = RecalibrationJob(job_id=job_id, request=request, created_by=created_by, engine="queue", total=len(items))
    try:
        await create_job(db, job, items)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    pending = [i for i in items if i.state == "pending"]
    await publish_tasks(js, [_task(job, i, "compute") for i in pending])
    if not pending:
        await finish_computing(db, js, job_id)
    return await _job(db, job_id)


def _task(job: RecalibrationJob, item: RecalibrationItem, action: Literal["compute", "apply"]) -> RecalibrationTask:
    return RecalibrationTask(
        job_id=job.job_id,
        action=action,
        followup_id=item.followup_id,
        upload_id=item.upload_id,
        change=job.request.change,
    )


async def publish_tasks(js: JetStreamContext, tasks: list[RecalibrationTask], resume: int = 0) -> None:
    """Queue tasks on photcal.recalibrate.v1, ``PUBLISH_BATCH`` at a time, each acknowledged by JetStream.
    Nats-Msg-Id ``<job>:<followup_id>:<action>`` (a resume's ``...:resume<n>``: a new id, so the dedupe
    window does not drop it; the item's conditional moves make a task done twice change nothing)."""
    suffix = f":resume{resume}" if resume else ""
    try:
        for start in range(0, len(tasks), PUBLISH_BATCH):
            futures = [
                await js.publish_async(
                    SUBJECT_RECALIBRATE,
                    task.model_dump_json().encode(),
                    headers=headers(msg_id=f"{task.job_id}:{task.followup_id}:{task.action}{suffix}"),
                )
                for task in tasks[start : start + PUBLISH_BATCH]
            ]
            await asyncio.wait_for(asyncio.gather(*futures), timeout=30.0)
    except (TimeoutError, nats.errors.Error) as exc:
        raise BackendUnavailable(
            "the recalibration queue (NATS) is not answering; the job is stored: resume it "
            "(POST /api/v1/recalibrations/{job_id}/resume) when NATS is back"
        ) from exc


async def finish_computing(db: Database, js: JetStreamContext, job_id: str) -> bool:
    """When no item of a ``computing`` job is pending: ``ready`` with its summary (a dry run), or on to
    apply (``dry_run`` false). Conditional on the job's state: of workers finishing at once one wins."""
    # one indexed lookup per finished task (not a count of every state): is any point still pending?
    if [i async for i in items_of_job(db, job_id, states=("pending",), limit=1)]:
        return False
    job = await get_job(db, job_id)
    if job is None:
        return False
    moved = False
    if job.state == "computing":
        summary = summarize([i async for i in items_of_job(db, job_id)])
        if not await set_job(db, job_id, expect="computing", state="ready", summary=summary):
            return False  # another worker moved it
        job.state, moved = "ready", True
    # (also a job a crash left ready between the two steps: its redelivered task or a resume gets here)
    if job.state == "ready" and not job.request.dry_run:
        with contextlib.suppress(Conflict):  # another worker started it first
            await start_apply(db, js, job_id)
        moved = True
    return moved


async def start_apply(db: Database, js: JetStreamContext, job_id: str) -> tuple[RecalibrationJob, bool]:
    """Apply a ``ready`` job: ``applying``, one apply task per computed and changed item. (job, started):
    an ``applied`` job again is (job, False), nothing changes; any other state a 409 saying it."""
    job = await _job(db, job_id)
    if job.state == "applied":
        return job, False
    if job.state != "ready" or not await set_job(db, job_id, expect="ready", state="applying"):
        current = await _job(db, job_id)
        if current.state == "applied":
            return current, False
        raise Conflict(
            f"recalibration {job_id} is {current.state}: only a ready job (every point computed) can be applied",
            code=ErrorCode.RECALIBRATION_NOT_READY,
        )
    changed = [i async for i in items_of_job(db, job_id, states=("computed",), changed=True)]
    await publish_tasks(js, [_task(job, i, "apply") for i in changed])
    await finish_applying(db, job_id)
    return await _job(db, job_id), True


async def finish_applying(db: Database, job_id: str) -> bool:
    """When no changed item of an ``applying`` job is left to apply: ``applied``, with the summary again."""
    left = [i async for i in items_of_job(db, job_id, states=("computed",), changed=True, limit=1)]
    if left:
        return False
    summary = summarize([i async for i in items_of_job(db, job_id)])
    return await set_job(db, job_id, expect="applying", state="applied", summary=summary)


async def resume_recalibration(db: Database, js: JetStreamContext, job_id: str) -> tuple[RecalibrationJob, int]:
    """Queue again what a job still has to do: its pending items' compute tasks (computing), its computed,
    changed, unapplied items' apply tasks (applying); a job with nothing left moves on. (job, tasks queued)."""
    job = await _job(db, job_id)
    resumes = job.resumes + 1
    if job.state == "computing":
        items = [i async for i in items_of_job(db, job_id, states=("pending",))]
        tasks = [_task(job, i, "compute") for i in items]
    elif job.state == "applying":
        items = [i async for i in items_of_job(db, job_id, states=("computed",), changed=True)]
        tasks = [_task(job, i, "apply") for i in items]
    else:
        if job.state == "ready" and not job.request.dry_run:  # stopped between computed and applying
            await finish_computing(db, js, job_id)
            return await _job(db, job_id), 0
        return job, 0
    await set_job(db, job_id, resumes=resumes)
    await publish_tasks(js, tasks, resume=resumes)
    if job.state == "computing":
        await finish_computing(db, js, job_id)
    else:
        await finish_applying(db, job_id)
    return await _job(db, job_id), len(tasks)


async def _job(db: Database, job_id: str) -> RecalibrationJob:
    try:
        job = await get_job(db, job_id)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    if job is None:
        raise NotFound(f"no recalibration job {job_id[:40]}", code=ErrorCode.UNKNOWN_RECALIBRATION)
    return job


async def job_report(db: Database, job_id: str) -> dict[str, Any]:
    """A job as ``GET /api/v1/recalibrations/{id}`` shows it: state, request, total, progress (items per
    state), the summary once computed."""
    job = await _job(db, job_id)
    try:
        progress = await count_items(db, job_id)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return {
        "job_id": job.job_id,
        "state": job.state,
        "engine": job.engine,
        "total": job.total,
        "progress": progress,
        "summary": job.summary.model_dump(mode="json") if job.summary else None,
        "request": job.request.model_dump(mode="json"),
        "created_by": job.created_by,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
        "error": job.error,
    }


def _iso(when: datetime) -> str:
    """UTC, with its offset (the database hands datetimes back without one)."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


async def job_items(
    db: Database,
    job_id: str,
    *,
    states: tuple[ItemState, ...] | None = None,
    changed: bool | None = None,
    skip: int = 0,
    limit: int = 100,
    with_result: bool = False,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of a job's per-point diff, in followup_id order, and whether more follow; ``with_result``:
    each computed point's whole new answer (CalibrationResult: candidates, provenance) too."""
    await _job(db, job_id)
    try:
        found = [i async for i in items_of_job(db, job_id, states=states, changed=changed, skip=skip, limit=limit + 1)]
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    views = [item_view(i) | ({"result": i.result} if with_result else {}) for i in found[:limit]]
    return views, len(found) > limit


def item_view(item: RecalibrationItem) -> dict[str, Any]:
    """One point of the diff: its old and new calibration, whether and by how much it changed, its state."""
    return {
        "followup_id": item.followup_id,
        "upload_id": item.upload_id,
        "ivorn": item.ivorn,
        "observatory_id": item.observatory_id,
        "mjd": item.mjd,
        "state": item.state,
        "old": item.old.model_dump(mode="json"),
        "new": item.new.model_dump(mode="json") if item.new else None,
        "changed": item.changed,
        "dmag": item.dmag,
        "reason": item.reason,
        "message": item.message,
    }


async def datapoint_now(db: Database, followup_id: int) -> dict[str, Any] | None:
    """A datapoint's current calibration and its version, and the versions recalibrations replaced (oldest
    first): what ``GET /api/v1/uploads/{id}`` adds to the upload's own answer."""
    point = await datapoints.datapoint_by_id(db, followup_id)
    if point is None:
        return None
    return {
        "followup_id": point.followup_id,
        "version": point.version,
        "deleted": point.deleted,
        "current": {k: getattr(point, k) for k in ("survey", "filter", "mag", "mag_err", "limit_mag", "detected")},
        "history": [h.model_dump(mode="json") for h in point.history],
    }
