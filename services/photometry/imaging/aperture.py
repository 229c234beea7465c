"""The same circular aperture for every source: fluxes, their errors, and a local background annulus.

One radius for the whole frame (tied to its FWHM), so the fraction of a
star's light inside it is the same for every star: the zero point fitted on
the calibrators then holds for any source measured in it, the forced target
included (the aperture correction is part of the zero point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sep

#: aperture radius in FWHM; the smallest radius (px) whatever the seeing
RADIUS_FWHM = 1.25
MIN_RADIUS_PX = 2.0
#: local background annulus, inner and outer radius in FWHM (beyond the star's wings)
ANNULUS_FWHM = (3.0, 5.0)
#: magnitude error at S/N 1: 2.5 / ln 10
MAGERR_AT_SNR1 = 2.5 / math.log(10.0)


@dataclass(frozen=True)
class Aperture:
    """Radius and annulus radii, px."""

    radius: float
    annulus_in: float
    annulus_out: float

    @property
    def area(self) -> float:
        """Pixels in the aperture."""
        return math.pi * self.radius**2

    @property
    def annulus_area(self) -> float:
        return math.pi * (self.annulus_out**2 - self.annulus_in**2)


def aperture_for(fwhm_px: float) -> Aperture:
    """The frame's aperture: :data:`RADIUS_FWHM` times its FWHM (px), at least :data:`MIN_RADIUS_PX`."""
    radius = max(MIN_RADIUS_PX, RADIUS_FWHM * fwhm_px)
    inner, outer = (max(radius + 2.0, k * fwhm_px) for k in ANNULUS_FWHM)
    return Aperture(radius=radius, annulus_in=inner, annulus_out=max(outer, inner + 3.0))


@dataclass(frozen=True)
class ApertureFluxes:
    """Per position: flux (ADU, local background removed), its 1-sigma error (ADU), sep's aperture flags."""

    flux: np.ndarray
    flux_err: np.ndarray
    flags: np.ndarray

    def magnitudes(self) -> tuple[np.ndarray, np.ndarray]:
        """Instrumental ``-2.5 log10(flux)`` and its error (mag); NaN where the flux is not positive."""
        positive = self.flux > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mag = np.where(positive, -2.5 * np.log10(np.where(positive, self.flux, 1.0)), np.nan)
            err = np.where(positive, MAGERR_AT_SNR1 * self.flux_err / np.where(positive, self.flux, 1.0), np.nan)
        return mag, err


def measure(
    data_sub: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    aperture: Aperture,
    rms: np.ndarray,
    gain: float | None,
    not_sky: np.ndarray | None = None,
) -> ApertureFluxes:
    """Aperture fluxes at (x, y) (px, 0-based) of ``data_sub`` (sky-subtracted, ADU).

    The annulus's mean is subtracted from each (what the global sky left);
    the error is the background noise ``rms`` (ADU per pixel) over the
    aperture, the annulus mean's uncertainty, and the source's Poisson noise
    through ``gain`` (e-/ADU; no Poisson term when unknown).
    ``not_sky`` (bool, the frame's shape): pixels of objects, left out of the
    annulus mean, so that a neighbour's light there is not taken for sky (it
    made targets with a neighbour 0.1-0.5 mag too faint, bench/README.md
    images); an annulus wholly on objects keeps its plain mean.
    """
    x = np.ascontiguousarray(x, dtype=float)
    y = np.ascontiguousarray(y, dtype=float)
    if not_sky is not None:
        return _measure_masked_sky(data_sub, x, y, aperture, rms, gain, not_sky)
    flux, err, flags = sep.sum_circle(
        data_sub,
        x,
        y,
        aperture.radius,
        err=rms,
        gain=gain,
        bkgann=(aperture.annulus_in, aperture.annulus_out),
        subpix=5,
    )
    return ApertureFluxes(flux=np.asarray(flux, float), flux_err=np.asarray(err, float), flags=np.asarray(flags))


def _measure_masked_sky(
    data_sub: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    aperture: Aperture,
    rms: np.ndarray,
    gain: float | None,
    not_sky: np.ndarray,
) -> ApertureFluxes:
    """:func:`measure` with the annulus's object pixels left out of its mean."""
    raw, err, flags = sep.sum_circle(data_sub, x, y, aperture.radius, err=rms, gain=gain, subpix=5)
    rin, rout = aperture.annulus_in, aperture.annulus_out
    # sep scales a masked annulus's sum to the whole annulus: sum / area is the mean of its sky pixels
    sky_sum, _, sky_flags = sep.sum_circann(data_sub, x, y, rin, rout, mask=not_sky, subpix=1)
    plain_sum, _, _ = sep.sum_circann(data_sub, x, y, rin, rout, subpix=1)
    all_masked = (np.asarray(sky_flags) & sep.APER_ALLMASKED) != 0
    sky_mean = np.where(all_masked, plain_sum, sky_sum) / aperture.annulus_area
    flux = np.asarray(raw, float) - sky_mean * aperture.area
    height, width = rms.shape
    xi = np.clip(np.rint(x).astype(np.int64), 0, width - 1)
    yi = np.clip(np.rint(y).astype(np.int64), 0, height - 1)
    # the annulus mean's error, as sep adds it with bkgann
    mean_err = rms[yi, xi].astype(float) * aperture.area / np.sqrt(aperture.annulus_area)
    flux_err = np.hypot(np.asarray(err, float), mean_err)
    return ApertureFluxes(
        flux=flux,
        flux_err=flux_err,
        flags=np.asarray(flags) | (np.asarray(sky_flags) & ~sep.APER_HASMASKED & ~sep.APER_ALLMASKED),
    )
