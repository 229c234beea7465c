"""From photcal's answers to the TOM's photometry: pure conversions, no Django.

A photcal datapoint becomes one photometry datum, the dict the TOM Toolkit's
``try_parse_reduced_datum`` turns into a ``PhotometryReducedDatum``: ``magnitude``
(mag), ``error`` (mag), ``filter`` (the survey's band, e.g. ``V``), ``limit`` (mag,
only for a non-detection: the frame's limiting magnitude), ``telescope`` (the
photcal observatory), ``instrument``, ``unit`` (``"mag"``); photcal's own keys
(datapoint id, page URL, survey, magnitude system...) land in its ``value``.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
from astropy.time import Time
from photcal_client import UploadResult

#: the name the data service is registered under and the ``source_name`` of every datum stored here
SOURCE_NAME = "photcal"
#: a target extra field holding the photcal alert (its ivorn or name); the target's name when absent
ALERT_FIELD = "photcal_alert"
#: the key of photcal's datapoint id in a datum's ``value``: a datapoint is stored once per target
DATAPOINT_KEY = "photcal_datapoint_id"
#: the key of the datapoint's page (its calibration, plot, history) in a datum's ``value``
URL_KEY = "photcal_url"

#: ``mjd=60010.5``, ``mjd_60010.5`` or ``MJD60010.5`` in a file name. Django stores a second file of
#: the same name as ``name_<7 random characters><suffixes>``, and takes ``.5.cat`` for the suffixes:
#: ``field_mjd60010.5.cat`` comes back as ``field_mjd60010_AbC12x9.5.cat``, so that insertion is skipped
_MJD_IN_NAME = re.compile(r"mjd[=_-]?(\d{5})(?:_[A-Za-z0-9]{7})?(\.\d+)?", re.IGNORECASE)
#: the followup id a 409 ``duplicate_datapoint`` message names ("already stored (followup_id 17)")
_STORED_ID = re.compile(r"followup_id\D{0,3}(\d+)")


def timestamp_of(mjd: float) -> datetime:
    """The aware UTC datetime of an MJD (UTC, mid-exposure, as photcal keeps it)."""
    return Time(mjd, format="mjd", scale="utc").to_datetime(timezone=UTC)


def page_url(server_url: str, datapoint_id: int) -> str:
    """The datapoint's page on the photcal server at ``server_url``."""
    return f"{server_url.rstrip('/')}/datapoints/{int(datapoint_id)}"


def mjd_of_product(extra_data: str, filename: str) -> float | None:
    """The MJD (UTC, mid-exposure) a data product states, or None (a frame's header may give it).

    First the product's ``extra_data``: JSON ``{"mjd": 60010.5}`` or the text ``mjd=60010.5``;
    then the file name (``field_mjd60010.5.cat``).
    """
    text = (extra_data or "").strip()
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            for key in ("mjd", "MJD"):
                if key in parsed and parsed[key] not in (None, ""):
                    return float(parsed[key])
        elif isinstance(parsed, int | float):
            return float(parsed)
        found = _MJD_IN_NAME.search(text.replace(" ", ""))
        if found:
            return float(found.group(1) + (found.group(2) or ""))
    found = _MJD_IN_NAME.search(filename or "")
    return float(found.group(1) + (found.group(2) or "")) if found else None


def stored_datapoint_id(body: dict[str, Any], message: str) -> int | None:
    """The stored datapoint a 409 ``duplicate_datapoint`` names: a ``followup_id`` key, else its message."""
    value = body.get("followup_id")
    if isinstance(value, int):
        return value
    found = _STORED_ID.search(message or "")
    return int(found.group(1)) if found else None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def datum(
    *,
    server_url: str,
    datapoint_id: int,
    mag: float | None,
    mag_err: float | None,
    limit_mag: float | None,
    band: str | None,
    survey: str | None,
    mag_system: str | None,
    observatory: str | None,
    instrument: str = "",
    exptime: float | None = None,
    ivorn: str | None = None,
    mjd: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One datapoint as the TOM's photometry dict (magnitudes in mag, ``exptime`` seconds).

    A non-detection (no ``mag``) keeps only the frame's ``limit``; a detection has no ``limit``.
    """
    magnitude = _finite(mag)
    detected = magnitude is not None
    value: dict[str, Any] = {
        "magnitude": magnitude,
        "error": _finite(mag_err) if detected else None,
        "limit": None if detected else _finite(limit_mag),
        "filter": band or "",
        "telescope": observatory or "",
        "instrument": instrument or "",
        "unit": "mag",
        DATAPOINT_KEY: int(datapoint_id),
        URL_KEY: page_url(server_url, datapoint_id),
        "survey": survey or "",
        "mag_system": mag_system or "",
    }
    if exptime is not None and _finite(exptime) is not None:
        value["exposure_time"] = float(exptime)
    if ivorn:
        value["photcal_alert"] = ivorn
    if mjd is not None:
        value["mjd"] = float(mjd)
    if extra:
        value.update({k: v for k, v in extra.items() if v is not None})
    return value


def datum_of_result(server_url: str, result: UploadResult, instrument: str = "") -> dict[str, Any]:
    """An upload's stored calibration as a photometry dict (it must carry its ``followup_id``)."""
    if result.followup_id is None:
        raise ValueError(f"upload {result.upload_id} stored no datapoint (dry run?)")
    return datum(
        server_url=server_url,
        datapoint_id=result.followup_id,
        mag=result.mag,
        mag_err=result.mag_err,
        limit_mag=result.limit_mag,
        band=result.filter,
        survey=result.survey,
        mag_system=result.mag_system,
        observatory=result.observatory,
        instrument=instrument,
        exptime=result.exptime,
        ivorn=result.ivorn,
        mjd=result.mjd,
        extra={
            "photcal_upload_id": result.upload_id,
            "zeropoint_err": result.zeropoint_err,
            "limit_method": result.limit_method,
            "frame_limit": result.limit_mag if result.mag is not None else None,
        },
    )


def datum_of_row(server_url: str, ivorn: str | None, row: Any, instrument: str = "") -> dict[str, Any]:
    """A row of ``Client.lightcurve()``'s table (a stored datapoint) as a photometry dict."""

    def cell(name: str) -> Any:
        item = row[name]
        if np.ma.is_masked(item):
            return None
        return item.item() if hasattr(item, "item") else item

    return datum(
        server_url=server_url,
        datapoint_id=int(cell("followup_id")),
        mag=cell("mag"),
        mag_err=cell("mag_err"),
        limit_mag=cell("limit_mag"),
        band=cell("filter"),
        survey=cell("survey"),
        mag_system=cell("mag_system"),
        observatory=cell("observatory"),
        instrument=instrument,
        exptime=cell("exptime"),
        ivorn=ivorn,
        mjd=cell("mjd"),
    )
