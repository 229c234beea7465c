"""Geometry on the celestial sphere, once: unit vectors, separations, cones, the tangent plane.

Positions are (ra, dec) in degrees throughout; angles are returned in the
unit the function's name says (``_arcsec``, ``_deg``). Used by the
calibration core (matching, the frame's footprint, crowding), the
calibrate service (the cone it asks for) and the catalogue service (the
exact cut of a cone), which must not import one another: so it lives here.

The compiled inner loops (``core/matching.py``'s grid, ``core/footprint.py``'s
footprint) keep their scalar, per-star versions of the unit vector and of
the gnomonic projection next to them: numba's on-disk cache of a kernel is
invalidated by changes to the kernel's own file only, so a compiled helper
imported from here could silently go stale in a cached caller.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

#: arcseconds in one radian
ARCSEC_PER_RAD = 180.0 / np.pi * 3600.0


def radec_to_xyz(ra: ArrayLike, dec: ArrayLike) -> np.ndarray:
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
    ra_rad = np.radians(np.asarray(ra, dtype=float))
    dec_rad = np.radians(np.asarray(dec, dtype=float))
    shape = np.broadcast_shapes(ra_rad.shape, dec_rad.shape)
    out = np.empty(shape + (3,))
    cos_dec = np.cos(dec_rad)
    np.multiply(cos_dec, np.cos(ra_rad), out=out[..., 0])
    np.multiply(cos_dec, np.sin(ra_rad), out=out[..., 1])
    np.sin(dec_rad, out=out[..., 2])
    return out


def arcsec_to_chord(radius_arcsec: float | np.ndarray) -> float | np.ndarray:
    """Chord length on the unit sphere of an angle given in arcsec."""
    return 2.0 * np.sin(np.asarray(radius_arcsec, dtype=float) / ARCSEC_PER_RAD / 2.0)


def chord_to_arcsec(chord: ArrayLike) -> np.ndarray:
    """Angle in arcsec of a chord length on the unit sphere."""
    return 2.0 * np.arcsin(np.clip(np.asarray(chord, dtype=float) / 2.0, 0.0, 1.0)) * ARCSEC_PER_RAD


def angular_separation_arcsec(ra1: np.ndarray, dec1: np.ndarray, ra2: float, dec2: float) -> np.ndarray:
    """Angular distance, arcsec, from positions (ra1, dec1) to one point (ra2, dec2), all in deg."""
    d = radec_to_xyz(ra1, dec1) - radec_to_xyz(ra2, dec2)
    return chord_to_arcsec(np.sqrt((d * d).sum(axis=-1)))


def separation_deg(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    """Great-circle distances of the positions from (ra0, dec0), deg (haversine: exact at any distance)."""
    r, d = np.radians(ra), np.radians(dec)
    r0, d0 = math.radians(ra0), math.radians(dec0)
    h = np.sin((d - d0) / 2.0) ** 2 + np.cos(d) * math.cos(d0) * np.sin((r - r0) / 2.0) ** 2
    return np.degrees(2.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def within_radius(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float, radius_deg: float) -> np.ndarray:
    """Boolean mask of the points within ``radius_deg`` of (ra0, dec0) (haversine)."""
    d = np.radians(dec)
    d0 = math.radians(dec0)
    sdd = np.sin((d - d0) * 0.5)
    sda = np.sin(np.radians(ra - ra0) * 0.5)
    hav = sdd * sdd + np.cos(d) * math.cos(d0) * sda * sda
    lim = math.sin(math.radians(radius_deg) * 0.5) ** 2
    return hav <= lim


def mean_direction(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
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


def enclosing_cone(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float, float]:
    """A cone holding every position: centre (ra, dec) and radius, deg.

    The centre is the direction of the mean unit vector, the radius the
    distance to the farthest position. Positions must be finite.
    """
    ra, dec = np.radians(ra), np.radians(dec)
    xyz = np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    centre = xyz.mean(axis=0)
    centre /= np.linalg.norm(centre)
    radius = np.degrees(np.arccos(np.clip(xyz @ centre, -1, 1)).max())
    ra_c = float(np.degrees(np.arctan2(centre[1], centre[0])) % 360.0)
    dec_c = float(np.degrees(np.arcsin(centre[2])))
    return ra_c, dec_c, float(radius)


def tangent_arcsec(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection about (ra0, dec0), arcsec (x towards east, y north); inputs in deg."""
    ra = np.radians(np.asarray(ra, dtype=float))
    dec = np.radians(np.asarray(dec, dtype=float))
    a0, d0 = math.radians(ra0), math.radians(dec0)
    cos_c = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - a0)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.cos(dec) * np.sin(ra - a0) / cos_c
        y = (np.cos(d0) * np.sin(dec) - np.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cos_c
    return x * ARCSEC_PER_RAD, y * ARCSEC_PER_RAD
