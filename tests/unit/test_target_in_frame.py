"""The alert must be in the frame: a frame of another part of the sky is refused, never given a limit.

``require_target_in_frame`` is pure geometry on the usable sources (their convex
hull in the tangent plane, widened by a margin); ``calibrate_frame`` calls it
before any fit. These tests build frames whose truth is known: the hull's edge,
the RA 0/360 wrap, the poles, a hole in the sources, a sparse frame.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import ArrayLike

from services.calibrate.core import FitSettings, calibrate_frame
from services.calibrate.core.footprint import frame_footprint, require_target_in_frame
from shared.arrays import SourceTable
from shared.errors import CalibrationFailed
from tools.datasets import make_field

MARGIN = FitSettings().target_margin_arcsec


def offset(ra0: float, dec0: float, east_arcsec: ArrayLike, north_arcsec: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Sky positions at tangent-plane offsets (xi, eta) about (ra0, dec0): the inverse gnomonic projection."""
    xi = np.radians(np.asarray(east_arcsec, dtype=float) / 3600.0)
    eta = np.radians(np.asarray(north_arcsec, dtype=float) / 3600.0)
    d0, a0 = math.radians(dec0), math.radians(ra0)
    denom = math.cos(d0) - eta * math.sin(d0)
    ra = a0 + np.arctan2(xi, denom)
    dec = np.arctan2(math.sin(d0) + eta * math.cos(d0), np.hypot(xi, denom))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def square_frame(ra0: float, dec0: float, half_arcsec: float = 540.0, n: int = 900, seed: int = 1) -> SourceTable:
    """``n`` sources uniform in a square of side 2 * half_arcsec about (ra0, dec0), plus its four corners."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(-half_arcsec, half_arcsec, n), [-half_arcsec, half_arcsec] * 2])
    y = np.concatenate([rng.uniform(-half_arcsec, half_arcsec, n), [-half_arcsec] * 2 + [half_arcsec] * 2])
    ra, dec = offset(ra0, dec0, x, y)
    return SourceTable.from_columns(ra, dec, np.full(ra.size, 15.0), np.full(ra.size, 0.02))


def check(sources: SourceTable, ra: float, dec: float, margin: float = MARGIN) -> str | None:
    """None if the position is accepted, else the refusal's message."""
    try:
        require_target_in_frame(sources, np.ones(len(sources), dtype=bool), ra, dec, margin)
    except CalibrationFailed as exc:
        assert exc.code == "target_outside_frame" and exc.http_status == 400
        return exc.message
    return None


def test_a_frame_of_another_part_of_the_sky_is_refused_before_any_fit_and_says_how_far():
    rng = np.random.default_rng(70)
    fld = make_field(rng)
    # on main this answered "not detected" with the frame's limit (and stored it without dryRun)
    with pytest.raises(CalibrationFailed) as e:
        calibrate_frame(fld.sources, fld.references, (fld.target_ra + 100.0) % 360.0, fld.target_dec, 2.0)
    assert e.value.code == "target_outside_frame"
    assert e.value.http_status == 400
    message = e.value.message
    assert message.startswith("the event is outside this frame: ")
    far = float(message.split(": ", 1)[1].split(" deg", 1)[0])
    assert 90.0 < far < 100.0  # 100 deg of RA at Dec 20
    assert "frame radius 0.1" in message and "check EventID" in message


def test_the_alert_in_the_frame_still_calibrates():
    fld = make_field(np.random.default_rng(71))
    cal = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    assert cal.target.detected


@pytest.mark.parametrize("east", [0.0, 300.0, -500.0])
def test_inside_the_hull_is_accepted(east):
    ra, dec = offset(150.0, 20.0, [east], [200.0])
    assert check(square_frame(150.0, 20.0), float(ra[0]), float(dec[0])) is None


@pytest.mark.parametrize(
    ("beyond", "accepted"), [(10.0, True), (MARGIN - 5.0, True), (MARGIN + 30.0, False), (1800.0, False)]
)
def test_just_beyond_the_last_source_is_in_the_image_farther_is_not(beyond, accepted):
    frame = square_frame(150.0, 20.0)
    for east, north in [(540.0 + beyond, 0.0), (0.0, -540.0 - beyond), (-540.0 - beyond, 100.0)]:
        ra, dec = offset(150.0, 20.0, [east], [north])
        assert (check(frame, float(ra[0]), float(dec[0])) is None) is accepted, (east, north)


