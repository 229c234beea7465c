"""The state of each upload: queued, then done (with its result) or failed; and how often it crashed the worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypedDict

from pymongo import ReturnDocument

from shared.contracts.messages import CalibrationResult, utcnow
from shared.db.client import Database, insert_once


class UploadRecord(TypedDict, total=False):
    upload_id: str
    state: Literal["queued", "done", "failed"]
    queued_at: datetime
    #: the answer (CalibrationResult as JSON) once done or failed
    result: dict[str, Any]
    finished_at: datetime
    #: how many deliveries crashed the calibration (the worker's poison-message count)
    crashes: int


async def record_queued(db: Database, upload_id: str, fields: dict[str, Any]) -> None:
    # nothing if the worker already recorded the upload (its result, or a crash count): unique upload_id
    await insert_once(db.uploads, fields | {"upload_id": upload_id, "state": "queued", "queued_at": utcnow()})


async def record_result(db: Database, result: CalibrationResult) -> None:
    state = "done" if result.status == "ok" else "failed"
    await db.uploads.update_one(
        {"upload_id": result.upload_id},
        {"$set": {"state": state, "result": result.model_dump(mode="json"), "finished_at": utcnow()}},
        upsert=True,
    )


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
