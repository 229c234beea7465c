"""The bench's colour floor: the transient colours it averages over are the ones the simulator draws.

``bench.error_budget.colour_floor`` claims no single-frame calibrator can beat it in the 95th
percentile because it knows the simulator's own distribution of transient colours. That claim holds
only while :func:`bench.error_budget.transient_colours` is that distribution: these tests draw the
simulator's transients (``tools.simfield.field.make_transient``) and compare.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.error_budget import transient_colours
from tools.photsystem import get_instrument_band
from tools.simfield.field import make_transient
from tools.simfield.sky import get_sky_type


def drawn_colours(sky: str, n: int = 4000) -> np.ndarray:
    """``B-V`` of ``n`` simulated transients on ``sky``, the field's reddening drawn as a field draws it."""
    rng = np.random.default_rng(15)
    band = get_instrument_band("V")
    reddening_range = get_sky_type(sky).reddening
    out = np.empty(n)
    for k in range(n):
        reddening = 0.0 if reddening_range is None else float(rng.uniform(*reddening_range))
        out[k] = float(make_transient(rng, band, 18.0, False, 16.0, reddening).BV.iloc[0])
    return out


@pytest.mark.parametrize("sky", ["sparse", "dense"])
def test_the_floor_averages_over_the_colours_the_simulator_draws(sky):
    reddening = get_sky_type(sky).reddening
    assumed = transient_colours({"sky": {"reddening_ebv": None if reddening is None else list(reddening)}})
    drawn = drawn_colours(sky)
    # the same distribution: every decile within 0.03 mag (4,000 draws: sampling noise ~0.01)
    deciles = np.linspace(0.1, 0.9, 9)
    assert np.abs(np.quantile(assumed, deciles) - np.quantile(drawn, deciles)).max() < 0.03
    assert assumed.min() >= drawn.min() - 0.02 and assumed.max() <= drawn.max() + 0.02


def test_a_sky_without_reddening_is_the_intrinsic_range_alone():
    colours = transient_colours({})
    assert colours.min() > 0.2 and colours.max() < 1.0 and abs(float(np.mean(colours)) - 0.6) < 1e-9
