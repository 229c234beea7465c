"""The bench's calibration-alone error: the isolated-star aperture loss it is measured against."""

from __future__ import annotations

import math

import numpy as np

from bench.bench_accuracy import calibration_alone
from tools.fieldio import isolated_aperture_loss_of

FWHM_PX = 4.0


def frame(extra_neighbour: tuple[float, float, float] | None = None):
    """Three bright stars, MAG_AUTO 0.010 mag fainter than true except a blended one (0.050 brighter)."""
    stars_x = np.array([100.0, 300.0, 500.0])
    stars_y = np.array([100.0, 100.0, 100.0])
    stars_m = np.array([-10.0, -10.5, -11.0])
    cat_mag = stars_m + np.array([0.010, 0.010, -0.050])
    nx, ny, nm = list(stars_x), list(stars_y), list(stars_m)
    # a neighbour of the third star, 2 FWHM away and 1 mag fainter: its light is in that star's MAG_AUTO
    nx.append(500.0 + 2 * FWHM_PX)
    ny.append(100.0)
    nm.append(-10.0)
    if extra_neighbour is not None:
        nx.append(extra_neighbour[0])
        ny.append(extra_neighbour[1])
        nm.append(extra_neighbour[2])
    return (
        stars_x,
        stars_y,
        stars_m,
        stars_x + 0.2,
        stars_y - 0.1,
        cat_mag,
        np.zeros(3, int),
        np.array(nx),
        np.array(ny),
        np.array(nm),
        FWHM_PX,
    )


def test_the_loss_is_that_of_isolated_stars_only():
    loss, n = isolated_aperture_loss_of(*frame())
    assert n == 2
    assert math.isclose(loss, 0.010, abs_tol=1e-9)


def test_a_neighbour_too_faint_to_matter_leaves_a_star_isolated():
    # 6 mag fainter than the first star (0.4 % of its light), 1 FWHM away
    loss, n = isolated_aperture_loss_of(*frame(extra_neighbour=(100.0 + FWHM_PX, 100.0, -4.0)))
    assert n == 2
    # 3 mag fainter (6 %): the first star is no longer isolated
    loss, n = isolated_aperture_loss_of(*frame(extra_neighbour=(100.0 + FWHM_PX, 100.0, -7.0)))
    assert n == 1


def test_flagged_or_unmatched_stars_do_not_count():
    args = list(frame())
    args[6] = np.array([2, 0, 0])  # the first star's catalogue source is flagged
    args[3] = args[3] + np.array([0.0, 3.0, 0.0])  # the second's is 3 px off
    loss, n = isolated_aperture_loss_of(*args)
    assert n == 0 and math.isnan(loss)


def test_the_calibrators_aperture_loss_is_not_counted_as_calibration_error():
    # every star loses 10 mmag; the zero point absorbed the calibrators' loss and is otherwise right,
    # the target has 7 mmag of photon noise on top of its own loss
    true_inst, loss = -10.0, 0.010
    inst = true_inst + loss + 0.007
    raw = 0.007  # calibrated - true: the loss cancelled through the zero point, the noise did not
    assert math.isclose(calibration_alone(raw, inst, true_inst, loss), 0.0, abs_tol=1e-12)
    # a zero point 5 mmag off is the calibration's error, whole
    assert math.isclose(calibration_alone(raw + 0.005, inst, true_inst, loss), 0.005, abs_tol=1e-12)
