"""One frame, start to end: object store -> pixels -> WCS (header or solved) -> photometry -> the upload for calibrate.

The science is :mod:`services.photometry.imaging` (pure); this module does the I/O around it
and turns its failures into the upload's answer (``BadInput`` with a stable code).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from astropy.wcs import WCS
from nats.js import JetStreamContext
from prometheus_client import Histogram

from services.photometry.fitsframe import header_wcs, pixel_scale_hint, read_frame, solve_radius_deg
from services.photometry.imaging.astrometry import FrameNotSolved, solve_frame
from services.photometry.imaging.cutout import render_cutout
from services.photometry.imaging.frame import FramePhotometry, NoStars, UnusableFrame, photometer_frame
from services.photometry.settings import PhotometrySettings
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import ForcedTarget, ImagePhotometry, UploadRequested
from shared.contracts.subjects import OBJECT_BUCKET_PLOTS, OBJECT_BUCKET_UPLOADS
from shared.errors import BadInput
from shared.logging import get_logger
from shared.natsio import ensure_object_store

FRAME_PIXELS = Histogram(
    "photcal_photometry_frame_pixels",
    "Pixels of the frames photometered",
    buckets=(2.5e5, 1e6, 4.2e6, 1.7e7, 3.4e7, 6.7e7, 1.5e8),
)
EXTRACTION_SECONDS = Histogram(
    "photcal_photometry_extraction_seconds",
    "Time to photometer a frame: background, detection, apertures, forced photometry",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16),
)
SOLVE_SECONDS = Histogram(
    "photcal_photometry_solve_seconds",
    "Time astrometry.net took on a frame without a WCS (solved or not)",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120),
)


log = get_logger(__name__)

#: the cut-out's image, px a side (the calibration plot beside it is 990 px wide)
CUTOUT_PX = 320


@dataclass
class Measured:
    """The upload as calibrate gets it, and how long each step took (ms)."""

    upload: UploadRequested
    durations_ms: dict[str, float] = field(default_factory=dict)


class FrameMeasurer:
    def __init__(self, settings: PhotometrySettings, js: JetStreamContext) -> None:
        self.settings, self.js = settings, js

    async def measure(self, upload: UploadRequested) -> Measured:
        """Photometer the upload's frame; ``BadInput`` for a frame the observer must fix, anything else raises."""
        image = upload.image
        if image is None:
            raise BadInput("the upload has no frame to photometer", code=ErrorCode.BAD_IMAGE)
        durations: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(step: str) -> float:
            nonlocal clock
            now = time.perf_counter()
            elapsed, clock = now - clock, now
            durations[step] = round(elapsed * 1000, 2)
            return elapsed

        store = await ensure_object_store(self.js, OBJECT_BUCKET_UPLOADS, self.settings.nats_replicas)
        raw = (await store.get(image.object_name)).data
        lap("fetch_frame")
        pixels, header = await asyncio.to_thread(read_frame, raw, image, self.settings.photometry_max_pixels)
        del raw  # the frame is in memory once, as pixels
        FRAME_PIXELS.observe(pixels.size)
        lap("read_frame")
        wcs = header_wcs(header)
        wcs_from: Literal["header", "solved"] = "header"
        if wcs is None:
            wcs_from = "solved"
            wcs = await self._solve(pixels, header, upload)
            SOLVE_SECONDS.observe(lap("solve"))
        try:
            phot = await asyncio.to_thread(
                photometer_frame,
                pixels,
                image.header,
                wcs,
                upload.alert_ra,
                upload.alert_dec,
                snr_limit=self.settings.snr_limit,
            )
        except NoStars as exc:
            raise BadInput(exc.reason, code=ErrorCode.NO_STARS) from exc
        except UnusableFrame as exc:
            raise BadInput(f"the frame cannot be photometered: {exc.reason}", code=ErrorCode.BAD_IMAGE) from exc
        EXTRACTION_SECONDS.observe(lap("photometry"))
        durations.update({f"photometry_{step}": ms for step, ms in phot.timings_ms.items()})
        target = forced_target(phot, wcs_from, pixels.shape, upload)
        if not upload.no_plot:  # made with the calibration plot, when the observer asks for plots
            target.cutout_object = await self._store_cutout(pixels, phot, upload)
            lap("cutout")
        measured = upload.model_copy(
            update={
                "forced_target": target,
                "sources": phot.sources,
                "n_sources": len(phot.sources),
                "sources_in_object_store": False,
            }
        )
        measured = await self._sources_aside_if_large(measured)
        lap("hand_over")
        return Measured(measured, durations)

    async def _store_cutout(self, pixels: np.ndarray, phot: FramePhotometry, upload: UploadRequested) -> str | None:
        """The PNG around the target, in the plots bucket as ``<upload_id>-cutout.png``; None if it cannot be drawn."""
        forced = phot.forced
        assert forced is not None  # forced_target refused the frame otherwise
        aperture = phot.aperture
        title = f"{upload.alert_name or upload.ivorn}  MJD {upload.mjd:.4f}  {upload.observatory_name}"

        def draw() -> bytes:
            # the frame's median is sky enough here: the cut-out's stretch is set on its own noise
            finite = pixels[np.isfinite(pixels)]
            sky = float(np.median(finite)) if finite.size else 0.0
            return render_cutout(
                pixels - sky,
                forced.x,
                forced.y,
                aperture.radius,
                (aperture.annulus_in, aperture.annulus_out),
                title,
                size_px=CUTOUT_PX,
            )

        try:
            png = await asyncio.to_thread(draw)
        except ValueError as exc:  # off the frame or a degenerate image: the answer goes without its cut-out
            log.warning("cutout_not_drawn", upload_id=upload.upload_id, error=str(exc))
            return None
        name = f"{upload.upload_id}-cutout.png"
        store = await ensure_object_store(self.js, OBJECT_BUCKET_PLOTS, self.settings.nats_replicas)
        await store.put(name, png)
        return name

    async def _solve(self, pixels: np.ndarray, header, upload: UploadRequested) -> WCS:
        """Plate-solve near the alert, in a thread, bounded in time; ``BadInput`` (image_not_solved) if it fails."""
        scale = pixel_scale_hint(header)
        height, width = pixels.shape
        # a short search radius around the alert: a wrong hint fails in seconds instead of at the timeout
        radius = solve_radius_deg(width, height, scale, self.settings.solve_radius_deg)
        try:
            return await asyncio.to_thread(
                solve_frame,
                pixels,
                ra_hint=upload.alert_ra,
                dec_hint=upload.alert_dec,
                radius_hint_deg=radius,
                pixel_scale_hint_arcsec=scale,
                timeout_s=self.settings.solve_timeout,
            )
        except FrameNotSolved as exc:
            raise BadInput(
                f"the frame has no celestial WCS and could not be plate-solved: {exc.reason}. Add a WCS to its "
                "header (solve it first, e.g. on nova.astrometry.net), or upload its SExtractor catalogue",
                code=ErrorCode.IMAGE_NOT_SOLVED,
            ) from exc

    async def _sources_aside_if_large(self, upload: UploadRequested) -> UploadRequested:
        """As the gateway does for a large catalogue: the table in the object store under the upload id."""
        if upload.sources is None or len(upload.model_dump_json()) <= self.settings.inline_table_bytes:
            return upload
        store = await ensure_object_store(self.js, OBJECT_BUCKET_UPLOADS, self.settings.nats_replicas)
        await store.put(upload.upload_id, upload.sources.model_dump_json().encode())
        return upload.model_copy(update={"sources": None, "sources_in_object_store": True})


