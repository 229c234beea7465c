"""The recalibration bench's synthetic archive: fields, uploads and stored records a real calibration accepts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.bench_recalibrate import (
    BUG_MAG,
    FIELD_RADIUS_DEG,
    SOURCES,
    field_stars,
    make_sky,
    make_upload,
    stored_upload,
)
from photcal_cli.batch.recalibrate import StoredUpload
from services.calibrate.core.api import calibrate_frame


def _separation_deg(ra1, dec1, ra2, dec2):
    d = np.radians
    cos = np.sin(d(dec1)) * np.sin(d(dec2)) + np.cos(d(dec1)) * np.cos(d(dec2)) * np.cos(d(ra1 - ra2))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_the_fields_spread_over_the_sky_with_their_stars_around_the_alert():
    sky = make_sky(np.random.default_rng(1), 50, stars_per_field=200)
    decs = np.array([f.dec for f in sky])
    assert len(sky) == 50 and (decs < 0).any() and (decs > 0).any()
    for f in sky[:10]:
        sep = _separation_deg(f.ra, f.dec, f.star_ra, f.star_dec)
        assert sep.max() <= FIELD_RADIUS_DEG * 1.01
        assert sep.min() > 9.0 / 3600  # the transient's place is clear
        assert set(f.bands) == {"B", "V", "g'", "r'", "i'"}
        assert f.bands["V"].min() > 10.9 and f.bands["V"].max() < 18.1


def test_an_upload_calibrates_to_its_transient():
    rng = np.random.default_rng(2)
    (f,) = make_sky(rng, 1)
    sources, transient_v = make_upload(rng, f, 150)
    assert len(sources) == 150
    # the transient is the last source, at the alert position
    assert _separation_deg(f.ra, f.dec, sources.ra[-1], sources.dec[-1]) < 2.0 / 3600
    cal = calibrate_frame(sources, {"APASS": field_stars(f)}, f.ra, f.dec, 2.0, ("APASS", "V"))
    assert cal.target.detected
    assert cal.target.mag == pytest.approx(transient_v, abs=0.1)


def test_the_stored_records_are_what_the_recalibration_reads():
    sky = make_sky(np.random.default_rng(3), 5, stars_per_field=200)
    datapoint, calibration, sources = stored_upload(np.random.default_rng(4), sky, 7)
    assert datapoint["upload_id"] == calibration["upload_id"] == sources["upload_id"] == "bench00000007"
    # the live calibration, in the observatory's V filter
    assert (datapoint["survey"], datapoint["filter"]) == ("APASS", "V") and datapoint["mag"] == calibration["mag"]
    assert calibration["provenance"]["observatory_filters"] == ["V"]
    up = StoredUpload.from_doc(sources)
    assert SOURCES[0] <= len(up.sources) <= SOURCES[1]
    assert math.isfinite(up.alert_ra) and up.match_dist_arcsec == 2.0
    # the same upload stored with the "bug" (every third): too bright by BUG_MAG
    buggy, _, _ = stored_upload(np.random.default_rng(4), sky, 6)
    assert buggy["mag"] == pytest.approx(datapoint["mag"] - BUG_MAG, abs=1e-9)
