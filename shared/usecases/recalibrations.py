"""Recalibration: which datapoints a request selects, and how their new calibration compares with the old.

``POST /api/v1/recalibrations`` (the gateway, through the JetStream work queue)
and ``photcal recalibrate`` (lsdb/Dask, for the whole archive) both select
with :func:`select_points` and judge each refit with :func:`compare`; a job's
summary is :func:`summarize` of its items. Records: shared/db/recalibrations.py.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

from pymongo.errors import PyMongoError

from shared.contracts.errors import ErrorCode
from shared.contracts.messages import PointCalibration, RecalibrationSelection
from shared.db import Database, datapoints
from shared.db.alerts import find_alert
from shared.db.calibrations import calibration_summary
from shared.db.client import unavailable
from shared.db.observatories import list_observatories
from shared.db.recalibrations import RecalibrationItem, RecalibrationSummary
from shared.errors import BadInput

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
        items = []
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
        ):
            items.append(await _item(db, doc, job_id))
        return items
    except PyMongoError as exc:
        raise unavailable(exc) from exc


async def _item(db: Database, doc: dict[str, Any], job_id: str) -> RecalibrationItem:
    zeropoint = None
    if "zeropoint" not in doc and doc.get("calibration_id") == doc.get("upload_id"):
        zeropoint = ((await calibration_summary(db, doc["upload_id"])) or {}).get("zeropoint")
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
