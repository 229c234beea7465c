"""Robust weighted fit of the zero point and colour term.

The model, for every calibration star ``i``::

    m_ref_i = m_inst_i + ZP + CT * colour_i

with ``colour_i`` the reference survey's colour of that star (e.g. B-V for
APASS V). Each star is weighted by ``1 / sigma_i**2`` with::

    sigma_i**2 = e_inst_i**2 + e_ref_i**2 + s_int**2

where ``s_int`` is the intrinsic scatter (flat field, colour-term mismatch,
aperture systematics): estimated from the data, never below
``FitSettings.scatter_floor``. When the colours' catalogue errors are given,
the colour noise is added too (``CT**2 var(colour) - 2 CT cov(ref,
colour)``) and the colour term is corrected for it (errors in variables).

Robustness is iterative sigma clipping: stars whose residual exceeds
``clip_sigma * sigma_i`` are left out and the fit repeated (clipped stars
may come back) until the set of stars is stable, with at most
``max_reject_fraction`` of the stars clipped and at least ``min_stars`` kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from numba import njit
from scipy.special import ndtr, ndtri

from services.calibrate.core.settings import FitSettings
from shared.jit import JIT, kernel_array

#: 1.4826 * MAD estimates the standard deviation of Gaussian data
MAD_TO_SIGMA = 1.482602218505602


def fast_median(a: np.ndarray) -> float:
    """Median of a 1-D float array without NaNs (``np.partition``, less overhead than ``np.median``)."""
    n = a.shape[0]
    k = n // 2
    if n % 2:
        return float(np.partition(a, k)[k])
    p = np.partition(a, (k - 1, k))
    return 0.5 * float(p[k - 1] + p[k])


def finite_or_zero(a: np.ndarray) -> np.ndarray:
    """``np.nan_to_num`` of a float array, skipping the copy (and its overhead) when all are finite."""
    a = np.asarray(a, dtype=float)
    return a if np.isfinite(a).all() else np.nan_to_num(a)


class InsufficientData(ValueError):
    """Too few usable stars to fit (the caller turns this into a note or error)."""


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit_zeropoint`.

    Attributes
    ----------
    zeropoint, zeropoint_err : float
        ZP and its 1-sigma error, mag (ZP is the offset at colour = 0).
    colour_term : float
        CT, mag per mag of colour; 0.0 when only the zero point was fitted.
    colour_term_err : float
        Its 1-sigma error; NaN when only the zero point was fitted.
    covariance : numpy.ndarray
        2x2 covariance of (ZP, CT), mag**2 (CT row/column 0 if not fitted).
    scatter : float
        Robust scatter of the residuals of the stars used, 1.4826 * MAD, mag.
    intrinsic_scatter : float
        ``s_int``, the scatter beyond the stars' stated errors, mag.
    npoints : int
        Stars used in the final fit.
    ninput : int
        Stars given to the fit.
    used, clipped : numpy.ndarray of bool
        Per input star: used in the final fit / clipped as outlier
        (``clipped == ~used``).
    outlier_fraction : float
        ``clipped.sum() / ninput``.
    residuals : numpy.ndarray
        ``m_ref - (m_inst + ZP + CT * colour)`` for every input star, mag.
    sigma : numpy.ndarray
        Total error of every input star (with ``s_int``), mag.
    fit_colour_term : bool
        Whether CT was fitted (False: colour spread or star count too small).
    median_colour : float
        Median colour of the stars used, mag.
    colour_spread : float
        Robust spread (1.4826 MAD) of the colours of the stars used, mag;
        0 without colours.
    iterations : int
        Clip-and-refit iterations done.
    """

    zeropoint: float
    zeropoint_err: float
    colour_term: float
    colour_term_err: float
    covariance: np.ndarray
    scatter: float
    intrinsic_scatter: float
    npoints: int
    ninput: int
    used: np.ndarray
    clipped: np.ndarray
    outlier_fraction: float
    residuals: np.ndarray
    sigma: np.ndarray
    fit_colour_term: bool
    median_colour: float
    iterations: int
    colour_spread: float = 0.0

    def predict(self, inst_mag: np.ndarray | float, colour: np.ndarray | float) -> np.ndarray | float:
        """Calibrated magnitude ``m_inst + ZP + CT * colour``, mag."""
        return inst_mag + self.zeropoint + self.colour_term * colour

    def calibration_err(self, colour: float) -> float:
        """1-sigma error of ``ZP + CT * colour`` at this colour, mag.

        ``sqrt(var(ZP) + colour**2 var(CT) + 2 colour cov(ZP, CT))``: at the
        calibrators' mean colour this is about ``scatter / sqrt(N)``, while
        ``zeropoint_err`` alone is the error extrapolated to colour 0.
        """
        c = self.covariance
        var = c[0, 0] + colour * colour * c[1, 1] + 2.0 * colour * c[0, 1]
        return math.sqrt(max(var, 0.0))

    def unknown_colour_err(self, spread: float | None = None) -> float:
        """Error, mag, from not knowing a target's colour.

        A target whose colour scatters about the assumed (median) colour by
        ``spread`` (default: :attr:`colour_spread`, i.e. like the
        calibrators) gets ``CT * (colour - assumed)`` wrong by
        ``sqrt(CT**2 + var(CT)) * spread`` on average (1 sigma).
        """
        spread = self.colour_spread if spread is None else spread
        return math.sqrt(self.colour_term**2 + max(self.covariance[1, 1], 0.0)) * spread


