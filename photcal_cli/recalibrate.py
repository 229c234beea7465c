"""`photcal recalibrate --survey S [selection]`: a recalibration job computed on lsdb/Dask, for the whole archive.

It selects datapoints as ``POST /api/v1/recalibrations`` does
(shared/usecases/recalibrations.py ``select_points``), stores a job (engine
``dask``, a dry run: shared/db/recalibrations.py) with one pending item per
point, cross-matches the points' stored sources (collection
``upload_sources``) with S's HATS catalogue and fits each again
(photcal_cli/batch/recalibrate.py), in batches, locally or on the Dask
cluster at ``--scheduler`` / ``PHOTCAL_DASK_SCHEDULER``. Each item moves to
``computed`` (old and new calibration, changed, dmag), ``failed`` (the
error code) or ``skipped`` (no stored sources); the job is then ``ready``
with its summary. Nothing else changes: an administrator applies the job
with ``POST /api/v1/recalibrations/{job_id}/apply`` (the command prints
it). Running again makes a new job; ``--resume JOB`` computes a job's
pending items (after an interruption).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from photcal_cli.database import command_database
from shared.bands import parse_force_filter
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import (
    PointCalibration,
    RecalibrationChange,
    RecalibrationRequest,
    RecalibrationSelection,
)
from shared.contracts.surveys import SURVEYS, get_survey
from shared.db import Database
from shared.db.calibrations import provenances_of
from shared.db.observatories import list_observatories
from shared.db.recalibrations import (
    RecalibrationItem,
    RecalibrationJob,
    count_items,
    create_job,
    get_job,
    items_for_summary,
    items_of_job,
    move_items,
    set_job,
)
from shared.db.upload_sources import sources_of_uploads
from shared.errors import BadInput, NotFound
from shared.settings import CommonSettings
from shared.usecases.recalibrations import compare, summarize

#: points cross-matched and fitted together (one lsdb cross-match, one Dask graph)
BATCH = 2000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (photcal_cli/main.py)."""
    from photcal_cli.main import survey_name

    parser.add_argument(
        "--survey", choices=list(SURVEYS), type=survey_name, help="the survey whose catalogue the refit reads"
    )
    parser.add_argument("--alert", action="append", default=[], help="an event's ivorn or name (repeatable)")
    parser.add_argument("--observatory", action="append", default=[], help="an observatory's id or name (repeatable)")
    parser.add_argument("--mjd-min", type=float, default=None, help="points at or after this MJD")
    parser.add_argument("--mjd-max", type=float, default=None, help="points at or before this MJD")
    parser.add_argument("--band", default=None, help="points now calibrated in this SURVEY/BAND (or BAND)")
    parser.add_argument("--followup-id", type=int, action="append", default=[], help="this datapoint (repeatable)")
    parser.add_argument(
        "--force-filter", default=None, help="the band or band group of the refit (within --survey), e.g. APASS/V"
    )
    parser.add_argument("--match-dist", type=float, default=None, help="match radius, arcsec (default: each upload's)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many points")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"points per cross-match (default {BATCH})")
    parser.add_argument(
        "--scheduler", default=None, help="Dask scheduler address (default PHOTCAL_DASK_SCHEDULER, else local)"
    )
    parser.add_argument("--resume", metavar="JOB", default=None, help="compute this job's pending items")
    parser.add_argument("--reason", default="", help="why, in a sentence (kept with the job)")
    parser.add_argument("--quiet", action="store_true", help="no line per point")


def request_of(args: argparse.Namespace) -> RecalibrationRequest:
    """The job's request: the selection and the change as ``POST /api/v1/recalibrations`` takes them."""
    survey = get_survey(args.survey).name
    forced = parse_force_filter(args.force_filter) if args.force_filter else None
    if forced is not None and any(s.lower() != survey.lower() for s in forced.surveys):
        raise BadInput(
            f"--force-filter {forced.text} is not a band of {survey}: the refit reads {survey}'s catalogue only",
            code=ErrorCode.BAD_FORCE_FILTER,
        )
    band_survey, band = _band(args.band)
    try:
        selection = RecalibrationSelection(
            alerts=args.alert,
            observatories=args.observatory,
            mjd_min=args.mjd_min,
            mjd_max=args.mjd_max,
            survey=band_survey,
            filter=band,
            followup_ids=args.followup_id,
        )
        change = RecalibrationChange(
            force_filter=forced.text if forced is not None else f"{survey}/any",
            match_dist_arcsec=args.match_dist,
        )
    except ValueError as exc:
        raise BadInput(f"the selection or change cannot be used: {exc}", code=ErrorCode.BAD_SELECTION) from exc
    return RecalibrationRequest(selection=selection, change=change, dry_run=True, reason=args.reason)


