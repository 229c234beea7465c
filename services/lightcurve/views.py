"""Light curves, alert lists and follow-up lists as plain data (JSON and CSV rows)."""

from __future__ import annotations

import csv
import io

from shared.db.alerts import Alert
from shared.db.datapoints import Datapoint

POINT_COLUMNS = (
    "mjd", "mag", "mag_err", "limit_mag", "filter", "survey", "observatory", "followup_id", "exptime", "comment",
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
    }


def lightcurve(alert: Alert, points: list[Datapoint]) -> dict:
    return {
        "ivorn": alert.ivorn,
        "name": alert.display_name,
        "ra": alert.ra,
        "dec": alert.dec,
        "points": [point_row(p) for p in sorted(points, key=lambda p: p.mjd)],
    }


def to_csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return buffer.getvalue()


def alert_row(alert: Alert, n_points: int, last: Datapoint | None) -> dict:
    return {
        "id": alert.alert_id,
        "ivorn": alert.ivorn,
        "name": alert.display_name,
        "ra": alert.ra,
        "dec": alert.dec,
        "url": alert.url,
        "n_datapoints": n_points,
        "last_mag": None if last is None else (last.mag if last.detected else last.limit_mag),
        "last_mjd": None if last is None else last.mjd,
    }


def followup_row(point: Datapoint) -> dict:
    return point_row(point) | {"ivorn": point.ivorn, "alert_name": point.alert_name, "calibration_id": point.calibration_id}
