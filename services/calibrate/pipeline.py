"""One upload, start to end: sources -> cone -> fit -> plot -> store -> result.

The science is in :mod:`services.calibrate.core` and knows nothing of NATS
or MongoDB; this module does the I/O around it.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
import uuid
from collections.abc import Coroutine
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nats.js import JetStreamContext
from prometheus_client import Histogram

from services.calibrate.answer import calibration_answer, candidate_fit
from services.calibrate.cone import ConeClient, field_of
from services.calibrate.core.api import FrameCalibration, calibrate_frame
from services.calibrate.core.inputs import ForcedAperture, NearbyDetection
from services.calibrate.core.results import CalibrationRefused
from services.calibrate.core.settings import FitSettings
from services.calibrate.plot import plot_heading, render_failure_plot, render_plot
from services.calibrate.settings import CalibrateSettings
from shared.arrays import SourceTable
from shared.bands import ForcedBand, parse_force_filter
from shared.contracts.messages import CalibrationResult, Provenance, UploadRequested, utcnow
from shared.contracts.subjects import OBJECT_BUCKET_PLOTS, OBJECT_BUCKET_UPLOADS
from shared.db import Database
from shared.db.alerts import bump_data_version
from shared.db.calibrations import plot_columns, store_calibration
from shared.db.datapoints import detections_near, store_datapoint
from shared.db.upload_sources import store_sources
from shared.errors import PhotcalError
from shared.natsio import ensure_object_store
from shared.provenance import calibration_provenance

STAGE_DURATION = Histogram(
    "photcal_calibration_stage_duration_seconds",
    "Time spent in each stage of a calibration",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


@dataclass
class Stages:
    durations: dict[str, float]
    #: the upload's parsed sources, kept for `_store` (photcal recalibrate re-fits them later)
    sources: SourceTable | None = None
    #: the surveys the cone served and the catalogue version of each, for the provenance
    covered: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @contextmanager
    def time(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.durations[stage] = round(elapsed * 1000, 2)
            STAGE_DURATION.labels(stage).observe(elapsed)

    def record(self, durations_ms: dict[str, float]) -> None:
        """Stages timed elsewhere (inside the calibration core)."""
        for stage, ms in durations_ms.items():
            self.durations[stage] = round(ms, 2)
            STAGE_DURATION.labels(stage).observe(ms / 1000)


class Pipeline:
    def __init__(self, settings: CalibrateSettings, js: JetStreamContext, db: Database, cones: ConeClient) -> None:
        self.settings, self.js, self.db, self.cones = settings, js, db, cones

    async def run(self, upload: UploadRequested) -> CalibrationResult:
        """Calibrate; a user-caused failure becomes an error result, a backend fault raises."""
        stages = Stages({})
        try:
            cal = await self._calibrate(upload, stages)
        except PhotcalError as exc:
            if exc.retryable or getattr(exc, "failure", None):  # the worker decides (worker.decide)
                raise
            return await self._failed(upload, exc, stages)
        result = _ok_result(upload, cal, stages)
        result.provenance = _provenance(upload, stages)
        if not upload.no_plot:
            with stages.time("plot"):
                result.image_link = await self._store_plot(upload, cal)
            if upload.forced_target is not None and upload.forced_target.cutout_object:
                # drawn by the photometry service, which had the pixels; served beside the plot
                result.cutout_link = f"{self.settings.base_url}/plots/{upload.forced_target.cutout_object}"
        if not upload.dry_run:
            try:
                with stages.time("write"):
                    await self._store(upload, cal, result, stages.sources)
            except PhotcalError as exc:
                if exc.retryable:
                    raise
                return _error_result(upload, exc, stages)
        result.duration_ms = stages.durations
        return result

    async def refit(self, upload: UploadRequested, versions: dict[str, str] | None = None) -> CalibrationResult:
        """A stored upload calibrated again (services/calibrate/recalibrate.py): the same cone, fit and answer,
        provenance included, as a live upload; nothing stored, no plot. ``versions``: survey -> the
        catalogue version to read instead of the live one. A failure raises (PhotcalError: the caller decides)."""
        stages = Stages({})
        cal = await self._calibrate(upload, stages, versions)
        result = _ok_result(upload, cal, stages)
        result.provenance = _provenance(upload, stages)
        result.duration_ms = stages.durations
        return result

    async def _failed(self, upload: UploadRequested, exc: PhotcalError, stages: Stages) -> CalibrationResult:
        """A refusal's answer; refused after matching (the core hands over its best failing candidate), with
        the plot of that candidate, the reason in its title, stored as a success's plot is."""
        result = _error_result(upload, exc, stages)
        if isinstance(exc, CalibrationRefused):
            result.candidates = [candidate_fit(c) for c in exc.best.candidates]
            result.provenance = _provenance(upload, stages)
            if not upload.no_plot:
                with stages.time("plot"):
                    png = await asyncio.to_thread(
                        render_failure_plot, exc.best, exc.code, exc.message, _heading(upload)
                    )
                    result.image_link = await self._put_plot(upload.upload_id, png)
        result.duration_ms = stages.durations
        return result

    async def _calibrate(
        self, upload: UploadRequested, stages: Stages, versions: dict[str, str] | None = None
    ) -> FrameCalibration:
        with stages.time("fetch"):
            sources = stages.sources = await self._sources(upload)
        with stages.time("cone"):
            ra, dec, radius = field_of(sources, self.settings.max_field_radius_deg)
            reply = await self.cones.cone(ra, dec, radius, n_sources=len(sources), versions=versions)
        stages.covered, stages.versions = list(reply.covered), dict(reply.versions)
        force = _parse_force_filter(upload)
        forced_target = _forced_aperture(upload)
        nearby = await self._nearby_detections(upload)
        # a frame's own WCS is checked (wrong_wcs); one the server solved was checked by the solver
        check_wcs = upload.forced_target is not None and upload.forced_target.photometry.wcs == "header"
        with stages.time("calibrate"):
            cal = await asyncio.to_thread(
                calibrate_frame,
                sources,
                reply.stars,
                upload.alert_ra,
                upload.alert_dec,
                upload.match_dist_arcsec,
                force,
                observatory_filters=upload.observatory_filters,
                forced_target=forced_target,
                check_wcs=check_wcs,
                nearby=nearby,
            )
        stages.record(cal.durations_ms)  # its parts: match, fit, limit
        return cal

    async def _nearby_detections(self, upload: UploadRequested) -> list[NearbyDetection]:
        """The alert's other detections the same night: they may give the target's colour."""
        window = FitSettings().lightcurve_colour_window_days
        if not window > 0:
            return []
        points = await detections_near(self.db, upload.ivorn, upload.mjd, window, exclude_upload=upload.upload_id)
        return [
            NearbyDetection(
                survey=p.survey,
                band=p.filter,
                mag=float(p.mag),
                mag_err=float(p.mag_err) if p.mag_err is not None else math.nan,
                dt_days=p.mjd - upload.mjd,
                label=f"followup {p.followup_id} from {p.observatory}",
            )
            for p in points
            if p.survey and p.filter and p.mag is not None
        ]

    async def _sources(self, upload: UploadRequested) -> SourceTable:
        if upload.sources is not None:
            return upload.sources
        store = await ensure_object_store(self.js, OBJECT_BUCKET_UPLOADS, self.settings.nats_replicas)
        obj = await store.get(upload.upload_id)
        return SourceTable.model_validate_json(obj.data)

    async def _store_plot(self, upload: UploadRequested, cal: FrameCalibration) -> str:
        png = await asyncio.to_thread(functools.partial(render_plot, cal, heading=_heading(upload)))
        assert png is not None  # no path given: the bytes
        return await self._put_plot(upload.upload_id, png)

    async def _put_plot(self, upload_id: str, png: bytes) -> str:
        store = await ensure_object_store(self.js, OBJECT_BUCKET_PLOTS, self.settings.nats_replicas)
        await store.put(f"{upload_id}.png", png)
        return f"{self.settings.base_url}/plots/{upload_id}.png"

    async def _store(
        self,
        upload: UploadRequested,
        cal: FrameCalibration,
        result: CalibrationResult,
        sources: SourceTable | None = None,
    ) -> None:
        calibration_id = upload.upload_id

        async def datapoint_then_sources():
            stored = await store_datapoint(self.db, _datapoint_fields(upload, result, calibration_id), bump=False)
            # the light curve's cache sees the new point
            after: list[Coroutine[Any, Any, object]] = [bump_data_version(self.db, upload.ivorn)]
            if sources is not None:
                # the parsed sources of every stored upload, for `photcal recalibrate` (keyed by _id: always indexed)
                after.append(store_sources(self.db, _sources_record(upload, sources)))
            await asyncio.gather(*after)
            return stored

        # the calibration record and the datapoint together (all idempotent: a redelivery rewrites nothing)
        _, point = await asyncio.gather(
            store_calibration(self.db, _calibration_record(upload, cal, result)), datapoint_then_sources()
        )
        result.stored = True
        result.followup_id = point.followup_id
        result.calibration_id = calibration_id


