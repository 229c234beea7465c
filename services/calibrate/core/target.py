"""The transient: its calibrated magnitude, or the frame's limiting magnitude.

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
from dataclasses import dataclass

import numpy as np
from numba import njit

from shared.arrays import SourceTable
from shared.contracts.errors import ErrorCode
from shared.errors import CalibrationFailed
from services.calibrate.core.crowding import target_blend
from services.calibrate.core.fitting import MAD_TO_SIGMA, FitResult, fast_median
from shared.jit import JIT, kernel_array
from services.calibrate.core.matching import ARCSEC_PER_RAD, angular_separation_arcsec
from services.calibrate.core.results import TargetMeasurement
from services.calibrate.core.settings import FitSettings

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


def nearest_source(
    sources: SourceTable, candidates: np.ndarray, ra: float, dec: float, radius_arcsec: float
) -> tuple[int | None, float | None]:
    """Index of the nearest source among ``candidates`` within the radius.

    Parameters
    ----------
    sources : SourceTable
    candidates : numpy.ndarray of bool
        Sources eligible (usable magnitude, finite position).
    ra, dec : float
        Alert position, deg.
    radius_arcsec : float
        Match radius, arcsec.

    Returns
    -------
    (int or None, float or None)
        Source index and separation in arcsec, or (None, None).
    """
    idx = np.flatnonzero(candidates)
    if idx.size == 0:
        return None, None
    ra_s = np.asarray(sources.ra, dtype=float)[idx]
    dec_s = np.asarray(sources.dec, dtype=float)[idx]
    # cheap box first: |ddec| <= radius
    r_deg = radius_arcsec / 3600.0
    near = np.abs(dec_s - dec) <= r_deg
    if not near.any():
        return None, None
    idx, ra_s, dec_s = idx[near], ra_s[near], dec_s[near]
    sep = angular_separation_arcsec(ra_s, dec_s, ra, dec)
    j = int(np.argmin(sep))
    if not sep[j] <= radius_arcsec:
        return None, None
    return int(idx[j]), float(sep[j])


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


def frame_limit_inst(
    mag: np.ndarray, mag_err: np.ndarray, good: np.ndarray, nsigma: float = 5.0
) -> float | None:
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
        kernel_array(mag, dtype=float), kernel_array(mag_err, dtype=float),
        kernel_array(good, dtype=bool), float(nsigma),
    )
    return float(lim) if math.isfinite(lim) else None


@njit(**JIT)
def _tangent_arcsec(ra, dec, ra0, dec0):  # pragma: no cover - compiled
    """Gnomonic projection about (ra0, dec0), all in deg, to (xi, eta) in arcsec."""
    n = ra.shape[0]
    xi, eta = np.empty(n), np.empty(n)
    d0 = math.radians(dec0)
    sin_d0, cos_d0 = math.sin(d0), math.cos(d0)
    for i in range(n):
        a = math.radians(ra[i] - ra0)
        d = math.radians(dec[i])
        sin_d, cos_d, cos_a = math.sin(d), math.cos(d), math.cos(a)
        cosc = sin_d0 * sin_d + cos_d0 * cos_d * cos_a
        xi[i] = cos_d * math.sin(a) / cosc * ARCSEC_PER_RAD
        eta[i] = (cos_d0 * sin_d - sin_d0 * cos_d * cos_a) / cosc * ARCSEC_PER_RAD
    return xi, eta


@njit(**JIT)
def _cross(ox, oy, ax, ay, bx, by):  # pragma: no cover - compiled
    """z of (a - o) x (b - o): > 0 when o -> a -> b turns left."""
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@njit(**JIT)
def _convex_hull(x, y):  # pragma: no cover - compiled
    """Vertices of the convex hull of the points (x, y), counter-clockwise, no collinear ones.

    The points extreme in x, y, x + y and y - x span an octagon inside the
    hull; those strictly inside it cannot be hull vertices and are dropped
    first (Akl-Toussaint), so that the monotone chain (Andrew 1979) sorts a
    few dozen points instead of thousands.
    """
    n = x.shape[0]
    corner = np.zeros(8, dtype=np.int64)  # argmin of x, x + y, y, y - x, then argmax: counter-clockwise
    lo = np.empty(4)
    hi = np.empty(4)
    lo[0] = hi[0] = x[0]
    lo[1] = hi[1] = x[0] + y[0]
    lo[2] = hi[2] = y[0]
    lo[3] = hi[3] = y[0] - x[0]
    for i in range(1, n):
        for k in range(4):
            v = x[i] if k == 0 else (x[i] + y[i] if k == 1 else (y[i] if k == 2 else y[i] - x[i]))
            if v < lo[k]:
                lo[k] = v
                corner[k] = i
            if v > hi[k]:
                hi[k] = v
                corner[k + 4] = i
    size = (hi[0] - lo[0]) + (hi[2] - lo[2])
    # edge k of the octagon: a point is strictly inside it when ex (py - ay) - ey (px - ax) > tol
    ax, ay, ex, ey, tol = np.empty(8), np.empty(8), np.empty(8), np.empty(8), np.empty(8)
    m = 0
    for k in range(8):
        a, b = corner[k], corner[(k + 1) % 8]
        if x[b] != x[a] or y[b] != y[a]:
            ax[m], ay[m], ex[m], ey[m] = x[a], y[a], x[b] - x[a], y[b] - y[a]
            tol[m] = 1e-9 * (abs(ex[m]) + abs(ey[m])) * size  # relative: strictly inside by more than 1e-9
            m += 1
    keep = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        for k in range(m):
            if ex[k] * (y[i] - ay[k]) - ey[k] * (x[i] - ax[k]) <= tol[k]:
                keep[i] = True  # not strictly inside this edge: may be a vertex
                break
    keep[corner] = True
    cand = np.flatnonzero(keep)
    # sort lexicographically by (x, y): stable sort by y, then by x
    cand = cand[np.argsort(y[cand], kind="mergesort")]
    cand = cand[np.argsort(x[cand], kind="mergesort")]
    hull = np.empty(2 * cand.size + 1, dtype=np.int64)
    k = 0
    for i in cand:  # lower chain
        while k >= 2 and _cross(x[hull[k - 2]], y[hull[k - 2]], x[hull[k - 1]], y[hull[k - 1]], x[i], y[i]) <= 0:
            k -= 1
        hull[k] = i
        k += 1
    lower = k + 1
    for i in cand[::-1][1:]:  # upper chain
        while k >= lower and _cross(x[hull[k - 2]], y[hull[k - 2]], x[hull[k - 1]], y[hull[k - 1]], x[i], y[i]) <= 0:
            k -= 1
        hull[k] = i
        k += 1
    return hull[: max(k - 1, 0)]


@njit(**JIT)
def _inside_hull(px, py, hx, hy, tol):  # pragma: no cover - compiled
    """Bool per point: inside the counter-clockwise polygon (hx, hy), or outside by at most ``tol``."""
    m = hx.shape[0]
    # each edge a -> b as a unit inward normal and offset: distance inside = nx x + ny y - off
    nx, ny, off = np.empty(m), np.empty(m), np.empty(m)
    for k in range(m):
        ex, ey = hx[(k + 1) % m] - hx[k], hy[(k + 1) % m] - hy[k]
        length = math.hypot(ex, ey)
        nx[k], ny[k] = -ey / length, ex / length
        off[k] = nx[k] * hx[k] + ny[k] * hy[k]
    # points within the circle inscribed about the vertices' mean are inside every edge: no test
    cx, cy = hx.mean(), hy.mean()
    r_in = np.inf
    for k in range(m):
        r_in = min(r_in, nx[k] * cx + ny[k] * cy - off[k])
    r_in2 = r_in * r_in if r_in > 0 else -1.0
    inside = np.ones(px.shape[0], dtype=np.bool_)
    for i in range(px.shape[0]):
        if (px[i] - cx) ** 2 + (py[i] - cy) ** 2 < r_in2:
            continue
        for k in range(m):
            if nx[k] * px[i] + ny[k] * py[i] - off[k] < -tol:
                inside[i] = False
                break
    return inside


def _frame_centre(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    """Direction of the mean unit vector of the positions, (ra, dec) in deg.

    Not the median RA: a frame across RA 0/360 has half its sources near 0 and
    half near 360, whose median (~180) is on the other side of the sky; the
    mean vector is right there, and at the poles too.
    """
    r, d = np.radians(ra), np.radians(dec)
    cos_d = np.cos(d)
    x, y, z = float(np.sum(cos_d * np.cos(r))), float(np.sum(cos_d * np.sin(r))), float(np.sum(np.sin(d)))
    if math.hypot(x, y, z) == 0.0:  # positions cancel out (never a real frame): any centre does
        return float(ra[0]), float(dec[0])
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.atan2(z, math.hypot(x, y)))


def _separation_deg(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Great-circle distances of the positions from (ra0, dec0), deg (haversine: exact at any distance)."""
    r, d = np.radians(ra), np.radians(dec)
    r0, d0 = math.radians(ra0), math.radians(dec0)
    h = np.sin((d - d0) / 2.0) ** 2 + np.cos(d) * math.cos(d0) * np.sin((r - r0) / 2.0) ** 2
    return np.degrees(2.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


@dataclass(frozen=True)
class FrameFootprint:
    """Where a frame's sources are: the sky its image covers, as far as the catalogue tells.

    Attributes
    ----------
    ra0, dec0 : float
        Centre (mean direction of the sources), deg; the tangent point of ``hx``, ``hy``.
    radius_deg : float
        Distance of the farthest source from the centre, deg.
    hx, hy : numpy.ndarray
        Vertices of the sources' convex hull in the tangent plane, arcsec,
        counter-clockwise; empty when the sources do not span an area.
    spacing_arcsec : float
        Typical distance between neighbouring sources, ``sqrt(hull area / n)``; 0 without a hull.
    """

    ra0: float
    dec0: float
    radius_deg: float
    hx: np.ndarray
    hy: np.ndarray
    spacing_arcsec: float


def frame_footprint(ra: np.ndarray, dec: np.ndarray) -> FrameFootprint:
    """The footprint of the sources at (ra, dec), deg (finite, at least one)."""
    ra = kernel_array(np.asarray(ra, dtype=float))
    dec = kernel_array(np.asarray(dec, dtype=float))
    ra0, dec0 = _frame_centre(ra, dec)
    radius = float(_separation_deg(ra, dec, ra0, dec0).max())
    empty = np.zeros(0)
    if ra.size < 3 or radius >= 60.0:  # no area, or no frame: a tangent plane would not hold it
        return FrameFootprint(ra0, dec0, radius, empty, empty, 0.0)
    sx, sy = _tangent_arcsec(ra, dec, ra0, dec0)
    hull = _convex_hull(sx, sy)
    if hull.size < 3:
        return FrameFootprint(ra0, dec0, radius, empty, empty, 0.0)
    hx, hy = sx[hull], sy[hull]
    area = 0.5 * float(np.sum(hx * np.roll(hy, -1) - np.roll(hx, -1) * hy))
    return FrameFootprint(ra0, dec0, radius, hx, hy, math.sqrt(max(area, 0.0) / ra.size))


#: error code (``CalibrationFailed.code``) of an alert position outside the frame

#: with fewer usable sources than this their hull is no footprint: a wider circle is used
MIN_SOURCES_FOR_HULL = 10


def require_target_in_frame(
    sources: SourceTable, usable: np.ndarray, target_ra: float, target_dec: float, margin_arcsec: float
) -> None:
    """Refuse a frame whose footprint does not hold the alert position (``target_outside_frame``).

    A frame of another part of the sky has no source at the target, so
    without this check it would answer "not detected, fainter than the
    frame's limit", a limit on a star the image never looked at. The
    footprint is the convex hull of the usable sources (a hole or a gap
    between them still counts as the frame: nothing tells it from a patch
    with nothing detected), widened by ``margin_arcsec`` or by the typical
    source spacing if larger (the image goes on beyond its last source; in a
    sparse frame further). Collinear sources give the circle about their
    centre through the farthest one, widened the same way; fewer than
    :data:`MIN_SOURCES_FOR_HULL` sources twice that circle (a few sources
    along one edge of the image say little of where the rest of it is).

    Parameters
    ----------
    sources : SourceTable
    usable : numpy.ndarray of bool
        Sources with a usable magnitude and finite position (at least one).
    target_ra, target_dec : float
        Alert position, deg (valid).
    margin_arcsec : float
        ``FitSettings.target_margin_arcsec``.

    Raises
    ------
    shared.errors.CalibrationFailed
        ``target_outside_frame``, saying how far the event is from the frame's centre.
    """
    idx = np.flatnonzero(usable)
    fp = frame_footprint(np.asarray(sources.ra, dtype=float)[idx], np.asarray(sources.dec, dtype=float)[idx])
    margin = max(float(margin_arcsec), fp.spacing_arcsec)
    distance = float(_separation_deg(np.array([target_ra]), np.array([target_dec]), fp.ra0, fp.dec0)[0])
    if idx.size < MIN_SOURCES_FOR_HULL:
        # a handful of sources (all along one edge, say) says little of where the image is: only an event
        # farther than twice their spread is surely elsewhere (and too_few_stars follows anyway)
        if distance <= 2.0 * fp.radius_deg + margin / 3600.0:
            return
    elif distance <= fp.radius_deg + margin / 3600.0:
        if fp.hx.size == 0:
            return
        # within the circle about the centre through the farthest source (< 60 deg + margin): the tangent
        # plane holds it without foldover
        tx, ty = _tangent_arcsec(np.array([float(target_ra)]), np.array([float(target_dec)]), fp.ra0, fp.dec0)
        if _inside_hull(tx, ty, fp.hx, fp.hy, margin)[0]:
            return
    far = f"{distance:.1f} deg" if distance >= 1.0 else f"{distance * 60.0:.1f} arcmin"
    size = f"{fp.radius_deg:.2f} deg" if fp.radius_deg >= 0.1 else f"{fp.radius_deg * 60.0:.1f} arcmin"
    raise CalibrationFailed(
        # what is wrong first: CPCS clients are shown the start of it (shared.http_errors.cpcs_error_body)
        f"the event is outside this frame: {far} from its centre (frame radius {size}, RA {fp.ra0:.4f}, "
        f"Dec {fp.dec0:.4f}); check EventID, or the image and its WCS",
        code=ErrorCode.TARGET_OUTSIDE_FRAME,
    )


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
    for b in range(n_bin.shape[0]):
        if n_bin[b] >= 5 and n_bin_det[b] >= 0.5 * n_bin[b]:
            last = b
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
    lim, n = _logistic_limit(
        kernel_array(m[ok]), kernel_array(det[ok]), float(fraction), int(min_each), _RUNAWAY_SLOPE
    )
    return (float(lim), int(n)) if math.isfinite(lim) else (None, 0)


def reference_completeness_inst(
    sources: SourceTable,
    src_usable: np.ndarray,
    references: dict,
    candidates: list,
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
    sources : SourceTable
    src_usable : numpy.ndarray of bool
    references : dict of str to SurveyStars
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
    ra0, dec0 = _frame_centre(ra, dec)  # not the median RA: wrong across RA 0/360
    sx, sy = _tangent_arcsec(ra, dec, ra0, dec0)
    hull = _convex_hull(sx, sy)
    if hull.size < 3:
        return None
    hx, hy = sx[hull], sy[hull]
    best_by_survey: dict[str, object] = {}
    for c in candidates:
        if c.fit is None or c.score is None:
            continue
        if c.survey not in best_by_survey or c.score < best_by_survey[c.survey].score:
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
        rx, ry = _tangent_arcsec(
            kernel_array(stars.ra, dtype=float), kernel_array(stars.dec, dtype=float), ra0, dec0
        )
        inside = np.flatnonzero(
            np.isfinite(mags) & (rx >= hx.min()) & (rx <= hx.max()) & (ry >= hy.min()) & (ry <= hy.max())
        )
        inside = inside[_inside_hull(rx[inside], ry[inside], hx, hy, 1e-6)]
        if inside.size < 30:
            continue
        blue = _named_band_array(stars, survey, band.colour[0])
        red = _named_band_array(stars, survey, band.colour[1])
        fit = cand.fit
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


def measure_target(
    sources: SourceTable,
    src_usable: np.ndarray,
    src_limit_good: np.ndarray,
    fit: FitResult,
    target_ra: float,
    target_dec: float,
    radius_arcsec: float,
    settings: FitSettings,
    reject_flags: int | None = None,
    completeness_inst: float | None = None,
    neighbour_light: np.ndarray | None = None,
) -> TargetMeasurement:
    """Calibrate the transient, or give the frame's limit if it is not there.

    The target is the nearest source with a usable magnitude within
    ``radius_arcsec`` of the alert position. Its colour is unknown, so the
    median colour of the used calibration stars is assumed::

        mag = m_inst + ZP + CT * colour_assumed

    Its error adds in quadrature the source's own photometric error, the
    error of the calibration at the assumed colour (``ZP + CT * colour``
    from the fit covariance, about ``scatter / sqrt(N)``), the intrinsic
    scatter of the calibration relation (the scatter a single star shows
    beyond its stated errors), and the error of the colour correction for a
    target whose true colour is unknown (:meth:`FitResult.unknown_colour_err`:
    ``sqrt(CT**2 + var(CT))`` times the calibrators' colour spread)::

        mag_err = sqrt(e_inst**2 + err(ZP + CT c0)**2 + s_int**2
                       + (CT**2 + var(CT)) * spread**2)

    (The robust scatter of the residuals is not used: it also contains the
    calibrators' own photometric noise, which the target does not share.)

    With no source within the radius, ``detected`` is False, ``mag`` is
    None, and ``limit_mag`` is the frame's limit calibrated with the same ZP
    and CT at the assumed colour: ``completeness_inst`` (the instrumental
    magnitude at which half the reference stars are in the catalogue, see
    :func:`reference_completeness_inst`) when given, else the 5-sigma point
    of the catalogue's own magnitude-error relation
    (:func:`frame_limit_inst`); ``limit_method`` says which (see the module
    docstring for why). The limit is computed for detections too.

    A blended target (SExtractor blend FLAGS, or ``neighbour_light``, per
    source the neighbours' light over its own from :func:`crowding.frame_blend`,
    above ``isolation_max_blend``) has the blend's share of the error added
    in quadrature and a note saying so (:func:`crowding.target_blend`).
    """
    colour = fit.median_colour
    cal_shift = fit.zeropoint + fit.colour_term * colour
    if completeness_inst is not None:
        inst_limit: float | None = completeness_inst
        method: str | None = "completeness"
    else:
        inst_limit = frame_limit_inst(sources.mag, sources.mag_err, src_limit_good, settings.limit_nsigma)
        method = None if inst_limit is None else "mag_err"
    limit = None if inst_limit is None else inst_limit + cal_shift
    j, sep = nearest_source(sources, src_usable, target_ra, target_dec, radius_arcsec)
    if j is None:
        return TargetMeasurement(
            detected=False,
            limit_mag=limit,
            inst_limit_mag=inst_limit,
            limit_method=method,
            assumed_colour=colour,
            note=None if limit is not None else "no source at the target and no limiting magnitude could be fitted",
        )
    inst = float(sources.mag[j])
    inst_err = float(sources.mag_err[j])
    flags = int(sources.flags[j])
    cal_err = fit.calibration_err(colour)
    notes = []
    if math.isfinite(inst_err) and inst_err >= 0:
        col_err = fit.unknown_colour_err(settings.transient_colour_scale * fit.colour_spread)
        mag_err: float | None = math.sqrt(inst_err**2 + cal_err**2 + fit.intrinsic_scatter**2 + col_err**2)
    else:
        mag_err = None
        notes.append("the target's instrumental error is missing")
    light = 0.0 if neighbour_light is None else float(neighbour_light[j])
    blend_err, blend_msg = target_blend(flags, light, settings)
    if blend_msg:
        notes.append(blend_msg)
        if mag_err is not None:
            mag_err = math.hypot(mag_err, blend_err)
    rf = settings.reject_flags if reject_flags is None else reject_flags
    if flags & rf:
        notes.append(f"the target has SExtractor FLAGS {flags} (saturated/truncated/corrupted?)")
    return TargetMeasurement(
        detected=True,
        mag=inst + cal_shift,
        mag_err=mag_err,
        ra=float(sources.ra[j]),
        dec=float(sources.dec[j]),
        inst_mag=inst,
        inst_mag_err=inst_err if math.isfinite(inst_err) else None,
        separation_arcsec=sep,
        limit_mag=limit,
        inst_limit_mag=inst_limit,
        limit_method=method,
        assumed_colour=colour,
        flags=flags,
        note="; ".join(notes) or None,
    )
