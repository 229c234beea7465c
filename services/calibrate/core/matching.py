"""Positional cross-match of the observer's sources to reference stars.

Positions are turned into unit vectors on the sphere and matched in chord
distance, which is exact at any declination and across RA = 0/360.
Candidate pairs come from a grid on the plane tangent at the frame's centre
(:class:`SourceGrid`, built once per frame and shared by every survey); the
orthogonal projection onto that plane never lengthens a distance, so no
pair within the radius is missed, and every candidate is checked with its
exact 3-D chord. The grid and the match are compiled (numba).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from shared.jit import JIT, kernel_array
from shared.sky import (  # noqa: F401 - the sphere geometry the matcher uses, importable from here as before
    ARCSEC_PER_RAD,
    angular_separation_arcsec,
    arcsec_to_chord,
    chord_to_arcsec,
    radec_to_xyz,
)


@dataclass(frozen=True)
class MatchResult:
    """The nearest reference star of every source.

    Attributes
    ----------
    ref_index : numpy.ndarray of int
        Per source, index of the nearest reference star within the radius,
        or -1 if none.
    separation_arcsec : numpy.ndarray of float
        Per source, distance to that star, arcsec (NaN if none).
    ambiguous : numpy.ndarray of bool
        Per source, True if the match cannot be trusted: a second reference
        star lies within the radius too, or another source has the same
        nearest reference star (a blend on one side or the other).
    ref_detected : numpy.ndarray of bool
        Per reference star, True if a source flagged in
        ``SourceGrid(..., flagged=)`` (by default any source) lies within
        the radius: whether the frame detected the star.
    """

    ref_index: np.ndarray
    separation_arcsec: np.ndarray
    ambiguous: np.ndarray
    ref_detected: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        """Bool per source: it has a reference star within the radius."""
        return self.ref_index >= 0

    @property
    def good(self) -> np.ndarray:
        """Bool per source: matched and not ambiguous."""
        return (self.ref_index >= 0) & ~self.ambiguous


def _empty(n: int, n_ref: int) -> MatchResult:
    return MatchResult(
        ref_index=np.full(n, -1, dtype=np.int64),
        separation_arcsec=np.full(n, np.nan),
        ambiguous=np.zeros(n, dtype=bool),
        ref_detected=np.zeros(n_ref, dtype=bool),
    )


@njit(**JIT)
def _unit_vector(ra_deg, dec_deg):  # pragma: no cover - compiled
    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    cos_dec = math.cos(dec)
    return cos_dec * math.cos(ra), cos_dec * math.sin(ra), math.sin(dec)


@njit(**JIT)
def _build_grid(ra, dec, chord):  # pragma: no cover - compiled
    """The sources with finite positions on a grid of the tangent plane.

    Returns their unit vectors and source indices sorted by cell, the start
    of each cell's run (``cell_start[c]:cell_start[c + 1]``), the tangent
    basis and the grid's origin, cell size and shape.
    """
    n = ra.shape[0]
    index = np.empty(n, dtype=np.int64)
    xyz = np.empty((n, 3))
    k = 0
    cx = cy = cz = 0.0
    for i in range(n):
        if math.isfinite(ra[i]) and math.isfinite(dec[i]):
            x, y, z = _unit_vector(ra[i], dec[i])
            xyz[k, 0], xyz[k, 1], xyz[k, 2] = x, y, z
            cx += x
            cy += y
            cz += z
            index[k] = i
            k += 1
    xyz, index = xyz[:k], index[:k]
    norm = math.sqrt(cx * cx + cy * cy + cz * cz)
    if norm > 1e-9 * max(k, 1):
        cx, cy, cz = cx / norm, cy / norm, cz / norm
    else:
        cx, cy, cz = 0.0, 0.0, 1.0
    # two unit vectors spanning the tangent plane: u = centre x (1, 0, 0) or x (0, 1, 0), v = centre x u
    if abs(cx) < 0.9:
        ux, uy, uz = 0.0, cz, -cy
    else:
        ux, uy, uz = -cz, 0.0, cx
    un = math.sqrt(ux * ux + uy * uy + uz * uz)
    basis = np.empty(6)
    basis[0], basis[1], basis[2] = ux / un, uy / un, uz / un
    basis[3] = cy * basis[2] - cz * basis[1]
    basis[4] = cz * basis[0] - cx * basis[2]
    basis[5] = cx * basis[1] - cy * basis[0]
    u = np.empty(k)
    v = np.empty(k)
    for i in range(k):
        u[i] = xyz[i, 0] * basis[0] + xyz[i, 1] * basis[1] + xyz[i, 2] * basis[2]
        v[i] = xyz[i, 0] * basis[3] + xyz[i, 1] * basis[4] + xyz[i, 2] * basis[5]
    u0, v0 = u.min(), v.min()
    # cells no smaller than the radius' chord (a little more, against rounding), and about
    # one source per cell: a star then looks at one cell, or two or four near a cell's edge
    cell = max(chord * (1.0 + 1e-9), 2e-8, math.sqrt((u.max() - u0) * (v.max() - v0) / max(k, 1)))
    nu = int((u.max() - u0) / cell) + 1
    nv = int((v.max() - v0) / cell) + 1
    while nu * nv > 4 * k + 16:
        cell *= 1.5
        nu = int((u.max() - u0) / cell) + 1
        nv = int((v.max() - v0) / cell) + 1
    # counting sort by cell
    cell_of = np.empty(k, dtype=np.int64)
    cell_start = np.zeros(nu * nv + 1, dtype=np.int64)
    per_cell = 1.0 / cell  # the same arithmetic as the stars' cells in _match_grid
    for i in range(k):
        c = min(int((u[i] - u0) * per_cell), nu - 1) * nv + min(int((v[i] - v0) * per_cell), nv - 1)
        cell_of[i] = c
        cell_start[c + 1] += 1
    for c in range(nu * nv):
        cell_start[c + 1] += cell_start[c]
    fill = cell_start[:-1].copy()
    sorted_xyz = np.empty((k, 3))
    sorted_index = np.empty(k, dtype=np.int64)
    for i in range(k):
        e = fill[cell_of[i]]
        fill[cell_of[i]] += 1
        sorted_xyz[e] = xyz[i]
        sorted_index[e] = index[i]
    grid = np.array([u0, v0, cell, nu, nv], dtype=np.float64)
    return sorted_xyz, sorted_index, cell_start, basis, grid


@njit(**JIT)
def _match_grid(
    xyz, index, cell_start, basis, grid, chord, n_src, flagged, ref_ra, ref_dec
):  # pragma: no cover - compiled
    """Nearest star per source (ties: the lower star index), pairs within the radius, detected stars."""
    u0, v0, cell, nu, nv = grid[0], grid[1], grid[2], int(grid[3]), int(grid[4])
    chord2 = chord * chord
    reach = chord * (1.0 + 1e-9)
    per_cell = 1.0 / cell
    u_end, v_end = nu * cell, nv * cell
    n_ref = ref_ra.shape[0]
    ref_index = np.full(n_src, -1, dtype=np.int64)
    best = np.full(n_src, np.inf)
    n_within = np.zeros(n_src, dtype=np.int64)
    detected = np.zeros(n_ref, dtype=np.bool_)
    for j in range(n_ref):
        if not (math.isfinite(ref_ra[j]) and math.isfinite(ref_dec[j])):
            continue
        x, y, z = _unit_vector(ref_ra[j], ref_dec[j])
        pu = x * basis[0] + y * basis[1] + z * basis[2] - u0
        pv = x * basis[3] + y * basis[4] + z * basis[5] - v0
        # the cells the square of half-side one chord (a little more, against rounding) around
        # the star overlaps: one, mostly
        if pu + reach < 0.0 or pv + reach < 0.0 or pu - reach >= u_end or pv - reach >= v_end:
            continue
        u_lo, u_hi = max(int((pu - reach) * per_cell), 0), min(int((pu + reach) * per_cell), nu - 1)
        v_lo, v_hi = max(int((pv - reach) * per_cell), 0), min(int((pv + reach) * per_cell), nv - 1)
        for cu in range(u_lo, u_hi + 1):
            for cv in range(v_lo, v_hi + 1):
                c = cu * nv + cv
                for e in range(cell_start[c], cell_start[c + 1]):
                    dx, dy, dz = xyz[e, 0] - x, xyz[e, 1] - y, xyz[e, 2] - z
                    d2 = dx * dx + dy * dy + dz * dz
                    if d2 < chord2:
                        s = index[e]
                        n_within[s] += 1
                        if d2 < best[s] or (d2 == best[s] and j < ref_index[s]):
                            best[s] = d2
                            ref_index[s] = j
                        if flagged[s]:
                            detected[j] = True
    n_nearest = np.zeros(n_ref, dtype=np.int64)
    for s in range(n_src):
        if ref_index[s] >= 0:
            n_nearest[ref_index[s]] += 1
    separation = np.full(n_src, np.nan)
    ambiguous = np.zeros(n_src, dtype=np.bool_)
    for s in range(n_src):
        if ref_index[s] >= 0:
            separation[s] = 2.0 * math.asin(min(math.sqrt(best[s]) / 2.0, 1.0)) * ARCSEC_PER_RAD
            ambiguous[s] = n_within[s] > 1 or n_nearest[ref_index[s]] > 1
    return ref_index, separation, ambiguous, detected


class SourceGrid:
    """The frame's sources on a grid, built once and matched against every survey.

    Sources with finite positions are projected onto the plane tangent to
    the sphere at their mean direction (orthogonal projection of the unit
    vectors: it never lengthens a chord) and sorted into square cells no
    smaller than the match radius' chord, about one source per cell, over
    their bounding box. A reference star can then only match sources in the
    cells that the square of half-side one chord around it overlaps (one,
    or two or four near a cell's edge); every candidate pair is checked
    with its exact 3-D chord.

    Parameters
    ----------
    src_ra, src_dec : numpy.ndarray
        Source positions, deg; non-finite ones never match.
    radius_arcsec : float
        Match radius, arcsec.
    flagged : numpy.ndarray of bool, optional
        The sources that count for :attr:`MatchResult.ref_detected`
        (default: all).
    """

    def __init__(
        self, src_ra: np.ndarray, src_dec: np.ndarray, radius_arcsec: float, flagged: np.ndarray | None = None
    ) -> None:
        src_ra = kernel_array(src_ra, dtype=float)
        src_dec = kernel_array(src_dec, dtype=float)
        self.n = len(src_ra)
        self.flagged = np.ones(self.n, dtype=bool) if flagged is None else kernel_array(flagged, dtype=bool)
        self.chord = float(arcsec_to_chord(radius_arcsec))
        self.empty = self.n == 0 or not self.chord > 0
        if self.empty:
            return
        self.xyz, self.index, self.cell_start, self.basis, self.grid = _build_grid(src_ra, src_dec, self.chord)
        self.empty = self.index.size == 0

    def match(self, ref_ra: np.ndarray, ref_dec: np.ndarray) -> MatchResult:
        """:func:`match_to_reference` of these sources to one survey's stars."""
        if self.empty or len(ref_ra) == 0:
            return _empty(self.n, len(ref_ra))
        ref_index, separation, ambiguous, detected = _match_grid(
            self.xyz,
            self.index,
            self.cell_start,
            self.basis,
            self.grid,
            self.chord,
            self.n,
            self.flagged,
            kernel_array(ref_ra, dtype=float),
            kernel_array(ref_dec, dtype=float),
        )
        return MatchResult(
            ref_index=ref_index, separation_arcsec=separation, ambiguous=ambiguous, ref_detected=detected
        )


def match_to_reference(
    src_ra: np.ndarray,
    src_dec: np.ndarray,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    radius_arcsec: float,
    *,
    grid: SourceGrid | None = None,
) -> MatchResult:
    """Match every source to its nearest reference star within a radius.

    Parameters
    ----------
    src_ra, src_dec : numpy.ndarray
        Source positions, deg. Non-finite positions never match.
    ref_ra, ref_dec : numpy.ndarray
        Reference star positions, deg. Non-finite positions are ignored.
    radius_arcsec : float
        Match radius, arcsec.
    grid : SourceGrid, optional
        ``SourceGrid(src_ra, src_dec, radius_arcsec)``, if already built
        (build it once per frame and reuse it for every survey).

    Returns
    -------
    MatchResult
        Nearest reference star per source, its separation, and whether the
        match is ambiguous (a second reference star within the radius, or
        two sources whose nearest reference star is the same one).

    Notes
    -----
    Exact: every pair closer than the radius (strictly) is found
    (:class:`SourceGrid`). A cone much larger than the image costs only
    the binary searches of its stars.
    """
    if grid is None:
        grid = SourceGrid(src_ra, src_dec, radius_arcsec)
    return grid.match(ref_ra, ref_dec)
