"""Re-calibrating stored uploads against a survey's (new) catalogue, at scale.

``photcal recalibrate --survey S`` (photcal_cli/recalibrate.py) runs this:

1. every stored upload's parsed sources (collection ``upload_sources``,
   written by the calibrate service for each non-dry-run upload) become one
   lsdb catalogue (``lsdb.from_dataframe``, positions only plus two ids);
2. it is cross-matched with the survey's HATS catalogue (the live local
   version or the attached remote one) by lsdb on Dask: only the partitions
   of the reference catalogue that overlap the uploads are read, pixel pair
   by pixel pair: every reference star within 10" of a source (NEIGHBOURHOOD_ARCSEC,
   or the largest match radius if larger), so that the core sees a calibrator's
   neighbours in the survey as a live upload's cone shows them;
3. each upload's matched reference stars are fitted again with the
   calibration core (``services.calibrate.core.calibrate_frame``) - the same
   science as a live upload, restricted to that survey - as Dask tasks too,
   and answered with the live upload's fields and rounding
   (:func:`services.calibrate.answer.calibration_answer`);
4. the caller (photcal_cli/recalibrate.py) moves each of the job's items
   (shared/db/recalibrations.py) to ``computed`` with the new calibration
   or to ``failed`` with the reason; the datapoint and its calibration are
   left as they were until an administrator applies the job.

Which band: the refit is restricted to the one survey, and otherwise takes
the inputs the live upload took (:func:`refit_force`): the job's forced
band or band group when it names one (``--force-filter``); else the
upload's own forceFilter restricted to that survey; else the automatic
choice among the survey's bands, constrained by the observatory's filters
as the live upload's was; and when those filters allow none of the
survey's bands, any of its bands (``S/any``). The same core (``calibrate_frame``) with the same
stars, force and radius gives the same answer as a queue recompute.

A batch job, not part of a service: it stands above the catalogue's layout
(``services.catalog.layout``) and the calibration core at once, and services
import no other service (:mod:`photcal_cli.batch`).

Dask runs on the local threaded scheduler unless a scheduler address is
given (``PHOTCAL_DASK_SCHEDULER``, e.g. ``tcp://dask-scheduler:8786``); the
cluster's workers must be able to read the catalogue (a shared path or URL).

Partition boundaries: every local version has a margin catalogue (the stars
within 10" of each partition's edges, ``loader._write_margin``), which lsdb
uses so that a source near a boundary finds its nearest star on the other
side. An attached (external) catalogue is used without one, and so is a
local one when an upload's match radius exceeds the margin's 10": a source
within the radius of a boundary can then miss its reference star when the
nearest one lies in the neighbouring partition (lsdb warns about this). The
fit loses that star, nothing else.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from services.catalog import layout
from services.catalog.layout import Columns
from shared.arrays import SourceTable
from shared.bands import ForcedBand, filter_constraint, parse_force_filter
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import SurveyStars
from shared.contracts.surveys import get_survey
from shared.errors import BadInput, PhotcalError
from shared.provenance import calibration_provenance

_RA, _DEC, _UPLOAD, _ROW = "_src_ra", "_src_dec", "_src_upload", "_src_row"


@dataclass
class StoredUpload:
    """One stored upload as ``upload_sources`` keeps it."""

    upload_id: str
    alert_ra: float
    alert_dec: float
    match_dist_arcsec: float
    sources: SourceTable
    force_filter: str | None = None
    ivorn: str = ""
    mjd: float | None = None
    #: the datapoint this upload made (the job's item), when known
    followup_id: int | None = None
    #: the observatory's filters the live upload's band choice was constrained by
    observatory_filters: list[str] = field(default_factory=list)
    #: the uploaded file's sha256 (the live calibration's provenance), carried into the new one
    input_sha256: str | None = None

    @classmethod
    def from_doc(cls, doc: dict, **extra) -> StoredUpload:
        """From an ``upload_sources`` record; ``extra``: followup_id, observatory_filters, input_sha256."""
        return cls(
            upload_id=str(doc.get("upload_id") or doc["_id"]),
            alert_ra=float(doc["alert_ra"]),
            alert_dec=float(doc["alert_dec"]),
            match_dist_arcsec=float(doc.get("match_dist_arcsec") or 2.0),
            sources=SourceTable.model_validate(doc["sources"]),
            force_filter=doc.get("force_filter"),
            ivorn=doc.get("ivorn", ""),
            mjd=doc.get("mjd"),
            **extra,
        )


@dataclass
class Refit:
    """The outcome for one upload: a new calibration, or why there is none.

    ``result``: the whole answer (CalibrationResult as JSON, its provenance included) when ``ok``.
    """

    upload_id: str
    survey: str
    ok: bool
    nref: int = 0
    result: dict = field(default_factory=dict)
    error: str | None = None
    message: str | None = None
    followup_id: int | None = None


@dataclass
class BatchTimes:
    """Wall time of one batch's parts, seconds: the lsdb cross-match and the refits (Dask tasks)."""

    crossmatch_s: float = 0.0
    refit_s: float = 0.0


