"""A crowded frame's target measured in the catalogue's fixed aperture, put on MAG_AUTO's scale."""

import numpy as np

from services.calibrate.core.aperture import aperture_correction, wants_aperture
from services.calibrate.core.settings import FitSettings
from services.ingest.parsing import parse_catalogue


def test_the_correction_is_the_isolated_stars_median_difference():
    rng = np.random.default_rng(3)
    n = 200
    mag = rng.uniform(12, 16, n)
    aper = mag + 0.25 + rng.normal(0, 0.01, n)  # the aperture misses 0.25 mag of every star
    err = np.full(n, 0.01)
    flags = np.zeros(n, dtype=int)
    flags[:50] = 2  # blended: not used
    aper[:50] -= 1.0
    c = aperture_correction(mag, err, aper, flags, np.ones(n, bool), None, FitSettings())
    assert c is not None and c.n_stars == 150
    assert abs(c.correction + 0.25) < 0.005 and 0 < c.error < 0.003


def test_too_few_isolated_stars_give_no_correction():
    mag = np.arange(10.0)
    assert (
        aperture_correction(mag, np.full(10, 0.01), mag + 0.2, np.zeros(10), np.ones(10, bool), None, FitSettings())
        is None
    )


def test_only_crowded_frames_and_blended_targets_use_the_aperture():
    s = FitSettings()
    assert not wants_aperture(False, 0, 0.0, s)
    assert wants_aperture(True, 0, 0.0, s)
    assert wants_aperture(False, 2, 0.0, s)
    assert wants_aperture(False, 0, 0.5, s)


def test_the_parser_keeps_the_first_aperture_beside_mag_auto():
    text = (
        "#   1 MAG_AUTO\n#   2 MAGERR_AUTO\n#   3 ALPHA_J2000\n#   4 DELTA_J2000\n"
        "#   5 MAG_APER\n#   7 MAGERR_APER\n"
        "-10.0 0.01 10.0 20.0 -9.7 -9.5 0.02 0.03\n-11.0 0.01 10.1 20.1 99.0 -10.5 99.0 0.03\n"
    )
    t = parse_catalogue(text.encode(), "x.cat").table
    assert t.mag_aper is not None and t.mag_aper_err is not None
    assert abs(t.mag_aper[0] + 9.7) < 1e-5 and abs(t.mag_aper_err[0] - 0.02) < 1e-6
    assert np.isnan(t.mag_aper[1])  # SExtractor's 99: unusable
    plain = parse_catalogue(
        b"#   1 MAG_AUTO\n#   2 MAGERR_AUTO\n#   3 ALPHA_J2000\n#   4 DELTA_J2000\n-10 0.01 10 20\n", "x.cat"
    )
    assert plain.table.mag_aper is None
