"""Import of the Gaia Science Alerts ``alerts.csv`` (ivorn ``ivo://gaia/alerts#NAME``)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from shared.contracts.errors import ErrorCode
from shared.db import Database
from shared.db.alerts import Alert, upsert_alert
from shared.errors import BadInput, PhotcalError

GAIA_ALERTS_URL = "http://gsaweb.ast.cam.ac.uk/alerts/alert/{name}/"


def read_alert_rows(text: str) -> list[dict[str, str]]:
    """Rows keyed by the header's names; the header is ``#Name, Date, RaDeg, ...`` with spaces."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), skipinitialspace=True)
    header = [h.strip().lstrip("#").strip() for h in next(reader, [])]
    if not {"Name", "RaDeg", "DecDeg"} <= set(header):
        raise BadInput(
            "not a Gaia alerts.csv: the header must start #Name, Date, RaDeg, DecDeg, ...",
            code=ErrorCode.BAD_ALERTS_CSV,
        )
    return [dict(zip(header, (c.strip() for c in row))) for row in reader if row and any(row)]


def alert_from_row(row: dict[str, str]) -> Alert | None:
    try:
        ra, dec = float(row["RaDeg"]), float(row["DecDeg"])
    except (KeyError, ValueError):
        return None
    name = row.get("Name", "")
    if not name or not (math.isfinite(ra) and math.isfinite(dec)):
        return None
    extra = {
        k: row[k]
        for k in ("Date", "AlertMag", "HistoricMag", "HistoricStdDev", "Class", "Published", "Comment", "TNSid")
        if row.get(k)
    }
    try:
        return Alert(
            ivorn=f"ivo://gaia/alerts#{name}",
            name=name,
            ra=ra,
            dec=dec,
            url=GAIA_ALERTS_URL.format(name=name),
            extra=extra,
        )
    except ValueError:
        return None


async def import_alerts(db: Database, path: Path) -> tuple[int, int, int, list[str]]:
    """(created, updated, skipped, why each refused row was): unreadable rows are skipped; so are rows
    whose name is not a valid one or is another event's (``shared.db.alerts.upsert_alert``), with the reason."""
    rows = read_alert_rows(path.read_text(encoding="utf-8", errors="replace"))
    created = updated = skipped = 0
    refused: list[str] = []
    for row in rows:
        alert = alert_from_row(row)
        if alert is None:
            skipped += 1
            continue
        try:
            _, was_created = await upsert_alert(db, alert)
        except PhotcalError as exc:
            if exc.retryable:
                raise
            skipped += 1
            refused.append(f"{alert.ivorn[:120]!r}: {exc.message} ({exc.code})")
            continue
        created += was_created
        updated += not was_created
    return created, updated, skipped, refused
