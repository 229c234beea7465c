"""The target in a fixed aperture: aperture photometry with an aperture correction for crowded frames.

SExtractor's ``MAG_AUTO`` integrates a Kron ellipse scaled to the source's
own light profile: in a crowded frame the ellipse of a star (and of a
transient on a crowded background) grows over its neighbours and takes
their light, so the target comes back too bright by 0.1-0.7 mag (the dense
development fields), far beyond its stated error. A small fixed aperture
(``MAG_APER``, diameter about twice the FWHM) takes much less of it, but
misses a fixed fraction of every star's light. The classical remedy of
crowded-field photometry (Stetson 1990, PASP 102, 932, "aperture
corrections") puts the aperture magnitude back on the catalogue
magnitude's scale with the median difference ``mag - mag_aper`` of
well-measured, isolated stars of the same frame, so the zero point fitted
on the catalogue magnitudes applies unchanged::

    m_target = MAG_APER_target + median(MAG_AUTO - MAG_APER)_isolated

The calibration itself (zero point, colour term, band) is not touched:
only which of the observer's own measurements of the target is used.

Pure functions: arrays in (magnitudes in mag), results out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.calibrate.core.inputs import SourceColumns
from services.calibrate.core.settings import FitSettings

#: 1.4826 MAD is the standard deviation of a normal distribution; the median of n values has
#: sqrt(pi / 2) times the mean's standard error
_MAD_TO_SIGMA = 1.482602218505602
_MEDIAN_EFFICIENCY = math.sqrt(math.pi / 2.0)


@dataclass(frozen=True)
class ApertureCorrection:
    """``median(mag - mag_aper)`` over ``n_stars`` isolated, well-measured stars and its standard error, mag."""

    correction: float
    error: float
    n_stars: int


def aperture_columns(sources: SourceColumns) -> tuple[np.ndarray, np.ndarray] | None:
    """The sources' first fixed-aperture magnitude and its error (mag), or None when the catalogue has none."""
    mag_aper = getattr(sources, "mag_aper", None)
    mag_aper_err = getattr(sources, "mag_aper_err", None)
    if mag_aper is None or mag_aper_err is None:
        return None
    return np.asarray(mag_aper, dtype=float), np.asarray(mag_aper_err, dtype=float)


def aperture_correction(
    mag: np.ndarray,
    mag_err: np.ndarray,
    mag_aper: np.ndarray,
    flags: np.ndarray,
    good: np.ndarray,
    neighbour_light: np.ndarray | None,
    settings: FitSettings,
) -> ApertureCorrection | None:
    """The frame's aperture correction from its isolated, well-measured stars; None with too few.

    A star counts when it passes the calibration's quality cuts (``good``),
    has no SExtractor blend flag (``settings.blend_flags``), no neighbour
    adding more than ``settings.isolation_max_blend`` of its light
    (``neighbour_light``, :func:`crowding.frame_blend`), an instrumental
    error of at most ``settings.crowded_max_inst_err`` and a usable aperture
    magnitude. Fewer than ``settings.isolation_min_stars`` such stars: None.
    """
    mag, mag_err, mag_aper = (np.asarray(a, dtype=float) for a in (mag, mag_err, mag_aper))
    with np.errstate(invalid="ignore"):
        use = (
            np.asarray(good, dtype=bool)
            & ((np.asarray(flags).astype(np.int64, copy=False) & settings.blend_flags) == 0)
            & (mag_err <= settings.crowded_max_inst_err)
            & np.isfinite(mag)
            & np.isfinite(mag_aper)
        )
        if neighbour_light is not None:
            use &= np.asarray(neighbour_light, dtype=float) <= settings.isolation_max_blend
    n = int(use.sum())
    if n < settings.isolation_min_stars:
        return None
    diff = mag[use] - mag_aper[use]
    median = float(np.median(diff))
    sigma = _MAD_TO_SIGMA * float(np.median(np.abs(diff - median)))
    return ApertureCorrection(correction=median, error=_MEDIAN_EFFICIENCY * sigma / math.sqrt(n), n_stars=n)


def wants_aperture(crowded: bool, target_flags: int, target_light: float, settings: FitSettings) -> bool:
    """Whether the target is measured in the aperture: in a crowded frame, or when it is blended itself
    (a SExtractor blend flag, or neighbours adding more than ``settings.isolation_max_blend`` of its light)."""
    return crowded or bool(target_flags & settings.blend_flags) or target_light > settings.isolation_max_blend