def forced_target(
    phot: FramePhotometry, wcs_from: Literal["header", "solved"], shape: tuple[int, ...], upload: UploadRequested
) -> ForcedTarget:
    """The aperture at the alert as the upload carries it; ``BadInput`` when the alert is not on the frame."""
    forced = phot.forced
    height, width = shape[0], shape[1]
    if forced is None:
        raise BadInput(
            f"the event's position (RA {upload.alert_ra:.5f}, Dec {upload.alert_dec:+.5f}) is not on the frame "
            f"({width} x {height} px): check the event (EventID) or the frame",
            code=ErrorCode.TARGET_OUTSIDE_FRAME,
        )
    if not forced.inside or forced.inst_limit is None:
        raise BadInput(
            f"the event's position is at the frame's edge (pixel {forced.x + 1:.0f}, {forced.y + 1:.0f} of "
            f"{width} x {height}): the aperture ({phot.aperture.radius:.1f} px) is not wholly on the frame, "
            "so it cannot be measured; upload a frame with the event further inside",
            code=ErrorCode.TARGET_OUTSIDE_FRAME,
        )
    return ForcedTarget(
        inst_mag=forced.inst_mag,
        inst_mag_err=forced.inst_mag_err,
        inst_limit=forced.inst_limit,
        snr=round(forced.snr, 3),
        inside=forced.inside,
        photometry=ImagePhotometry(
            radius_px=round(phot.aperture.radius, 3),
            fwhm_px=round(phot.fwhm_px, 3),
            snr=round(forced.snr, 3),
            snr_limit=forced.snr_limit,
            n_detected=phot.n_detected,
            wcs=wcs_from,
            x=round(forced.x + 1.0, 3),  # FITS pixels are 1-based
            y=round(forced.y + 1.0, 3),
        ),
    )
