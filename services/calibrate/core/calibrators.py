"""Which matched stars may calibrate a frame.

Quality cuts on the observer's side (:func:`source_quality`), on the
reference side (:func:`reference_quality`) and, after a first fit, at the
bright end where the instrumental magnitudes stop being linear
(:func:`bright_end_cut`).

Crowded frames (:mod:`crowding`). A frame is crowded when more than
``FitSettings.crowded_fraction`` (15 %) of its good sources measured to
``crowded_max_inst_err`` (0.02 mag) are not isolated: SExtractor flagged
them blended (FLAGS 1|2, ``blend_flags``), or frame sources and Gaia stars
within ``isolation_frame_arcsec`` (3") add more than ``isolation_max_blend``
(5 %) to their light, or when more than ``crowded_gaia_per_arcmin2`` (10)
Gaia stars per square arcmin lie in it (the sky is crowded even where few
sources are flagged). The legacy and sparse fields of the bench have at
most 12 % blends and 1.75 Gaia stars per arcmin2; the dense Galactic-plane
ones 3-96 %, mostly over 20 %, and 17-64 Gaia stars per arcmin2. In a
crowded frame the chosen band's final fit (``choice.BandCandidate.isolated``)
keeps only calibrators that are

* isolated in the frame (as above),
* isolated in the reference survey: the Gaia stars within the survey's
  ``resolution_arcsec`` (APASS 8", PS1 1.2", GaiaSP 1.75",
  :mod:`shared.contracts.surveys`) other than the star's own counterpart, and the
  survey's own other stars there, add at most ``isolation_max_blend`` to its
  light (a survey publishes what it cannot resolve as one star with the
  summed flux; Gaia G resolves 0.4"),
* measured to ``crowded_max_inst_err`` or better: under a faint star in a
  crowded frame SExtractor's background includes the unresolved stars, so
  MAG_AUTO comes out too faint (dev set: +0.01 mag at an error of 0.01, +0.07
  at 0.05-0.1, +0.2 beyond),

when at least ``isolation_min_stars`` (20) such calibrators remain; else
every calibrator, as in a sparse frame. A frame that is not crowded is
calibrated exactly as without these cuts (the 36 legacy fields' figures
are identical).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from services.calibrate.core.inputs import SourceColumns
from services.calibrate.core.settings import FitSettings
from shared.jit import JIT, kernel_array

#: SExtractor writes 99 (or -99) for a magnitude it could not measure
BAD_MAG_ABS = 90.0


def usable_mags(mag: np.ndarray) -> np.ndarray:
    """Bool per source: a finite magnitude that is not the 99 sentinel."""
    mag = np.asarray(mag, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(mag) & (np.abs(mag) < BAD_MAG_ABS)


def source_quality(sources: SourceColumns, settings: FitSettings) -> np.ndarray:
    """Bool per source: usable as a calibrator on the observer's side.

    Requires a finite position, a usable magnitude (not NaN / 99), a finite
    error in ``[0, settings.max_inst_err]`` mag, and none of the FLAGS bits
    in ``settings.reject_flags`` (saturated, truncated, corrupted, ...).
    """
    mag_err = np.asarray(sources.mag_err, dtype=float)
    flags = np.asarray(sources.flags).astype(np.int64, copy=False)
    with np.errstate(invalid="ignore"):
        return (
            usable_mags(sources.mag)
            & np.isfinite(sources.ra)
            & np.isfinite(sources.dec)
            & np.isfinite(mag_err)
            & (mag_err >= 0.0)
            & (mag_err <= settings.max_inst_err)
            & ((flags & settings.reject_flags) == 0)
        )


def reference_quality(
    mag: np.ndarray,
    err: np.ndarray,
    colour: np.ndarray,
    mag_bright: float,
    mag_faint: float,
    settings: FitSettings,
) -> np.ndarray:
    """Bool per reference star: usable in this band.

    Parameters
    ----------
    mag, err : numpy.ndarray
        The band's catalogue magnitude and error, mag.
    colour : numpy.ndarray
        The star's colour for this band, mag (NaN if a band is missing).
    mag_bright, mag_faint : float
        The survey's trusted magnitude range, mag (inclusive).
    settings : FitSettings
        ``max_ref_err`` (mag) is used.

    Returns
    -------
    numpy.ndarray of bool
        Finite magnitude within ``[mag_bright, mag_faint]``, finite error in
        ``[0, max_ref_err]``, finite colour.
    """
    return _stars_usable(
        kernel_array(mag),
        kernel_array(err),
        kernel_array(colour),
        float(mag_bright),
        float(mag_faint),
        float(settings.max_ref_err),
    )


@njit(**JIT)
def _stars_usable(mag, err, colour, mag_bright, mag_faint, max_err):  # pragma: no cover - compiled
    ok = np.empty(mag.shape[0], dtype=np.bool_)
    for i in range(mag.shape[0]):
        ok[i] = star_usable(mag[i], err[i], colour[i], mag_bright, mag_faint, max_err)
    return ok


@njit(**JIT)
def star_usable(mag, err, colour, mag_bright, mag_faint, max_err):  # pragma: no cover - compiled
    """:func:`reference_quality` of one star (NaN fails every comparison)."""
    return mag_bright <= mag <= mag_faint and 0.0 <= err <= max_err and math.isfinite(colour)


@njit(**JIT)
def _window_median(a, start, w, scratch):  # pragma: no cover - compiled
    """Median of ``a[start:start + w]`` (a few values: insertion sort into ``scratch``)."""
    for i in range(w):
        v = a[start + i]
        j = i
        while j > 0 and scratch[j - 1] > v:
            scratch[j] = scratch[j - 1]
            j -= 1
        scratch[j] = v
    half = w // 2
    return scratch[half] if w % 2 else 0.5 * (scratch[half - 1] + scratch[half])


@njit(**JIT)
def _bright_end_cut(inst_mag, residual, sigma, w, max_cut, trend_sigma, trend_min):  # pragma: no cover - compiled
    """:func:`bright_end_cut` (``n >= 2 w``, ``max_cut >= 1``)."""
    n = inst_mag.shape[0]
    cut = np.zeros(n, dtype=np.bool_)
    head = np.argsort(inst_mag, kind="mergesort")[: max_cut + w]  # brightest first
    r = residual[head]
    sig = sigma[head]
    n_windows = head.shape[0] - w + 1
    # median residual of each window of w consecutive stars, and its threshold
    thr = np.empty(n_windows)
    bent = np.empty(n_windows, dtype=np.bool_)
    scratch = np.empty(w)
    for k in range(n_windows):
        thr[k] = max(trend_sigma * 1.2533 * _window_median(sig, k, w, scratch) / math.sqrt(w), trend_min)
        bent[k] = _window_median(r, k, w, scratch) < -thr[k]
    if not bent[0]:
        return cut
    # first window (from the bright end) that is not bent; stars before it go
    k = max_cut
    for j in range(n_windows):
        if not bent[j]:
            k = j
            break
    # the first straight window may still begin with a few bent stars
    limit = -thr[min(k, n_windows - 1)]
    j = 0
    while j < w and k + j < r.shape[0] and r[k + j] < limit:
        j += 1
    k = min(k + j, max_cut)
    cut[head[:k]] = True
    return cut


def bright_end_cut(
    inst_mag: np.ndarray,
    residual: np.ndarray,
    sigma: np.ndarray | float,
    settings: FitSettings,
) -> np.ndarray:
    """Stars at the bright end whose residuals trend away: saturation / non-linearity.

    Saturated or non-linear stars lose flux at their peak, so their
    instrumental magnitude is too faint and their residual
    ``m_ref - model`` negative, increasingly so towards the bright end.
    Stars are sorted by instrumental magnitude; a window of
    ``settings.bright_window`` consecutive stars is "bent" when its median
    residual is below ``-max(bright_trend_sigma * 1.2533 * scatter /
    sqrt(window), bright_trend_min)`` (1.2533 sigma/sqrt(n) is the standard
    error of a median). Every star brighter than the first window from the
    bright end that is not bent is cut, and so are the stars at the start of
    that window that are individually below the threshold, never more than
    ``settings.bright_max_fraction`` of the stars.

    Parameters
    ----------
    inst_mag : numpy.ndarray
        Instrumental magnitudes of the calibrators, mag.
    residual : numpy.ndarray
        Their residuals from a first robust fit, mag.
    sigma : numpy.ndarray or float
        Each star's total error in that fit (``FitResult.sigma``), mag.
    settings : FitSettings

    Returns
    -------
    numpy.ndarray of bool
        True for the stars to drop.
    """
    n = len(inst_mag)
    w = settings.bright_window
    max_cut = int(settings.bright_max_fraction * n)
    if n < 2 * w or max_cut < 1:
        return np.zeros(n, dtype=bool)
    return _bright_end_cut(
        kernel_array(inst_mag, dtype=float),
        kernel_array(residual, dtype=float),
        kernel_array(np.broadcast_to(np.asarray(sigma, dtype=float), (n,))),
        w,
        max_cut,
        float(settings.bright_trend_sigma),
        float(settings.bright_trend_min),
    )