def _band(text: str | None) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    survey, sep, band = text.partition("/")
    if not sep:
        return None, text.strip()
    try:
        return get_survey(survey.strip()).name, band.strip() or None
    except KeyError:
        raise BadInput(
            f"--band {text}: no survey {survey} ({', '.join(SURVEYS)})", code=ErrorCode.BAD_SELECTION
        ) from None


def survey_of(request: RecalibrationRequest) -> tuple[str, str | None]:
    """(survey, forced band or None) of a dask job's request: ``S/any`` is the survey alone."""
    forced = parse_force_filter(request.change.force_filter)
    if forced is None:
        raise BadInput("the job's request names no survey: it was not made by photcal recalibrate")
    survey = forced.surveys[0]
    return survey, None if forced.group and forced.text == f"{survey}/any" else forced.text


@dataclass
class Timing:
    """Wall time of the parts, seconds."""

    select_s: float = 0.0
    load_s: float = 0.0
    crossmatch_s: float = 0.0
    refit_s: float = 0.0
    write_s: float = 0.0
    points: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        total = self.select_s + self.load_s + self.crossmatch_s + self.refit_s + self.write_s
        rate = self.points / total if total else 0.0
        return (
            f"{self.points} points in {total:.1f} s ({rate:.0f} points/s): select {self.select_s:.1f} s, "
            f"read sources {self.load_s:.1f} s, crossmatch {self.crossmatch_s:.1f} s, refit {self.refit_s:.1f} s, "
            f"write items {self.write_s:.1f} s"
        )


async def run(args: argparse.Namespace, settings: CommonSettings) -> int:
    async with command_database(settings) as db:
        job = await prepare_job(db, args, settings)
        if job is None:
            return 0
        timing = await compute_job(db, job, settings, args)
        await report(db, job.job_id, settings, timing)
        return 0


async def prepare_job(db: Database, args: argparse.Namespace, settings: CommonSettings) -> RecalibrationJob | None:
    """A new job with its items (or the job to resume); None if the selection took nothing."""
    if args.resume:
        job = await get_job(db, args.resume)
        if job is None:
            raise NotFound(f"no recalibration job {args.resume}", code=ErrorCode.UNKNOWN_RECALIBRATION)
        if job.engine != "dask":
            raise BadInput(
                f"job {job.job_id} runs on the work queue: resume it with the API, not photcal recalibrate",
                code=ErrorCode.BAD_SELECTION,
            )
        if job.state == "computing":
            return job
        print(f"job {job.job_id} is {job.state}: nothing to compute")
        return None
    if not args.survey:
        raise BadInput("--survey S (the catalogue to recalibrate against), or --resume JOB", code=ErrorCode.BAD_INPUT)
    request = request_of(args)
    source, version = _catalogue(settings, get_survey(args.survey).name)
    request.change.catalogue_versions = {get_survey(args.survey).name: version}
    job_id = uuid.uuid4().hex
    started = time.perf_counter()
    from shared.usecases.recalibrations import select_points

    items = await select_points(db, request.selection, job_id)
    if args.limit is not None:
        items = items[: args.limit]
    if not items:
        print("the selection takes no datapoint: no job")
        return None
    job = RecalibrationJob(job_id=job_id, request=request, engine="dask", total=len(items))
    await create_job(db, job, items)
    args.select_s = time.perf_counter() - started
    skipped = sum(i.state == "skipped" for i in items)
    print(
        f"job {job_id}: {len(items)} point(s) selected ({skipped} skipped: deleted or imported) "
        f"in {args.select_s:.1f} s",
        flush=True,
    )
    return job


