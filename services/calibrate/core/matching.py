"""Positional cross-match of the observer's sources to reference stars.

Positions are turned into unit vectors on the sphere and matched in chord
distance, which is exact at any declination and across RA = 0/360.
Candidate pairs come from a grid on the plane tangent at the frame's centre
(:class:`SourceGrid`, built once per frame and shared by every survey); the
orthogonal projection onto that plane never lengthens a distance, so no
pair within the radius is missed, and every candidate is checked with its
exact 3-D chord. Everything is vectorised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ARCSEC_PER_RAD = 180.0 / np.pi * 3600.0


def radec_to_xyz(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Unit vectors of sky positions.

    Parameters
    ----------
    ra, dec : array_like
        Right ascension and declination, deg.

    Returns
    -------
    numpy.ndarray
        Shape ``(N, 3)``, dimensionless.
    """
    ra = np.radians(np.asarray(ra, dtype=float))
    dec = np.radians(np.asarray(dec, dtype=float))
    shape = np.broadcast_shapes(ra.shape, dec.shape)
    out = np.empty(shape + (3,))
    cos_dec = np.cos(dec)
    np.multiply(cos_dec, np.cos(ra), out=out[..., 0])
    np.multiply(cos_dec, np.sin(ra), out=out[..., 1])
    np.sin(dec, out=out[..., 2])
    return out


def arcsec_to_chord(radius_arcsec: float | np.ndarray) -> float | np.ndarray:
    """Chord length on the unit sphere of an angle given in arcsec."""
    return 2.0 * np.sin(np.asarray(radius_arcsec, dtype=float) / ARCSEC_PER_RAD / 2.0)


def chord_to_arcsec(chord: np.ndarray) -> np.ndarray:
    """Angle in arcsec of a chord length on the unit sphere."""
    return 2.0 * np.arcsin(np.clip(np.asarray(chord, dtype=float) / 2.0, 0.0, 1.0)) * ARCSEC_PER_RAD


