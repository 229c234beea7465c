"""Positional cross-match of the observer's sources to reference stars.

Positions are turned into unit vectors on the sphere and matched with a
KD-tree (:class:`scipy.spatial.cKDTree`) in chord distance, which is exact
at any declination and across RA = 0/360. Everything is vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

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
    cos_dec = np.cos(dec)
    return np.stack((cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)), axis=-1)


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


def match_to_reference(
    src_ra: np.ndarray,
    src_dec: np.ndarray,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    radius_arcsec: float,
    *,
    src_xyz: np.ndarray | None = None,
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
    src_xyz : numpy.ndarray, optional
        ``radec_to_xyz`` of the sources with finite positions, if already
        computed (saves recomputing it for every survey).

    Returns
    -------
    MatchResult
        Nearest reference star per source, its separation, and whether the
        match is ambiguous (a second reference star within the radius, or
        two sources whose nearest reference star is the same one).

    Notes
    -----
    Reference stars farther from the frame's centre than its farthest
    source plus the radius are dropped before the tree is built, so a cone
    much larger than the image costs little. One tree per survey: call this
    once per survey and reuse the result for all of its bands.
    """
    src_ra = np.asarray(src_ra, dtype=float)
    src_dec = np.asarray(src_dec, dtype=float)
    n_src = len(src_ra)
    if n_src == 0 or len(ref_ra) == 0:
        return _empty(n_src)
    chord_r = float(arcsec_to_chord(radius_arcsec))

    src_ok = np.isfinite(src_ra) & np.isfinite(src_dec)
    if not src_ok.any():
        return _empty(n_src)
    if src_xyz is None:
        src_xyz = radec_to_xyz(src_ra[src_ok], src_dec[src_ok])
    ref_ra = np.asarray(ref_ra, dtype=float)
    ref_dec = np.asarray(ref_dec, dtype=float)
    ref_xyz_all = radec_to_xyz(ref_ra, ref_dec)

    # keep reference stars that can possibly match: within the frame's cap
    centre = src_xyz.mean(axis=0)
    norm = np.linalg.norm(centre)
    ref_keep = np.isfinite(ref_ra) & np.isfinite(ref_dec)
    if norm > 1e-9:
        centre /= norm
        cap = float(np.min(src_xyz @ centre))  # cos of the farthest source
        cap_angle = np.arccos(np.clip(cap, -1.0, 1.0)) + 2.0 * np.arcsin(chord_r / 2.0)
        if cap_angle < np.pi:
            ref_keep &= (ref_xyz_all @ centre) >= np.cos(cap_angle) - 1e-12
    ref_idx_kept = np.flatnonzero(ref_keep)
    if ref_idx_kept.size == 0:
        return _empty(n_src)

    tree = cKDTree(ref_xyz_all[ref_idx_kept], balanced_tree=False)
    k = 2 if ref_idx_kept.size >= 2 else 1
    dist, idx = tree.query(src_xyz, k=k, distance_upper_bound=chord_r)
    if k == 1:
        dist = dist[:, None]
        idx = idx[:, None]
    first_ok = np.isfinite(dist[:, 0])
    second_ok = np.isfinite(dist[:, 1]) if k == 2 else np.zeros_like(first_ok)

    nearest = np.full(src_xyz.shape[0], -1, dtype=np.int64)
    nearest[first_ok] = ref_idx_kept[idx[first_ok, 0]]

    # two (or more) sources whose nearest reference star is the same one
    counts = np.bincount(nearest[first_ok], minlength=len(ref_ra))
    shared = np.zeros_like(first_ok)
    shared[first_ok] = counts[nearest[first_ok]] > 1

    ref_index = np.full(n_src, -1, dtype=np.int64)
    ref_index[src_ok] = nearest
    separation = np.full(n_src, np.nan)
    separation[np.flatnonzero(src_ok)[first_ok]] = chord_to_arcsec(dist[first_ok, 0])
    ambiguous = np.zeros(n_src, dtype=bool)
    ambiguous[src_ok] = first_ok & (second_ok | shared)
    return MatchResult(ref_index=ref_index, separation_arcsec=separation, ambiguous=ambiguous)
