"""The target's cut-out: a PNG of the asked size, the star at its centre, the frame's edge, bad positions refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.photometry.imaging.cutout import render_cutout

TITLE_PX = 12


def frame_with_star(x: float, y: float, shape: tuple[int, int] = (200, 300), flux: float = 5e4) -> np.ndarray:
    """Sky-subtracted noise (sigma 5 ADU) with one Gaussian star (FWHM 3 px) at (x, y), 0-based px."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    sigma = 3.0 / 2.3548
    star = flux / (2 * np.pi * sigma**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return (rng.normal(0.0, 5.0, shape) + star).astype(np.float32)


def decode(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB")).astype(int)


def brightest_grey(rgb: np.ndarray) -> tuple[float, float]:
    """(row, column) of the centroid of the brightest grey pixels of the image area (the star's core,
    which the stretch may show as several white pixels), not of the coloured circles."""
    area = rgb[TITLE_PX:]
    grey = (np.ptp(area, axis=2) < 8).astype(float) * area.sum(axis=2)
    rows, cols = np.nonzero(grey >= 0.95 * grey.max())
    return float(rows.mean()), float(cols.mean())


def test_a_png_of_the_asked_size_with_the_star_at_its_centre() -> None:
    data = frame_with_star(150.3, 90.6)
    rgb = decode(render_cutout(data, 150.3, 90.6, 4.0, (8.0, 14.0), "AT2026abc r' 17.21", size_px=96))
    assert rgb.shape == (96 + TITLE_PX, 96, 3)
    row, col = brightest_grey(rgb)
    assert abs(col - 48) <= 3 and abs(row - 48) <= 3


def test_the_image_is_north_up_as_the_array_is_row_up() -> None:
    # a star 10 px above the target (larger row) appears above the centre of the PNG (smaller PNG row)
    data = frame_with_star(150.0, 100.0)
    rgb = decode(render_cutout(data, 150.0, 90.0, 3.0, (6.0, 10.0), "above", size_px=64))
    row, col = brightest_grey(rgb)
    assert row < 32 - 10 and abs(col - 32) <= 3


def test_the_aperture_and_annulus_are_drawn() -> None:
    data = frame_with_star(150.0, 100.0)
    rgb = decode(render_cutout(data, 150.0, 100.0, 4.0, (8.0, 14.0), "", size_px=128))
    reds = (rgb[..., 0] > 200) & (rgb[..., 1] < 120) & (rgb[..., 2] < 120)
    blues = (rgb[..., 2] > 200) & (rgb[..., 0] < 120)
    assert reds.sum() > 20 and blues.sum() > 40


@pytest.mark.parametrize(("x", "y"), [(1.0, 1.0), (298.6, 199.4), (0.0, 100.0), (299.0, 0.0)])
def test_a_target_at_the_edge_gives_a_cutout_centred_on_it(x: float, y: float) -> None:
    data = frame_with_star(x, y)
    rgb = decode(render_cutout(data, x, y, 3.0, (6.0, 10.0), "edge", size_px=64))
    assert rgb.shape == (64 + TITLE_PX, 64, 3)
    row, col = brightest_grey(rgb)
    assert abs(col - 32) <= 4 and abs(row - 32) <= 4


@pytest.mark.parametrize(("x", "y"), [(-3.0, 50.0), (300.0, 50.0), (100.0, 250.0), (float("nan"), 10.0)])
def test_a_target_off_the_frame_is_refused(x: float, y: float) -> None:
    with pytest.raises(ValueError, match="off the"):
        render_cutout(frame_with_star(50.0, 50.0), x, y, 3.0, (6.0, 10.0), "off")


def test_nonsense_radii_and_arrays_are_refused() -> None:
    data = frame_with_star(50.0, 50.0)
    with pytest.raises(ValueError, match="increasing"):
        render_cutout(data, 50.0, 50.0, 5.0, (4.0, 10.0), "inner inside the aperture")
    with pytest.raises(ValueError, match="2-D"):
        render_cutout(np.zeros((3, 4, 5)), 1.0, 1.0, 1.0, (2.0, 3.0), "cube")


def test_a_blank_frame_still_renders() -> None:
    # all zeros (no noise): the stretch must not divide by zero
    rgb = decode(render_cutout(np.zeros((50, 50)), 25.0, 25.0, 3.0, (6.0, 10.0), "blank"))
    assert rgb.shape == (64 + TITLE_PX, 64, 3)