def _datapoint_fields(upload: UploadRequested, result: CalibrationResult, calibration_id: str) -> dict:
    return {
        "upload_id": upload.upload_id,
        "ivorn": upload.ivorn,
        "alert_name": upload.alert_name,
        "observatory_id": upload.observatory_id,
        "observatory": upload.observatory_name,
        "mjd": upload.mjd,
        "exptime": upload.exptime,
        "survey": result.survey,
        "filter": result.filter,
        "mag": result.mag,
        "mag_err": result.mag_err,
        "limit_mag": result.limit_mag,
        "detected": bool(result.detected),
        "zeropoint": result.zeropoint,
        "zeropoint_err": result.zeropoint_err,
        "comment": upload.comment,
        "calibration_id": calibration_id,
    }


def _provenance(upload: UploadRequested, stages: Stages) -> Provenance:
    """What produced this calibration (shared/provenance.py); the worker's fit settings are the defaults."""
    forced = _parse_force_filter(upload)
    return calibration_provenance(
        input_sha256=upload.input_sha256,
        covered=stages.covered,
        versions=stages.versions,
        fit_settings=FitSettings(),
        match_radius_arcsec=upload.match_dist_arcsec,
        force_filter=upload.force_filter,
        forced_bands=forced.bands if forced is not None else (),
        observatory_filters=upload.observatory_filters,
    )


