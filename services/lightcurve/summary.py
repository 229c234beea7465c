"""What the pages reuse between requests: the alert list's summary and recent light curves.

Listing, searching and sorting 10,000 alerts happen on an in-memory summary
of every alert (a few hundred bytes each), built from two projected scans
(alerts, live datapoints); a light curve of thousands of points is kept as
read, while its alert's ``data_version`` (bumped by every datapoint of that
alert stored or deleted, ``shared.db.alerts.bump_data_version``) stays the
same: uploads for other alerts leave it cached. The summary is reused while
no data have changed, and only the new alerts and datapoints are read when
those are the only change; changes are checked on every request with index
lookups only (about 2 ms on the embedded database, where reading 5,000
datapoints takes 150 ms):

* the newest ``alert_id`` and ``followup_id``: a new alert or datapoint (they
  are only ever inserted, with a new id) is seen at once;
* the soft-deleted datapoints (``shared.db.datapoints.deleted_followup_ids``,
  an index range; every delete marks its datapoint so): a delete is seen at once.

Anything else (an alert renamed by an import, a hand edit) is seen within
:data:`MAX_AGE` seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from shared.coords import parse_cone, separation_deg
from shared.db import Database
from shared.db.alerts import Alert, alert_summaries, newest_alert_id
from shared.db.datapoints import (
    deleted_followup_ids,
    live_summaries,
    newest_followup_id,
)
from shared.validation import validate_ivorn

MAX_AGE = 30.0
SORT_KEYS = (
    "name",
    "ivorn",
    "ra",
    "dec",
    "n_datapoints",
    "last_mag",
    "last_mjd",
    "id",
    "discovery_date",
    "alert_mag",
    "alert_class",
    "tns_name",
)


@dataclass
class Summary:
    version: tuple
    built: float
    rows: list[dict] = field(default_factory=list)

    def row_of(self) -> dict[str, int]:
        """Row index by ivorn."""
        if self._row_of is None:
            self._row_of = {row["ivorn"]: i for i, row in enumerate(self.rows)}
        return self._row_of

    _row_of: dict[str, int] | None = None


class AlertSummaries:
    def __init__(self) -> None:
        self._summary: Summary | None = None
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._summary = None

    async def rows(self, db: Database) -> list[dict]:
        version = await _version(db)
        current = self._summary
        if current is not None and current.version == version and time.monotonic() - current.built < MAX_AGE:
            return current.rows
        async with self._lock:
            current = self._summary
            fresh = current if current is not None and time.monotonic() - current.built < MAX_AGE else None
            if fresh is not None and fresh.version == version:
                return fresh.rows
            if fresh is not None and _only_additions(fresh.version, version):
                # the common changes on a busy server: read only the new alerts and datapoints
                self._summary = await _with_additions(db, fresh, version)
            else:
                self._summary = Summary(version, time.monotonic(), await _build(db))
            return self._summary.rows


def _only_additions(old: tuple, new: tuple) -> bool:
    """The same deletions; alerts or datapoints added (their ids only grow)."""
    grew_alerts, grew_points = (new[0] or 0) > (old[0] or 0), (new[1] or 0) > (old[1] or 0)
    return old[2:] == new[2:] and (grew_alerts or new[0] == old[0]) and (grew_points or new[1] == old[1])


async def _with_additions(db: Database, current: Summary, version: tuple) -> Summary:
    """``current`` with the alerts (alert_id) and datapoints (followup_id) added since it was read."""
    added = []
    async for doc in alert_summaries(db, after_alert_id=current.version[0] or 0):
        row = _row(doc, {}, {}, {})
        if row is not None:
            added.append(row)
    rows = added + current.rows  # newest alert first, as _build
    row_of = current.row_of() if not added else {row["ivorn"]: i for i, row in enumerate(rows)}
    if not added:
        rows = list(rows)
    async for p in live_summaries(db, after_followup_id=current.version[1] or 0):
        i = row_of.get(p.get("ivorn", ""))  # "" as None was: no alert has it
        if i is None:
            continue
        row = dict(rows[i])
        row["n_datapoints"] += 1
        row["_observatories"] = row["_observatories"] | {p.get("observatory_id")}
        if row["last_mjd"] is None or p.get("mjd", 0) >= row["last_mjd"]:
            row.update(_last_fields(p))
        rows[i] = row
    return Summary(version, current.built, rows, row_of)


async def _version(db: Database) -> tuple:
    deleted = await deleted_followup_ids(db)
    return (
        await newest_alert_id(db),
        await newest_followup_id(db),
        len(deleted),
        max(deleted, default=0),
    )


class LightcurveCache:
    """The last ``entries`` light curves read, each with the data version it was read at."""

    def __init__(self, entries: int = 32) -> None:
        self.entries = entries
        self._items: dict[str, tuple[tuple, float, Any]] = {}

    def get(self, ivorn: str, version: tuple) -> Any | None:
        item = self._items.get(ivorn)
        if item is None or item[0] != version or time.monotonic() - item[1] >= MAX_AGE:
            return None
        self._items[ivorn] = self._items.pop(ivorn)  # most recently used last
        return item[2]

    def put(self, ivorn: str, version: tuple, value: Any) -> None:
        self._items.pop(ivorn, None)
        self._items[ivorn] = (version, time.monotonic(), value)
        while len(self._items) > self.entries:
            self._items.pop(next(iter(self._items)))

    def invalidate(self) -> None:
        self._items.clear()


async def _build(db: Database) -> list[dict]:
    last: dict[str, dict] = {}
    counts: dict[str, int] = {}
    observers: dict[str, set] = {}
    async for p in live_summaries(db):
        ivorn = p.get("ivorn", "")  # "" as None was: no alert has it
        counts[ivorn] = counts.get(ivorn, 0) + 1
        observers.setdefault(ivorn, set()).add(p.get("observatory_id"))
        best = last.get(ivorn)
        if best is None or p.get("mjd", 0) >= best.get("mjd", 0):
            last[ivorn] = p
    rows = []
    async for doc in alert_summaries(db):
        row = _row(doc, last, counts, observers)
        if row is not None:  # a malformed document is not listed rather than breaking the list
            rows.append(row)
    return rows


def _row(doc: dict, last: dict[str, dict], counts: dict[str, int], observers: dict[str, set]) -> dict | None:
    """An alert's row, with its datapoints' count and last one (by ivorn), the imported metadata and who
    observed it; None for a malformed alert."""
    alert = _alert_fields(doc)
    if alert is None:
        return None
    ivorn, name, ra, dec, url, alert_id = alert
    meta = imported_metadata(doc.get("extra"))
    return {
        "id": alert_id,
        "ivorn": ivorn,
        "name": name,
        "ra": ra,
        "dec": dec,
        "url": url,
        "n_datapoints": counts.get(ivorn, 0),
        **_last_fields(last.get(ivorn)),
        **meta,
        "_search": f"{name} {ivorn} {meta['tns_name'] or ''}".lower(),
        "_observatories": frozenset(observers.get(ivorn, ())),
    }


def _text(value: Any, limit: int = 500) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text[:limit] or None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def imported_metadata(extra: Any) -> dict:
    """The alert list's columns from what an import stored (the Gaia alerts.csv: ``Date`` the discovery,
    ``AlertMag`` the alert's magnitude, ``Class``, ``Comment``, ``TNSid`` the TNS name); None where absent."""
    extra = extra if isinstance(extra, dict) else {}
    alert_class = _text(extra.get("Class"), 100)
    return {
        "discovery_date": _text(extra.get("Date"), 40),
        "alert_mag": _float(extra.get("AlertMag")),
        "alert_class": alert_class.strip('"') if alert_class else None,
        "alert_comment": _text(extra.get("Comment")),
        "tns_name": _text(extra.get("TNSid"), 40),
    }


