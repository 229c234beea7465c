"""Recalibration jobs and their items: the datapoints a job fitted again, each with its old and new calibration.

A job (collection ``recalibration_jobs``, ``_id`` the job id) is created by
``POST /api/v1/recalibrations`` or ``photcal recalibrate``: it holds the
request (selection, change, dry run), its state and, once computed, a summary.
Each selected datapoint is one item (collection ``recalibrations``, ``_id``
``<job_id>|<followup_id>``), inserted ``pending`` when the job is created and
moved on by the worker that computes it (``computed``, ``failed`` or
``skipped`` with a reason) and, on apply, ``applied`` (or ``skipped``). Every
move is conditional on the state it leaves, so a redelivered task moves
nothing twice: a job can be resumed (its pending items sent again) and
re-applied without changing anything twice.

Progress is counted, not tracked: ``job_state_key`` (``<job_id>|<state>``,
indexed) makes each state's count one index lookup.

Records an older ``photcal recalibrate`` wrote here (``_id``
``<upload_id>|<SURVEY>|<version>``, no ``job_id``) are never read; it writes
jobs now (engine ``dask``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from shared.contracts.messages import PointCalibration, RecalibrationRequest, utcnow
from shared.db.client import Database

JobState = Literal["computing", "ready", "applying", "applied", "failed"]
ItemState = Literal["pending", "computed", "failed", "skipped", "applied"]
ITEM_STATES: tuple[ItemState, ...] = ("pending", "computed", "failed", "skipped", "applied")


class RecalibrationSummary(BaseModel):
    """What a job's computed items say, in numbers (magnitudes in mag)."""

    computed: int = 0
    changed: int = 0
    unchanged: int = 0
    failed: int = 0
    skipped: int = 0
    applied: int = 0
    #: how many changed band (survey/filter)
    band_changed: int = 0
    #: over the changed items whose old and new magnitudes are both known
    median_abs_dmag: float | None = None
    max_abs_dmag: float | None = None
    #: why items failed or were skipped: reason -> how many
    reasons: dict[str, int] = Field(default_factory=dict)


class RecalibrationJob(BaseModel):
    job_id: str
    state: JobState = "computing"
    request: RecalibrationRequest
    #: the administrator's observatory that asked
    created_by: str | None = None
    #: "queue": the JetStream work queue; "dask": photcal recalibrate's lsdb/Dask batch
    engine: Literal["queue", "dask"] = "queue"
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    #: how many datapoints the selection took
    total: int = 0
    #: set when every item is computed (and again once applied)
    summary: RecalibrationSummary | None = None
    #: a job that could not run: why
    error: str | None = None
    #: how many times it was resumed (its tasks queued again)
    resumes: int = 0


class RecalibrationItem(BaseModel):
    job_id: str
    followup_id: int
    upload_id: str
    ivorn: str
    observatory_id: str | None = None
    mjd: float | None = None
    state: ItemState = "pending"
    #: failed or skipped: the error code or reason ("datapoint_deleted", "no_instrumental_data", ...)
    reason: str | None = None
    message: str | None = None
    old: PointCalibration
    new: PointCalibration | None = None
    #: the new calibration differs from the old one (band, detection, or magnitude/limit by >= 0.0005 mag)
    changed: bool = False
    #: new - old magnitude (or limit), mag; null when either is missing or they are of different kinds
    dmag: float | None = None
    #: the new calibration's whole answer (CalibrationResult as JSON, its provenance included)
    result: dict[str, Any] | None = None
    computed_at: datetime | None = None
    applied_at: datetime | None = None


def item_id(job_id: str, followup_id: int) -> str:
    return f"{job_id}|{followup_id}"


def _state_key(job_id: str, state: str) -> str:
    return f"{job_id}|{state}"


async def create_job(db: Database, job: RecalibrationJob, items: list[RecalibrationItem]) -> None:
    """Store the job and its pending items (ordered insert; an item already there is left as it is)."""
    await db.recalibration_jobs.update_one(
        {"_id": job.job_id}, {"$setOnInsert": job.model_dump(mode="python")}, upsert=True
    )
    for start in range(0, len(items), 1000):
        docs = [_item_doc(item) for item in items[start : start + 1000]]
        try:
            await db.recalibrations.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # a job created again (resumed): its items are there already
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise


def _item_doc(item: RecalibrationItem) -> dict[str, Any]:
    doc = item.model_dump(mode="python")
    return doc | {"_id": item_id(item.job_id, item.followup_id), "job_state_key": _state_key(item.job_id, item.state)}


async def get_job(db: Database, job_id: str) -> RecalibrationJob | None:
    doc = await db.recalibration_jobs.find_one({"_id": job_id})
    return None if doc is None else RecalibrationJob.model_validate(doc)


