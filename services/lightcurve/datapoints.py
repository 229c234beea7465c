"""One datapoint with everything behind it: its calibration, candidates, plot, cut-out, provenance and history.

``GET /api/v1/datapoints/{followup_id}`` answers :class:`DatapointDetail` as JSON, the page
``/datapoints/{followup_id}`` (web/datapoint.py) shows the same; both from :func:`datapoint_detail`.
A deleted datapoint is shown, marked deleted; an imported one (the CPCS archive) has no calibration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from pymongo.errors import PyMongoError

from shared.contracts.errors import ErrorCode
from shared.contracts.messages import CandidateFit, Provenance
from shared.db import Database
from shared.db.calibrations import get_calibration
from shared.db.client import unavailable
from shared.db.datapoints import Datapoint, DatapointVersion, get_datapoint_doc
from shared.db.recalibrations import recalibration_result
from shared.db.uploads import get_upload
from shared.errors import NotFound


class CalibrationRecord(BaseModel):
    """The stored fit behind a datapoint: ``zeropoint`` (mag at colour 0), ``colour_term`` (mag/mag) of
    ``colour``, robust ``scatter`` (mag) over ``npoints`` stars, and every survey/band tried (``candidates``)."""

    calibration_id: str
    survey: str | None = None
    filter: str | None = None
    zeropoint: float | None = None
    zeropoint_err: float | None = None
    colour_term: float | None = None
    colour_term_err: float | None = None
    colour: str | None = None
    colour_term_assumed: bool = False
    scatter: float | None = None
    npoints: int | None = None
    nmatched: int | None = None
    outlier_fraction: float | None = None
    limit_method: str | None = None
    match_dist_arcsec: float | None = None
    force_filter: str | None = None
    n_sources: int | None = None
    warnings: list[str] = Field(default_factory=list)
    candidates: list[CandidateFit] = Field(default_factory=list)


class DatapointDetail(BaseModel):
    """A datapoint (magnitudes in mag, ``mjd`` in days), its calibration and where it came from.

    ``history``: the calibrations recalibrations replaced, oldest first (the current one is the
    datapoint itself); ``deleted``, ``delete_reason``, ``deleted_at``: its soft delete; ``imported``:
    where a point without instrumental data came from (then ``calibration`` is None).
    """

    datapoint: Datapoint
    deleted_at: datetime | None = None
    calibration: CalibrationRecord | None = None
    image_link: str | None = None
    cutout_link: str | None = None
    provenance: Provenance | None = None
    history: list[DatapointVersion] = Field(default_factory=list)
    imported: str | None = None


def _calibration_of(record: dict[str, Any] | None, calibration_id: str) -> CalibrationRecord | None:
    if record is None:
        return None
    fields = {k: v for k, v in record.items() if k in CalibrationRecord.model_fields and v is not None}
    return CalibrationRecord.model_validate(fields | {"calibration_id": calibration_id})


async def datapoint_detail(db: Database, followup_id: int) -> DatapointDetail:
    """Everything about one datapoint (404 ``unknown_datapoint`` if no datapoint has that id)."""
    try:
        doc = await get_datapoint_doc(db, followup_id)
        if doc is None:
            raise NotFound(f"no datapoint with followup_id {followup_id}", code=ErrorCode.UNKNOWN_DATAPOINT)
        point = Datapoint.model_validate(doc)
        calibration_id = point.calibration_id or point.upload_id
        # a recalibrated point's current calibration is its job's refit (shared/db/recalibrations.py)
        refit = None if point.imported else await recalibration_result(db, calibration_id)
        record = refit if refit is not None or point.imported else await get_calibration(db, calibration_id)
        upload = None if point.imported else await get_upload(db, point.upload_id)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    result = (upload or {}).get("result") or {}
    if refit is not None:  # the upload's own answer is the replaced calibration's (its plot too)
        provenance = refit.get("provenance")
        result = {"cutout_link": result.get("cutout_link")}
    else:
        provenance = result.get("provenance") or (record or {}).get("provenance")
    return DatapointDetail(
        datapoint=point,
        deleted_at=doc.get("deleted_at"),
        calibration=_calibration_of(record, calibration_id),
        image_link=result.get("image_link") or (record or {}).get("image_link"),
        cutout_link=result.get("cutout_link") or (record or {}).get("cutout_link"),
        provenance=Provenance.model_validate(provenance) if provenance else None,
        history=point.history,
        imported=point.imported,
    )
