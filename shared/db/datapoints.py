"""Datapoints: one calibrated magnitude (or limit) of an alert by an observatory.

The same datapoint cannot be stored twice: ``dedupe_key`` (unique) is the
alert, the observatory and the MJD to a tenth of a second. Stored by a
redelivered message of the *same* upload, it is the same datapoint and the
store answers with it; stored by another upload, it is a 409.

A soft delete keeps the datapoint (with its reason) and frees its dedupe key
for a corrected upload: the key becomes ``deleted:<followup_id>:<old key>``.
That encoding is this module's alone; readers ask :func:`deleted_followup_ids`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymongo.errors import DuplicateKeyError

from shared.contracts.errors import ErrorCode
from shared.contracts.messages import PointCalibration, utcnow
from shared.db.alerts import bump_data_version
from shared.db.client import Database
from shared.db.counters import next_id
from shared.errors import Conflict, Forbidden, NotFound


class DatapointVersion(PointCalibration):
    """A calibration a datapoint had before a recalibration replaced it (``Datapoint.history``, oldest first)."""

    version: int
    calibration_id: str | None = None
    #: when the next version replaced this one, and by which recalibration job
    replaced_at: datetime | None = None
    replaced_by_job: str | None = None


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
    #: the calibration's zero point (mag); datapoints stored before it was kept have none here (their
    #: calibration record has it)
    zeropoint: float | None = None
    zeropoint_err: float | None = None
    comment: str = ""
    calibration_id: str | None = None
    created: datetime | None = None
    deleted: bool = False
    delete_reason: str | None = None
    #: the current calibration's version: 1 as uploaded, +1 per applied recalibration
    version: int = 1
    #: the versions it replaced, oldest first (the current one is the datapoint's own fields)
    history: list[DatapointVersion] = Field(default_factory=list)
    #: where a datapoint without instrumental data came from (e.g. "cpcs": the CPCS archive); such a
    #: point has no stored sources and cannot be recalibrated
    imported: str | None = None
    #: the followup id the point had in the archive it was imported from (CPCS's ``id``)
    cpcs_id: int | str | None = None


#: a soft-deleted datapoint's dedupe key starts so; the unique index keeps them together, a range
_DELETED_PREFIX = "deleted:"
_DELETED_RANGE = {"dedupe_key": {"$gte": _DELETED_PREFIX, "$lt": "deleted;"}}


def _deleted_key(followup_id: int, key: str) -> str:
    return f"{_DELETED_PREFIX}{followup_id}:{key}"


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
        followup_id = await next_id(db, "datapoints")
        doc = fields | {
            "followup_id": followup_id,
            "dedupe_key": key,
            "created": utcnow(),
            "deleted": False,
            "version": 1,
        }
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
            details={"followup_id": existing["followup_id"]},
        )
    # a redelivery of the same upload: bump again in case the first delivery stopped before its bump
    if bump:
        await bump_data_version(db, fields["ivorn"])
    return Datapoint.model_validate(existing)


async def store_imported_datapoint(db: Database, fields: dict[str, Any]) -> tuple[Datapoint, bool]:
    """Store a point imported from an archive (``fields["imported"]``, e.g. "cpcs"), once; (point, stored).

    No calibration record and no sources: ``calibration_id`` None (recalibration
    skips it: no instrumental data). Already there, by its ``upload_id`` (e.g.
    ``cpcs:<CPCS id>``, deleted or not: a deleted import is not brought back) or
    by the dedupe key (the same alert, observatory and MJD stored live): that
    point and False. The caller bumps the alert's ``data_version``
    (``shared.db.alerts.bump_data_version``) once per alert.
    """
    key = dedupe_key(fields["ivorn"], fields["observatory_id"], fields["mjd"])
    for query in ({"upload_id": fields["upload_id"]}, {"dedupe_key": key}):
        existing = await db.datapoints.find_one(query)
        if existing is not None:
            return Datapoint.model_validate(existing), False
    followup_id = await next_id(db, "datapoints")
    doc = fields | {
        "followup_id": followup_id,
        "dedupe_key": key,
        "created": utcnow(),
        "deleted": False,
        "calibration_id": None,
        "version": 1,
        "history": [],
    }
    try:
        await db.datapoints.insert_one(doc)
    except DuplicateKeyError:  # a concurrent import of the same point won
        for query in ({"upload_id": fields["upload_id"]}, {"dedupe_key": key}):
            existing = await db.datapoints.find_one(query)
            if existing is not None:
                return Datapoint.model_validate(existing), False
        raise
    return Datapoint.model_validate(doc), True


async def datapoints_of_alert(db: Database, ivorn: str, include_deleted: bool = False) -> list[Datapoint]:
    points = [Datapoint.model_validate(d) async for d in db.datapoints.find({"ivorn": ivorn})]
    if not include_deleted:
        points = [p for p in points if not p.deleted]
    return sorted(points, key=lambda p: (p.mjd, p.followup_id))


async def detections_near(
    db: Database, ivorn: str, mjd: float, window_days: float, *, exclude_upload: str | None = None
) -> list[Datapoint]:
    """The alert's live detections (a magnitude, not a limit) within ``window_days`` of ``mjd``
    (days), but ``exclude_upload``'s own, nearest in time first."""
    query = {"ivorn": ivorn, "mjd": {"$gte": mjd - window_days, "$lte": mjd + window_days}}
    points = [Datapoint.model_validate(d) async for d in db.datapoints.find(query)]
    found = [p for p in points if not p.deleted and p.detected and p.mag is not None and p.upload_id != exclude_upload]
    return sorted(found, key=lambda p: (abs(p.mjd - mjd), p.followup_id))


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
                "dedupe_key": _deleted_key(followup_id, doc["dedupe_key"]),
            }
        },
    )
    await bump_data_version(db, doc["ivorn"])
    return Datapoint.model_validate(doc | {"deleted": True, "delete_reason": reason})