@njit(**JIT)
def _wls(w, y, c, vc, cyc, fit_ct, eiv, y_med, c_med):  # pragma: no cover - compiled
    """Weighted least squares of y = ZP + CT c: (ZP, CT, var(ZP), cov(ZP, CT), var(CT)).

    Zero weights leave a star out. y and c are centred on ``y_med`` and
    ``c_med`` in the sums, against cancellation. ``vc`` (variance of each
    colour's noise) and ``cyc`` (covariance of the noise of y and of the
    colour), mag**2, correct the colour term for the noise in the colour
    when ``eiv`` (method of moments, as in BCES, Akritas & Bershady 1996):
    ``CT = (S_cy - sum w cyc) / (S_cc - sum w vc)``. Without it a V-band
    fit against B-V is biased, because V's catalogue noise enters both
    ``y = V - m_inst`` and ``B - V`` with opposite signs.
    """
    sw = sy = sc = scc = syc = svc = scyc = 0.0
    for i in range(w.shape[0]):
        wi = w[i]
        if wi == 0.0:
            continue
        dy = y[i] - y_med
        dc = c[i] - c_med
        sw += wi
        sy += wi * dy
        sc += wi * dc
        scc += wi * dc * dc
        syc += wi * dy * dc
        if eiv:
            svc += wi * vc[i]
            scyc += wi * cyc[i]
    ybar = sy / sw + y_med
    if fit_ct:
        c0 = sc / sw  # centred
        sxx = scc - c0 * sc
        if sxx > 0:
            sxy = syc - c0 * sy
            sxx_c = sxx
            if eiv:
                sxx_c = max(sxx - svc, 0.5 * sxx)
                sxy -= scyc
            ct = sxy / sxx_c
            c0 += c_med
            # y = ybar + ct (c - c0)  ->  ZP = ybar - ct c0; var(ybar) = 1/sw, var(ct) = sxx/sxx_c**2
            var_ct = sxx / (sxx_c * sxx_c)
            return ybar - ct * c0, ct, 1.0 / sw + c0 * c0 * var_ct, -c0 * var_ct, var_ct
    return ybar, 0.0, 1.0 / sw, 0.0, 0.0


@njit(**JIT)
def _noise2(e2_base, vc, cyc, ct, eiv):  # pragma: no cover - compiled
    """Each star's variance of ``y - CT colour``: ``e2 + CT**2 var(colour) - 2 CT cov(y, colour)``."""
    if not eiv or ct == 0.0:
        return e2_base
    return np.maximum(e2_base + (ct * ct) * vc - (2.0 * ct) * cyc, 0.0)