def _catalogue(settings: CommonSettings, survey: str) -> tuple[str, str]:
    from services.catalog.store import CatalogStore

    live = CatalogStore(settings.data_dir).live(survey)
    if live is None:
        raise BadInput(
            f"no {survey} catalogue under {settings.data_dir}: load one (`photcal catalog load`) or attach one "
            "(`photcal catalog attach`)",
            code=ErrorCode.NO_CATALOGUE,
        )
    return live[0], live[2]


async def compute_job(
    db: Database, job: RecalibrationJob, settings: CommonSettings, args: argparse.Namespace
) -> Timing:
    """Cross-match and fit the job's pending items in batches; each moves to computed, failed or skipped."""
    from photcal_cli.batch.recalibrate import dask_client
    from services.catalog.store import CatalogStore

    survey, forced = survey_of(job.request)
    live = CatalogStore(settings.data_dir).live(survey)
    if live is None:
        raise BadInput(f"no {survey} catalogue under {settings.data_dir}", code=ErrorCode.NO_CATALOGUE)
    source, columns, version = live
    wanted = job.request.change.catalogue_versions.get(survey)
    if wanted and wanted != version:
        raise BadInput(
            f"job {job.job_id} was computed against {survey} {wanted}; the live catalogue is {version}: "
            "start a new job",
            code=ErrorCode.NO_CATALOGUE,
        )
    scheduler = args.scheduler or os.environ.get("PHOTCAL_DASK_SCHEDULER") or None
    match_dist = job.request.change.match_dist_arcsec
    batch_size = max(1, int(getattr(args, "batch", BATCH) or BATCH))
    timing = Timing(select_s=getattr(args, "select_s", 0.0))
    pending = [item async for item in items_of_job(db, job.job_id, states=("pending",))]
    where = scheduler or "local Dask (threads)"
    print(
        f"recalibrating {len(pending)} point(s) against {survey} {version} ({source}) on {where}"
        + (f", forced {forced}" if forced else ""),
        flush=True,
    )
    filters_of = {o.observatory_id: list(o.filters) for o in await list_observatories(db)}
    started = time.perf_counter()
    # one Client for the whole job (the default scheduler of every batch's graphs meanwhile)
    with dask_client(scheduler):
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            await _compute_batch(db, job.job_id, batch, survey, forced, live, match_dist, filters_of, timing, args)
            done = start + len(batch)
            print(f"{done}/{len(pending)} points ({done / (time.perf_counter() - started):.0f} points/s)", flush=True)
    timing.points = len(pending)
    counts = await count_items(db, job.job_id)
    timing.counts = counts
    if counts["pending"] == 0:
        items = await items_for_summary(db, job.job_id)
        await set_job(db, job.job_id, expect="computing", state="ready", summary=summarize(items))
    return timing


async def _compute_batch(
    db: Database,
    job_id: str,
    batch: list[RecalibrationItem],
    survey: str,
    forced: str | None,
    live: tuple[str, Any, str],
    match_dist: float | None,
    filters_of: dict[str, list[str]],
    timing: Timing,
    args: argparse.Namespace,
) -> None:
    """One batch: its stored sources read, cross-matched and fitted, its items moved in one bulk write."""
    from photcal_cli.batch.recalibrate import BatchTimes, StoredUpload, recalibrate

    source, columns, version = live
    t0 = time.perf_counter()
    ids = [i.upload_id for i in batch]
    stored, provenances = await asyncio.gather(sources_of_uploads(db, ids), provenances_of(db, ids))
    uploads, without = [], []
    for item in batch:
        doc = stored.get(item.upload_id)
        if doc is None:
            without.append(item)
            continue
        up = StoredUpload.from_doc(
            doc,
            followup_id=item.followup_id,
            observatory_filters=_observatory_filters(provenances.get(item.upload_id), filters_of, item),
            input_sha256=(provenances.get(item.upload_id) or {}).get("input_sha256"),
        )
        if match_dist is not None:
            up.match_dist_arcsec = match_dist
        uploads.append(up)
    timing.load_s += time.perf_counter() - t0
    times = BatchTimes()
    refits = await asyncio.to_thread(
        recalibrate,
        uploads,
        survey,
        source,
        columns,
        None,  # the job's Client, if any, is the default scheduler
        forced=forced,
        catalogue_version=version,
        times=times,
    )
    timing.crossmatch_s += times.crossmatch_s
    timing.refit_s += times.refit_s
    t0 = time.perf_counter()
    by_id = {item.followup_id: item for item in batch}
    moves: list[tuple[int, Any, dict[str, Any]]] = [
        (
            item.followup_id,
            "skipped",
            {"reason": "no_instrumental_data", "message": "no stored sources: the upload predates them"},
        )
        for item in without
    ]
    for r in refits:
        assert r.followup_id is not None
        item = by_id[r.followup_id]
        if r.ok:
            new = new_calibration(r.result)
            changed, dmag = compare(item.old, new)
            moves.append(
                (item.followup_id, "computed", {"new": new, "changed": changed, "dmag": dmag, "result": r.result})
            )
            if not args.quiet:
                print(f"  {_point_line(item, new, changed, dmag)}")
        else:
            moves.append((item.followup_id, "failed", {"reason": r.error, "message": r.message}))
            if not args.quiet:
                print(f"  #{item.followup_id} ({item.upload_id}): not recalibrated: {r.error}: {r.message}")
    await move_items(db, job_id, moves)
    timing.write_s += time.perf_counter() - t0