async def deleted_followup_ids(db: Database) -> list[int]:
    """The followup_ids of every soft-deleted datapoint: an index range (a delete is seen at once by readers
    that count them)."""
    return [
        int(d.get("followup_id", 0)) async for d in db.datapoints.find(_DELETED_RANGE, {"_id": 0, "followup_id": 1})
    ]


async def datapoint_docs_of_alert(db: Database, ivorn: str) -> list[dict[str, Any]]:
    """Every datapoint document of the alert, deleted ones too, unvalidated (a light curve of thousands).

    One large batch: the embedded database answers thousands of documents faster so than in pages of 101;
    no projection: nx-27017 applies one in Python after loading each whole document (slower than none).
    """
    return [d async for d in db.datapoints.find({"ivorn": ivorn}).batch_size(10_000)]


#: the fields of a datapoint the alert list's summary reads
#: (the filter and survey: the list says in which band its last magnitude is; the observatory: "observed by
#: my observatory")
SUMMARY_FIELDS = {
    "_id": 0,
    "ivorn": 1,
    "mjd": 1,
    "mag": 1,
    "limit_mag": 1,
    "detected": 1,
    "created": 1,
    "filter": 1,
    "survey": 1,
    "observatory_id": 1,
}


async def live_summaries(db: Database, after_followup_id: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """The live datapoints' :data:`SUMMARY_FIELDS`; ``after_followup_id``: only those added after it, oldest
    first, with their ``followup_id``."""
    if after_followup_id is None:
        cursor = db.datapoints.find({"deleted": False}, SUMMARY_FIELDS)
    else:
        query = {"followup_id": {"$gt": after_followup_id}, "deleted": False}
        cursor = db.datapoints.find(query, SUMMARY_FIELDS | {"followup_id": 1}).sort("followup_id", 1)
    async for doc in cursor:
        yield doc


async def newest_followup_id(db: Database) -> int | None:
    """The highest ``followup_id`` (datapoints are only ever added, each with a new one); an index lookup."""
    doc = await db.datapoints.find_one({}, {"_id": 0, "followup_id": 1}, sort=[("followup_id", -1)])
    return None if doc is None else doc.get("followup_id")


def _listing(observatory_id: str | None, ivorn: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"observatory_id": observatory_id} if observatory_id else {"deleted": False}
    if ivorn:
        query["ivorn"] = ivorn
    return query


async def count_listed(db: Database, *, observatory_id: str | None = None, ivorn: str | None = None) -> int:
    """How many datapoints :func:`list_datapoints` pages through."""
    query = _listing(observatory_id, ivorn)
    if query == {"deleted": False}:  # every live datapoint: the collection's size less the deleted range
        return max(0, await db.datapoints.estimated_document_count() - len(await deleted_followup_ids(db)))
    return await db.datapoints.count_documents(query)


async def list_datapoints(
    db: Database, *, observatory_id: str | None = None, ivorn: str | None = None, skip: int = 0, limit: int = 50
) -> list[Datapoint]:
    """Newest first: the live datapoints (of one alert, with ``ivorn``), or every one an observatory uploaded,
    the deleted ones too (``observatory_id``: its own history)."""
    cursor = db.datapoints.find(_listing(observatory_id, ivorn)).sort("followup_id", -1).skip(skip).limit(limit)
    return [Datapoint.model_validate(d) async for d in cursor]


async def has_live_datapoint(db: Database, upload_id: str) -> bool:
    """The upload stored a datapoint and its observatory has not deleted it."""
    doc = await db.datapoints.find_one({"upload_id": upload_id}, {"_id": 0, "deleted": 1})
    return doc is not None and not doc.get("deleted")


#: the fields of a datapoint a recalibration replaces (the rest: who, when, which alert, stays)
CALIBRATION_FIELDS = (
    "survey",
    "filter",
    "mag",
    "mag_err",
    "limit_mag",
    "detected",
    "zeropoint",
    "zeropoint_err",
    "calibration_id",
)

ApplyOutcome = Literal["applied", "already_applied", "deleted", "unknown", "moved"]


async def apply_recalibration(
    db: Database, followup_id: int, *, from_version: int, new: dict[str, Any], job_id: str
) -> tuple[ApplyOutcome, Datapoint | None]:
    """Make ``new`` (the :data:`CALIBRATION_FIELDS`) the datapoint's current calibration, keeping the old one in
    its ``history``, if the datapoint is live and still at ``from_version`` (the version the job's diff
    was computed from).

    Outcomes: ``applied`` (now at ``from_version + 1``); ``already_applied`` (this job applied it before:
    nothing changes); ``deleted``; ``unknown``; ``moved`` (another recalibration changed it since: not applied).
    A compare-and-set on ``version``: two jobs applying at once cannot both win.
    """
    doc = await db.datapoints.find_one({"followup_id": followup_id})
    if doc is None:
        return "unknown", None
    if any(h.get("replaced_by_job") == job_id for h in doc.get("history") or []):
        return "already_applied", Datapoint.model_validate(doc)
    if doc.get("deleted"):
        return "deleted", Datapoint.model_validate(doc)
    current = int(doc.get("version") or 1)
    if current != from_version:
        return "moved", Datapoint.model_validate(doc)
    now = utcnow()
    old = DatapointVersion.model_validate(
        {k: doc.get(k) for k in CALIBRATION_FIELDS}
        | {"version": current, "replaced_at": now, "replaced_by_job": job_id}
    )
    # datapoints stored before versions had no "version" field: theirs is 1
    guard: dict[str, Any] = {"version": current} if "version" in doc else {"version": {"$exists": False}}
    history = [*(doc.get("history") or []), old.model_dump(mode="python")]
    values = {k: new.get(k) for k in CALIBRATION_FIELDS} | {"version": current + 1, "recalibrated_at": now}
    # the whole history $set, not $push: nx-27017 stores a $push-ed document as its JSON text; the version
    # guard makes the read-modify-write safe
    result = await db.datapoints.update_one(
        {"followup_id": followup_id, "deleted": False, **guard}, {"$set": values | {"history": history}}
    )
    if result.matched_count == 0:  # changed between the read and the write: decide again from what is there now
        return await apply_recalibration(db, followup_id, from_version=from_version, new=new, job_id=job_id)
    await bump_data_version(db, doc["ivorn"])
    return "applied", Datapoint.model_validate(doc | values | {"history": history})


async def datapoint_by_id(db: Database, followup_id: int) -> Datapoint | None:
    doc = await db.datapoints.find_one({"followup_id": followup_id})
    return None if doc is None else Datapoint.model_validate(doc)


async def select_datapoints(
    db: Database,
    *,
    ivorns: list[str] | None = None,
    observatory_ids: list[str] | None = None,
    mjd_min: float | None = None,
    mjd_max: float | None = None,
    survey: str | None = None,
    band: str | None = None,
    followup_ids: list[int] | None = None,
    include_deleted: bool = False,
) -> AsyncIterator[dict[str, Any]]:
    """The datapoint documents every given criterion holds for (None: no criterion), in followup_id order;
    ``survey``/``band`` compare case-insensitively (``band`` alone: that band in any survey)."""
    query: dict[str, Any] = {} if include_deleted else {"deleted": False}
    if ivorns is not None:
        query["ivorn"] = {"$in": ivorns}
    if observatory_ids is not None:
        query["observatory_id"] = {"$in": observatory_ids}
    if followup_ids is not None:
        query["followup_id"] = {"$in": followup_ids}
    mjd: dict[str, float] = {}
    if mjd_min is not None:
        mjd["$gte"] = mjd_min
    if mjd_max is not None:
        mjd["$lte"] = mjd_max
    if mjd:
        query["mjd"] = mjd
    async for doc in db.datapoints.find(query).sort("followup_id", 1).batch_size(10_000):
        if survey is not None and str(doc.get("survey") or "").lower() != survey.lower():
            continue
        if band is not None and str(doc.get("filter") or "").lower() != band.lower():
            continue
        yield doc


async def get_datapoint_doc(db: Database, followup_id: int) -> dict[str, Any] | None:
    """A datapoint's document by its followup_id, deleted or not (with ``deleted_at`` when deleted); None if none."""
    return await db.datapoints.find_one({"followup_id": followup_id}, {"_id": 0, "dedupe_key": 0})


#: what the observatory page draws of each of its datapoints: when, in which band, the calibration's zero
#: point and limiting magnitude
OBSERVATORY_PAGE_FIELDS = {
    "_id": 0,
    "followup_id": 1,
    "upload_id": 1,
    "mjd": 1,
    "filter": 1,
    "survey": 1,
    "zeropoint": 1,
    "zeropoint_err": 1,
    "limit_mag": 1,
    "deleted": 1,
}


async def calibrations_of_observatory(db: Database, observatory_id: str, limit: int = 20_000) -> list[dict[str, Any]]:
    """The live datapoints of an observatory with their calibration's zero point and limit
    (:data:`OBSERVATORY_PAGE_FIELDS`), by MJD; at most ``limit``, the newest."""
    query = {"observatory_id": observatory_id, "deleted": False}
    docs = [d async for d in db.datapoints.find(query, OBSERVATORY_PAGE_FIELDS).sort("followup_id", -1).limit(limit)]
    docs.sort(key=lambda d: d.get("mjd") or 0.0)
    return docs