@contextmanager
def dask_client(scheduler: str | None):
    """A distributed Client on ``scheduler`` (the default for dask.compute meanwhile), or nothing (local)."""
    if not scheduler:
        yield None
        return
    from dask.distributed import Client

    client = Client(scheduler, timeout=30)
    try:
        yield client
    finally:
        client.close()


#: every reference star this close to a source goes to the refit, not only its nearest: the core
#: weighs a calibrator's neighbours in the survey (crowding: light within the survey's resolution, up
#: to 8" for APASS) as well as its match, and a live upload's cone brings them all. Within the local
#: catalogue's margin (layout.MARGIN_ARCSEC), so that a partition's edge loses none of them.
NEIGHBOURHOOD_ARCSEC = layout.MARGIN_ARCSEC
#: at most this many reference stars per source within that radius (lsdb's k nearest)
NEIGHBOURS = 16


def crossmatch(
    uploads: list[StoredUpload], catalogue: str, columns: Columns, radius_arcsec: float
) -> dict[int, dict[str, np.ndarray]]:
    """The reference stars within ``radius_arcsec`` of every source (the NEIGHBOURS nearest), per upload index.

    Returns {upload index: those reference rows as columns (ra, dec, mag and error
    columns under the catalogue's names, float64)}, each reference star once.
    """
    import lsdb

    upload_index, rows, ras, decs = [], [], [], []
    for i, up in enumerate(uploads):
        ra = np.asarray(up.sources.ra, dtype=np.float64)
        dec = np.asarray(up.sources.dec, dtype=np.float64)
        ok = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90))
        upload_index.append(np.full(len(ok), i, dtype=np.int32))
        rows.append(ok.astype(np.int32))
        ras.append(np.mod(ra[ok], 360.0))
        decs.append(dec[ok])
    sources = pd.DataFrame(
        {
            _UPLOAD: np.concatenate(upload_index),
            _ROW: np.concatenate(rows),
            _RA: np.concatenate(ras),
            _DEC: np.concatenate(decs),
        }
    )
    if sources.empty:
        return {}
    left = lsdb.from_dataframe(
        sources,
        ra_column=_RA,
        dec_column=_DEC,
        margin_threshold=None,
        should_generate_moc=False,
        partition_rows=200_000,
    )
    right = lsdb.read_hats(catalogue)
    wanted = [columns.ra, columns.dec, *columns.value_columns]
    present = [c for c in dict.fromkeys(wanted) if c in right.columns]
    margin = _margin_of(catalogue, radius_arcsec)
    right = lsdb.read_hats(catalogue, columns=present, margin_cache=margin)
    assert isinstance(right, lsdb.Catalog)  # the store attaches object/source catalogues only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no margin cache" for an attached catalogue: see the module docstring
        matched = left.crossmatch(
            right,
            n_neighbors=NEIGHBOURS,
            radius_arcsec=float(radius_arcsec),
            suffixes=("", ""),
            suffix_method="overlapping_columns",
        )
        table = matched.compute(progress_bar=False)
    frame = pd.DataFrame(table)
    if frame.empty:
        return {}
    upload = frame[_UPLOAD].to_numpy(dtype=np.int64)
    arrays = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) for c in present}
    # one reference star once per upload (two sources can share their nearest star); numpy, not a pandas
    # groupby: the per-upload frames cost ~10x the cross-match itself
    first = np.flatnonzero(~frame.duplicated(subset=[_UPLOAD, columns.ra, columns.dec]).to_numpy())
    upload = upload[first]
    order = np.argsort(upload, kind="stable")
    upload = upload[order]
    arrays = {c: a[first][order] for c, a in arrays.items()}
    bounds = np.flatnonzero(np.diff(upload)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(upload)]])
    return {int(upload[a]): {c: v[a:b] for c, v in arrays.items()} for a, b in zip(starts, stops)}


def _margin_of(catalogue: str, radius_arcsec: float) -> str | None:
    """The margin catalogue written with a local version (loader.py), if it covers the radius."""
    margin = Path(catalogue) / layout.MARGIN_NAME
    if radius_arcsec <= layout.MARGIN_ARCSEC and (margin / "hats.properties").is_file():
        return str(margin)
    return None


def _stars(survey: str, refs: dict[str, np.ndarray] | None, columns: Columns) -> SurveyStars:
    n = 0 if refs is None else len(refs[columns.ra])

    def col(name: str) -> np.ndarray:
        if refs is None or name not in refs:
            return np.full(n, np.nan)
        return refs[name]

    return SurveyStars(
        survey=survey,
        ra=col(columns.ra),
        dec=col(columns.dec),
        mags={band: col(m) for band, (m, _) in columns.bands.items()},
        errs={band: col(e) for band, (_, e) in columns.bands.items()},
    )


def forced_within(force_filter: str | None, survey: str) -> ForcedBand | None:
    """The observer's forceFilter restricted to ``survey``: it holds within that survey, not across.

    None when it names another survey (or none); BadInput for a text no longer valid.
    """
    forced = parse_force_filter(force_filter)
    if forced is None or survey.lower() not in (s.lower() for s in forced.surveys):
        return None
    bands = [(s, b) for s, b in forced.bands if s.lower() == survey.lower()]
    return replace(forced, bands=bands)


