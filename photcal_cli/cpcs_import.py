"""`photcal import cpcs FILE|URL|DIR ... --observatory-map MAP`: the CPCS archive's light curves as datapoints.

Each CPCS point becomes a datapoint marked ``imported: "cpcs"``: no calibration
record and no stored sources (it has no instrumental data, so recalibration
skips it), ``calibration_id`` None, ``upload_id`` ``cpcs:<CPCS id>`` (unique),
the CPCS id kept as ``cpcs_id``. Importing the same archive again stores
nothing new: a point already there by its CPCS id, or by the datapoint's own
key (the same alert, observatory and MJD), is counted as already there. What
cannot be imported is refused and said why: a point of an observatory the map
does not name (unless ``--unmapped-to``), of an alert photcal does not have
(unless ``--create-missing-alerts`` and the file gives its position), or that
cannot be read. Exit code 0 when every point was added or already there, 1 when
some were refused, 2 when the command itself cannot run (no database, a bad map).
The reading is :mod:`photcal_cli.cpcs_archive`; every write goes through ``shared/db``.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photcal_cli.cpcs_archive import (
    ArchiveDocument,
    ArchiveError,
    ArchiveLightcurve,
    IndexEntry,
    map_key,
    read_document,
    read_observatory_map,
)
from shared.db import Database, connect_database
from shared.db.alerts import Alert, bump_data_version, find_alert
from shared.db.datapoints import store_imported_datapoint
from shared.db.observatories import Observatory, list_observatories
from shared.errors import PhotcalError
from shared.settings import CommonSettings
from shared.usecases.events import add_event, event_fields

#: what an imported point is marked with (``Datapoint.imported``)
IMPORTED_FROM = "cpcs"
#: a URL's answer is read up to this many bytes (the largest alert's light curve is a few MB)
MAX_URL_BYTES = 512 * 1024 * 1024
URL_TIMEOUT_S = 120.0
#: refusals printed one by one; the rest are counted
SHOWN_REFUSALS = 50


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


class ImportSetupError(Exception):
    """The import cannot start (a bad observatory map, an unknown --unmapped-to): exit code 2."""


@dataclass
class AlertTally:
    added: int = 0
    already: int = 0
    refused: int = 0


@dataclass
class ImportReport:
    """What an import did, point by point counted; ``refusals`` say why each refused point was."""

    #: (source, alert) -> counts
    tallies: dict[tuple[str, str], AlertTally] = field(default_factory=dict)
    refusals: list[str] = field(default_factory=list)
    #: old observatory name -> points refused for it
    unmapped: Counter[str] = field(default_factory=Counter)
    #: "R(USNO)" -> points kept with that band as written
    unknown_bands: Counter[str] = field(default_factory=Counter)
    #: alert key -> (what to run to add it, points refused for it)
    missing_alerts: dict[str, tuple[str, int]] = field(default_factory=dict)
    created_alerts: list[str] = field(default_factory=list)

    def tally(self, source: str, alert: str) -> AlertTally:
        return self.tallies.setdefault((source, alert), AlertTally())

    @property
    def added(self) -> int:
        return sum(t.added for t in self.tallies.values())

    @property
    def already(self) -> int:
        return sum(t.already for t in self.tallies.values())

    @property
    def refused(self) -> int:
        return sum(t.refused for t in self.tallies.values())

    def lines(self) -> tuple[list[str], list[str]]:
        """(what goes to stdout, what goes to stderr)."""
        out = [
            f"{source}: {alert}: {t.added} added, {t.already} already there, {t.refused} refused"
            for (source, alert), t in self.tallies.items()
        ]
        for ivorn in self.created_alerts:
            out.append(f"alert {ivorn} created from the file's position")
        if self.unknown_bands:
            told = ", ".join(f"{band} ({_points(n)})" for band, n in sorted(self.unknown_bands.items()))
            out.append(f"bands photcal does not know, kept as written: {told}")
        err = [f"refused: {line}" for line in self.refusals[:SHOWN_REFUSALS]]
        if len(self.refusals) > SHOWN_REFUSALS:
            err.append(f"refused: ... and {len(self.refusals) - SHOWN_REFUSALS} more")
        if self.unmapped:
            err.append(
                "observatories not in the map (nothing stored for them; add them to the map "
                "or give --unmapped-to NAME):"
            )
            err.extend(f"  {name!r}: {_points(n)}" for name, n in sorted(self.unmapped.items()))
        if self.missing_alerts:
            err.append("alerts not in photcal (nothing stored for them):")
            err.extend(f"  {key}: {_points(n)}; {how}" for key, (how, n) in sorted(self.missing_alerts.items()))
        out.append(f"total: {self.added} added, {self.already} already there, {self.refused} refused")
        return out, err


# --------------------------------------------------------------------------
# reading the inputs
# --------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "photcal-import"})
    with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
        data = response.read(MAX_URL_BYTES + 1)
    if len(data) > MAX_URL_BYTES:
        raise ArchiveError(f"{url}: more than {MAX_URL_BYTES // 2**20} MB")
    return data


def _files_of(source: str) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith((".json", ".json.gz")))
    return [path]


async def read_sources(sources: list[str]) -> tuple[list[ArchiveDocument], list[str]]:
    """Every document the files, directories and URLs hold; and why each unreadable one was refused."""
    documents: list[ArchiveDocument] = []
    problems: list[str] = []
    for source in sources:
        if _is_url(source):
            try:
                data = await asyncio.to_thread(_fetch, source)
                documents.append(read_document(data, source))
            except urllib.error.HTTPError as exc:
                problems.append(f"{source}: HTTP {exc.code} {exc.reason}")
            except (urllib.error.URLError, OSError) as exc:
                problems.append(f"{source}: not reachable ({getattr(exc, 'reason', exc)})")
            except ArchiveError as exc:
                problems.append(str(exc))
            continue
        files = _files_of(source)
        if not files:
            problems.append(f"{source}: a directory without .json files")
        for path in files:
            try:
                data = path.read_bytes()
                if path.name.lower().endswith(".gz"):
                    data = gzip.decompress(data)
                documents.append(read_document(data, str(path)))
            except FileNotFoundError:
                problems.append(f"{path}: no such file")
            except (OSError, EOFError) as exc:
                problems.append(f"{path}: unreadable ({exc})")
            except ArchiveError as exc:
                problems.append(str(exc))
    return documents, problems


# --------------------------------------------------------------------------
# resolving alerts and observatories
# --------------------------------------------------------------------------


def _observatory_named(observatories: list[Observatory], key: str) -> Observatory | None:
    for obs in observatories:
        if obs.observatory_id == key:
            return obs
    for obs in observatories:
        if obs.name == key:
            return obs
    folded = [o for o in observatories if map_key(o.name) == map_key(key)]
    return folded[0] if len(folded) == 1 else None


async def resolve_observatories(
    db: Database, mapping: dict[str, str], unmapped_to: str | None
) -> tuple[dict[str, Observatory], Observatory | None]:
    """The map's targets as photcal observatories (by id or name); ImportSetupError naming the unknown ones."""
    observatories = await list_observatories(db)
    resolved: dict[str, Observatory] = {}
    unknown: list[str] = []
    for old, target in mapping.items():
        obs = _observatory_named(observatories, target)
        if obs is None:
            unknown.append(f"{old!r} -> {target!r}")
        else:
            resolved[map_key(old)] = obs
    fallback = None
    if unmapped_to is not None:
        fallback = _observatory_named(observatories, unmapped_to)
        if fallback is None:
            unknown.append(f"--unmapped-to {unmapped_to!r}")
    if unknown:
        raise ImportSetupError(
            f"no photcal observatory with that id or name: {', '.join(unknown)} "
            "(`photcal observatory list` lists them; `photcal observatory add` adds one)"
        )
    return resolved, fallback