async def set_job(db: Database, job_id: str, *, expect: JobState | None = None, **fields: Any) -> bool:
    """Set fields of the job (``state``, ``summary`` as a model or dict...); with ``expect``, only if the job
    is in that state. True if it was changed."""
    query: dict[str, Any] = {"_id": job_id}
    if expect is not None:
        query["state"] = expect
    values = {k: (v.model_dump(mode="python") if isinstance(v, BaseModel) else v) for k, v in fields.items()}
    result = await db.recalibration_jobs.update_one(query, {"$set": values | {"updated_at": utcnow()}})
    return result.matched_count > 0


async def get_item(db: Database, job_id: str, followup_id: int) -> RecalibrationItem | None:
    doc = await db.recalibrations.find_one({"_id": item_id(job_id, followup_id)})
    return None if doc is None else RecalibrationItem.model_validate(doc)


async def recalibration_result(db: Database, calibration_id: str | None) -> dict[str, Any] | None:
    """The whole answer (CalibrationResult as JSON) behind a datapoint recalibrated by a job: its
    ``calibration_id`` is then ``<job_id>|<followup_id>``, this module's item id. None for any other id."""
    job_id, sep, followup_id = (calibration_id or "").partition("|")
    if not sep or not followup_id.isdigit():
        return None
    doc = await db.recalibrations.find_one({"_id": item_id(job_id, int(followup_id))}, {"result": 1})
    return None if doc is None else doc.get("result")


async def move_item(
    db: Database, job_id: str, followup_id: int, *, leaving: ItemState, to: ItemState, **fields: Any
) -> bool:
    """Move an item from state ``leaving`` to ``to`` with ``fields`` (``new``, ``changed``, ``dmag``,
    ``result``, ``reason``...): True if it moved; False if it was not in ``leaving`` (a redelivery)."""
    values = {k: (v.model_dump(mode="python") if isinstance(v, BaseModel) else v) for k, v in fields.items()}
    stamp = {"computed_at": utcnow()} if leaving == "pending" else {"applied_at": utcnow()}
    result = await db.recalibrations.update_one(
        {"_id": item_id(job_id, followup_id), "state": leaving},
        {"$set": values | stamp | {"state": to, "job_state_key": _state_key(job_id, to)}},
    )
    return result.matched_count > 0


async def move_items(
    db: Database, job_id: str, moves: list[tuple[int, ItemState, dict[str, Any]]], *, leaving: ItemState = "pending"
) -> int:
    """:func:`move_item` for many items in one bulk write: each (followup_id, to, fields) moves only if the
    item is still in ``leaving``. Returns how many moved."""
    if not moves:
        return 0
    stamp = {"computed_at": utcnow()} if leaving == "pending" else {"applied_at": utcnow()}
    ops = []
    for followup_id, to, fields in moves:
        values = {k: (v.model_dump(mode="python") if isinstance(v, BaseModel) else v) for k, v in fields.items()}
        ops.append(
            UpdateOne(
                {"_id": item_id(job_id, followup_id), "state": leaving},
                {"$set": values | stamp | {"state": to, "job_state_key": _state_key(job_id, to)}},
            )
        )
    result = await db.recalibrations.bulk_write(ops, ordered=False)
    return result.modified_count


async def count_items(db: Database, job_id: str) -> dict[str, int]:
    """How many of the job's items are in each state (every state, zeros included)."""
    return {s: await db.recalibrations.count_documents({"job_state_key": _state_key(job_id, s)}) for s in ITEM_STATES}


async def items_of_job(
    db: Database,
    job_id: str,
    *,
    states: tuple[ItemState, ...] | None = None,
    changed: bool | None = None,
    skip: int = 0,
    limit: int | None = None,
) -> AsyncIterator[RecalibrationItem]:
    """The job's items (in ``states``; only the changed or unchanged ones), in followup_id order."""
    if states is None:
        query: dict[str, Any] = {"job_id": job_id}
    elif len(states) == 1:
        query = {"job_state_key": _state_key(job_id, states[0])}
    else:
        query = {"job_state_key": {"$in": [_state_key(job_id, s) for s in states]}}
    if changed is not None:
        query["changed"] = changed
    cursor = db.recalibrations.find(query).sort("followup_id", 1).skip(skip)
    if limit is not None:
        cursor = cursor.limit(limit)
    async for doc in cursor:
        yield RecalibrationItem.model_validate(doc)


async def items_for_summary(db: Database, job_id: str) -> list[RecalibrationItem]:
    """Every item of the job without its ``result`` (what summarize reads; a 100,000-point job's answers
    would be most of the bytes)."""
    cursor = db.recalibrations.find({"job_id": job_id}, {"result": 0}).batch_size(10_000)
    return [RecalibrationItem.model_validate(doc) async for doc in cursor]
