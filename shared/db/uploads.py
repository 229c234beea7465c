"""The state of each upload: queued, then done (with its result) or failed."""

from __future__ import annotations

from typing import Any

from shared.contracts.messages import CalibrationResult, utcnow
from shared.db.client import Database, insert_once


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
