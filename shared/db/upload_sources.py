"""Upload sources: the parsed source table of every stored upload, so that `photcal recalibrate` can fit it
again against another catalogue. Keyed by ``_id`` = the upload_id (always indexed), written once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypedDict

from shared.db.client import Database, insert_once


class UploadSources(TypedDict, total=False):
    _id: str
    upload_id: str
    ivorn: str
    alert_ra: float
    alert_dec: float
    match_dist_arcsec: float
    force_filter: str | None
    mjd: float
    #: the observatory's filters and a frame's forced target (ForcedTarget as JSON) the fit took; absent
    #: from records stored before recalibration through the queue: none
    observatory_filters: list[str]
    forced_target: dict[str, Any] | None
    input_sha256: str | None
    n_sources: int
    #: shared.arrays.SourceTable as JSON
    sources: dict[str, Any]
    stored_at: datetime


async def store_sources(db: Database, record: dict[str, Any]) -> bool:
    """Store an :class:`UploadSources` record once (a redelivery rewrites nothing): True if stored now."""
    return await insert_once(db.upload_sources, {"_id": record["upload_id"]} | record)


async def sources_of(db: Database, upload_id: str) -> dict[str, Any] | None:
    """The upload's record, or None (not stored, or stored before sources were kept)."""
    return await db.upload_sources.find_one({"_id": upload_id})


async def all_sources(db: Database) -> AsyncIterator[dict[str, Any]]:
    """Every stored upload's record, in storage order."""
    async for doc in db.upload_sources.find({}):
        yield doc


async def sources_of_uploads(db: Database, upload_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The records of these uploads, by upload_id (an upload without one is absent: nothing was kept)."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(upload_ids), 1000):
        async for doc in db.upload_sources.find({"_id": {"$in": upload_ids[start : start + 1000]}}):
            out[str(doc.get("upload_id") or doc["_id"])] = doc
    return out
