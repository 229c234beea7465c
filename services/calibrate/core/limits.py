"""The frame's limiting magnitude: how faint the target could be and still be missed.

The limiting magnitude answers the question a non-detection asks: how
bright could the target have been and still be missing from *this*
catalogue? So it is measured as the frame's detection completeness
(:func:`completeness_limit_inst`): the reference stars of the deepest
fitted survey inside the frame's footprint are given their predicted
instrumental magnitudes through that survey's fit, and the magnitude at
which ``FitSettings.limit_completeness`` (half) of them have a source in
the catalogue is the limit. Only when no reference survey reaches deeper
than the frame does the limit fall back to the 5-sigma point of the
submitted photometry's own magnitude-error relation
(:func:`frame_limit_inst`).

Why not the 5-sigma point of MAGERR_AUTO, scaled or not. In the simulated
fields (``bench accuracy``) that point is 0.4 mag brighter than the ideal
PSF-weighted 5-sigma limit, where only 3 % of the stars are in the
catalogue (half of them are 0.48 mag brighter than it); rescaling MAGERR_AUTO by the
calibrators' chi^2 (the errors are 10-20 % low at the faint end) moves
the MAG_AUTO 5-sigma point by ~0.15 mag but answers a different question
(how well a source there is *measured*), and the ratio cannot be measured
at all when the calibrators are 3 mag brighter than the limit (APASS). The
catalogue the observer sent decides detection, whatever photometry could
have been done on the image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from services.calibrate.core.fitting import MAD_TO_SIGMA
from services.calibrate.core.footprint import (
    _convex_hull,
    _inside_hull,
    _tangent_arcsec,
)
from services.calibrate.core.inputs import ReferenceStars, SourceColumns
from shared.jit import JIT, kernel_array
from shared.sky import mean_direction

if TYPE_CHECKING:  # choice.py already imports this module (indirectly): a runtime import back would be circular
    from services.calibrate.core.choice import BandCandidate

#: magnitude error of a detection at signal-to-noise 1: 2.5 / ln(10)
MAGERR_AT_SNR1 = 2.5 / math.log(10.0)

#: |logistic slope|, 1/mag, beyond which the Newton iteration of
#: :func:`completeness_limit_inst` has run away: a fall-off width under
#: 1e-6 mag, 10,000 times narrower than the narrowest accepted (0.01 mag).
#: There the weights sit at their floor and the steps are 1e7-1e9: the
#: iteration wanders without converging (the stars are separable, or the
#: first steps overshot) and the answer is None after all 50 iterations, so
#: it is given at once (about 1.4 ms saved per survey on a 2,000-source frame).
_RUNAWAY_SLOPE = 1e6


@njit(**JIT)
def _line(x, y):  # pragma: no cover - compiled
    """Least-squares straight line ``y = slope x + intercept`` (closed form, as ``np.polyfit(x, y, 1)``)."""
    xm = x.mean()
    ym = y.mean()
    dx = x - xm
    sxx = np.dot(dx, dx)
    if not sxx > 0:
        return 0.0, ym
    slope = np.dot(dx, y - ym) / sxx
    return slope, ym - slope * xm


@njit(**JIT)
def _error_relation_limit(mag, err, good, nsigma):  # pragma: no cover - compiled
    """:func:`frame_limit_inst`; NaN when there is no answer."""
    base = good & np.isfinite(err) & (err > 0)
    sel = base & (err >= 0.05) & (err <= 0.6)
    if np.count_nonzero(sel) < 10:
        sel = base & (err >= 0.01) & (err <= 1.0)
        if np.count_nonzero(sel) < 10:
            return math.nan
    x = mag[sel]
    y = np.log10(err[sel])
    if x.max() - x.min() < 0.5:
        return math.nan
    keep = np.ones(x.shape[0], dtype=np.bool_)
    slope, icept = 0.0, 0.0
    for _ in range(2):
        if np.count_nonzero(keep) < 10:
            return math.nan
        slope, icept = _line(x[keep], y[keep])
        res = y - (slope * x + icept)
        rk = res[keep]
        scale = MAD_TO_SIGMA * np.median(np.abs(rk - np.median(rk)))
        if scale <= 0:
            break
        keep = np.abs(res) <= 3.0 * scale
    if not slope > 0.05:
        return math.nan
    return (math.log10(MAGERR_AT_SNR1 / nsigma) - icept) / slope


def frame_limit_inst(mag: np.ndarray, mag_err: np.ndarray, good: np.ndarray, nsigma: float = 5.0) -> float | None:
    """Instrumental ``nsigma`` limiting magnitude from the frame's own mag-error relation.

    ``log10(magerr)`` is fitted as a straight line in ``mag`` (robustly: two
    passes with 3-sigma clipping on 1.4826 MAD) over good sources with
    errors between 0.05 and 0.6 mag, i.e. around the limit's error (a
    wider 0.01-1.0 mag window if fewer than 10 sources there), and solved
    for ``magerr = 1.0857 / nsigma`` (0.217 mag at 5 sigma).

    Parameters
    ----------
    mag, mag_err : numpy.ndarray
        Instrumental magnitudes and errors, mag.
    good : numpy.ndarray of bool
        Sources to use (usable magnitude, no disqualifying flags).
    nsigma : float
        Significance of the limit.

    Returns
    -------
    float or None
        Instrumental limiting magnitude, mag; None when fewer than 10
        sources, a magnitude range under 0.5 mag, or a non-increasing
        relation make it impossible to determine honestly.
    """
    lim = _error_relation_limit(
        kernel_array(mag, dtype=float),
        kernel_array(mag_err, dtype=float),
        kernel_array(good, dtype=bool),
        float(nsigma),
    )
    return float(lim) if math.isfinite(lim) else None


@njit(**JIT)
def _logistic_limit(m, det, fraction, min_each, runaway):  # pragma: no cover - compiled
    """:func:`completeness_limit_inst` on finite ``m``; (nan, 0) when there is no answer."""
    n = m.shape[0]
    n_det = np.count_nonzero(det)
    if n_det < min_each or n - n_det < min_each:
        return math.nan, 0
    # first guess: faintest 0.25-mag bin (with >= 5 stars) still at least half detected
    lo = math.floor(m.min() * 4.0) / 4.0
    which = ((m - lo) / 0.25).astype(np.int64)
    n_bin = np.zeros(which.max() + 1)
    n_bin_det = np.zeros(which.max() + 1)
    for i in range(n):
        n_bin[which[i]] += 1.0
        n_bin_det[which[i]] += det[i]
    last = -1
    for bin_index in range(n_bin.shape[0]):
        if n_bin[bin_index] >= 5 and n_bin_det[bin_index] >= 0.5 * n_bin[bin_index]:
            last = bin_index
    if last < 0:
        return math.nan, 0
    guess = lo + 0.25 * (last + 1)
    # logistic regression logit p = a + b (m - guess) on the stars no brighter than guess - 2.5,
    # by Newton's method (IRLS)
    a, b = 0.0, -1.0 / 0.15
    converged = False
    for _ in range(50):
        h00 = h01 = h11 = g0 = g1 = 0.0
        for i in range(n):
            mf = m[i] - guess
            if not mf > -2.5:
                continue
            eta = min(max(a + b * mf, -30.0), 30.0)
            p = 1.0 / (1.0 + math.exp(-eta))
            w = max(p * (1.0 - p), 1e-9)
            h00 += w
            h01 += w * mf
            h11 += w * mf * mf
            g0 += det[i] - p
            g1 += (det[i] - p) * mf
        determinant = h00 * h11 - h01 * h01
        if determinant == 0.0:
            return math.nan, 0
        da = (h11 * g0 - h01 * g1) / determinant
        db = (h00 * g1 - h01 * g0) / determinant
        a += da
        b += db
        if max(abs(da), abs(db)) < 1e-6:
            converged = True
            break
        if not abs(b) < runaway:
            # Newton has run away (separable stars or overshoot): no fall-off resolved
            return math.nan, 0
    if not converged or not b < 0:
        return math.nan, 0
    m50, width = guess - a / b, -1.0 / b
    if not (math.isfinite(m50) and 0.01 <= width <= 1.0):
        return math.nan, 0
    near_det = near_undet = fainter_undet = n_half = 0
    for i in range(n):
        d = abs(m[i] - m50)
        if d <= 0.75:
            if det[i]:
                near_det += 1
            else:
                near_undet += 1
        if d <= 0.5:
            n_half += 1
        if m[i] > m50 and not det[i]:
            fainter_undet += 1
    if near_det < min_each or near_undet < min_each or fainter_undet < min_each:
        return math.nan, 0
    return m50 + width * math.log(1.0 / fraction - 1.0), n_half


def completeness_limit_inst(
    pred_inst: np.ndarray, detected: np.ndarray, fraction: float = 0.5, min_each: int = 15
) -> tuple[float | None, int]:
    """Instrumental magnitude at which ``fraction`` of the stars are detected.

    The detection probability is modelled as a logistic function of the
    (predicted) instrumental magnitude ``m``::

        p(m) = 1 / (1 + exp((m - m50) / w))

    fitted by maximum likelihood (logistic regression, Newton's method; given
    up when it runs away, see :data:`_RUNAWAY_SLOPE`) to the stars no brighter than
    2.5 mag above a first, binned estimate of ``m50`` (brighter ones carry
    no information on the fall-off; blends and saturated stars there only
    lower the plateau). The limit is ``m50 + w ln(1 / fraction - 1)``.

    Parameters
    ----------
    pred_inst : numpy.ndarray
        Predicted instrumental magnitudes of reference stars inside the
        frame's footprint, mag.
    detected : numpy.ndarray of bool
        Whether the catalogue has a source at each star's position.
    fraction : float
        Completeness of the limit (0.5: half the stars detected).
    min_each : int
        At least this many detected and this many undetected stars within
        0.75 mag of ``m50`` are needed, and at least this many undetected
        stars fainter than ``m50``: the reference stars must reach clearly
        beyond the frame's fall-off.

    Returns
    -------
    (float or None, int)
        The instrumental limit (None if the fall-off is not covered by the
        stars), and the number of stars within 0.5 mag of ``m50`` (how well
        the fall-off is sampled; 0 if None).
    """
    m = np.asarray(pred_inst, dtype=float)
    det = np.asarray(detected, dtype=bool)
    ok = np.isfinite(m)
    lim, n = _logistic_limit(kernel_array(m[ok]), kernel_array(det[ok]), float(fraction), int(min_each), _RUNAWAY_SLOPE)
    return (float(lim), int(n)) if math.isfinite(lim) else (None, 0)


def reference_completeness_inst(
    sources: SourceColumns,
    src_usable: np.ndarray,
    references: Mapping[str, ReferenceStars],
    candidates: list[BandCandidate],
    detected: dict[str, np.ndarray],
    fraction: float = 0.5,
) -> float | None:
    """The frame's completeness limit (instrumental mag) from the reference surveys.

    For every survey with a fitted band (its lowest-score band), each of its
    stars inside the frame's footprint (the convex hull of the usable
    sources) with a magnitude in that band gets the instrumental magnitude
    the fit predicts, ``m_ref - ZP - CT * colour`` (the fit's median colour
    when the star has no colour), and counts as detected if a usable source
    lies within the match radius. :func:`completeness_limit_inst` turns
    that into a limit; the survey that samples the fall-off with the most
    stars gives the answer. None if no survey reaches beyond the frame's
    fall-off.

    Parameters
    ----------
    sources : SourceColumns
    src_usable : numpy.ndarray of bool
    references : dict of str to ReferenceStars
    candidates : list of choice.BandCandidate
        The fitted candidates of :func:`choice.evaluate_candidates`.
    detected : dict of str to numpy.ndarray of bool
        Per survey, per star: a usable source within the match radius
        (:func:`choice.evaluate_candidates`).
    fraction : float
        Completeness of the limit.
    """
    from services.calibrate.core.choice import _named_band_array
    from shared.contracts.surveys import get_survey

    idx = np.flatnonzero(src_usable)
    if idx.size < 10:
        return None
    ra = kernel_array(np.asarray(sources.ra, dtype=float)[idx])
    dec = kernel_array(np.asarray(sources.dec, dtype=float)[idx])
    ra0, dec0 = mean_direction(ra, dec)  # not the median RA: wrong across RA 0/360
    sx, sy = _tangent_arcsec(ra, dec, ra0, dec0)
    hull = _convex_hull(sx, sy)
    if hull.size < 3:
        return None
    hx, hy = sx[hull], sy[hull]
    best_by_survey: dict[str, BandCandidate] = {}
    for c in candidates:
        if c.fit is None or c.score is None:
            continue
        best = best_by_survey.get(c.survey)
        if best is None or best.score is None or c.score < best.score:
            best_by_survey[c.survey] = c
    answer, answer_n = None, 0
    for name, cand in best_by_survey.items():
        stars = next((s for k, s in references.items() if (s.survey or k) == name or k == name), None)
        if stars is None or len(stars) == 0 or name not in detected:
            continue
        survey = get_survey(name)
        band = survey.band(cand.band)
        mags = _named_band_array(stars, survey, band.name)
        if mags is None:
            continue
        rx, ry = _tangent_arcsec(kernel_array(stars.ra, dtype=float), kernel_array(stars.dec, dtype=float), ra0, dec0)
        inside = np.flatnonzero(
            np.isfinite(mags) & (rx >= hx.min()) & (rx <= hx.max()) & (ry >= hy.min()) & (ry <= hy.max())
        )
        inside = inside[_inside_hull(rx[inside], ry[inside], hx, hy, 1e-6)]
        if inside.size < 30:
            continue
        blue = _named_band_array(stars, survey, band.colour[0])
        red = _named_band_array(stars, survey, band.colour[1])
        fit = cand.fit
        assert fit is not None  # only candidates with a fit were kept above
        if blue is None or red is None:
            colour = np.full(inside.size, fit.median_colour)
        else:
            colour = blue[inside] - red[inside]
            colour = np.where(np.isfinite(colour), colour, fit.median_colour)
        pred = mags[inside] - fit.zeropoint - fit.colour_term * colour
        lim, n = completeness_limit_inst(pred, detected[name][inside], fraction)
        if lim is not None and n > answer_n:
            answer, answer_n = lim, n
    return answer
