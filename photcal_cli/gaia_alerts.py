"""Import of a copy of the Gaia Science Alerts ``alerts.csv`` (ivorn ``ivo://gaia/alerts#NAME``); the reader is
``shared/usecases/alert_intake.py``, which the live intake uses too."""

from __future__ import annotations

from pathlib import Path

from shared.db import Database
from shared.db.alerts import upsert_alert
from shared.errors import PhotcalError
from shared.usecases.alert_intake import alert_from_row, read_alert_rows

__all__ = ["alert_from_row", "import_alerts", "read_alert_rows"]


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