def _last_fields(point: dict | None) -> dict:
    """The row's last-datapoint columns: its magnitude, or its limit for a non-detection."""
    if point is None:
        return {"last_mag": None, "last_is_limit": False, "last_mjd": None, "last_filter": None, "last_survey": None}
    detected = point.get("detected", True) and point.get("mag") is not None
    return {
        "last_mag": point.get("mag") if detected else point.get("limit_mag"),
        "last_is_limit": not detected,
        "last_mjd": point.get("mjd"),
        "last_filter": point.get("filter"),
        "last_survey": point.get("survey"),
    }


def _alert_fields(doc: dict) -> tuple | None:
    """(ivorn, display name, ra, dec, url, alert_id) of an alert document as ``Alert`` would validate it.

    Without the model (10,000 alerts); None if ``Alert.model_validate`` would refuse it.
    """
    try:
        ivorn = validate_ivorn(doc["ivorn"])
        ra, dec = doc["ra"], doc["dec"]
        name, url, alert_id = doc.get("name"), doc.get("url"), doc.get("alert_id")
        if (
            type(ra) is not float
            or type(dec) is not float
            or not isinstance(name, (str, type(None)))
            or not isinstance(url, (str, type(None)))
            or type(alert_id) not in (int, type(None))
        ):
            alert = Alert.model_validate(doc)  # unusual types (an int RA, a numeric string): the model decides
            ivorn, ra, dec, name, url, alert_id = (
                alert.ivorn,
                alert.ra,
                alert.dec,
                alert.name,
                alert.url,
                alert.alert_id,
            )
        elif not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
            return None
    except (KeyError, TypeError, ValueError):
        return None
    display = name or ivorn.rsplit("#", 1)[-1].rsplit("/", 1)[-1]
    return ivorn, display, ra, dec, url, alert_id


