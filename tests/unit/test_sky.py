"""shared/sky.py against astropy, at ordinary places and at the awkward ones (RA 0/360, the poles)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

from shared import sky

#: (ra, dec) deg: an ordinary field, across RA 0/360, near each pole, on the equator
POINTS = [(150.0, 20.0), (359.9995, -0.2), (0.0004, 0.1), (12.0, 89.99), (200.0, -89.95), (270.0, 0.0)]
RNG = np.random.default_rng(17)


def _near(ra0, dec0, n=20, spread_deg=0.3):
    ra = (ra0 + RNG.normal(0, spread_deg, n) / max(np.cos(np.radians(dec0)), 0.05)) % 360.0
    dec = np.clip(dec0 + RNG.normal(0, spread_deg, n), -89.999, 89.999)
    return ra, dec


@pytest.mark.parametrize(("ra0", "dec0"), POINTS)
def test_separations_agree_with_astropy(ra0, dec0):
    ra, dec = _near(ra0, dec0)
    expected = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
    np.testing.assert_allclose(sky.angular_separation_arcsec(ra, dec, ra0, dec0), expected * 3600, atol=1e-6)
    np.testing.assert_allclose(sky.separation_deg(ra, dec, ra0, dec0), expected, atol=1e-10)


@pytest.mark.parametrize(("ra0", "dec0"), POINTS)
def test_unit_vectors_agree_with_astropy(ra0, dec0):
    ra, dec = _near(ra0, dec0)
    expected = SkyCoord(ra * u.deg, dec * u.deg).cartesian.xyz.value.T
    np.testing.assert_allclose(sky.radec_to_xyz(ra, dec), expected, atol=1e-14)


def test_chords_and_angles_invert():
    angles = np.array([0.0, 0.1, 2.0, 60.0, 3600.0, 648000.0])
    np.testing.assert_allclose(sky.chord_to_arcsec(sky.arcsec_to_chord(angles)), angles, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("ra0", "dec0"), POINTS)
def test_within_radius_is_astropys_cut(ra0, dec0):
    ra, dec = _near(ra0, dec0, n=200)
    separation = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg
    radius = float(np.median(separation))
    clear = np.abs(separation - radius) > 1e-9  # a point exactly on the edge may go either way
    mask = sky.within_radius(ra, dec, ra0, dec0, radius)
    assert (mask[clear] == (separation[clear] <= radius)).all() and 0 < mask.sum() < len(mask)


@pytest.mark.parametrize(("ra0", "dec0"), POINTS)
def test_the_enclosing_cone_holds_every_point_and_no_more(ra0, dec0):
    ra, dec = _near(ra0, dec0)
    ra_c, dec_c, radius = sky.enclosing_cone(ra, dec)
    separation = SkyCoord(ra * u.deg, dec * u.deg).separation(SkyCoord(ra_c * u.deg, dec_c * u.deg)).deg
    assert separation.max() == pytest.approx(radius, abs=1e-9)
    # the centre is the mean direction, on the right side of RA 0/360 and near the points
    assert (ra_c, dec_c) == pytest.approx(sky.mean_direction(ra, dec), abs=1e-9)
    assert SkyCoord(ra_c * u.deg, dec_c * u.deg).separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).deg < 1.0


@pytest.mark.parametrize(("ra0", "dec0"), POINTS)
def test_the_tangent_plane_is_astropys_gnomonic_projection(ra0, dec0):
    ra, dec = _near(ra0, dec0, spread_deg=0.1)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra0, dec0]
    wcs.wcs.crpix = [1.0, 1.0]  # FITS pixels count from 1: crval lands on 0-based pixel (0, 0)
    wcs.wcs.cdelt = [-1.0 / 3600, 1.0 / 3600]  # one pixel per arcsec, x towards the east
    px, py = wcs.all_world2pix(ra, dec, 0)
    x, y = sky.tangent_arcsec(ra, dec, ra0, dec0)
    np.testing.assert_allclose(x, -px, atol=1e-6)
    np.testing.assert_allclose(y, py, atol=1e-6)
