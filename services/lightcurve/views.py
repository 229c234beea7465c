"""Light curves, alert lists and follow-up lists as plain data (JSON and CSV rows)."""

from __future__ import annotations

import csv
import io
from typing import Any

from services.lightcurve.exports import magnitude_system
from shared.db.alerts import Alert
from shared.db.datapoints import Datapoint
from shared.validation import csv_safe_text

POINT_COLUMNS = (
    "mjd",
    "mag",
    "mag_err",
    "limit_mag",
    "filter",
    "survey",
    "observatory",
    "followup_id",
    "exptime",
    "comment",
    "imported",
)


def point_row(point: Datapoint) -> dict:
    return {
        "mjd": point.mjd,
        "mag": point.mag,
        "mag_err": point.mag_err if point.detected else None,
        "limit_mag": point.limit_mag,
        "filter": point.filter,
        "survey": point.survey,
        "observatory": point.observatory,
        "followup_id": point.followup_id,
        "exptime": point.exptime,
        "comment": point.comment,
        # "cpcs": imported from the CPCS archive (no instrumental data, not recalibrated); None: uploaded here
        "imported": point.imported,
    }


def point_row_doc(doc: dict) -> dict:
    """:func:`point_row` of a raw database document (a light curve of thousands of points skips the model)."""
    detected = doc.get("detected", True)
    return {
        "mjd": doc["mjd"],
        "mag": doc.get("mag"),
        "mag_err": doc.get("mag_err") if detected else None,
        "limit_mag": doc.get("limit_mag"),
        "filter": doc.get("filter"),
        "survey": doc.get("survey"),
        "observatory": doc.get("observatory"),
        "followup_id": doc.get("followup_id"),
        "exptime": doc.get("exptime"),
        "comment": doc.get("comment", ""),
        "imported": doc.get("imported"),
    }


def lightcurve_of_docs(alert: Alert, docs: list[dict]) -> dict:
    """:func:`lightcurve` of raw documents (live ones, by MJD then followup_id), one dict per point, no model."""
    live = [d for d in docs if not d.get("deleted")]
    live.sort(key=lambda d: (d["mjd"], d.get("followup_id", 0)))
    points: list[dict[str, Any]] = []
    append = points.append
    for doc in live:
        get = doc.get
        append(
            {
                "mjd": doc["mjd"],
                "mag": get("mag"),
                "mag_err": get("mag_err") if get("detected", True) else None,
                "limit_mag": get("limit_mag"),
                "filter": get("filter"),
                "survey": get("survey"),
                "observatory": get("observatory"),
                "followup_id": get("followup_id"),
                "exptime": get("exptime"),
                "comment": get("comment", ""),
                "imported": get("imported"),
                # the upload it came from: its answer has the calibration plot (the page's plot column)
                "upload_id": get("upload_id"),
            }
        )
    return {"ivorn": alert.ivorn, "name": alert.display_name, "ra": alert.ra, "dec": alert.dec, "points": points}


def lightcurve(alert: Alert, points: list[Datapoint]) -> dict:
    return {
        "ivorn": alert.ivorn,
        "name": alert.display_name,
        "ra": alert.ra,
        "dec": alert.dec,
        "points": [point_row(p) for p in sorted(points, key=lambda p: p.mjd)],
    }


def to_csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    """CSV of the rows.

    Text cells that a spreadsheet would run as a formula get a leading ``'`` (numbers stay numbers).
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else csv_safe_text(row[k]) for k in columns})
    return buffer.getvalue()


def followup_row(point: Datapoint) -> dict:
    return point_row(point) | {
        "ivorn": point.ivorn,
        "alert_name": point.alert_name,
        "calibration_id": point.calibration_id,
    }


def chart_data(points: list[dict]) -> dict:
    """The plot's data, one series per filter, survey and observatory: columns of MJD (days), magnitude,
    error (mag) and followup_id (detections) and MJD, limit (mag) and followup_id (limits); the ids make a
    clicked point open its datapoint page. ``system`` is the survey's magnitude system of the band (Vega/AB,
    "" when unknown), so that the legend can say "V (APASS, Vega)" and PS1 g stays apart from SDSS g.

    Compact on purpose (a light curve of 5,000 points is embedded in its page).
    """
    series: dict[tuple[str, str, str], dict] = {}
    for p in points:
        band, survey, observatory = p.get("filter") or "?", p.get("survey") or "", p.get("observatory") or "?"
        key = (band, survey, observatory)
        s = series.get(key)
        if s is None:
            s = series[key] = {
                "filter": band,
                "survey": survey,
                "system": magnitude_system(survey, band),
                "observatory": observatory,
                "mjd": [],
                "mag": [],
                "err": [],
                "id": [],
                "lim_mjd": [],
                "lim": [],
                "lim_id": [],
            }
        mag, err = p.get("mag"), p.get("mag_err")
        if mag is not None:
            if err is not None:
                s["mjd"].append(round(p["mjd"], 6))
                s["mag"].append(round(mag, 4))
                s["err"].append(round(err, 4))
                s["id"].append(p.get("followup_id"))
                continue
            if p.get("limit_mag") is None:  # a magnitude without an error: a point without a bar
                s["mjd"].append(round(p["mjd"], 6))
                s["mag"].append(round(mag, 4))
                s["err"].append(0.0)
                s["id"].append(p.get("followup_id"))
                continue
        if p.get("limit_mag") is not None:  # not detected: fainter than its limit
            s["lim_mjd"].append(round(p["mjd"], 6))
            s["lim"].append(round(p["limit_mag"], 4))
            s["lim_id"].append(p.get("followup_id"))
    return {"series": [series[k] for k in sorted(series)]}


def magnitude_systems(points: list[dict]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The magnitude system of every band shown, by survey: ``[("APASS", [("B", "Vega"), ("V", "Vega")]), ...]``
    (surveys and bands sorted; a band no survey here has is left out)."""
    bands: dict[str, set[str]] = {}
    for p in points:
        if p.get("survey") and p.get("filter"):
            bands.setdefault(p["survey"], set()).add(p["filter"])
    out = []
    for survey in sorted(bands):
        known = [(b, magnitude_system(survey, b)) for b in sorted(bands[survey])]
        known = [(b, system) for b, system in known if system]
        if known:
            out.append((survey, known))
    return out
