"""The images bench's truth for the forced limit: a point source's loss in the aperture and annulus."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.bench_images import point_source_loss, true_aperture_limit
from services.photometry.imaging.aperture import aperture_for, measure
from tools.simfield.image import add_stamp, moffat_stamp


def truth_for(fwhm_px: float, beta: float = 3.5) -> dict:
    """The parts of a simulated field's truth.json the limit's truth reads (1 arcsec/px)."""
    return {
        "fwhm_arcsec": fwhm_px,
        "field": {"pixel_scale_arcsec": 1.0},
        "camera": {"psf_beta": beta, "gain": 1.6, "read_noise": 8.0},
        "exptime": 60.0,
        "sky_mag_arcsec2": 20.5,
        "zp_1e_per_s": 22.0,
        "zeropoint": 25.0,
        "colour_term": 0.05,
    }


@pytest.mark.parametrize("fwhm_px", [1.8, 3.0, 4.5])
def test_the_loss_is_what_the_aperture_measures_on_a_rendered_star(fwhm_px: float) -> None:
    # a noiseless star of total flux 1e5 ADU rendered as the simulator renders it, measured by the
    # server's own aperture (sep, annulus mean subtracted): its magnitude deficit is the bench's loss
    aperture = aperture_for(fwhm_px)
    image = np.zeros((201, 201))
    add_stamp(image, 1e5 * moffat_stamp(0.0, 0.0, fwhm_px, 3.5, 60), 101.0, 101.0)
    pixels = image.astype(np.float32)
    flux = measure(pixels, np.array([100.0]), np.array([100.0]), aperture, np.ones_like(pixels), None).flux[0]
    measured_loss = -2.5 * math.log10(flux / image.sum())
    loss = point_source_loss(truth_for(fwhm_px), aperture.radius, (aperture.annulus_in, aperture.annulus_out))
    assert 0.05 < loss < 0.5
    assert loss == pytest.approx(measured_loss, abs=0.01)


def test_the_limit_is_fainter_with_a_bigger_zero_point_and_brighter_with_more_sky() -> None:
    aperture = aperture_for(2.5)
    annulus = (aperture.annulus_in, aperture.annulus_out)
    base = true_aperture_limit(truth_for(2.5), aperture.radius, annulus, 0.5)
    assert true_aperture_limit({**truth_for(2.5), "zeropoint": 26.0}, aperture.radius, annulus, 0.5) == pytest.approx(
        base + 1.0
    )
    brighter_sky = {**truth_for(2.5), "sky_mag_arcsec2": 18.0}
    assert true_aperture_limit(brighter_sky, aperture.radius, annulus, 0.5) < base - 0.5
