"""Does the frame's WCS put its stars on the reference stars? The fraction that lands on one."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: the brightest sources looked at: bright stars are in every reference survey
CHECK_BRIGHTEST = 100


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def matched_fraction(
    src_ra: np.ndarray,
    src_dec: np.ndarray,
    src_mag: np.ndarray,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    radius_arcsec: float,
    brightest: int = CHECK_BRIGHTEST,
) -> tuple[float, int]:
    """(fraction, sources looked at): of the ``brightest`` sources (by ``src_mag``, mag), how many have a
    reference star within ``radius_arcsec``. Positions in deg."""
    ok = np.isfinite(src_ra) & np.isfinite(src_dec) & np.isfinite(src_mag)
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(src_mag[idx])][:brightest]
    ref_ok = np.isfinite(ref_ra) & np.isfinite(ref_dec)
    if idx.size == 0 or not ref_ok.any():
        return 0.0, int(idx.size)
    tree = cKDTree(_unit(ref_ra[ref_ok], ref_dec[ref_ok]))
    chord = 2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)
    distance, _ = tree.query(_unit(src_ra[idx], src_dec[idx]), k=1, distance_upper_bound=chord)
    return float(np.isfinite(distance).mean()), int(idx.size)
