"""The state of each upload: queued, then done (with its result) or failed; and how often it crashed the worker.

Every upload that reached the queue has a record, dry runs and refusals too: the gateway writes what it
knows when it queues one (the observatory, event, file name, MJD, dry run), the worker its answer.
An observatory's uploads are listed newest first through ``observatory_queued_key``
(``<observatory_id>|<queued_at, ISO>``, indexed: the embedded database serves single-field keys only),
everyone's through ``queued_key`` (``queued_at``, ISO). Keys as text, not the date itself: the embedded
database's ``$set`` of a date (a record the worker wrote first) stores it as text, which sorts apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypedDict

from pymongo import ReturnDocument

from shared.contracts.messages import CalibrationResult, UploadRequested, utcnow
from shared.db.client import Database, insert_once

UploadState = Literal["queued", "done", "failed"]
UPLOAD_STATES: tuple[str, ...] = ("queued", "done", "failed")


class UploadRecord(TypedDict, total=False):
    upload_id: str
    state: UploadState
    queued_at: datetime
    #: what the gateway knew when it queued the upload (records from before them lack these)
    observatory_id: str
    ivorn: str
    filename: str
    dry_run: bool
    mjd: float
    #: where the notify service posts the result (issue 22); None: nowhere
    callback_url: str | None
    observatory_queued_key: str
    queued_key: str
    #: the answer (CalibrationResult as JSON) once done or failed
    result: dict[str, Any]
    finished_at: datetime
    #: how many deliveries crashed the calibration (the worker's poison-message count)
    crashes: int


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")


def queued_fields(upload: UploadRequested) -> dict[str, Any]:
    """What the observatory's upload list shows before (or without) an answer, from the queued message."""
    return {
        "ivorn": upload.ivorn,
        "alert_name": upload.alert_name,
        "observatory_id": upload.observatory_id,
        "observatory": upload.observatory_name,
        "filename": upload.filename,
        "dry_run": upload.dry_run,
        "mjd": upload.mjd,
        "callback_url": upload.callback_url,
    }


def _listing_keys(fields: dict[str, Any], queued_at: datetime) -> dict[str, Any]:
    keys = {"queued_key": _iso(queued_at)}
    if fields.get("observatory_id"):
        keys["observatory_queued_key"] = f"{fields['observatory_id']}|{_iso(queued_at)}"
    return keys


async def record_queued(db: Database, upload_id: str, fields: dict[str, Any]) -> None:
    """The upload is queued: ``fields`` (observatory_id, ivorn, filename, dry_run, mjd) with its state.

    When the worker recorded it first (its result, or a crash count: unique upload_id), its state stays
    and only ``fields`` are added, so that the upload is listed with its observatory all the same.
    """
    queued_at = utcnow()
    own = dict(fields) | {"queued_at": queued_at} | _listing_keys(fields, queued_at)
    if not await insert_once(db.uploads, own | {"upload_id": upload_id, "state": "queued"}):
        await db.uploads.update_one({"upload_id": upload_id}, {"$set": own})


async def record_result(db: Database, result: CalibrationResult, upload: UploadRequested | None = None) -> None:
    """The upload's answer; with ``upload``, a record the gateway could not write (the database was away
    then) gets its :func:`queued_fields` too, so that the observatory's list shows it."""
    state = "done" if result.status == "ok" else "failed"
    update: dict[str, Any] = {
        "$set": {"state": state, "result": result.model_dump(mode="json"), "finished_at": utcnow()}
    }
    if upload is not None:
        fields = queued_fields(upload)
        update["$setOnInsert"] = fields | _listing_keys(fields, upload.received_at)
    await db.uploads.update_one({"upload_id": result.upload_id}, update, upsert=True)


async def get_upload(db: Database, upload_id: str) -> dict[str, Any] | None:
    return await db.uploads.find_one({"upload_id": upload_id}, {"_id": 0})


async def record_failure(db: Database, failed: CalibrationResult) -> None:
    """Record a failure unless the upload has its result already: a stored result is never replaced by a failure."""
    doc = await db.uploads.find_one({"upload_id": failed.upload_id}, {"state": 1})
    if not (doc and doc.get("state") == "done"):
        await record_result(db, failed)


async def count_crash(db: Database, upload_id: str) -> int | None:
    """One more crash of this upload's calibration: how many now (None if the record has no count)."""
    doc = await db.uploads.find_one_and_update(
        {"upload_id": upload_id}, {"$inc": {"crashes": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    crashes = doc.get("crashes") if doc else None
    return None if crashes is None else int(crashes)


async def image_link_of(db: Database, upload_id: str) -> str | None:
    """The calibration plot's URL the upload's answer gave (None: no plot, not done, unknown)."""
    doc = await db.uploads.find_one({"upload_id": upload_id}, {"_id": 0, "result": 1})
    return ((doc or {}).get("result") or {}).get("image_link")


async def image_links_of(db: Database, upload_ids: list[str]) -> dict[str, str]:
    """The calibration plot's URL of each of the uploads that has one (a light curve's plot column)."""
    if not upload_ids:
        return {}
    cursor = db.uploads.find(
        {"upload_id": {"$in": list(dict.fromkeys(upload_ids))}}, {"_id": 0, "upload_id": 1, "result.image_link": 1}
    )
    links: dict[str, str] = {}
    async for doc in cursor:
        # MongoDB nests a dotted projection; the embedded database answers it as one flat "result.image_link" key
        link = (doc.get("result") or {}).get("image_link") or doc.get("result.image_link")
        if link:
            links[str(doc["upload_id"])] = link
    return links


def _listing(observatory_id: str | None, state: str | None) -> tuple[dict[str, Any], str]:
    """The query and its sort key (an indexed one) of :func:`list_uploads`."""
    query: dict[str, Any]
    if observatory_id is not None:
        # "|" then "}": every key of this observatory, and none of another whose id starts the same
        query = {"observatory_queued_key": {"$gte": f"{observatory_id}|", "$lt": f"{observatory_id}}}"}}
        key = "observatory_queued_key"
    else:
        query, key = {"queued_key": {"$gte": ""}}, "queued_key"  # a range: served by the index
    if state is not None:
        query["state"] = state
    return query, key


async def list_uploads(
    db: Database, *, observatory_id: str | None = None, state: str | None = None, skip: int = 0, limit: int = 50
) -> list[dict[str, Any]]:
    """Upload records newest first (by ``queued_at``): one observatory's, or everyone's; of one state or any."""
    query, key = _listing(observatory_id, state)
    cursor = db.uploads.find(query, {"_id": 0}).sort(key, -1).skip(skip).limit(limit)
    return [doc async for doc in cursor]


async def count_uploads(db: Database, *, observatory_id: str | None = None, state: str | None = None) -> int:
    """How many records :func:`list_uploads` pages through."""
    query, _ = _listing(observatory_id, state)
    return await db.uploads.count_documents(query)


async def upload_history(db: Database, observatory_id: str, limit: int = 20_000) -> list[dict[str, Any]]:
    """An observatory's uploads, newest first, as the observatory page counts them: ``queued_at``, ``state``,
    ``dry_run`` (at most ``limit``)."""
    query, key = _listing(observatory_id, None)
    fields = {"_id": 0, "queued_at": 1, "state": 1, "dry_run": 1}
    return [doc async for doc in db.uploads.find(query, fields).sort(key, -1).limit(limit)]
