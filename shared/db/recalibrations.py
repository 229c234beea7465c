"""Recalibrations: an upload fitted again against one survey catalogue version (`photcal recalibrate`).

Keyed by ``_id`` ``<upload_id>|<SURVEY>|<catalogue version>``: running again replaces the record; the
upload's calibration and datapoint stay as they were.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict

from shared.db.client import Database


class Recalibration(TypedDict, total=False):
    upload_id: str
    ivorn: str
    mjd: float | None
    survey: str
    catalogue: str
    catalogue_version: str
    ok: bool
    nref: int
    error: str | None
    message: str | None
    #: what the upload's calibration answered (survey, filter, mag, zeropoint)
    previous: dict[str, Any] | None
    recalibrated_at: datetime
    # and the refit's result fields (services/catalog/recalibrate.py RESULT_KEYS)


def recalibration_key(upload_id: str, survey: str, version: str) -> str:
    return f"{upload_id}|{survey}|{version}"


async def store_recalibration(db: Database, upload_id: str, survey: str, version: str, record: dict[str, Any]) -> None:
    """Store or replace the upload's record for this survey and catalogue version."""
    key = recalibration_key(upload_id, survey, version)
    # update_one/$set, not replace_one: nx-27017 ignores the filter's _id on a replace upsert
    await db.recalibrations.update_one({"_id": key}, {"$set": record}, upsert=True)