def refit_force(
    own: str | None, survey: str, forced: str | None = None, observatory_filters: list[str] | None = None
) -> ForcedBand | None:
    """The band constraint of a refit against ``survey`` alone (see the module docstring).

    ``forced``: the job's band or band group (it must be within ``survey``); else the upload's own
    forceFilter ``own`` restricted to ``survey``; else None (the automatic choice among the survey's
    bands, constrained by ``observatory_filters`` as the live upload's was) when those filters allow
    one of its bands or do not constrain; else ``S/any``, what the core's refusal would advise
    ("send forceFilter=S/any"): recalibrating against S asks for S's bands.
    """
    if forced:
        band = parse_force_filter(forced)
        if band is not None and any(s.lower() != survey.lower() for s in band.surveys):
            raise BadInput(
                f"--force-filter {band.text} is not a band of {survey}: the refit reads {survey}'s catalogue only",
                code=ErrorCode.BAD_FORCE_FILTER,
            )
        return band
    within = forced_within(own, survey)
    if within is not None:
        return within
    constraint = filter_constraint(observatory_filters)
    if constraint is None or any(s.lower() == survey.lower() for s, _ in [*constraint.bands, *constraint.near]):
        return None
    return parse_force_filter(f"{survey}/any")


def refit(
    up: StoredUpload,
    survey: str,
    stars: SurveyStars,
    forced: str | None = None,
    catalogue_version: str | None = None,
) -> Refit:
    """Fit one upload against ``survey``'s matched stars (the calibration core, as for a live upload)."""
    from services.calibrate.answer import calibration_answer
    from services.calibrate.core.api import calibrate_frame
    from services.calibrate.core.settings import FitSettings

    def failed(exc: PhotcalError) -> Refit:
        return Refit(
            up.upload_id, survey, False, len(stars), error=exc.code, message=exc.message, followup_id=up.followup_id
        )

    try:
        force = refit_force(up.force_filter, survey, forced, up.observatory_filters)
    except PhotcalError as exc:
        return failed(exc)
    try:
        cal = calibrate_frame(
            up.sources,
            {survey: stars},
            up.alert_ra,
            up.alert_dec,
            up.match_dist_arcsec,
            force,
            observatory_filters=up.observatory_filters or None,
        )
    except PhotcalError as exc:
        return failed(exc)
    answer = calibration_answer(cal, up.match_dist_arcsec, upload_id=up.upload_id, ivorn=up.ivorn, mjd=up.mjd)
    answer.provenance = calibration_provenance(
        input_sha256=up.input_sha256,
        covered=[survey],
        versions={survey: catalogue_version} if catalogue_version else {},
        fit_settings=FitSettings(),
        match_radius_arcsec=up.match_dist_arcsec,
        force_filter=force.text if force is not None else None,
        forced_bands=force.bands if force is not None else (),
        observatory_filters=up.observatory_filters,
    )
    result = answer.model_dump(mode="json", exclude={"duration_ms"})
    return Refit(up.upload_id, survey, ok=True, nref=len(stars), result=result, followup_id=up.followup_id)


#: uploads fitted by one Dask task
TASK_UPLOADS = 50


def _refit_many(
    work: list[tuple[StoredUpload, SurveyStars]], survey: str, forced: str | None, catalogue_version: str | None
) -> list[Refit]:
    return [refit(up, survey, stars, forced, catalogue_version) for up, stars in work]


def recalibrate(
    uploads: list[StoredUpload],
    survey: str,
    catalogue: str,
    columns: Columns,
    scheduler: str | None = None,
    *,
    forced: str | None = None,
    catalogue_version: str | None = None,
    times: BatchTimes | None = None,
) -> list[Refit]:
    """Cross-match every upload with ``catalogue`` and fit each again; one Refit per upload, in order.

    ``forced``: the job's band or band group (:func:`refit_force`); ``times``, if given, gets the
    cross-match and refit wall times added.
    """
    import dask

    name = get_survey(survey).name
    if not uploads:
        return []
    match = max(up.match_dist_arcsec for up in uploads if math.isfinite(up.match_dist_arcsec))
    radius = max(match, NEIGHBOURHOOD_ARCSEC)
    with dask_client(scheduler):
        started = time.perf_counter()
        matched = crossmatch(uploads, catalogue, columns, radius)
        crossed = time.perf_counter()
        work = [(up, _stars(name, matched.get(i), columns)) for i, up in enumerate(uploads)]
        # a task fits TASK_UPLOADS uploads: one task per upload spent more in the scheduler and in
        # pickling than in the fits on a 2-worker cluster
        tasks = [
            dask.delayed(_refit_many)(work[start : start + TASK_UPLOADS], name, forced, catalogue_version)
            for start in range(0, len(work), TASK_UPLOADS)
        ]
        refits = [r for chunk in dask.compute(*tasks) for r in chunk]
        if times is not None:
            times.crossmatch_s += crossed - started
            times.refit_s += time.perf_counter() - crossed
        return refits