@njit(**JIT)
def _intrinsic_var(r, e2, target, floor2):  # pragma: no cover - compiled
    """Intrinsic variance s2 making median(r**2 / (e2 + s2)) equal ``target``.

    ``r_i**2 / (e2_i + s2) > target``  <=>  ``r_i**2 / target - e2_i > s2``,
    so the s2 that puts half the stars above ``target`` is exactly the median
    of ``r**2 / target - e2``. Never below ``floor2``.
    """
    return max(floor2, np.median(r * r / target - e2))


@njit(**JIT)
def _intrinsic_var_chi2(r, e2, target, start, floor2):  # pragma: no cover - compiled
    """Intrinsic variance s2 with ``sum(r**2 / (e2 + s2)) = target`` (Newton steps from ``start``).

    The sum decreases monotonically with s2; if it is below ``target``
    already at ``floor2`` the floor is returned.
    """
    r2 = r * r
    if np.sum(r2 / (e2 + floor2)) <= target:
        return floor2
    s2 = max(start, floor2)
    for _ in range(20):
        q = 1.0 / (e2 + s2)
        f = np.dot(r2, q) - target
        fp = -np.dot(r2, q * q)
        new = s2 - f / fp
        if new <= floor2:
            new = 0.5 * (s2 + floor2)
        if abs(new - s2) <= 1e-6 * max(s2, 1e-8):
            s2 = new
            break
        s2 = new
    return max(s2, floor2)


def _median_z2_truncated(clip: float) -> float:
    """Median of z**2 for a unit Gaussian truncated at |z| < clip."""
    p = 2.0 * ndtr(clip) - 1.0
    return float(ndtri(0.5 + 0.25 * p)) ** 2


def _clip_variance_factor(clip: float) -> float:
    """Variance inflation of a clipped (skipped) re-centred mean for Gaussian data.

    The fit converges to the mean of the stars within ``+-clip`` sigma of
    itself: an M-estimator with psi(z) = z * [|z| < clip], whose asymptotic
    variance is ``E[psi**2] / E[psi']**2``. The least-squares covariance of
    the ``P(|z| < clip) * N`` stars kept is ``1 / (P N)``, so the ratio is
    ``P / (P - 2 clip phi(clip))`` (1.81 at 1.5 sigma, 1.10 at 2.5 sigma).
    """
    p = 2.0 * ndtr(clip) - 1.0
    phi = math.exp(-0.5 * clip * clip) / math.sqrt(2.0 * math.pi)
    denom = p - 2.0 * clip * phi
    return p / denom if denom > 1e-6 else 1e6


def _mean_z2_truncated(clip: float) -> float:
    """Mean of z**2 for a unit Gaussian truncated at |z| < clip: 1 - 2 c phi(c) / P(|z| < c)."""
    if not math.isfinite(clip):
        return 1.0
    p = 2.0 * ndtr(clip) - 1.0
    phi = math.exp(-0.5 * clip * clip) / math.sqrt(2.0 * math.pi)
    return 1.0 - 2.0 * clip * phi / p


@lru_cache(maxsize=16)
def _clip_constants(clip: float) -> tuple[float, float, float, float]:
    """Gaussian constants of a fit clipped at ``clip`` sigma (see :func:`fit_zeropoint`, Notes)."""
    return (
        _median_z2_truncated(math.inf),
        _median_z2_truncated(float(ndtri(0.75))),
        _mean_z2_truncated(clip),
        _clip_variance_factor(clip),
    )


@njit(**JIT)
def _smallest(z, k):  # pragma: no cover - compiled
    """Indices of the ``k`` smallest values of ``z`` (ties at the k-th: the first ones), ascending index."""
    kth = np.partition(z, k - 1)[k - 1]
    out = np.empty(k, dtype=np.int64)
    m = 0
    for i in range(z.shape[0]):
        if z[i] < kth:
            out[m] = i
            m += 1
    for i in range(z.shape[0]):
        if m == k:
            break
        if z[i] == kth:
            out[m] = i
            m += 1
    return out


