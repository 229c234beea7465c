"""The frame's footprint: tangent-plane projection, convex hull, point-in-hull.

The limiting magnitude counts which reference stars inside the frame's
footprint have a source in the catalogue; the footprint is the convex hull
of the catalogue's sources in the tangent plane. These tests check the
compiled kernels against independent truths (scipy's Qhull, matplotlib's
point-in-polygon, a vector form of the gnomonic projection).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.path import Path
from scipy.spatial import ConvexHull

from services.calibrate.core.footprint import _convex_hull, _inside_hull, _tangent_arcsec

ARCSEC_PER_RAD = 180.0 * 3600.0 / math.pi


def f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def hull(x, y) -> np.ndarray:
    return _convex_hull(f64(x), f64(y))


def signed_area(x, y) -> float:
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def turns(x, y) -> np.ndarray:
    """z of (b - a) x (c - b) at each vertex b of the closed polygon: all > 0 for a strictly convex CCW one."""
    ax, ay = np.roll(x, 1), np.roll(y, 1)
    cx, cy = np.roll(x, -1), np.roll(y, -1)
    return (x - ax) * (cy - y) - (y - ay) * (cx - x)


def assert_same_hull_as_qhull(x, y) -> np.ndarray:
    """The kernel's hull has Qhull's vertices, in Qhull's (counter-clockwise) cyclic order."""
    x, y = f64(x), f64(y)
    h = _convex_hull(x, y)
    ref = ConvexHull(np.column_stack([x, y])).vertices
    assert h.dtype == np.int64
    assert len(set(h.tolist())) == h.size, "a vertex repeated"
    assert set(h.tolist()) == set(ref.tolist())
    start = int(np.flatnonzero(h == ref[0])[0])
    assert np.roll(h, -start).tolist() == ref.tolist(), "same vertices, different cyclic order"
    hx, hy = x[h], y[h]
    assert signed_area(hx, hy) > 0, "not counter-clockwise"
    assert signed_area(hx, hy) == pytest.approx(ConvexHull(np.column_stack([x, y])).volume, rel=1e-12)
    assert np.all(turns(hx, hy) > 0), "a collinear (or reflex) vertex"
    return h


# ---------------------------------------------------------------- convex hull


@pytest.mark.parametrize("n", [5, 50, 2000])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hull_of_uniform_random_points_matches_qhull(seed, n):
    """A wrong hull of the sources is a wrong frame footprint.

    Stars off the frame would be counted as missed, and the limit would be too bright.
    """
    rng = np.random.default_rng(seed)
    # arcsec-sized coordinates off the origin, like a frame's sources in the tangent plane
    x = rng.uniform(-900.0, 1300.0, n)
    y = rng.uniform(-700.0, 1100.0, n)
    assert_same_hull_as_qhull(x, y)