@dataclass
class AlertRef:
    """What a light curve says of its alert: the key photcal looks it up by, and its position if known."""

    key: str
    ra: float | None = None
    dec: float | None = None
    name: str | None = None


def alert_reference(lc: ArchiveLightcurve, index: dict[int, IndexEntry], forced: str | None) -> AlertRef | str:
    """The alert a light curve belongs to, or why it is not known: its own key, else ``--alert``, else the
    CPCS alert id (a harvested file's name) looked up in list_of_alerts."""
    by_ivorn = {e.ivorn: e for e in index.values()}
    if lc.alert_key:
        entry = by_ivorn.get(lc.alert_key)
        ra = lc.ra if lc.ra is not None else (entry.ra if entry else None)
        dec = lc.dec if lc.dec is not None else (entry.dec if entry else None)
        return AlertRef(lc.alert_key, ra, dec, entry.name if entry else None)
    if forced:
        return AlertRef(forced, lc.ra, lc.dec)
    if lc.cpcs_alert_id is not None:
        entry = index.get(lc.cpcs_alert_id)
        if entry is None:
            return (
                f"{lc.source}: CPCS alert id {lc.cpcs_alert_id} is not in list_of_alerts: give that list "
                "(--index FILE|URL, or its JSON among the inputs) or --alert NAME|IVORN"
            )
        ra = lc.ra if lc.ra is not None else entry.ra
        dec = lc.dec if lc.dec is not None else entry.dec
        return AlertRef(entry.ivorn, ra, dec, entry.name)
    return f"{lc.source}: the file does not say which alert it is (no ivorn or name): give --alert NAME|IVORN"