def _forced_aperture(upload: UploadRequested) -> ForcedAperture | None:
    """The target the photometry service measured on an uploaded frame, as the core takes it."""
    forced = upload.forced_target
    if forced is None:
        return None
    return ForcedAperture(
        inst_mag=forced.inst_mag,
        inst_mag_err=forced.inst_mag_err,
        inst_limit=forced.inst_limit,
        snr=forced.snr,
        snr_limit=forced.photometry.snr_limit,
    )


def _parse_force_filter(upload: UploadRequested) -> ForcedBand | None:
    """The gateway's parsed forceFilter; the text parsed the same way for messages from before it was carried."""
    if upload.forced_band is not None:
        return upload.forced_band
    return parse_force_filter(upload.force_filter)


def _base(upload: UploadRequested) -> dict:
    return {
        "upload_id": upload.upload_id,
        "ivorn": upload.ivorn,
        "alert_name": upload.alert_name,
        "observatory": upload.observatory_name,
        "mjd": upload.mjd,
        "exptime": upload.exptime,
        "comment": upload.comment,
        "dry_run": upload.dry_run,
        "n_sources": upload.n_sources,
    }


def _error_result(upload: UploadRequested, exc: PhotcalError, stages: Stages) -> CalibrationResult:
    return CalibrationResult(
        status="error",
        error=exc.code,
        message=exc.message,
        http_status=exc.http_status,
        duration_ms=stages.durations,
        # a refusal that names a stored point (a duplicate's): a client can fetch it instead of retrying
        followup_id=exc.details.get("followup_id"),
        **_base(upload),
    )


def _ok_result(upload: UploadRequested, cal: FrameCalibration, stages: Stages) -> CalibrationResult:
    result = calibration_answer(cal, upload.match_dist_arcsec, duration_ms=stages.durations, **_base(upload))
    if upload.image is not None:
        # what the frame adds to the answer: how the target was measured, what its header said
        result.photometry = upload.forced_target.photometry if upload.forced_target else None
        result.frame = upload.image.header
        result.from_header = dict(upload.image.header.from_header) or None
    return result


def _calibration_record(upload: UploadRequested, cal: FrameCalibration, result: CalibrationResult) -> dict:
    record = result.model_dump(mode="json", exclude={"duration_ms"})
    record["observatory_id"] = upload.observatory_id
    record["calibration_id"] = upload.upload_id
    record["match_dist_arcsec"] = upload.match_dist_arcsec
    record["force_filter"] = upload.force_filter
    # binary columns of the same numbers as plot_data_as_dict (shared/db/calibrations.py): a dense frame's
    # ~1,400 stars as lists were ~12,000 BSON elements, the costliest part of the write
    record["stars"] = plot_columns(cal.plot) if hasattr(cal, "plot") else None
    return record


def _sources_record(upload: UploadRequested, sources: SourceTable) -> dict:
    """What `photcal recalibrate` needs to fit the upload again (photcal_cli/batch/recalibrate.py)."""
    return {
        "upload_id": upload.upload_id,
        "ivorn": upload.ivorn,
        "alert_ra": upload.alert_ra,
        "alert_dec": upload.alert_dec,
        "match_dist_arcsec": upload.match_dist_arcsec,
        "force_filter": upload.force_filter,
        "mjd": upload.mjd,
        # what else the fit took (a recalibration fits the upload again as it was): the observatory's
        # filters, a frame's forced aperture at the alert, and the file's checksum for the provenance
        "observatory_filters": list(upload.observatory_filters),
        "forced_target": upload.forced_target.model_dump(mode="json") if upload.forced_target else None,
        "input_sha256": upload.input_sha256,
        "n_sources": len(sources),
        "sources": sources.model_dump(mode="json"),
        "stored_at": utcnow(),
    }


def new_upload_id() -> str:
    return uuid.uuid4().hex


def _heading(upload: UploadRequested) -> str:
    """The plot's first title line: the event's name, the observatory, the MJD."""
    return plot_heading(upload.alert_name or upload.ivorn.rsplit("#", 1)[-1], upload.observatory_name, upload.mjd)