@pytest.mark.parametrize("seed", [0, 1])
def test_hull_of_points_on_a_circle_keeps_every_circle_point(seed):
    """Sources along a round field's edge are all footprint corners; dropping one shrinks the footprint."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 2 * np.pi, 96, endpoint=False) + rng.uniform(0, 0.05)
    r = np.sqrt(rng.uniform(0, 0.98, 1500)) * 600.0
    p = rng.uniform(0, 2 * np.pi, 1500)
    x = np.concatenate([600.0 * np.cos(t), r * np.cos(p)]) + 40.0
    y = np.concatenate([600.0 * np.sin(t), r * np.sin(p)]) - 25.0
    order = rng.permutation(x.size)
    x, y = x[order], y[order]
    h = assert_same_hull_as_qhull(x, y)
    assert h.size == 96
    assert set(h.tolist()) == set(np.flatnonzero(order < 96).tolist())


def test_hull_of_an_integer_grid_is_its_four_corners():
    """Sources on a pixel grid: the footprint is the rectangle, without the collinear edge points as extra corners."""
    gx, gy = np.meshgrid(np.arange(40.0), np.arange(25.0))
    x, y = gx.ravel(), gy.ravel()
    order = np.random.default_rng(5).permutation(x.size)
    x, y = f64(x[order]), f64(y[order])
    h = assert_same_hull_as_qhull(x, y)
    assert sorted(zip(x[h].tolist(), y[h].tolist())) == [(0.0, 0.0), (0.0, 24.0), (39.0, 0.0), (39.0, 24.0)]


def test_hull_of_an_exactly_rotated_grid_is_its_four_corners():
    """A rotated frame (rotation by the 3-4-5 angle keeps the grid's edges exactly collinear): four corners only."""
    i, j = np.meshgrid(np.arange(31.0), np.arange(11.0))
    i, j = i.ravel(), j.ravel()
    x = 3.0 * i - 4.0 * j + 1000.0  # (i, j) rotated by atan2(4, 3) and scaled by 5, exact in float64
    y = 4.0 * i + 3.0 * j - 500.0
    order = np.random.default_rng(7).permutation(x.size)
    x, y = f64(x[order]), f64(y[order])
    h = assert_same_hull_as_qhull(x, y)
    corners = {(1000.0, -500.0), (1090.0, -380.0), (1050.0, -350.0), (960.0, -470.0)}
    assert set(zip(x[h].tolist(), y[h].tolist())) == corners


@pytest.mark.parametrize("angle", [0.1, 0.3, math.pi / 6, 1.0, 2.0])
def test_hull_of_a_rotated_grid_is_the_rectangle_up_to_rounding(angle):
    """A rotated frame's footprint is its rectangle.

    Edge points made non-collinear by rounding may stay, but change nothing.
    """
    gx, gy = np.meshgrid(np.linspace(0.0, 3.0, 31), np.linspace(0.0, 1.0, 11))
    gx, gy = gx.ravel() * 600.0, gy.ravel() * 600.0
    x = f64(gx * math.cos(angle) - gy * math.sin(angle) + 123.4)
    y = f64(gx * math.sin(angle) + gy * math.cos(angle) - 56.7)
    h = _convex_hull(x, y)
    ref = ConvexHull(np.column_stack([x, y])).vertices
    assert ref.size == 4
    hx, hy = x[h], y[h]
    assert set(ref.tolist()) <= set(h.tolist())
    assert signed_area(hx, hy) == pytest.approx(1800.0 * 600.0, rel=1e-12)
    assert np.all(turns(hx, hy) > -1e-12 * 1800.0**2)  # convex up to rounding
    # every vertex is one of the rectangle's corners or on its boundary (to rounding): the same polygon
    on_edge = np.zeros(h.size, bool)
    rx, ry = x[ref], y[ref]
    for k in range(4):
        ax, ay, bx, by = rx[k], ry[k], rx[(k + 1) % 4], ry[(k + 1) % 4]
        dist = np.abs((bx - ax) * (hy - ay) - (by - ay) * (hx - ax)) / math.hypot(bx - ax, by - ay)
        on_edge |= dist < 1e-9
    assert on_edge.all()


def test_hull_with_duplicate_points_matches_qhull_by_position():
    """Catalogues repeat positions (deblended pairs, merged lists); duplicates must not break or bend the footprint."""
    rng = np.random.default_rng(11)
    x0, y0 = rng.uniform(0, 2048, 200), rng.uniform(0, 2048, 200)
    x, y = np.tile(x0, 3), np.tile(y0, 3)  # every point three times, hull vertices included
    order = rng.permutation(x.size)
    x, y = f64(x[order]), f64(y[order])
    h = _convex_hull(x, y)
    ref = ConvexHull(np.column_stack([x0, y0])).vertices
    got = list(zip(x[h].tolist(), y[h].tolist()))
    assert len(set(got)) == len(got), "a position repeated among the vertices"
    assert set(got) == set(zip(x0[ref].tolist(), y0[ref].tolist()))
    assert signed_area(x[h], y[h]) > 0
    assert np.all(turns(x[h], y[h]) > 0)


@pytest.mark.parametrize(
    "x, y",
    [
        pytest.param(np.arange(20.0), 2.0 * np.arange(20.0) + 1.0, id="sloped line"),
        pytest.param(np.full(15, 3.0), np.arange(15.0)[::-1], id="vertical line"),
        pytest.param(np.arange(12.0)[::-1], np.full(12, -7.0), id="horizontal line"),
        pytest.param(np.full(10, 512.25), np.full(10, -3.5), id="all identical"),
        pytest.param(np.array([4.0]), np.array([9.0]), id="one point"),
        pytest.param(np.array([4.0, 4.0, 6.0, 4.0]), np.array([9.0, 9.0, 1.0, 9.0]), id="two distinct points"),
    ],
)
def test_degenerate_point_sets_have_no_hull(x, y):
    """Sources all on a line or at one spot have no area: the caller must see < 3 vertices, not a made-up footprint."""
    h = hull(x, y)
    assert h.size < 3
    assert np.all((h >= 0) & (h < len(x)))


# ---------------------------------------------------------------- point in hull


def boundary_distance(px, py, hx, hy) -> np.ndarray:
    """Distance of each point to the nearest edge of the closed polygon (hx, hy)."""
    d = np.full(px.size, np.inf)
    for k in range(hx.size):
        ax, ay, bx, by = hx[k], hy[k], hx[(k + 1) % hx.size], hy[(k + 1) % hx.size]
        ex, ey = bx - ax, by - ay
        t = np.clip(((px - ax) * ex + (py - ay) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        d = np.minimum(d, np.hypot(px - (ax + t * ex), py - (ay + t * ey)))
    return d


def random_polygon(seed, n, scale=1000.0):
    rng = np.random.default_rng(seed)
    x, y = f64(rng.normal(0, scale, n)), f64(rng.normal(0, 0.6 * scale, n))
    h = _convex_hull(x, y)
    return f64(x[h]), f64(y[h])


@pytest.mark.parametrize("seed, n", [(0, 3), (1, 4), (2, 12), (3, 60), (4, 3000)])
def test_inside_hull_matches_matplotlib_point_in_polygon(seed, n):
    """A star wrongly in or out of the footprint is wrongly counted as detected or missed: a biased limit."""
    hx, hy = random_polygon(seed, n)
    rng = np.random.default_rng(100 + seed)
    pad = 0.2 * (hx.max() - hx.min())
    px = f64(rng.uniform(hx.min() - pad, hx.max() + pad, 20000))
    py = f64(rng.uniform(hy.min() - pad, hy.max() + pad, 20000))
    got = _inside_hull(px, py, hx, hy, 0.0)
    want = Path(np.column_stack([hx, hy])).contains_points(np.column_stack([px, py]))
    clear = boundary_distance(px, py, hx, hy) > 1e-6
    assert clear.sum() > 19000
    assert 0 < want[clear].sum() < clear.sum()  # both sides are exercised
    np.testing.assert_array_equal(got[clear], want[clear])


def test_inside_hull_counts_points_deep_inside_and_near_the_edges():
    """Points in the inscribed circle skip the edge tests; those just inside or outside an edge must still be right."""
    hx, hy = random_polygon(8, 500, scale=1800.0)
    mx, my = 0.5 * (hx + np.roll(hx, -1)), 0.5 * (hy + np.roll(hy, -1))
    ex, ey = np.roll(hx, -1) - hx, np.roll(hy, -1) - hy
    length = np.hypot(ex, ey)
    ox, oy = ey / length, -ex / length  # outward unit normal of a CCW polygon
    cx, cy = hx.mean(), hy.mean()
    for shift, expect in ((-1e-3, True), (1e-3, False), (-50.0, True)):
        got = _inside_hull(f64(mx + shift * ox), f64(my + shift * oy), hx, hy, 0.0)
        assert got.tolist() == [expect] * hx.size, shift
    # towards the centre from each edge midpoint: all inside
    for frac in (0.1, 0.5, 0.99):
        got = _inside_hull(f64(cx + frac * (mx - cx)), f64(cy + frac * (my - cy)), hx, hy, 0.0)
        assert got.all()


@pytest.mark.parametrize("tol", [1e-3, 2.0, 30.0])
def test_inside_hull_tolerance_is_a_distance_outside_the_edges(tol):
    """The footprint is grown by tol: a star just off the frame's edge counts, one clearly off it does not."""
    hx, hy = random_polygon(9, 40)
    mx, my = 0.5 * (hx + np.roll(hx, -1)), 0.5 * (hy + np.roll(hy, -1))
    ex, ey = np.roll(hx, -1) - hx, np.roll(hy, -1) - hy
    length = np.hypot(ex, ey)
    ox, oy = ey / length, -ex / length
    near = _inside_hull(f64(mx + 0.5 * tol * ox), f64(my + 0.5 * tol * oy), hx, hy, tol)
    far = _inside_hull(f64(mx + 2.0 * tol * ox), f64(my + 2.0 * tol * oy), hx, hy, tol)
    assert near.all()
    assert not far.any()
    # the same points without tolerance are outside
    assert not _inside_hull(f64(mx + 0.5 * tol * ox), f64(my + 0.5 * tol * oy), hx, hy, 0.0).any()
    # the vertices themselves are in the footprint
    assert _inside_hull(hx, hy, hx, hy, tol).all()


# ---------------------------------------------------------------- tangent plane


def gnomonic_by_vectors(ra, dec, ra0, dec0):
    """(xi, eta) in arcsec from unit vectors.

    The point's components along east and north over its component along the centre.
    """
    a, d = np.radians(ra), np.radians(dec)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    p = np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)])
    centre = np.array([math.cos(d0) * math.cos(a0), math.cos(d0) * math.sin(a0), math.sin(d0)])
    east = np.array([-math.sin(a0), math.cos(a0), 0.0])
    north = np.array([-math.sin(d0) * math.cos(a0), -math.sin(d0) * math.sin(a0), math.cos(d0)])
    w = centre @ p
    return (east @ p) / w * ARCSEC_PER_RAD, (north @ p) / w * ARCSEC_PER_RAD


