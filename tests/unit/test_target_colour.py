"""The target's colour: its counterpart's in the chosen survey when it has one, else the calibrators' median."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.calibrate.core import FitSettings, calibrate_frame, fit_zeropoint
from services.calibrate.core.target import (
    TargetColour,
    calibrated_error,
    choose_colour,
    counterpart_colour,
    usable_colour,
)
from shared.contracts.messages import SurveyStars
from tools.datasets import make_field, true_bands

RA, DEC = 150.0, 20.0


def _stars(offsets_arcsec: list[float], b: list[float], v: list[float], err: float = 0.02) -> SurveyStars:
    """APASS stars east of (RA, DEC) by ``offsets_arcsec``, with B and V (NaN: missing)."""
    ra = RA + np.asarray(offsets_arcsec) / 3600.0 / math.cos(math.radians(DEC))
    n = len(offsets_arcsec)
    return SurveyStars(
        survey="APASS",
        ra=ra,
        dec=np.full(n, DEC),
        mags={"B": np.asarray(b, float), "V": np.asarray(v, float)},
        errs={"B": np.full(n, err), "V": np.full(n, err)},
    )


def test_the_counterpart_at_the_alert_gives_its_colour_with_the_event_allowance():
    s = FitSettings()
    got = counterpart_colour(_stars([0.2, 5.0], [17.3, 15.0], [16.5, 14.0]), "APASS", ("B", "V"), RA, DEC, s)
    assert got is not None
    assert got.value == pytest.approx(0.8)
    # catalogue errors of B and V, and what the event may change the colour by, in quadrature
    assert got.err == pytest.approx(math.sqrt(0.02**2 + 0.02**2 + s.counterpart_colour_err**2))
    assert "APASS counterpart at 0.20 arcsec" in got.source


@pytest.mark.parametrize(
    ("offsets", "b", "v", "why"),
    [
        ([0.8], [17.3], [16.5], "farther than counterpart_radius_arcsec"),
        ([0.1, -0.3], [17.3, 18.0], [16.5, 17.0], "two stars as close: ambiguous"),
        ([0.1], [math.nan], [16.5], "no B: no colour"),
    ],
)
def test_no_counterpart_colour(offsets, b, v, why):
    assert counterpart_colour(_stars(offsets, b, v), "APASS", ("B", "V"), RA, DEC, FitSettings()) is None, why


def test_counterpart_search_can_be_turned_off():
    stars = _stars([0.1], [17.3], [16.5])
    off = FitSettings(counterpart_radius_arcsec=0.0)
    assert counterpart_colour(stars, "APASS", ("B", "V"), RA, DEC, off) is None
    assert counterpart_colour(None, "APASS", ("B", "V"), RA, DEC, FitSettings()) is None


def _fit(ct: float = 0.1, n: int = 200, seed: int = 3):
    rng = np.random.default_rng(seed)
    colour = rng.normal(0.7, 0.3, n)
    inst = rng.uniform(10.0, 15.0, n)
    ref = inst + 2.0 + ct * colour + rng.normal(0.0, 0.01, n)
    return fit_zeropoint(ref, np.full(n, 0.01), inst, np.full(n, 0.005), colour)


def test_a_known_colour_replaces_the_spread_in_the_error_and_the_median_in_the_magnitude():
    s = FitSettings()
    fit = _fit()
    near = TargetColour(fit.median_colour + 0.3, 0.05, "its APASS counterpart at 0.10 arcsec")
    choice = choose_colour(fit, near, s)
    assert choice.colour == pytest.approx(near.value) and choice.source == near.source
    assert choice.note is not None and "APASS counterpart" in choice.note
    unknown = calibrated_error(fit, 0.01, fit.median_colour, s)
    known = calibrated_error(fit, 0.01, choice.colour, s, choice.cost_spread)
    assert known < unknown  # a 0.05 mag colour error costs less than the calibrators' 0.3 mag spread


def test_a_counterpart_far_from_the_calibrators_colours_is_not_extrapolated_to_but_costed():
    s = FitSettings()
    fit = _fit()
    offset = 3.0 * fit.colour_spread
    far = TargetColour(fit.median_colour + offset, 0.05, "its APASS counterpart at 0.10 arcsec")
    assert usable_colour(fit, far, s) is None
    choice = choose_colour(fit, far, s)
    assert choice.colour == pytest.approx(fit.median_colour) and choice.source is None
    assert choice.cost_spread == pytest.approx(offset)
    assert choice.note is not None and "beyond the calibrators'" in choice.note
    # the error counts the known offset: larger than for a target of unknown colour
    assert calibrated_error(fit, 0.01, choice.colour, s, choice.cost_spread) > calibrated_error(
        fit, 0.01, fit.median_colour, s
    )


def test_no_colour_term_fitted_no_colour_used():
    rng = np.random.default_rng(4)
    inst = rng.uniform(10.0, 15.0, 50)
    fit = fit_zeropoint(inst + 2.0, np.full(50, 0.01), inst, np.full(50, 0.01), None)
    known = TargetColour(0.7, 0.05, "its APASS counterpart at 0.10 arcsec")
    assert choose_colour(fit, known, FitSettings()) == (fit.median_colour, None, None, None)


def _with_counterpart(fld, v: float, bv: float) -> dict[str, SurveyStars]:
    """The field's APASS extract plus the target's quiescent counterpart at the alert position."""
    apass = fld.references["APASS"]
    true = true_bands(np.array([v]), np.array([bv]))
    return {
        "APASS": SurveyStars(
            survey="APASS",
            ra=np.append(apass.ra, fld.target_ra),
            dec=np.append(apass.dec, fld.target_dec),
            mags={k: np.append(apass.mags[k], true[k][0]) for k in apass.mags},
            errs={k: np.append(apass.errs[k], 0.02) for k in apass.errs},
        )
    }


def test_a_known_source_is_calibrated_at_its_own_colour_and_is_not_its_own_calibrator():
    """A red target brightened by 1 mag: the answer at its counterpart's colour is closer to the truth,
    the answer says where the colour came from, and the target is no calibrator."""
    rng = np.random.default_rng(61)
    fld = make_field(rng, target_v=15.5, target_bv=1.05, ct=0.15)
    plain = calibrate_frame(fld.sources, fld.references, fld.target_ra, fld.target_dec, 2.0)
    known = calibrate_frame(fld.sources, _with_counterpart(fld, 16.5, 1.05), fld.target_ra, fld.target_dec, 2.0)
    assert fld.target_true_mag is not None
    t0, t1 = plain.target, known.target
    assert t0.colour_source is None and t1.colour_source is not None and "APASS" in t1.colour_source
    assert t1.assumed_colour == pytest.approx(1.05, abs=0.05) and known.assumed_colour == t1.assumed_colour
    assert t1.mag is not None and t0.mag is not None and t1.mag_err is not None and t0.mag_err is not None
    # the colour correction the median colour missed: CT times the target's offset from it (the true
    # CT is 0.15); what is left is the target's own noise and scatter (0.02 mag), not its colour
    c0 = plain.assumed_colour
    assert t1.mag - t0.mag == pytest.approx(known.colour_term * (t1.assumed_colour - c0), abs=1e-9)
    assert t1.mag - t0.mag == pytest.approx(0.15 * (1.05 - c0), abs=0.015)
    assert abs(t1.mag - fld.target_true_mag) < abs(t0.mag - fld.target_true_mag)
    assert abs(t1.mag - fld.target_true_mag) < t1.mag_err
    assert t1.mag_err < t0.mag_err
    assert any("APASS counterpart" in w for w in known.warnings)
    # the counterpart, 1 mag fainter than the target now, is matched to it but never a calibrator
    assert known.ncalibrators == plain.ncalibrators
    assert known.zeropoint == pytest.approx(plain.zeropoint, abs=1e-9)
