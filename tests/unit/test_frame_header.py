"""A frame's header read as an observer's camera writes it: mid-exposure MJD, exposure, site, WCS."""

from __future__ import annotations

import pytest
from astropy.io.fits import Header
from astropy.time import Time

from shared.frames import frame_header, merge_form
from tools.simfield.image import Camera, make_wcs


def _header(**cards) -> Header:
    h = Header()
    for key, value in cards.items():
        h[key.replace("_", "-")] = value
    return h


def test_date_obs_plus_half_the_exposure_is_the_mid_exposure_mjd():
    h = _header(DATE_OBS="2024-03-01T20:00:00", EXPTIME=120.0)
    info = frame_header(h)
    start = Time("2024-03-01T20:00:00", scale="utc").mjd
    assert info.mjd == pytest.approx(start + 60.0 / 86400.0, abs=1e-9)
    assert info.from_header["mjd"] == "DATE-OBS+EXPTIME/2"
    assert info.exptime == 120.0 and info.from_header["exptime"] == "EXPTIME"


def test_a_date_alone_takes_its_time_from_time_obs():
    info = frame_header(_header(DATE_OBS="2024-03-01", TIME_OBS="20:00:00", EXPOSURE=60))
    assert info.mjd == pytest.approx(Time("2024-03-01T20:00:30").mjd, abs=1e-9)
    assert info.from_header["mjd"] == "DATE-OBS+TIME-OBS+EXPOSURE/2"


def test_mjd_obs_wins_over_date_obs_and_mjd_mid_is_taken_as_it_is():
    info = frame_header(_header(MJD_OBS=60000.0, DATE_OBS="2001-01-01T00:00:00", EXPTIME=86.4))
    assert info.mjd == pytest.approx(60000.0005, abs=1e-9) and info.from_header["mjd"] == "MJD-OBS+EXPTIME/2"
    mid = frame_header(_header(MJD_MID=60000.25, MJD_OBS=60000.0, EXPTIME=86.4))
    assert mid.mjd == 60000.25 and mid.from_header["mjd"] == "MJD-MID"


def test_no_date_at_all_leaves_the_mjd_empty_and_a_bad_date_is_no_date():
    assert frame_header(_header(EXPTIME=10.0)).mjd is None
    info = frame_header(_header(DATE_OBS="yesterday evening", EXPTIME=10.0))
    assert info.mjd is None and "mjd" not in info.from_header


def test_detector_keys_and_a_sexagesimal_site_are_read():
    h = _header(
        FILTER="V",
        GAIN=1.6,
        SATURATE=49000.0,
        AIRMASS=1.23,
        OBSERVAT="Ondrejov",
        SITELAT="+49:54:36",
        SITELONG=14.78,
    )
    info = frame_header(h, shape=(800, 1200))
    assert (info.filter, info.gain, info.saturate, info.airmass) == ("V", 1.6, 49000.0, 1.23)
    assert info.site is not None and info.site.name == "Ondrejov"
    assert info.site.lat == pytest.approx(49.91, abs=1e-3) and info.site.lon == 14.78
    assert info.from_header["site"] == "OBSERVAT+SITELAT+SITELONG"
    assert (info.naxis1, info.naxis2) == (1200, 800)


def test_a_celestial_wcs_is_seen_and_its_absence_too():
    with_wcs = make_wcs(150.0, 30.0, Camera(), 0.0).to_header()
    assert frame_header(with_wcs).has_wcs is True
    assert frame_header(_header(EXPTIME=1.0)).has_wcs is False


def test_the_form_wins_and_the_answer_lists_only_what_the_header_gave():
    info = frame_header(_header(MJD_OBS=60000.0, EXPTIME=60.0, FILTER="R"))
    merged, taken = merge_form(info, mjd=60001.5, exptime=None)
    assert merged.mjd == 60001.5 and merged.exptime == 60.0
    assert "mjd" not in taken and taken["exptime"] == "EXPTIME" and taken["filter"] == "FILTER"