def tangent(ra, dec, ra0, dec0):
    return _tangent_arcsec(f64(np.atleast_1d(ra)), f64(np.atleast_1d(dec)), float(ra0), float(dec0))


CENTRES = [(0.0, 0.0), (123.456, 45.0), (301.2, -30.5), (10.0, -75.0), (200.0, 89.9), (359.99, 12.0)]


@pytest.mark.parametrize("ra0, dec0", CENTRES)
def test_tangent_centre_maps_to_origin(ra0, dec0):
    """The field centre at (0, 0): otherwise the whole footprint is shifted against the reference stars."""
    xi, eta = tangent(ra0, dec0, ra0, dec0)
    assert abs(xi[0]) < 1e-9 and abs(eta[0]) < 1e-9


@pytest.mark.parametrize("ra0, dec0", CENTRES)
def test_tangent_north_offset_is_eta(ra0, dec0):
    """100 arcsec north is eta = +100 arcsec, xi = 0: a swapped or flipped axis mirrors the footprint."""
    dd = 100.0 / 3600.0
    xi, eta = tangent(ra0, dec0 + dd, ra0, dec0)
    assert abs(xi[0]) < 1e-6
    # gnomonic: eta = tan(100 arcsec), which is 100 arcsec + 7.8e-6 arcsec
    assert eta[0] == pytest.approx(math.tan(math.radians(dd)) * ARCSEC_PER_RAD, abs=1e-6)
    assert eta[0] == pytest.approx(100.0, abs=1e-4)
    xi, eta = tangent(ra0, dec0 - dd, ra0, dec0)
    assert abs(xi[0]) < 1e-6 and eta[0] == pytest.approx(-100.0, abs=1e-4)


