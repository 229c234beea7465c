"""The self-describing light-curve exports (services/lightcurve/exports.py): what a reader of each file finds."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from astropy import units as u
from astropy.io.votable import parse, validate
from astropy.table import Table

from services.lightcurve import exports
from shared.contracts.surveys import SURVEYS

ORIGIN = "https://photcal.example.org:443"


def _doc(followup_id: int, mjd: float, **fields) -> dict:
    base = {
        "followup_id": followup_id,
        "upload_id": f"u{followup_id}",
        "mjd": mjd,
        "mag": 17.25,
        "mag_err": 0.04,
        "limit_mag": 19.5,
        "detected": True,
        "zeropoint_err": 0.03,
        "survey": "APASS",
        "filter": "V",
        "observatory": "Ondrejov 0.65m",
        "exptime": 60.0,
        "comment": "",
        "imported": None,
        "deleted": False,
    }
    return base | fields


def _curve(docs, name="Gaia23abc") -> exports.AlertCurve:
    return exports.AlertCurve(f"ivo://gaia/alerts#{name}", name, 150.1, 30.2, docs)


DOCS = [
    _doc(2, 60001.25),
    # a non-detection: its magnitude is the limit, not mag
    _doc(1, 60000.5, mag=None, mag_err=None, detected=False, limit_mag=19.1, observatory="Skalnate, Pleso"),
    _doc(3, 60002.0, deleted=True),
    _doc(4, 60003.0, imported="cpcs", upload_id="cpcs:77"),
]


def test_every_survey_band_states_its_magnitude_system():
    systems = {(s.name, b.name): b.system for s in SURVEYS.values() for b in s.bands}
    assert set(systems.values()) == {"Vega", "AB"}
    assert systems[("APASS", "B")] == systems[("APASS", "V")] == "Vega"
    assert {systems[("APASS", b)] for b in ("g'", "r'", "i'")} == {"AB"}
    assert {systems[("PS1", b)] for b in "grizy"} == {"AB"}
    assert {systems[("SDSS", b)] for b in "ugriz"} == {"AB"}
    assert {systems[("GAIA", b)] for b in ("G", "BP", "RP")} == {"Vega"}
    assert {systems[("GaiaSP", b)] for b in "UBVRI"} == {"Vega"}
    assert {systems[("GaiaSP", b)] for b in "ugriz"} == {"AB"}
    assert exports.magnitude_system("apass", "V") == "Vega" and exports.magnitude_system(None, "V") == ""


def test_table_has_live_points_by_mjd_with_units_ucds_and_page_urls():
    table = exports.lightcurve_table([_curve(DOCS)], {"u2": "completeness"}, ORIGIN)
    assert list(table["followup_id"]) == [1, 2, 4]  # the deleted one is not exported
    assert table["mjd"].unit == u.d and table["mjd"].meta["ucd"] == "time.epoch"
    assert table["mag"].unit == u.mag and table["mag"].meta["ucd"] == "phot.mag;em.opt.V"
    assert table["mag_err"].meta["ucd"] == "stat.error;phot.mag"
    assert table["exptime"].unit == u.s
    limit = table[0]
    assert not limit["detected"] and np.ma.is_masked(limit["mag"]) and np.ma.is_masked(limit["mag_err"])
    assert limit["limit_mag"] == pytest.approx(19.1)
    assert table[1]["limit_method"] == "completeness" and limit["limit_method"] == ""
    assert list(table["system"]) == ["Vega"] * 3
    assert list(table["zeropoint_err"]) == pytest.approx([0.03] * 3)
    assert table[1]["url"] == f"{ORIGIN}/datapoints/2"
    assert list(table["imported"]) == ["", "", "cpcs"]
    meta = table.meta
    assert meta["alert"] == {"ivorn": "ivo://gaia/alerts#Gaia23abc", "name": "Gaia23abc", "ra": 150.1, "dec": 30.2}
    assert "UTC" in meta["time"] and "mid-exposure" in meta["time"]
    assert meta["magnitude_systems"]["PS1"]["r"] == "AB" and meta["server"].startswith("photcal ")


def test_mag_ucd_names_a_band_only_when_every_point_is_in_it():
    mixed = DOCS + [_doc(5, 60004.0, survey="PS1", filter="r")]
    assert exports.lightcurve_table([_curve(mixed)], {}, ORIGIN)["mag"].meta["ucd"] == "phot.mag"
    sloan = [_doc(5, 60004.0, survey="PS1", filter="r")]
    table = exports.lightcurve_table([_curve(sloan)], {}, ORIGIN)
    assert table["mag"].meta["ucd"] == "phot.mag" and list(table["system"]) == ["AB"]


def test_ecsv_round_trips_units_dtypes_masks_and_meta():
    table = exports.lightcurve_table([_curve(DOCS)], {"u2": "completeness"}, ORIGIN)
    back = Table.read(exports.ecsv_text(table), format="ascii.ecsv")
    assert back.colnames == table.colnames
    for name in table.colnames:
        assert back[name].unit == table[name].unit, name
        assert back[name].dtype.kind == table[name].dtype.kind, name
    assert back["mag"].description == table["mag"].description
    assert np.ma.is_masked(back["mag"][0]) and back["mag"][1] == pytest.approx(17.25)
    assert back.meta["alert"]["ivorn"] == "ivo://gaia/alerts#Gaia23abc"
    assert back.meta["magnitude_systems"] == table.meta["magnitude_systems"]
    assert back["mag"].meta["ucd"] == "phot.mag;em.opt.V"


def test_votable_validates_and_reads_back_as_a_table_with_units():
    table = exports.lightcurve_table([_curve(DOCS)], {}, ORIGIN)
    data = exports.votable_bytes(table)
    report = io.StringIO()
    assert validate(io.BytesIO(data), output=report), report.getvalue()
    votable = parse(io.BytesIO(data))
    element = votable.get_first_table()
    back = element.to_table()
    assert back["mag"].unit == u.mag and back["mjd"].unit == u.d
    assert list(back["followup_id"]) == [1, 2, 4]
    assert np.ma.is_masked(back["mag"][0])
    fields = {f.name: f for f in element.fields}
    assert fields["mjd"].ucd == "time.epoch" and fields["mag"].ucd == "phot.mag;em.opt.V"
    (timesys,) = votable.time_systems
    assert fields["mjd"].ref == timesys.ID and (timesys.timescale, timesys.timeorigin) == ("UTC", "MJD-origin")
    params = {p.name: p.value for p in element.params}
    assert params["ivorn"] == "ivo://gaia/alerts#Gaia23abc" and params["ra"] == pytest.approx(150.1)
    infos = {i.name: i.value for i in votable.resources[0].infos}
    assert infos["system_APASS"].startswith("B:Vega V:Vega g':AB") and "UTC" in infos["time"]


def test_bulk_table_has_an_alert_column_and_validates():
    curves = [_curve(DOCS), _curve([_doc(9, 59999.0, survey="GAIA", filter="G")], name="Gaia23xyz")]
    table = exports.lightcurve_table(curves, {}, ORIGIN, bulk=True)
    assert table.colnames[:3] == ["alert", "alert_name", "mjd"]
    assert list(table["alert_name"]) == ["Gaia23abc"] * 3 + ["Gaia23xyz"]
    assert [a["name"] for a in table.meta["alerts"]] == ["Gaia23abc", "Gaia23xyz"]
    report = io.StringIO()
    assert validate(io.BytesIO(exports.votable_bytes(table)), output=report), report.getvalue()


def test_aavso_extended_file_has_its_headers_and_a_row_per_point_with_limits_as_less_than():
    table = exports.lightcurve_table([_curve(DOCS)], {"u2": "completeness"}, ORIGIN)
    lines = exports.aavso_text(table, obscode="XYZ").splitlines()
    headers = [line for line in lines if line.startswith("#")]
    for expected in ("#TYPE=EXTENDED", "#OBSCODE=XYZ", "#DELIM=,", "#DATE=JD", "#OBSTYPE=CCD"):
        assert expected in headers
    assert any(h.startswith("#SOFTWARE=photcal ") for h in headers)
    assert exports.AAVSO_HEADER in headers
    rows = [line.split(",") for line in lines if not line.startswith("#")]
    assert len(rows) == 3 and all(len(r) == 15 for r in rows)  # the comma in "Skalnate, Pleso" shifts nothing
    limit, detection, _ = rows
    assert limit[:5] == ["Gaia23abc", "2460001.00000", "<19.100", "na", "V"]
    assert detection[1] == "2460001.75000" and detection[2] == "17.250"
    assert float(detection[3]) == pytest.approx(math.hypot(0.04, 0.03), abs=1e-3)
    assert detection[5:8] == ["NO", "STD", "ENSEMBLE"]
    assert "LIMIT=completeness" in detection[14] and f"URL={ORIGIN}/datapoints/2" in detection[14]


@pytest.mark.parametrize(
    ("survey", "band", "filt"),
    [("APASS", "V", "V"), ("APASS", "r'", "SR"), ("PS1", "g", "SG"), ("SDSS", "i", "SI"), ("GaiaSP", "R", "R")]
    + [("GaiaSP", "z", "SZ"), ("GAIA", "G", "CV"), ("GAIA", "RP", "CR"), ("APASS", "B", "B"), ("X", "H", "na")],
)
def test_aavso_filter_codes(survey, band, filt):
    assert exports.aavso_filter(survey, band) == filt