def _how_to_add(ref: AlertRef) -> str:
    if ref.ra is not None and ref.dec is not None and ref.key.startswith("ivo://"):
        return (
            f"add it with `photcal alert add --ivorn '{ref.key}' --ra {ref.ra} --dec {ref.dec}` "
            "(or `photcal alerts import alerts.csv`), or rerun with --create-missing-alerts"
        )
    return (
        "add it with `photcal alert add --ivorn IVORN --ra RA --dec DEC` or `photcal alerts import alerts.csv` "
        "(the file has no ivorn and position for --create-missing-alerts)"
    )


async def _create_alert(db: Database, ref: AlertRef) -> tuple[Alert | None, str | None]:
    """The alert made from the file's ivorn and position; (None, why) when it cannot be."""
    fields, problems = event_fields({"ivorn": ref.key, "ra": ref.ra, "dec": ref.dec, "name": ref.name})
    if fields is None:
        return None, "; ".join(p.reason for p in problems) + ": " + _how_to_add(ref)
    try:
        stored, _ = await add_event(db, fields, created_by=None)
    except PhotcalError as exc:
        if exc.retryable:
            raise
        return None, exc.message
    return stored, None


# --------------------------------------------------------------------------
# the import
# --------------------------------------------------------------------------


def _upload_id(cpcs_id: int | str | None, ivorn: str, observatory_id: str, mjd: float) -> str:
    if cpcs_id is not None:
        return f"{IMPORTED_FROM}:{cpcs_id}"
    return f"{IMPORTED_FROM}:{ivorn}|{observatory_id}|{mjd:.6f}"  # a file without ids: the point's own key


async def import_archive(
    db: Database,
    sources: list[str],
    mapping: dict[str, str],
    *,
    alert: str | None = None,
    index_sources: list[str] | None = None,
    unmapped_to: str | None = None,
    create_missing_alerts: bool = False,
) -> ImportReport:
    """Import every light curve the sources hold (see the module's docstring); what happened, counted."""
    observatories, fallback = await resolve_observatories(db, mapping, unmapped_to)
    report = ImportReport()
    documents, problems = await read_sources(sources)
    index_documents, index_problems = await read_sources(index_sources or [])
    for problem in problems + index_problems:
        report.refusals.append(problem)
        report.tally(problem.split(": ", 1)[0], "(unreadable)").refused += 1
    index = {e.cpcs_alert_id: e for d in documents + index_documents for e in d.index}
    alerts: dict[str, Alert | None] = {}
    for document in documents:
        for lc in document.lightcurves:
            await _import_lightcurve(db, lc, index, alert, observatories, fallback, create_missing_alerts, alerts,
                                     report)  # fmt: skip
    return report


