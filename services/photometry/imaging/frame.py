"""One frame, start to end: background, detection, FWHM, aperture photometry, forced photometry at the alert.

:func:`photometer_frame` returns the same source table an observer's
SExtractor catalogue gives (ra, dec from the frame's WCS, instrumental
magnitudes, FLAGS), every source measured in the *same* aperture, and the
forced measurement at the alert's position in that aperture: the zero point
fitted on the calibrators applies to it unchanged.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from astropy.wcs import WCS

from services.photometry.imaging.aperture import Aperture, aperture_for, measure
from services.photometry.imaging.background import measure_background
from services.photometry.imaging.extract import (
    DETECT_SIGMA,
    FLAG_TRUNCATED,
    STAR_MIN_SNR,
    count_stars,
    detect,
    frame_fwhm,
)
from services.photometry.imaging.forced import SNR_LIMIT, ForcedMeasurement, forced_photometry
from shared.arrays import SourceTable
from shared.frames import FrameHeader

#: sep aperture flags that make an aperture flux incomplete (SExtractor's FLAGS 16)
_APER_INCOMPLETE = 0x0010 | 0x0020 | 0x0040
FLAG_APERTURE_INCOMPLETE = 16


class UnusableFrame(ValueError):
    """The pixels cannot be photometered (all NaN, constant, no stars); ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoStars(UnusableFrame):
    """Objects were found, but none is surely a star (only noise peaks, hot pixels, cosmic rays)."""


@dataclass(frozen=True)
class FramePhotometry:
    """What :func:`photometer_frame` measured.

    ``sources``: one row per detection (ra, dec deg; mag, mag_err
    instrumental ``-2.5 log10(ADU)`` in ``aperture``; FLAGS); ``x``, ``y``
    their pixel positions (0-based); ``forced``: the aperture at the alert,
    None when the alert is off the frame; ``fwhm_px``: the frame's FWHM (px)
    from ``n_fwhm_stars`` stars; ``n_detected``: objects found;
    ``background_rms``: the typical sky noise (ADU); ``timings_ms`` per step.
    """

    sources: SourceTable
    x: np.ndarray
    y: np.ndarray
    forced: ForcedMeasurement | None
    fwhm_px: float
    n_fwhm_stars: int
    aperture: Aperture
    n_detected: int
    background_rms: float
    timings_ms: dict[str, float] = field(default_factory=dict)


def _clean(data: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Native-endian float32, NaN/inf replaced and masked; refuse a frame with nothing to measure."""
    pixels = np.ascontiguousarray(data, dtype=np.float32)
    bad = ~np.isfinite(pixels)
    n_bad = int(bad.sum())
    if n_bad == pixels.size:
        raise UnusableFrame("every pixel of the image is NaN or infinite")
    if n_bad:
        pixels = pixels.copy()
        pixels[bad] = float(np.median(pixels[~bad]))
    lo, hi = float(pixels.min()), float(pixels.max())
    if lo == hi:
        raise UnusableFrame(f"every pixel of the image is {lo:g}: the frame is blank")
    return pixels, (bad if n_bad else None)


def photometer_frame(
    data: np.ndarray,
    header_info: FrameHeader,
    wcs: WCS,
    target_ra: float,
    target_dec: float,
    *,
    snr_limit: float = SNR_LIMIT,
    threshold_sigma: float = DETECT_SIGMA,
) -> FramePhotometry:
    """Photometer a frame and force the aperture at (``target_ra``, ``target_dec``) deg.

    Parameters
    ----------
    data : numpy.ndarray
        The 2-D image, ADU (any float or int type; NaN pixels are masked).
    header_info : FrameHeader
        Its header: ``gain`` (e-/ADU) for the Poisson errors, ``saturate``
        (ADU) for FLAGS 4.
    wcs : astropy.wcs.WCS
        A celestial WCS of the frame.
    target_ra, target_dec : float
        The alert's position, deg.
    snr_limit : float
        Forced S/N below which the target is a limit.
    threshold_sigma : float
        Detection threshold, in sigma of the local sky noise.

    Raises
    ------
    UnusableFrame
        Every pixel NaN or equal, or no object found.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = round((now - clock) * 1000, 2)
        clock = now

    pixels, mask = _clean(data)
    sky = measure_background(pixels, mask=mask)
    data_sub = pixels - sky.level
    rms = np.where(sky.rms > 0, sky.rms, sky.global_rms).astype(np.float32)
    lap("background")
    found = detect(data_sub, pixels, rms, saturate=header_info.saturate, threshold_sigma=threshold_sigma)
    lap("extract")
    if count_stars(found, rms) == 0:
        raise NoStars(
            f"no star in the frame: of {len(found)} objects above {threshold_sigma:g} sigma of the sky none "
            f"is a star of S/N {STAR_MIN_SNR:g} (noise peaks, hot pixels, cosmic rays): is it a "
            "dark or flat, out of focus, clouded out, or was the shutter closed?"
        )
    fwhm, n_fwhm = frame_fwhm(data_sub, found, rms)
    lap("fwhm")
    aperture = aperture_for(fwhm)
    gain = header_info.gain
    fluxes = measure(data_sub, found.x, found.y, aperture, rms, gain, found.objects_mask)
    mag, mag_err = fluxes.magnitudes()
    flags = found.flags.copy()
    flags[(fluxes.flags & _APER_INCOMPLETE) != 0] |= FLAG_APERTURE_INCOMPLETE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra, dec = wcs.all_pix2world(found.x, found.y, 0)
    ra = np.mod(np.asarray(ra, dtype=float), 360.0)
    dec = np.asarray(dec, dtype=float)
    lap("aperture")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tx, ty = (float(v[0]) for v in wcs.all_world2pix([target_ra], [target_dec], 0))
    forced = None
    height, width = pixels.shape
    if math.isfinite(tx) and math.isfinite(ty) and 0 <= tx < width and 0 <= ty < height:
        forced = forced_photometry(data_sub, rms, tx, ty, aperture, gain, snr_limit, found.objects_mask)
    lap("forced")
    table = SourceTable.from_columns(ra=ra, dec=dec, mag=mag, mag_err=mag_err, flags=flags)
    return FramePhotometry(
        sources=table,
        x=found.x,
        y=found.y,
        forced=forced,
        fwhm_px=fwhm,
        n_fwhm_stars=n_fwhm,
        aperture=aperture,
        n_detected=len(found),
        background_rms=sky.global_rms,
        timings_ms=timings,
    )


__all__ = ["FLAG_TRUNCATED", "FramePhotometry", "NoStars", "UnusableFrame", "photometer_frame"]