@pytest.mark.parametrize("ra0, dec0", CENTRES)
def test_tangent_east_offset_is_positive_xi(ra0, dec0):
    """RA increasing is xi positive (east): a flipped sign mirrors the footprint east-west."""
    da = 100.0 / 3600.0 / math.cos(math.radians(dec0))  # ~100 arcsec along the parallel
    xi, eta = tangent(ra0 + da, dec0, ra0, dec0)
    xi_ref, eta_ref = gnomonic_by_vectors(np.array([ra0 + da]), np.array([dec0]), ra0, dec0)
    assert xi[0] > 0
    assert xi[0] == pytest.approx(xi_ref[0], abs=1e-6) and eta[0] == pytest.approx(eta_ref[0], abs=1e-6)
    assert xi[0] == pytest.approx(100.0, rel=0.02)  # near the pole the parallel's chord is a bit shorter
    # a parallel curves towards its pole: eta > 0 in the north, < 0 in the south, 0 on the equator
    assert np.sign(eta[0]) == np.sign(dec0) if dec0 != 0 else abs(eta[0]) < 1e-9
    xi_w, eta_w = tangent(ra0 - da, dec0, ra0, dec0)
    assert xi_w[0] == pytest.approx(-xi[0], abs=1e-6) and eta_w[0] == pytest.approx(eta[0], abs=1e-6)


