"""Which matched stars may calibrate a frame.

Quality cuts on the observer's side (:func:`source_quality`), on the
reference side (:func:`reference_quality`) and, after a first fit, at the
bright end where the instrumental magnitudes stop being linear
(:func:`bright_end_cut`).
"""

from __future__ import annotations

import numpy as np

from shared.arrays import SourceTable
from services.calibrate.core.settings import FitSettings

#: SExtractor writes 99 (or -99) for a magnitude it could not measure
BAD_MAG_ABS = 90.0


def usable_mags(mag: np.ndarray) -> np.ndarray:
    """Bool per source: a finite magnitude that is not the 99 sentinel."""
    mag = np.asarray(mag, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(mag) & (np.abs(mag) < BAD_MAG_ABS)


def source_quality(sources: SourceTable, settings: FitSettings) -> np.ndarray:
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
    with np.errstate(invalid="ignore"):
        return (
            np.isfinite(mag)
            & (mag >= mag_bright)
            & (mag <= mag_faint)
            & np.isfinite(err)
            & (err >= 0.0)
            & (err <= settings.max_ref_err)
            & np.isfinite(colour)
        )


def _window_medians(a: np.ndarray, w: int) -> np.ndarray:
    """Medians of all windows of ``w`` consecutive elements."""
    view = a[np.arange(len(a) - w + 1)[:, None] + np.arange(w)]  # sliding_window_view costs more here
    k = w // 2
    if w % 2:
        return np.partition(view, k, axis=1)[:, k]
    p = np.partition(view, (k - 1, k), axis=1)
    return 0.5 * (p[:, k - 1] + p[:, k])


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
    cut = np.zeros(n, dtype=bool)
    w = settings.bright_window
    max_cut = int(settings.bright_max_fraction * n)
    if n < 2 * w or max_cut < 1:
        return cut
    order = np.argsort(inst_mag, kind="stable")
    head = order[: max_cut + w]
    r = np.asarray(residual, dtype=float)[head]
    sig = np.broadcast_to(np.asarray(sigma, dtype=float), (n,))[head]
    medians = _window_medians(r, w)
    sig_w = _window_medians(sig, w)
    thr = np.maximum(settings.bright_trend_sigma * 1.2533 * sig_w / np.sqrt(w), settings.bright_trend_min)
    bent = medians < -thr
    if not bent[0]:
        return cut
    # first window (from the bright end) that is not bent; stars before it go
    straight = np.flatnonzero(~bent)
    k = int(straight[0]) if straight.size else max_cut
    # the first straight window may still begin with a few bent stars
    kk = min(k, len(thr) - 1)
    low = r[k : k + w] < -thr[kk]
    k += int(np.argmin(low)) if not low.all() else w
    k = min(k, max_cut)
    cut[order[:k]] = True
    return cut