def test_a_hole_in_the_sources_at_the_target_is_still_the_frame():
    """No source within 3 arcmin of the alert (a bright star's halo, a masked column): still in the frame."""
    fld = make_field(np.random.default_rng(72), target_v=None)
    src = fld.sources
    cosd = math.cos(math.radians(fld.target_dec))
    far = np.hypot((np.asarray(src.ra) - fld.target_ra) * cosd, np.asarray(src.dec) - fld.target_dec) > 3.0 / 60
    holed = SourceTable.from_columns(
        np.asarray(src.ra)[far], np.asarray(src.dec)[far], np.asarray(src.mag)[far], np.asarray(src.mag_err)[far]
    )
    cal = calibrate_frame(holed, fld.references, fld.target_ra, fld.target_dec, 2.0)
    assert cal.target.detected is False and cal.target.limit_mag is not None


@pytest.mark.parametrize("ra0", [0.0, 359.98, 0.02])
def test_a_frame_across_ra_0_360(ra0):
    """Sources on both sides of RA 0: the centre is there, not at RA 180 (the median of the RAs)."""
    frame = square_frame(ra0, 10.0)
    ras = np.asarray(frame.ra)
    assert (ras > 359.0).any() and (ras < 1.0).any()
    for east in (-400.0, 0.0, 400.0):
        ra, dec = offset(ra0, 10.0, [east], [-100.0])
        assert check(frame, float(ra[0]), float(dec[0])) is None
    assert check(frame, (ra0 + 180.0) % 360.0, 10.0) is not None
    assert check(frame, (ra0 + 1.0) % 360.0, 10.0) is not None
    fp = frame_footprint(frame.ra, frame.dec)
    assert min(abs(fp.ra0 - ra0), 360.0 - abs(fp.ra0 - ra0)) < 0.01


@pytest.mark.parametrize("dec0", [90.0, -90.0, 89.9, -89.95])
def test_a_frame_at_a_pole(dec0):
    """About a pole every RA is near: the frame's sources span all RAs and the event at any RA is in it."""
    frame = square_frame(37.0, dec0)
    sign = 1.0 if dec0 > 0 else -1.0
    pole_ra = np.linspace(0.0, 359.0, 7)
    for ra in pole_ra:
        assert check(frame, float(ra), sign * 89.995) is None
    assert check(frame, 100.0, sign * 88.0) is not None
    assert check(frame, 100.0, -sign * 89.99) is not None


def test_a_sparse_frame_allows_its_source_spacing():
    """40 sources over 0.3 deg: the image's edge may be one source spacing (~170") past the last source."""
    frame = square_frame(150.0, 20.0, half_arcsec=540.0, n=36, seed=3)
    spacing = frame_footprint(frame.ra, frame.dec).spacing_arcsec
    assert spacing > 2 * MARGIN
    ra, dec = offset(150.0, 20.0, [540.0 + 0.8 * spacing], [0.0])
    assert check(frame, float(ra[0]), float(dec[0])) is None
    ra, dec = offset(150.0, 20.0, [540.0 + 1.5 * spacing], [0.0])
    assert check(frame, float(ra[0]), float(dec[0])) is not None


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_few_sources_are_a_wide_circle(n):
    ra, dec = offset(150.0, 20.0, [0.0, 100.0, 200.0][:n], [0.0, 0.0, 5.0][:n])
    frame = SourceTable.from_columns(ra, dec, np.full(n, 15.0), np.full(n, 0.02))
    near_ra, near_dec = offset(150.0, 20.0, [50.0], [30.0])
    assert check(frame, float(near_ra[0]), float(near_dec[0])) is None
    assert check(frame, 150.5, 20.0) is not None


def test_three_sources_along_the_bottom_edge_do_not_refuse_the_middle_of_the_image():
    """A catalogue cut to its first rows (the bottom of the image): too few stars, not another field."""
    ra, dec = offset(150.0, 20.0, [-500.0, 0.0, 480.0], [-540.0, -530.0, -535.0])
    frame = SourceTable.from_columns(ra, dec, np.full(3, 15.0), np.full(3, 0.02))
    middle_ra, middle_dec = offset(150.0, 20.0, [30.0], [0.0])
    assert check(frame, float(middle_ra[0]), float(middle_dec[0])) is None


def test_the_margin_is_a_setting():
    frame = square_frame(150.0, 20.0)
    ra, dec = offset(150.0, 20.0, [540.0 + 40.0], [0.0])
    assert check(frame, float(ra[0]), float(dec[0]), margin=60.0) is None
    assert check(frame, float(ra[0]), float(dec[0]), margin=5.0) is not None
    with pytest.raises(ValueError):
        FitSettings(target_margin_arcsec=-1.0)
