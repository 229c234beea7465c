"""Events that come in by themselves: the Gaia Science Alerts list and VOEvent documents.

The Gaia list is ``alerts.csv`` (``#Name, Date, RaDeg, DecDeg, ...``, docs/design.md): ``photcal
alerts import FILE`` reads a copy (photcal_cli/gaia_alerts.py), the intake service polls the live one
(services/intake) and ``photcal alerts poll --once URL`` polls it once; all read it with
:func:`read_alert_rows` and :func:`alert_from_row`. A VOEvent POSTed by an administrator
(services/ingest/voevents.py) is read by ``shared/voevent.py``.

Taking an alert in is idempotent: a new ivorn is added, a known one is updated only when what the
source says of it changed, and otherwise left alone (``unchanged``: no write at all), so polling the
same list again changes nothing and says so.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from pymongo.errors import PyMongoError

from shared.contracts.errors import ErrorCode
from shared.db import Database
from shared.db.alerts import Alert, alerts_by_ivorn, upsert_alert
from shared.db.client import unavailable
from shared.errors import BadInput, PhotcalError
from shared.usecases.events import event_fields, refusal
from shared.validation import validate_alert_name
from shared.voevent import parse_voevent

GAIA_ALERTS_URL = "http://gsaweb.ast.cam.ac.uk/alerts/alert/{name}/"
#: the public list; the intake service polls it when PHOTCAL_ALERTS_FEED_ENABLED=1
GAIA_ALERTS_FEED = "https://gsaweb.ast.cam.ac.uk/alerts/alerts.csv"

Outcome = Literal["added", "updated", "unchanged"]


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
    """The event a row of alerts.csv describes (ivorn ``ivo://gaia/alerts#NAME``); None if unreadable."""
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


def _what_it_sets(alert: Alert) -> dict[str, Any]:
    """The fields an update of ``alert`` writes (``upsert_alert`` sets these, and leaves the others)."""
    with contextlib.suppress(ValueError):  # a bad name: refused by upsert_alert, with the rule
        alert = alert.model_copy(update={"name": validate_alert_name(alert.name)})
    return alert.model_dump(exclude={"alert_id", "created", "data_version"}, exclude_none=True)


def is_unchanged(stored: dict[str, Any], alert: Alert) -> bool:
    """``stored`` (the alert's document) already says all that ``alert`` says."""
    return all(stored.get(key) == value for key, value in _what_it_sets(alert).items())


async def take_in(db: Database, alert: Alert, stored: dict[str, Any] | None) -> tuple[Alert | None, Outcome]:
    """Add ``alert``, or update it if ``stored`` (its document, None if new) differs; no write if it does
    not. Refusals are ``upsert_alert``'s (a name another event has: 409 ``alert_name_taken``)."""
    if stored is not None and is_unchanged(stored, alert):
        return None, "unchanged"
    saved, created = await upsert_alert(db, alert)
    return saved, "added" if created else "updated"


@dataclass
class IntakeCounts:
    """What one reading of a list did: alerts added, updated, unchanged; rows skipped and why."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    #: unreadable rows and refused alerts
    skipped: int = 0
    refused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, {self.skipped} rows skipped"


async def take_in_alerts_csv(db: Database, text: str) -> IntakeCounts:
    """Every row of a Gaia alerts.csv taken in (:func:`take_in`). 400 ``bad_alerts_csv`` if it is not one;
    503 if the database is away (nothing is lost: the next reading does what this one did not)."""
    rows = read_alert_rows(text)
    counts = IntakeCounts()
    alerts: list[Alert] = []
    for row in rows:
        alert = alert_from_row(row)
        if alert is None:
            counts.skipped += 1
        else:
            alerts.append(alert)
    try:
        stored = await alerts_by_ivorn(db, [a.ivorn for a in alerts])
        for alert in alerts:
            try:
                _, outcome = await take_in(db, alert, stored.get(alert.ivorn))
            except PhotcalError as exc:
                if exc.retryable:
                    raise
                counts.skipped += 1
                counts.refused.append(f"{alert.ivorn[:120]!r}: {exc.message} ({exc.code})")
                continue
            setattr(counts, outcome, getattr(counts, outcome) + 1)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return counts


class FeedError(Exception):
    """The list could not be read: ``reason`` is the failure metric's label, ``message`` says what to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def fetch_feed(session: aiohttp.ClientSession, url: str, *, timeout_s: float, max_bytes: int) -> str:
    """The list at ``url`` as text (GET, at most ``max_bytes``, ``timeout_s`` s in all).

    Raises :class:`FeedError`: ``unreachable`` (no connection, timeout), ``http_status`` (not 200),
    ``too_large``.
    """
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status != 200:
                raise FeedError("http_status", f"{url} answered HTTP {response.status}, not the list")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise FeedError("too_large", f"{url} is larger than {max_bytes} bytes: not the alerts list?")
            return body.decode(response.charset or "utf-8", errors="replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FeedError("unreachable", f"{url} could not be read: {exc!r}") from exc


async def poll_feed(
    db: Database, session: aiohttp.ClientSession, url: str, *, timeout_s: float = 60.0, max_bytes: int = 64 * 1024**2
) -> IntakeCounts:
    """Read the list at ``url`` and take every alert in. :class:`FeedError` for a list that could not be
    read (``not_alerts_csv`` for one that is not a Gaia alerts.csv, ``database`` when the database is away)."""
    text = await fetch_feed(session, url, timeout_s=timeout_s, max_bytes=max_bytes)
    try:
        return await take_in_alerts_csv(db, text)
    except BadInput as exc:
        raise FeedError("not_alerts_csv", f"{url}: {exc.message}") from exc
    except PhotcalError as exc:
        if exc.retryable:
            raise FeedError("database", f"the database did not answer: {exc.message}") from exc
        raise


async def take_in_voevent(db: Database, document: bytes) -> tuple[Alert, Outcome]:
    """The event a VOEvent 2.0 document announces (``shared/voevent.py``), added, updated if the document
    says something new of it, else left as it is. 400 for a document that is not one or lacks its ivorn or
    position (the field checks of every new event, ``shared.usecases.events.EventFields``, apply)."""
    parsed = parse_voevent(document)
    fields, problems = event_fields({"ivorn": parsed.ivorn, "ra": parsed.ra, "dec": parsed.dec, "url": parsed.url})
    if fields is None:
        problem = refusal(problems)
        raise BadInput(f"the VOEvent's {problem.message}", code=problem.code)
    alert = Alert(**fields.model_dump(exclude={"name"}), extra=parsed.extra)
    try:
        stored = (await alerts_by_ivorn(db, [alert.ivorn])).get(alert.ivorn)
        saved, outcome = await take_in(db, alert, stored)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return saved or Alert.model_validate(stored), outcome