def select(
    rows: list[dict],
    *,
    with_data: bool = False,
    q: str = "",
    sort: str = "id",
    descending: bool = True,
    alert_class: str = "",
    observatory_id: str | None = None,
) -> list[dict]:
    """Filter and sort; missing values sort last either way.

    ``q``: a position (``"RA Dec [radius]"``, degrees or sexagesimal, :func:`shared.coords.parse_cone`)
    selects the alerts in that cone; any other text, a substring of the name, ivorn or TNS name.
    ``alert_class``: the imported class (case folded); ``observatory_id``: alerts it has live data of.
    """
    out = rows
    if with_data:
        out = [r for r in out if r["n_datapoints"]]
    if observatory_id:
        out = [r for r in out if observatory_id in r["_observatories"]]
    wanted_class = alert_class.strip().lower()
    if wanted_class:
        out = [r for r in out if (r.get("alert_class") or "").lower() == wanted_class]
    needle = q.strip().lower()
    cone = parse_cone(needle) if needle else None
    if cone is not None:
        ra, dec, radius = cone
        out = [r for r in out if abs(r["dec"] - dec) <= radius and separation_deg(ra, dec, r["ra"], r["dec"]) <= radius]
    elif needle:
        out = [r for r in out if needle in r["_search"]]
    if sort not in SORT_KEYS:
        sort = "id"
    present = [r for r in out if r.get(sort) is not None]
    missing = [r for r in out if r.get(sort) is None]
    if sort in ("name", "ivorn", "alert_class", "tns_name", "discovery_date"):
        present.sort(key=lambda r: str(r[sort]).lower(), reverse=descending)
    else:
        present.sort(key=lambda r: r[sort], reverse=descending)
    return present + missing


def classes(rows: list[dict]) -> list[str]:
    """The imported classes, each once, sorted (the alert list's class filter)."""
    return sorted({r["alert_class"] for r in rows if r.get("alert_class")}, key=str.lower)


def public(row: dict) -> dict:
    """A row as the JSON APIs answer it (no internal keys)."""
    return {k: v for k, v in row.items() if not k.startswith("_") and k != "last_is_limit"}