def test_tangent_across_ra_zero():
    """A field on RA 0/360: stars at RA 0.01 are 36 arcsec east of a centre at 359.99, not 360 degrees away."""
    xi, eta = tangent([0.01, 359.98], [0.0, 0.0], 359.99, 0.0)
    assert xi[0] == pytest.approx(math.tan(math.radians(0.02)) * ARCSEC_PER_RAD, abs=1e-6)
    assert xi[0] == pytest.approx(72.0, abs=1e-3)
    assert xi[1] == pytest.approx(-math.tan(math.radians(0.01)) * ARCSEC_PER_RAD, abs=1e-6)
    assert np.all(np.abs(eta) < 1e-6)
    # the same geometry away from the wrap gives the same numbers
    xi_ref, eta_ref = tangent([0.02, 359.99], [0.0, 0.0], 0.0, 0.0)
    np.testing.assert_allclose(xi, xi_ref, atol=1e-6)
    np.testing.assert_allclose(eta, eta_ref, atol=1e-6)
    # and the other way round: centre at 0.01, star at 359.99 is west
    xi, _ = tangent(359.99, 20.0, 0.01, 20.0)
    assert xi[0] < 0


@pytest.mark.parametrize("ra0, dec0", CENTRES)
def test_tangent_matches_vector_gnomonic_over_a_field(ra0, dec0):
    """Every star of a half-degree field lands where the gnomonic projection puts it, to a micro-arcsec."""
    rng = np.random.default_rng(int(ra0 * 10 + dec0 * 100) % 1000)
    r = np.radians(0.5) * np.sqrt(rng.uniform(0, 1, 3000))
    t = rng.uniform(0, 2 * np.pi, 3000)
    # points around the centre built from the vector truth's own basis, then to (ra, dec), wrapped to [0, 360)
    a0, d0 = math.radians(ra0), math.radians(dec0)
    centre = np.array([math.cos(d0) * math.cos(a0), math.cos(d0) * math.sin(a0), math.sin(d0)])
    east = np.array([-math.sin(a0), math.cos(a0), 0.0])
    north = np.array([-math.sin(d0) * math.cos(a0), -math.sin(d0) * math.sin(a0), math.cos(d0)])
    v = np.outer(centre, np.cos(r)) + np.sin(r) * (np.outer(east, np.cos(t)) + np.outer(north, np.sin(t)))
    ra = np.degrees(np.arctan2(v[1], v[0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(v[2], -1, 1)))
    xi, eta = tangent(ra, dec, ra0, dec0)
    xi_ref, eta_ref = gnomonic_by_vectors(ra, dec, ra0, dec0)
    np.testing.assert_allclose(xi, xi_ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(eta, eta_ref, rtol=0, atol=1e-6)
    # and the radius is the projection's: tan of the angular distance
    np.testing.assert_allclose(np.hypot(xi, eta), np.tan(r) * ARCSEC_PER_RAD, rtol=0, atol=1e-6)
