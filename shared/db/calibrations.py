"""Calibrations: one record per stored upload (its answer, fit and candidates), with the plot arrays as binary columns.

The record is ``CalibrationResult`` as JSON (less ``duration_ms``) plus
``observatory_id``, ``calibration_id``, ``match_dist_arcsec``, ``force_filter``
and ``stars``, written once by the calibrate worker (services/calibrate/pipeline.py).

``calibrations.stars`` holds the chosen fit's matched stars (ref_mag, ref_err,
inst_mag, inst_err, colour, residual; used, clipped, bright). They were lists
of JSON numbers: a 3,000-source frame's ~1,400 stars made ~12,000 BSON
elements, which nx-27017 turns into JSON one by one (an insert of ~15-20 ms,
and every later scan of the collection reads them again). Each column is now
``{"dtype": "<f8" | "|b1", "data": <BSON binary, little-endian>}`` (the shape
of shared/arrays.py's columns, raw bytes instead of base64): one element per
column. The numbers are the same: rounded to 4 decimals as before, a missing
value (None in the lists) is NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from bson import Binary

from shared.db.client import Database, insert_once

#: float columns (rounded), then boolean ones, as FrameCalibration.plot_data_as_dict names them
FLOAT_COLUMNS = ("ref_mag", "ref_err", "inst_mag", "inst_err", "colour", "residual")
FLAG_COLUMNS = ("used", "clipped", "bright")


def plot_columns(plot, digits: int = 4) -> dict[str, dict]:
    """The plot's arrays for the record: the values of ``plot_data_as_dict`` (Python's round, so
    bit for bit the same numbers), as binary columns."""
    out: dict[str, dict] = {}
    for name in FLOAT_COLUMNS:
        values = np.asarray(getattr(plot, name), dtype=float).tolist()
        rounded = np.array([round(v, digits) if math.isfinite(v) else math.nan for v in values], dtype="<f8")
        out[name] = {"dtype": "<f8", "data": Binary(rounded.tobytes())}
    for name in FLAG_COLUMNS:
        flags = np.asarray(getattr(plot, name)).astype("|b1")
        out[name] = {"dtype": "|b1", "data": Binary(flags.tobytes())}
    return out


def read_plot_columns(stars: dict | None) -> dict[str, np.ndarray]:
    """A stored record's ``stars`` as arrays; records stored as lists (before the binary columns) too."""
    out: dict[str, np.ndarray] = {}
    for name, value in (stars or {}).items():
        if isinstance(value, dict):
            dtype = str(value["dtype"])
            if dtype not in ("<f8", "|b1"):
                raise ValueError(f"plot column {name!r} has dtype {dtype!r}")
            out[name] = np.frombuffer(bytes(value["data"]), dtype=dtype).copy()
        elif name in FLAG_COLUMNS:
            out[name] = np.asarray(value, dtype=bool)
        else:
            out[name] = np.array([math.nan if v is None else v for v in value], dtype=float)
    return out


async def store_calibration(db: Database, record: dict[str, Any]) -> bool:
    """Store an upload's calibration record once (keyed by its unique ``upload_id``): True if stored now,
    False if a redelivery found it stored (nothing is rewritten)."""
    return await insert_once(db.calibrations, record)


async def calibration_summary(db: Database, upload_id: str) -> dict[str, Any] | None:
    """What an upload's calibration answered: ``survey``, ``filter``, ``mag``, ``zeropoint``."""
    return await db.calibrations.find_one(
        {"upload_id": upload_id}, {"_id": 0, "survey": 1, "filter": 1, "mag": 1, "zeropoint": 1}
    )


async def get_calibration(db: Database, calibration_id: str) -> dict[str, Any] | None:
    """A calibration record (keyed by the upload id it calibrated) without its plot columns; None if none."""
    return await db.calibrations.find_one({"upload_id": calibration_id}, {"_id": 0, "stars": 0})


async def zeropoints_of(db: Database, upload_ids: list[str]) -> dict[str, float]:
    """The zero point these uploads' calibrations answered, by upload_id (absent: no record or none)."""
    out: dict[str, float] = {}
    for start in range(0, len(upload_ids), 1000):
        query = {"upload_id": {"$in": upload_ids[start : start + 1000]}}
        async for doc in db.calibrations.find(query, {"_id": 0, "upload_id": 1, "zeropoint": 1}):
            if doc.get("zeropoint") is not None:
                out[str(doc["upload_id"])] = float(doc["zeropoint"])
    return out


async def provenances_of(db: Database, upload_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored provenance of these uploads' calibrations, by upload_id (absent: none recorded)."""
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(upload_ids), 1000):
        query = {"upload_id": {"$in": upload_ids[start : start + 1000]}}
        async for doc in db.calibrations.find(query, {"_id": 0, "upload_id": 1, "provenance": 1}):
            if doc.get("provenance"):
                out[str(doc["upload_id"])] = doc["provenance"]
    return out


async def limit_methods_of(db: Database, calibration_ids: list[str]) -> dict[str, str]:
    """How each of these calibrations found its limiting magnitude (``limit_method``), by calibration id
    (the upload id it calibrated); absent: none recorded (an imported point has no calibration)."""
    out: dict[str, str] = {}
    for start in range(0, len(calibration_ids), 1000):
        query = {"upload_id": {"$in": calibration_ids[start : start + 1000]}}
        async for doc in db.calibrations.find(query, {"_id": 0, "upload_id": 1, "limit_method": 1}):
            if doc.get("limit_method"):
                out[str(doc["upload_id"])] = str(doc["limit_method"])
    return out