@njit(**JIT)
def _robust_spread(a):  # pragma: no cover - compiled
    """1.4826 MAD of a 1-D array."""
    return MAD_TO_SIGMA * np.median(np.abs(a - np.median(a)))


class RobustFitKernel(NamedTuple):
    """What :func:`_robust_fit` returns, by name (built from its tuple outside the compiled code).

    Magnitudes in mag, variances in mag**2; arrays one entry per star given.
    """

    zeropoint: float
    colour_term: float
    var_zeropoint: float
    cov_zeropoint_colour_term: float
    var_colour_term: float
    #: intrinsic scatter squared, mag**2
    intrinsic_var: float
    used: np.ndarray
    residuals: np.ndarray
    #: each star's total variance (its errors, colour noise and the intrinsic scatter), mag**2
    total_var: np.ndarray
    iterations: int
    fit_colour_term: bool
    #: robust scatter (1.4826 MAD) of the used stars' residuals
    scatter: float
    median_colour: float
    colour_spread: float


@njit(**JIT)
def _robust_fit(
    y, e2_base, c, vc, cyc, ct_mode, min_spread, eiv, clip, min_keep, max_iterations, floor2, t_free, t_half, t_mean
):  # pragma: no cover - compiled
    """The iteration of :func:`fit_zeropoint` (see its Notes), on ``y = m_ref - m_inst``.

    ``ct_mode`` 1 fits the colour term, 0 does not, -1 fits it if the
    colours' robust spread is at least ``min_spread``. Returns ZP, CT,
    var(ZP), cov(ZP, CT), var(CT), s_int**2, the stars used, the residuals,
    each star's total variance, the iterations done, whether CT was fitted,
    and the robust scatter of the residuals, median and robust spread of
    the colours, of the stars used.
    """
    n = y.shape[0]
    y_med = np.median(y)
    c_med = np.median(c)
    fit_ct = ct_mode == 1 or (ct_mode == -1 and _robust_spread(c) >= min_spread)

    def wls(w):
        return _wls(w, y, c, vc, cyc, fit_ct, eiv, y_med, c_med)

    # robust start (least trimmed squares): from two starting lines, the
    # full weighted least-squares fit (unbiased when outliers are few) and
    # the median offset (robust to any outliers, but it attenuates the
    # colour term), take two concentration steps each -- refit on the half
    # of the stars with the smallest normalised residuals -- and keep the
    # start whose inner half fits best (the median start only if its
    # trimmed chi2 is at least 20 % lower: it is the biased one).
    half = max(3 if fit_ct else 2, (n + 1) // 2)
    s2_0 = _intrinsic_var(y - y_med, e2_base, t_free, floor2)
    zp_ls, ct_ls = wls(1.0 / (e2_base + s2_0))[:2]
    best_trimmed, best_zp, best_ct, best_s2 = np.inf, 0.0, 0.0, 0.0
    w = np.empty(n)
    for start in range(2):
        zp, ct = (zp_ls, ct_ls) if start == 0 else (y_med, 0.0)
        r = y - zp - ct * c
        e2 = _noise2(e2_base, vc, cyc, ct, eiv)
        s2 = _intrinsic_var(r, e2, t_free, floor2)
        inner = np.arange(half)
        for _ in range(2):
            sig2 = e2 + s2
            inner = _smallest(np.abs(r) / np.sqrt(sig2), half)
            w[:] = 0.0
            w[inner] = 1.0 / sig2[inner]
            zp, ct = wls(w)[:2]
            r = y - zp - ct * c
            e2 = _noise2(e2_base, vc, cyc, ct, eiv)
            s2 = _intrinsic_var(r[inner], e2[inner], t_half, floor2)
        ri = r[inner]
        trimmed = np.sum(ri * ri / (e2[inner] + floor2))
        if start == 0 or trimmed < 0.8 * best_trimmed:
            best_trimmed, best_zp, best_ct, best_s2 = trimmed, zp, ct, s2
    zp, ct, s2 = best_zp, best_ct, best_s2
    r = y - zp - ct * c
    e2 = _noise2(e2_base, vc, cyc, ct, eiv)

    # clip and refit until the set of stars in use is stable
    used = np.zeros(n, dtype=np.bool_)
    iterations = 0
    while True:
        sig2 = e2 + s2
        z = np.abs(r) / np.sqrt(sig2)
        new_used = z <= clip
        if np.count_nonzero(new_used) < min_keep:
            new_used[:] = False
            new_used[_smallest(z, min_keep)] = True
        if iterations >= max_iterations or np.array_equal(new_used, used):
            break
        used = new_used
        iterations += 1
        zp, ct = wls(used / sig2)[:2]
        r = y - zp - ct * c
        e2 = _noise2(e2_base, vc, cyc, ct, eiv)
        # scale for clipping from all stars (median: robust to < 50 % outliers,
        # and not shrunk by the clipping itself)
        s2 = _intrinsic_var(r, e2, t_free, floor2)

    # final intrinsic scatter from the mean chi2 of the stars in use (more
    # efficient than the median), with the degrees of freedom the fit took
    npoints = np.count_nonzero(used)
    ndof = npoints - (2 if fit_ct else 1)
    if ndof >= 2:
        s2 = _intrinsic_var_chi2(r[used], e2[used], ndof * t_mean, s2, floor2)

    # final solution with the final weights on the final set
    zp, ct, v_zp, c_zc, v_ct = wls(used / (e2 + s2))
    r = y - zp - ct * c
    sig2 = _noise2(e2_base, vc, cyc, ct, eiv) + s2
    cu = c[used]
    return (
        zp,
        ct,
        v_zp,
        c_zc,
        v_ct,
        s2,
        used,
        r,
        sig2,
        iterations,
        fit_ct,
        _robust_spread(r[used]),
        np.median(cu),
        _robust_spread(cu),
    )


def fit_zeropoint(
    ref_mag: np.ndarray,
    ref_err: np.ndarray,
    inst_mag: np.ndarray,
    inst_err: np.ndarray,
    colour: np.ndarray | None,
    settings: FitSettings | None = None,
    *,
    fit_colour_term: bool | None = None,
    colour_var: np.ndarray | None = None,
    colour_cov: np.ndarray | None = None,
) -> FitResult:
    """Fit ``m_ref = m_inst + ZP + CT * colour`` robustly.

    Parameters
    ----------
    ref_mag, ref_err : numpy.ndarray
        Reference magnitudes and their errors, mag. All finite.
    inst_mag, inst_err : numpy.ndarray
        Instrumental magnitudes and their errors, mag. All finite.
    colour : numpy.ndarray or None
        Reference colour of each star, mag; None fits the zero point only.
    settings : FitSettings, optional
        Clipping and fitting parameters (defaults if None).
    fit_colour_term : bool, optional
        Force (True) or forbid (False) the colour term; by default it is
        fitted when the colours' robust spread is at least
        ``settings.min_colour_spread`` and there are at least
        ``settings.min_stars_colour_term`` stars.
    colour_var : numpy.ndarray, optional
        Variance of each star's catalogue colour, mag**2
        (``e_blue**2 + e_red**2``).
    colour_cov : numpy.ndarray, optional
        Covariance of each star's catalogue magnitude with its catalogue
        colour, mag**2: ``+e_ref**2`` if the band is the colour's blue band,
        ``-e_ref**2`` if it is the red band, else 0. With ``colour_var`` it
        corrects the colour term for noise in the colours and adds the
        colour noise ``CT**2 colour_var - 2 CT colour_cov`` to each star's
        variance.

    Returns
    -------
    FitResult

    Raises
    ------
    InsufficientData
        Fewer than ``settings.min_stars`` stars.

    Notes
    -----
    Start (least trimmed squares): from the full weighted least-squares
    line and from the median offset, two concentration steps each (refit
    the half of the stars with the smallest normalised residuals); the
    start whose inner half fits best is kept, so up to ~50 % outliers
    cannot drag the starting point.

    Iteration: ``s_int`` from all stars' residuals, robustly (the median of
    ``(r / sigma)**2`` set to its Gaussian value, 0.455); stars with
    ``|r| > clip_sigma * sigma`` clipped, but never more than
    ``max_reject_fraction`` of them nor so many that fewer than
    ``min_stars`` remain (then the least deviant are kept); weighted least
    squares on the stars in use. Stops when the set of stars in use no
    longer changes (or after ``max_iterations``).

    Errors: after convergence ``s_int`` is re-estimated from the mean chi2
    of the stars in use (its truncated-Gaussian expectation times the
    degrees of freedom, ``N - 2``); the covariance is the weighted
    least-squares one with these weights (not rescaled by chi2 again),
    multiplied by the Gaussian variance inflation of a clipped re-centred
    fit, ``P / (P - 2 c phi(c))`` (1.10 at ``c`` = 2.5 sigma). In
    simulations with 20-100 stars and 0-40 % outliers 60-72 % of the
    estimates lie within 1 sigma of the truth at the default 2.5 sigma
    (more with fewer stars: the t-distribution's wider tails).
    """
    s = settings or FitSettings()
    ref_mag = np.asarray(ref_mag, dtype=float)
    n = len(ref_mag)
    if n < s.min_stars:
        raise InsufficientData(f"{n} calibration stars, need at least {s.min_stars}")
    y = kernel_array(ref_mag - np.asarray(inst_mag, dtype=float))
    e2_base = kernel_array(np.asarray(ref_err, dtype=float) ** 2 + np.asarray(inst_err, dtype=float) ** 2)
    c = np.zeros(n) if colour is None else kernel_array(colour, dtype=float)
    eiv = colour is not None and colour_var is not None
    zeros = None if eiv and colour_cov is not None else np.zeros(n)
    vc = kernel_array(finite_or_zero(colour_var)) if eiv and colour_var is not None else zeros
    cyc = kernel_array(finite_or_zero(colour_cov)) if eiv and colour_cov is not None else zeros
    if colour is None or (fit_colour_term is None and n < s.min_stars_colour_term):
        ct_mode = 0
    else:
        ct_mode = -1 if fit_colour_term is None else int(bool(fit_colour_term))

    t_free, t_half, t_mean, inflate = _clip_constants(s.clip_sigma)
    min_keep = min(max(s.min_stars, n - int(math.floor(s.max_reject_fraction * n))), n)
    k = RobustFitKernel(
        *_robust_fit(
            y,
            e2_base,
            c,
            vc,
            cyc,
            ct_mode,
            float(s.min_colour_spread),
            eiv,
            float(s.clip_sigma),
            min_keep,
            int(s.max_iterations),
            float(s.scatter_floor) ** 2,
            t_free,
            t_half,
            t_mean,
        )
    )
    npoints = int(np.count_nonzero(k.used))
    cov = (
        np.array([[k.var_zeropoint, k.cov_zeropoint_colour_term], [k.cov_zeropoint_colour_term, k.var_colour_term]])
        * inflate
    )
    median_colour, colour_spread = (0.0, 0.0) if colour is None else (k.median_colour, k.colour_spread)
    return FitResult(
        zeropoint=float(k.zeropoint),
        zeropoint_err=math.sqrt(cov[0, 0]),
        colour_term=float(k.colour_term),
        colour_term_err=math.sqrt(cov[1, 1]) if k.fit_colour_term else math.nan,
        covariance=cov,
        scatter=float(k.scatter),
        intrinsic_scatter=math.sqrt(k.intrinsic_var),
        npoints=npoints,
        ninput=n,
        used=k.used,
        clipped=~k.used,
        outlier_fraction=(n - npoints) / n,
        residuals=k.residuals,
        sigma=np.sqrt(k.total_var),
        fit_colour_term=bool(k.fit_colour_term),
        median_colour=float(median_colour),
        iterations=int(k.iterations),
        colour_spread=float(colour_spread),
    )