def _observatory_filters(
    provenance: dict[str, Any] | None, filters_of: dict[str, list[str]], item: RecalibrationItem
) -> list[str]:
    """The filters the live upload's band choice took: its provenance's, else the observatory's now."""
    if provenance is not None and "observatory_filters" in provenance:
        return list(provenance["observatory_filters"] or [])
    return filters_of.get(item.observatory_id or "", [])


def new_calibration(result: dict[str, Any]) -> PointCalibration:
    """A refit's answer as the item's ``new`` (not applied: no version yet)."""
    return PointCalibration(
        survey=result.get("survey"),
        filter=result.get("filter"),
        mag=result.get("mag"),
        mag_err=result.get("mag_err"),
        limit_mag=result.get("limit_mag"),
        detected=bool(result.get("detected", True)),
        zeropoint=result.get("zeropoint"),
        zeropoint_err=result.get("zeropoint_err"),
        version=None,
    )


def _shown(p: PointCalibration) -> str:
    value = f"{p.mag:.3f}" if p.detected and p.mag is not None else f">{p.limit_mag}"
    return f"{p.survey}/{p.filter} {value}"


def _point_line(item: RecalibrationItem, new: PointCalibration, changed: bool, dmag: float | None) -> str:
    delta = f" dmag {dmag:+.3f}" if dmag is not None else ""
    return f"#{item.followup_id}: {_shown(item.old)} -> {_shown(new)}{delta}{'' if changed else ' (unchanged)'}"


async def report(db: Database, job_id: str, settings: CommonSettings, timing: Timing) -> None:
    """The summary, the job id and how to apply it."""
    job = await get_job(db, job_id)
    assert job is not None
    print(timing.line())
    print(f"peak memory {peak_rss_mb():.0f} MB")
    counts = timing.counts or await count_items(db, job_id)
    if job.state != "ready" or job.summary is None:
        pending = counts["pending"]
        print(f"job {job_id} is {job.state}: {pending} point(s) pending: `photcal recalibrate --resume {job_id}`")
        return
    s = job.summary
    moves = (
        f"; |dmag| median {s.median_abs_dmag:.3f}, max {s.max_abs_dmag:.3f} mag"
        if s.median_abs_dmag is not None and s.max_abs_dmag is not None
        else ""
    )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items()))
    print(
        f"job {job_id} ready: {s.computed} computed, {s.changed} change ({s.band_changed} change band){moves}; "
        f"{s.unchanged} unchanged, {s.failed} failed, {s.skipped} skipped" + (f" ({reasons})" if reasons else "")
    )
    print("nothing is changed yet; to apply (an administrator's hashtag):")
    print(f"  {apply_command(settings, job_id)}")


def apply_command(settings: CommonSettings, job_id: str) -> str:
    url = f"http://{settings.http_host}:{settings.http_port}/api/v1/recalibrations/{job_id}/apply"
    return f"curl -X POST -F hashtag=$ADMIN_HASHTAG {url}"


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