def angular_separation_arcsec(ra1: np.ndarray, dec1: np.ndarray, ra2: float, dec2: float) -> np.ndarray:
    """Angular distance, arcsec, from positions (ra1, dec1) to one point (ra2, dec2), all in deg."""
    d = radec_to_xyz(ra1, dec1) - radec_to_xyz(ra2, dec2)
    return chord_to_arcsec(np.sqrt((d * d).sum(axis=-1)))


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
    """

    ref_index: np.ndarray
    separation_arcsec: np.ndarray
    ambiguous: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        """Bool per source: it has a reference star within the radius."""
        return self.ref_index >= 0

    @property
    def good(self) -> np.ndarray:
        """Bool per source: matched and not ambiguous."""
        return (self.ref_index >= 0) & ~self.ambiguous


def _empty(n: int) -> MatchResult:
    return MatchResult(
        ref_index=np.full(n, -1, dtype=np.int64),
        separation_arcsec=np.full(n, np.nan),
        ambiguous=np.zeros(n, dtype=bool),
    )


class SourceGrid:
    """The frame's sources on a grid, built once and matched against every survey.

    Sources with finite positions are projected onto the plane tangent to
    the sphere at their mean direction (orthogonal projection of the unit
    vectors: it never lengthens a chord) and sorted by square cells of the
    match radius' chord. A reference star can then only match sources in the
    3 x 3 cells around its own, found with three binary searches of the
    sorted cell keys; every candidate pair is checked with its exact 3-D
    chord.

    Parameters
    ----------
    src_ra, src_dec : numpy.ndarray
        Source positions, deg; non-finite ones never match.
    radius_arcsec : float
        Match radius, arcsec.
    """

    def __init__(self, src_ra: np.ndarray, src_dec: np.ndarray, radius_arcsec: float) -> None:
        src_ra = np.asarray(src_ra, dtype=float)
        src_dec = np.asarray(src_dec, dtype=float)
        self.n = len(src_ra)
        self.chord = float(arcsec_to_chord(radius_arcsec))
        ok = np.isfinite(src_ra) & np.isfinite(src_dec)
        self.src_index = np.flatnonzero(ok)
        self.empty = self.src_index.size == 0 or not self.chord > 0
        if self.empty:
            return
        xyz = radec_to_xyz(src_ra[self.src_index], src_dec[self.src_index])
        centre = xyz.mean(axis=0)
        norm = float(np.sqrt(centre @ centre))
        centre = centre / norm if norm > 1e-9 else np.array([0.0, 0.0, 1.0])
        # two unit vectors spanning the tangent plane
        x, y, z = (float(t) for t in centre)
        # u = centre x (1, 0, 0) or centre x (0, 1, 0); v = centre x u (np.cross costs more)
        u = np.array([0.0, z, -y]) if abs(x) < 0.9 else np.array([-z, 0.0, x])
        u /= np.sqrt(u @ u)
        v = np.array([y * u[2] - z * u[1], z * u[0] - x * u[2], x * u[1] - y * u[0]])
        self.basis = np.empty((3, 2))
        self.basis[:, 0] = u
        self.basis[:, 1] = v
        # cells of one chord (a little more, against rounding), keys iu * m + iv, all >= 0
        self.cell = max(self.chord * (1.0 + 1e-9), 2e-8)
        self.offset = int(math.ceil(1.0 / self.cell)) + 2
        self.m = 2 * self.offset + 3
        keys = self._keys(xyz)
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.xyz = xyz[order]
        self.index = self.src_index[order]  # source index of each sorted entry

    def _cells(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uv = xyz @ self.basis
        uv /= self.cell
        np.floor(uv, out=uv)
        cells = uv.astype(np.int64)
        cells += self.offset
        return cells[:, 0], cells[:, 1]

    def _keys(self, xyz: np.ndarray) -> np.ndarray:
        iu, iv = self._cells(xyz)
        return iu * self.m + iv

    def pairs(self, ref_xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (sorted source entry, reference row, squared chord) pairs closer than the radius."""
        key = self._keys(ref_xyz)
        # binary searches of sorted queries are several times faster (cache)
        ref_order = np.argsort(key)
        key = key[ref_order]
        los, his = [], []
        for du in (-self.m, 0, self.m):
            base = key + du
            los.append(np.searchsorted(self.keys, base - 1, side="left"))
            his.append(np.searchsorted(self.keys, base + 1, side="right"))
        lo = np.concatenate(los)
        counts = np.concatenate(his) - lo
        total = int(counts.sum())
        if total == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        nref = len(ref_xyz)
        rows = np.flatnonzero(counts)
        c = counts[rows]
        starts = np.cumsum(c) - c
        # entry k of the expansion: lo[row] + (k - starts[row])
        step = np.ones(total, dtype=np.int64)
        step[starts[1:]] = lo[rows[1:]] - (lo[rows[:-1]] + c[:-1]) + 1
        step[0] = lo[rows[0]]
        entry = np.cumsum(step)
        ref_row = ref_order[np.repeat(rows % nref, c)]
        d = self.xyz[entry] - ref_xyz[ref_row]
        d2 = np.einsum("ij,ij->i", d, d)
        inside = d2 < self.chord * self.chord
        return entry[inside], ref_row[inside], d2[inside]

    def match(self, ref_ra: np.ndarray, ref_dec: np.ndarray, ref_xyz: np.ndarray | None = None) -> MatchResult:
        """:func:`match_to_reference` of these sources to one survey's stars."""
        n_src = self.n
        if self.empty or len(ref_ra) == 0:
            return _empty(n_src)
        ref_ra = np.asarray(ref_ra, dtype=float)
        ref_dec = np.asarray(ref_dec, dtype=float)
        ref_ok = np.isfinite(ref_ra) & np.isfinite(ref_dec)
        all_ok = bool(ref_ok.all())
        ref_rows = None if all_ok else np.flatnonzero(ref_ok)
        if ref_xyz is None:
            ref_xyz = radec_to_xyz(ref_ra, ref_dec) if all_ok else radec_to_xyz(ref_ra[ref_rows], ref_dec[ref_rows])
        elif not all_ok:
            ref_xyz = ref_xyz[ref_rows]
        if len(ref_xyz) == 0:
            return _empty(n_src)
        entry, ref_row, d2 = self.pairs(ref_xyz)
        if ref_rows is not None:
            ref_row = ref_rows[ref_row]
        src = self.index[entry]
        ref_index = np.full(n_src, -1, dtype=np.int64)
        separation = np.full(n_src, np.nan)
        ambiguous = np.zeros(n_src, dtype=bool)
        if src.size == 0:
            return MatchResult(ref_index=ref_index, separation_arcsec=separation, ambiguous=ambiguous)
        # nearest reference star of each source: pairs by source, then distance
        order = np.lexsort((d2, src))
        src_s = src[order]
        first = np.ones(src_s.size, dtype=bool)
        first[1:] = src_s[1:] != src_s[:-1]
        near_src = src_s[first]
        near_ref = ref_row[order][first]
        ref_index[near_src] = near_ref
        separation[near_src] = chord_to_arcsec(np.sqrt(d2[order][first]))
        # a second reference star within the radius of the same source
        n_within = np.diff(np.append(np.flatnonzero(first), src_s.size))
        # two (or more) sources whose nearest reference star is the same one
        counts = np.bincount(near_ref, minlength=len(ref_ra))
        ambiguous[near_src] = (n_within > 1) | (counts[near_ref] > 1)
        return MatchResult(ref_index=ref_index, separation_arcsec=separation, ambiguous=ambiguous)


def match_to_reference(
    src_ra: np.ndarray,
    src_dec: np.ndarray,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    radius_arcsec: float,
    *,
    grid: SourceGrid | None = None,
    ref_xyz: np.ndarray | None = None,
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
    ref_xyz : numpy.ndarray, optional
        ``radec_to_xyz(ref_ra, ref_dec)``, if already computed.

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
    return grid.match(ref_ra, ref_dec, ref_xyz)