async def _alert_of(
    db: Database, ref: AlertRef, alerts: dict[str, Alert | None], create: bool, report: ImportReport
) -> Alert | str:
    if ref.key not in alerts:
        try:
            found = await find_alert(db, ref.key)
        except PhotcalError as exc:  # a name several alerts answer to
            if exc.retryable:
                raise
            return exc.message
        if found is None and create:
            found, why = await _create_alert(db, ref)
            if found is None:
                return f"alert {ref.key} could not be created: {why}"
            report.created_alerts.append(found.ivorn)
        alerts[ref.key] = found
    return alerts[ref.key] or f"alert {ref.key} is not in photcal"


async def _import_lightcurve(
    db: Database,
    lc: ArchiveLightcurve,
    index: dict[int, IndexEntry],
    forced_alert: str | None,
    observatories: dict[str, Observatory],
    fallback: Observatory | None,
    create_missing_alerts: bool,
    alerts: dict[str, Alert | None],
    report: ImportReport,
) -> None:
    ref = alert_reference(lc, index, forced_alert)
    n_points = len(lc.points) + len(lc.refused)
    if isinstance(ref, str):
        report.refusals.append(f"{ref} ({n_points} points)")
        report.tally(lc.source, "(which alert?)").refused += n_points
        return
    found = await _alert_of(db, ref, alerts, create_missing_alerts, report)
    if isinstance(found, str):
        tally = report.tally(lc.source, ref.key)
        tally.refused += n_points
        if found.endswith("is not in photcal"):
            how, count = report.missing_alerts.get(ref.key, (_how_to_add(ref), 0))
            report.missing_alerts[ref.key] = (how, count + n_points)
        else:
            report.refusals.append(f"{lc.source}: {found} ({n_points} points)")
        return
    tally = report.tally(lc.source, found.ivorn)
    tally.refused += len(lc.refused)
    report.refusals.extend(lc.refused)
    added = False
    for point in lc.points:
        obs = observatories.get(map_key(point.observatory), fallback)
        if obs is None:
            tally.refused += 1
            report.unmapped[point.observatory] += 1
            continue
        fields: dict[str, Any] = {
            "upload_id": _upload_id(point.cpcs_id, found.ivorn, obs.observatory_id, point.mjd),
            "ivorn": found.ivorn,
            "alert_name": found.name,
            "observatory_id": obs.observatory_id,
            "observatory": obs.name,
            "mjd": point.mjd,
            "exptime": None,
            "survey": point.survey,
            "filter": point.filter,
            "mag": point.mag,
            "mag_err": point.mag_err,
            "limit_mag": point.limit_mag,
            "detected": point.detected,
            "zeropoint_err": point.caliberr,
            "comment": "",
            "imported": IMPORTED_FROM,
            "cpcs_id": point.cpcs_id,
            # the name CPCS knew the observatory by (the document keeps it; the model does not read it)
            "cpcs_observatory": point.observatory,
        }
        _, stored = await store_imported_datapoint(db, fields)
        if stored:
            tally.added += 1
            added = True
            if point.unknown_band:
                report.unknown_bands[point.unknown_band] += 1
        else:
            tally.already += 1
    if added:  # the light curve's cache sees the new points
        await bump_data_version(db, found.ivorn)


async def run(args, settings: CommonSettings) -> int:
    try:
        mapping = read_observatory_map(Path(args.observatory_map).read_text(encoding="utf-8"), args.observatory_map)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    db = connect_database(settings.mongo_url, settings.mongo_db, timeout_s=settings.backend_timeout)
    try:
        if not await db.ping():
            print(
                f"error: no database at {settings.mongo_url}: start it with `make run` or set PHOTCAL_MONGO_URL",
                file=sys.stderr,
            )
            return 2
        await db.ensure_indexes()
        try:
            report = await import_archive(
                db,
                args.sources,
                mapping,
                alert=args.alert,
                index_sources=args.index,
                unmapped_to=args.unmapped_to,
                create_missing_alerts=args.create_missing_alerts,
            )
        except ImportSetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    finally:
        await db.close()
    out, err = report.lines()
    for line in err:
        print(line, file=sys.stderr)
    for line in out:
        print(line)
    return 1 if report.refused else 0
