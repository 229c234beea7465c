"""Datapoints: one calibrated magnitude (or limit) of an alert by an observatory.

The same datapoint cannot be stored twice: ``dedupe_key`` (unique) is the
alert, the observatory and the MJD to a tenth of a second. Stored by a
redelivered message of the *same* upload, it is the same datapoint and the
store answers with it; stored by another upload, it is a 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from shared.contracts.errors import ErrorCode
from shared.contracts.messages import utcnow
from shared.db.alerts import bump_data_version
from shared.db.client import Database
from shared.errors import Conflict, Forbidden, NotFound


class Datapoint(BaseModel):
    followup_id: int
    upload_id: str
    ivorn: str
    alert_name: str | None = None
    observatory_id: str
    observatory: str
    mjd: float
    exptime: float | None = None
    survey: str | None = None
    filter: str | None = None
    mag: float | None = None
    mag_err: float | None = None
    limit_mag: float | None = None
    detected: bool = True
    zeropoint_err: float | None = None
    comment: str = ""
    calibration_id: str | None = None
    created: datetime | None = None
    deleted: bool = False
    delete_reason: str | None = None


def dedupe_key(ivorn: str, observatory_id: str, mjd: float) -> str:
    # 1e-6 d = 0.09 s: two exposures are never that close, one file uploaded twice is
    return f"{ivorn}|{observatory_id}|{mjd:.6f}"


async def find_duplicate(db: Database, ivorn: str, observatory_id: str, mjd: float) -> dict[str, Any] | None:
    return await db.datapoints.find_one({"dedupe_key": dedupe_key(ivorn, observatory_id, mjd), "deleted": False})


async def store_datapoint(db: Database, fields: dict[str, Any], *, bump: bool = True) -> Datapoint:
    """Insert once; a redelivery of the same upload returns the stored one.

    ``bump=False``: the caller bumps the alert's ``data_version`` itself
    (``shared.db.alerts.bump_data_version``) once this returns, e.g. alongside
    its other writes.
    """
    key = dedupe_key(fields["ivorn"], fields["observatory_id"], fields["mjd"])
    existing = await db.datapoints.find_one({"dedupe_key": key})
    if existing is None:
        followup_id = await db.next_id("datapoints")
        doc = fields | {"followup_id": followup_id, "dedupe_key": key, "created": utcnow(), "deleted": False}
        try:
            await db.datapoints.insert_one(doc)
            if bump:
                await bump_data_version(db, fields["ivorn"])
            return Datapoint.model_validate(doc)
        except DuplicateKeyError:
            existing = await db.datapoints.find_one({"dedupe_key": key})
            if existing is None:  # the clash was on upload_id: this upload is already stored
                existing = await db.datapoints.find_one({"upload_id": fields["upload_id"]})
    if existing is None:
        raise Conflict("this datapoint could not be stored; try again", code=ErrorCode.DUPLICATE_DATAPOINT)
    if existing["upload_id"] != fields["upload_id"]:
        raise Conflict(
            f"this datapoint is already stored (followup_id {existing['followup_id']}): "
            "same alert, observatory and MJD",
            code=ErrorCode.DUPLICATE_DATAPOINT,
        )
    # a redelivery of the same upload: bump again in case the first delivery stopped before its bump
    if bump:
        await bump_data_version(db, fields["ivorn"])
    return Datapoint.model_validate(existing)


async def datapoints_of_alert(db: Database, ivorn: str, include_deleted: bool = False) -> list[Datapoint]:
    points = [Datapoint.model_validate(d) async for d in db.datapoints.find({"ivorn": ivorn})]
    if not include_deleted:
        points = [p for p in points if not p.deleted]
    return sorted(points, key=lambda p: (p.mjd, p.followup_id))


async def recent_datapoints(db: Database, limit: int = 1000) -> list[Datapoint]:
    cursor = db.datapoints.find({}).sort("followup_id", -1).limit(limit)
    return [Datapoint.model_validate(d) async for d in cursor if not d.get("deleted")]


async def delete_datapoint(db: Database, followup_id: int, observatory_id: str, reason: str) -> Datapoint:
    """Soft delete (kept in history); only the observatory that uploaded it may."""
    doc = await db.datapoints.find_one({"followup_id": followup_id})
    if doc is None or doc.get("deleted"):
        raise NotFound(f"no datapoint with followup_id {followup_id}", code=ErrorCode.UNKNOWN_DATAPOINT)
    if doc["observatory_id"] != observatory_id:
        raise Forbidden("only the observatory that uploaded a datapoint may delete it")
    # the dedupe key is freed so that a corrected upload of the same MJD can be stored
    await db.datapoints.update_one(
        {"followup_id": followup_id},
        {
            "$set": {
                "deleted": True,
                "delete_reason": reason,
                "deleted_at": utcnow(),
                "dedupe_key": f"deleted:{followup_id}:{doc['dedupe_key']}",
            }
        },
    )
    await bump_data_version(db, doc["ivorn"])
    return Datapoint.model_validate(doc | {"deleted": True, "delete_reason": reason})
