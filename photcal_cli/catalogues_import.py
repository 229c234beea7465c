"""`photcal import catalogues DIR`: old instrumental catalogues re-uploaded through the normal upload path.

Each catalogue (a SExtractor file, as CPCS took it) is POSTed to a running
gateway's ``/api/v1/uploads`` like any upload, so it is calibrated against
today's catalogues on the way and stored with its calibration record and
sources (recalibration can redo it later). The event, MJD and filter of each
file come from a manifest in DIR, ``manifest.csv`` (``--manifest`` for another):

    file,event,mjd,filter,hashtag,exptime,comment
    2019/gaia19abc_0412.cat,ivo://gaia/alerts#Gaia19abc,58612.91234,APASS/V,,120,
    2019/gaia19abc_0413.cat,ivo://gaia/alerts#Gaia19abc,58613.90110,,,120,

``file`` (relative to DIR), ``event`` (the alert's ivorn, as the upload's EventID) and ``mjd``
are required;
``filter`` is the upload's forceFilter (``SURVEY/BAND`` or a band group;
empty: the automatic choice within the observatory's filters); ``hashtag`` the
observatory's (empty: ``--hashtag``, one for every row); ``exptime`` seconds;
``comment`` free text. Lines starting ``#`` are comments.

Idempotent: a file already stored is refused by the gateway with 409
``duplicate_datapoint`` (the same event, observatory and MJD), counted as
already there. Exit code 0 when every row was added or already there, 1 when
some were refused, 2 when the manifest cannot be read.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from shared.settings import CommonSettings

MANIFEST = "manifest.csv"
REQUIRED_COLUMNS = ("file", "event", "mjd")
OPTIONAL_COLUMNS = ("filter", "hashtag", "exptime", "comment")
#: a calibration is answered in seconds; the gateway itself gives up after PHOTCAL_UPLOAD_TIMEOUT (504)
UPLOAD_TIMEOUT_S = 300.0


class ManifestError(ValueError):
    """The manifest cannot be read: nothing is uploaded (exit code 2)."""


@dataclass(frozen=True)
class ManifestRow:
    line: int
    file: Path
    event: str
    mjd: str
    filter: str
    hashtag: str
    exptime: str
    comment: str


@dataclass(frozen=True)
class Outcome:
    """One row's fate: ``added``, ``already`` (there) or ``refused``, and what to tell the user."""

    row: ManifestRow
    kind: str
    text: str


def read_manifest(path: Path, directory: Path, default_hashtag: str | None) -> list[ManifestRow]:
    """The manifest's rows, files resolved against ``directory``; ManifestError says what is wrong."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ManifestError(
            f"no manifest {path} ({exc.strerror}): write one, CSV with a header "
            f"{','.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        ) from None
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)), skipinitialspace=True)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(
            f"{path}: the header needs {', '.join(missing)} (columns: {','.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})"
        )
    rows = []
    for n, raw in enumerate(reader, 2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
        hashtag = row.get("hashtag") or default_hashtag or ""
        if not hashtag:
            raise ManifestError(f"{path} line {n}: no hashtag: give the column or --hashtag")
        rows.append(
            ManifestRow(
                line=n,
                file=directory / row.get("file", ""),
                event=row.get("event", ""),
                mjd=row.get("mjd", ""),
                filter=row.get("filter", ""),
                hashtag=hashtag,
                exptime=row.get("exptime", ""),
                comment=row.get("comment", ""),
            )
        )
    return rows


def outcome_of(row: ManifestRow, status: int, body: dict) -> Outcome:
    """What the gateway's answer means for this row."""
    message = str(body.get("message", ""))[:300]
    if status in (200, 201) and body.get("status") == "ok" and body.get("stored"):
        told = f"{body.get('survey')}/{body.get('filter')} "
        told += f"{body['mag']:.3f}" if body.get("mag") is not None else f"limit {body.get('limit_mag')}"
        return Outcome(row, "added", f"added (followup_id {body.get('followup_id')}, {told})")
    if status == 409 and body.get("error") == "duplicate_datapoint":
        return Outcome(row, "already", f"already there ({message})")
    if status == 504:
        ident = body.get("upload_id", "")
        return Outcome(row, "refused", f"still calibrating: see GET /api/v1/uploads/{ident}, then run again")
    code = body.get("error") or f"HTTP {status}"
    return Outcome(row, "refused", f"refused: {code}: {message or body}")


async def upload_row(session: aiohttp.ClientSession, url: str, row: ManifestRow, *, plots: bool) -> Outcome:
    if not row.event or not row.mjd:
        return Outcome(row, "refused", "refused: the manifest row needs event and mjd")
    try:
        data = await asyncio.to_thread(row.file.read_bytes)
    except OSError as exc:
        return Outcome(row, "refused", f"refused: cannot read {row.file} ({exc.strerror})")
    form = aiohttp.FormData()
    form.add_field("sexCat", data, filename=row.file.name, content_type="application/octet-stream")
    fields = {
        "hashtag": row.hashtag,
        "EventID": row.event,
        "MJD": row.mjd,
        "forceFilter": row.filter or "no",
        "dryRun": "0",
        "noPlot": "0" if plots else "1",
        "outputFormat": "json",
    }
    if row.exptime:
        fields["expTime"] = row.exptime
    if row.comment:
        fields["comment"] = row.comment
    for key, value in fields.items():
        form.add_field(key, value)
    try:
        async with session.post(f"{url}/api/v1/uploads", data=form) as response:
            try:
                body = await response.json(content_type=None)
            except ValueError:
                body = {"message": (await response.text())[:200]}
            if not isinstance(body, dict):
                body = {"message": str(body)[:200]}
            if response.status == 504:
                body.setdefault("upload_id", response.headers.get("X-Upload-ID", ""))
            return outcome_of(row, response.status, body)
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Outcome(row, "refused", f"refused: the gateway at {url} did not answer ({type(exc).__name__})")


async def import_catalogues(
    rows: list[ManifestRow], url: str, *, concurrency: int = 2, plots: bool = False
) -> list[Outcome]:
    """Every row uploaded (``concurrency`` at a time), outcomes in the manifest's order."""
    gate = asyncio.Semaphore(max(1, concurrency))
    timeout = aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(row: ManifestRow) -> Outcome:
            async with gate:
                return await upload_row(session, url, row, plots=plots)

        return list(await asyncio.gather(*(one(r) for r in rows)))


async def run(args, settings: CommonSettings) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"error: {directory} is not a directory", file=sys.stderr)
        return 2
    manifest = Path(args.manifest) if args.manifest else directory / MANIFEST
    try:
        rows = read_manifest(manifest, directory, args.hashtag)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = (args.url or f"http://127.0.0.1:{settings.http_port}").rstrip("/")
    outcomes = await import_catalogues(rows, url, concurrency=args.concurrency, plots=args.plots)
    counts = {"added": 0, "already": 0, "refused": 0}
    for outcome in outcomes:
        counts[outcome.kind] += 1
        stream = sys.stderr if outcome.kind == "refused" else sys.stdout
        path = outcome.row.file
        shown = path.relative_to(directory) if path.is_relative_to(directory) else path
        print(f"{shown} (line {outcome.row.line}): {outcome.text}", file=stream)
    print(f"total: {counts['added']} added, {counts['already']} already there, {counts['refused']} refused")
    return 1 if counts["refused"] else 0
