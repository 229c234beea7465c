"""The frame's footprint: the sky its sources cover, and whether the alert position is in it.

The footprint is the convex hull of the usable sources in the tangent plane
about their mean direction (:func:`frame_footprint`); an alert outside it
(with a margin) is refused as ``target_outside_frame``
(:func:`require_target_in_frame`). The compiled hull and point-in-hull
tests are used by the completeness limit too (:mod:`limits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from services.calibrate.core.inputs import SourceColumns
from shared.errors import CalibrationFailed
from shared.jit import JIT, kernel_array
from shared.sky import ARCSEC_PER_RAD, mean_direction, separation_deg


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
    for p in cand:  # lower chain
        while k >= 2 and _cross(x[hull[k - 2]], y[hull[k - 2]], x[hull[k - 1]], y[hull[k - 1]], x[p], y[p]) <= 0:
            k -= 1
        hull[k] = p
        k += 1
    lower = k + 1
    for p in cand[::-1][1:]:  # upper chain
        while k >= lower and _cross(x[hull[k - 2]], y[hull[k - 2]], x[hull[k - 1]], y[hull[k - 1]], x[p], y[p]) <= 0:
            k -= 1
        hull[k] = p
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
    ra0, dec0 = mean_direction(ra, dec)
    radius = float(separation_deg(ra, dec, ra0, dec0).max())
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
CODE_TARGET_OUTSIDE_FRAME = "target_outside_frame"

#: with fewer usable sources than this their hull is no footprint: a wider circle is used
MIN_SOURCES_FOR_HULL = 10


def require_target_in_frame(
    sources: SourceColumns, usable: np.ndarray, target_ra: float, target_dec: float, margin_arcsec: float
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
    sources : SourceColumns
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
    distance = float(separation_deg(np.array([target_ra]), np.array([target_dec]), fp.ra0, fp.dec0)[0])
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
        code=CODE_TARGET_OUTSIDE_FRAME,
    )
