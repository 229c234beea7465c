"""The client's pure parts: the light curve's Table, the magnitude systems, which exception an answer is."""

from __future__ import annotations

import numpy as np
from astropy import units as u
from photcal_client import CalibrationRefused, Conflict, NotFound, ServerError, StillCalibrating, magnitude_system
from photcal_client.client import _lightcurve_table
from photcal_client.errors import PhotcalTimeout, error_class


def test_a_non_detection_is_masked_and_a_stated_system_is_kept():
    body = {
        "ivorn": "ivo://x#y",
        "name": "y",
        "ra": 1.0,
        "dec": 2.0,
        "points": [
            {"mjd": 60000.5, "mag": 18.2, "mag_err": 0.05, "limit_mag": 20.1, "filter": "r", "survey": "PS1"},
            {"mjd": 60001.5, "mag": None, "mag_err": None, "limit_mag": 19.4, "filter": "V", "survey": "APASS"},
            {"mjd": 60002.5, "mag": 17.0, "mag_err": 0.1, "filter": "G", "survey": "GAIA", "mag_system": "Vega"},
        ],
    }
    table = _lightcurve_table(body)
    assert list(table["mag_system"]) == ["AB", "Vega", "Vega"]
    assert list(np.ma.getmaskarray(table["mag"])) == [False, True, False]
    assert table["limit_mag"][1] == 19.4 and np.ma.getmaskarray(table["limit_mag"])[2]
    assert table["mag"].unit == u.mag and table["exptime"].unit == u.s
    assert list(table["time"].mjd) == [60000.5, 60001.5, 60002.5] and table["time"].scale == "utc"
    assert table.meta == {"ivorn": "ivo://x#y", "name": "y", "ra": 1.0, "dec": 2.0}


def test_magnitude_systems_of_the_surveys_bands():
    assert [magnitude_system("APASS", b) for b in ("B", "V", "g'", "r'")] == ["Vega", "Vega", "AB", "AB"]
    assert [magnitude_system("GaiaSP", b) for b in ("U", "I", "u", "z")] == ["Vega", "Vega", "AB", "AB"]
    assert magnitude_system("SDSS", "g") == "AB" and magnitude_system("PS1", "y") == "AB"
    assert magnitude_system("GAIA", "G") == "Vega" and magnitude_system(None, "V") is None


def test_an_answer_becomes_the_exception_its_status_and_body_say():
    assert error_class(404, "unknown_event") is NotFound
    assert error_class(409, "duplicate_datapoint", calibration=True) is Conflict
    assert error_class(400, "too_few_stars", calibration=True) is CalibrationRefused
    assert error_class(504, "timeout", upload_id="abc") is StillCalibrating
    assert error_class(504, "timeout") is PhotcalTimeout
    assert error_class(500, "internal") is ServerError
