"""The calibration on realistic skies: crowded Galactic-plane and southern frames (issue 15).

The committed fields (tests/data/fields) are sparse; where Gaia's alerts are,
frames are crowded (blends in the image and in the reference catalogues,
Gaia stars without BP/RP) or southern (no PS1, no SDSS). A handful of small
such fields (6'-8' frames, real images through the real ``source-extractor``,
so skipped where it is not installed; ~15 s to make) are generated once per
session and calibrated through :func:`services.calibrate.core.calibrate_frame`
on the SExtractor catalogue, as an upload would be.

Every field's best band must be identified, with and without the
observatory's registered filters.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from services.calibrate.core import calibrate_frame
from services.ingest.parsing import parse_catalogue
from tools import fieldio
from tools import simfield as sf

pytestmark = pytest.mark.skipif(shutil.which("source-extractor") is None, reason="source-extractor not installed")

#: (name, seed, ra, dec, instrument band, sky, density per deg^2 to V 21, camera)
FIELDS = [
    ("dense_north_r", 41, 290.0, 10.0, "r", "dense", 120_000.0, sf.Camera(width=450, height=450, pixel_scale=1.0)),
    ("dense_south_V", 42, 250.0, -45.0, "V", "dense", 150_000.0, sf.Camera(width=450, height=450, pixel_scale=1.0)),
    ("dense_south_i", 43, 265.0, -35.0, "i", "dense", 100_000.0, sf.Camera(width=400, height=400, pixel_scale=1.2)),
    ("dense_south_z", 44, 240.0, -50.0, "z", "dense", 80_000.0, sf.Camera(width=400, height=400, pixel_scale=1.2)),
    ("sparse_south_R", 45, 30.0, -60.0, "R", "sparse", None, sf.Camera(width=600, height=600, pixel_scale=1.6)),
]
NAMES = [f[0] for f in FIELDS]
#: the filter family an observatory taking such a frame registers (bench.bench_accuracy.OBSERVATORY_FILTERS)
FILTERS = {
    "r": ["g'", "r'", "i'", "z'"],
    "i": ["g'", "r'", "i'", "z'"],
    "z": ["g'", "r'", "i'", "z'"],
    "V": ["B", "V", "R", "I"],
    "R": ["B", "V", "R", "I"],
}
#: a generous bound on |calibrated - true| beyond the reported error (mag): crowded targets are blended
GENEROUS = 0.15


@pytest.fixture(scope="session")
def realistic_fields(tmp_path_factory):
    root = tmp_path_factory.mktemp("realistic")
    out = {}
    for name, seed, ra, dec, band, sky, density, camera in FIELDS:
        sf.simulate_field(
            seed,
            ra,
            dec,
            band,
            name=name,
            sky=sky,
            density=density,
            camera=camera,
            out=root / name,
            keep_image=False,
            formats=(),
        )
        out[name] = root / name
    return out


def calibrate(folder, **kw):
    truth = fieldio.load_truth(folder)
    table = parse_catalogue((folder / "sex_fits1.fits").read_bytes(), "sex_fits1.fits").table
    a = truth["alert"]
    return truth, calibrate_frame(table, fieldio.load_references(folder), a["ra"], a["dec"], 2.0, **kw)


def acceptable(truth):
    return fieldio.right_bands(truth)


def test_the_fields_are_what_they_claim(realistic_fields):
    for name, folder in realistic_fields.items():
        t = fieldio.load_truth(folder)
        assert (t["field"]["dec"] < -30) == ("PS1" not in t["surveys"]), name
        assert t["sky"]["type"] == name.split("_")[0]
        assert t["measured"]["n_sources"] > 150, name
        if t["sky"]["type"] == "dense":
            assert t["sky"]["realised_per_deg2_v21"] > 50_000


@pytest.mark.parametrize("name", NAMES)
def test_every_field_is_answered(realistic_fields, name):
    truth, cal = calibrate(realistic_fields[name])
    assert cal.survey in truth["surveys"]
    assert cal.npoints >= 10
    t = cal.target
    assert t.detected or t.limit_mag is not None


def calibration_error(truth, t, true: float) -> float:
    """calibrated - true, minus the target's own photometry error (its MAG_AUTO against its true
    instrumental magnitude: a blended target's MAG_AUTO holds its neighbour's flux too)."""
    return (t.mag - true) - (t.inst_mag - truth["transient"]["m_inst"])


@pytest.mark.parametrize("name", NAMES)
def test_error_against_truth_within_a_generous_bound(realistic_fields, name):
    """Scored in the band the calibration chose (its true magnitude from the star's truth)."""
    folder = realistic_fields[name]
    truth, cal = calibrate(folder)
    t = cal.target
    # the truth of a detection: in SExtractor's catalogue (a blend may hide a target above the limit)
    assert t.detected == (truth["transient"]["detectable"] and truth["measured"]["transient_detected"])
    if t.detected:
        true, _ = fieldio.true_magnitude(folder, cal.survey, cal.band)
        assert abs(calibration_error(truth, t, true)) <= GENEROUS + 3.0 * cal.zeropoint_err
        if not t.flags:  # an isolated target: its whole error is within what is reported
            assert abs(t.mag - true) <= GENEROUS + 3.0 * t.mag_err


@pytest.mark.parametrize("name", NAMES)
def test_band_forced_to_the_truth_gives_the_true_magnitude(realistic_fields, name):
    folder = realistic_fields[name]
    truth = fieldio.load_truth(folder)
    _, cal = calibrate(folder, force_filter=(truth["best"]["survey"], truth["best"]["band"]))
    t = cal.target
    if t.detected:
        assert abs(calibration_error(truth, t, truth["transient"]["mag"])) <= GENEROUS + 3.0 * cal.zeropoint_err


@pytest.mark.parametrize("name", NAMES)
def test_best_band_identified(realistic_fields, name):
    truth, cal = calibrate(realistic_fields[name])
    assert (cal.survey, cal.band) in acceptable(truth)


@pytest.mark.parametrize("name", NAMES)
def test_best_band_identified_with_the_observatorys_filters(realistic_fields, name):
    folder = realistic_fields[name]
    truth = fieldio.load_truth(folder)
    _, cal = calibrate(folder, observatory_filters=FILTERS[truth["instrument_band"]])
    assert (cal.survey, cal.band) in acceptable(truth)


def test_southern_i_frame_is_not_answered_in_gaia_rp(realistic_fields):
    """The reported failure: i' frames calibrated in Gaia RP (a far broader band, 34 mmag systematic)."""
    truth, cal = calibrate(realistic_fields["dense_south_i"])
    assert (cal.survey, cal.band) != ("GAIA", "RP")
    assert np.isfinite(cal.zeropoint)
