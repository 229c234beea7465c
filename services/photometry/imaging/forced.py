"""Forced photometry at the alert's position: the frame's aperture where the transient should be.

Detected or not, the flux in the aperture at that position is measured with
its local background; above ``snr_limit`` it is a magnitude, below it the
answer is the limit at that very position, from the local noise alone:

    m_lim = -2.5 log10(n * sigma_aperture)

with ``sigma_aperture`` the 1-sigma noise of the background over the
aperture (ADU) and ``n = snr_limit``; calibrated with the same zero point as
every aperture magnitude of the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.photometry.imaging.aperture import Aperture, measure

#: signal-to-noise below which the forced measurement is a limit, not a magnitude
SNR_LIMIT = 5.0


@dataclass(frozen=True)
class ForcedMeasurement:
    """The aperture at the alert: position (px, 0-based), flux and error (ADU), S/N, and what it gives.

    ``inst_mag``/``inst_mag_err`` (mag) when ``snr >= snr_limit``, else None;
    ``inst_limit`` (mag) always: ``-2.5 log10(snr_limit * sigma_aperture)``;
    ``sigma_aperture`` the background-only noise in the aperture (ADU);
    ``inside``: the aperture lies wholly on the frame.
    """

    x: float
    y: float
    flux: float
    flux_err: float
    snr: float
    snr_limit: float
    sigma_aperture: float
    inst_mag: float | None
    inst_mag_err: float | None
    inst_limit: float | None
    inside: bool

    @property
    def detected(self) -> bool:
        return self.inst_mag is not None


def background_noise(rms: np.ndarray, x: float, y: float, aperture: Aperture) -> float:
    """1-sigma background noise over the aperture at (x, y) (ADU): the local rms, and the annulus mean's error."""
    height, width = rms.shape
    xi = min(max(int(round(x)), 0), width - 1)
    yi = min(max(int(round(y)), 0), height - 1)
    local = float(rms[yi, xi])
    return local * math.sqrt(aperture.area * (1.0 + aperture.area / aperture.annulus_area))


def forced_photometry(
    data_sub: np.ndarray,
    rms: np.ndarray,
    x: float,
    y: float,
    aperture: Aperture,
    gain: float | None,
    snr_limit: float = SNR_LIMIT,
    not_sky: np.ndarray | None = None,
) -> ForcedMeasurement:
    """Measure the aperture at (x, y) (px, 0-based) of ``data_sub`` (sky-subtracted ADU; ``rms`` ADU per pixel)."""
    height, width = data_sub.shape
    r = aperture.radius
    inside = bool(r - 0.5 <= x <= width - 0.5 - r and r - 0.5 <= y <= height - 0.5 - r)
    fluxes = measure(data_sub, np.array([x]), np.array([y]), aperture, rms, gain, not_sky)
    flux, flux_err = float(fluxes.flux[0]), float(fluxes.flux_err[0])
    sigma = background_noise(rms, x, y, aperture)
    noise = max(flux_err, sigma) if math.isfinite(flux_err) else sigma
    snr = flux / noise if noise > 0 else 0.0
    limit = -2.5 * math.log10(snr_limit * sigma) if sigma > 0 else None
    detected = inside and snr >= snr_limit and flux > 0
    return ForcedMeasurement(
        x=x,
        y=y,
        flux=flux,
        flux_err=noise,
        snr=snr,
        snr_limit=snr_limit,
        sigma_aperture=sigma,
        inst_mag=-2.5 * math.log10(flux) if detected else None,
        inst_mag_err=2.5 / math.log(10.0) * noise / flux if detected else None,
        inst_limit=limit if inside else None,
        inside=inside,
    )
