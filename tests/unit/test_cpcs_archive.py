"""Reading the CPCS archive: limits, bands, observatory maps, the document shapes CPCS and its harvesters wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from photcal_cli.catalogues_import import ManifestError, ManifestRow, outcome_of, read_manifest
from photcal_cli.cpcs_archive import (
    ArchiveError,
    cpcs_alert_id_of,
    map_band,
    read_document,
    read_observatory_map,
    unknown_bands,
)
from photcal_cli.cpcs_import import IndexEntry, alert_reference
from services.lightcurve.cpcs import cpcs_arrays
from shared.db.datapoints import Datapoint

FIXTURE = Path(__file__).parent.parent / "data" / "cpcs" / "get_alert_lc_data_Gaia19bld.json"
URL = "http://127.0.0.1:9/followup/get_alert_lc_data?alert_name=ivo://gaia/alerts%23Gaia19bld"


def _lc(arrays: dict, source: str = "lc.json"):
    (lc,) = read_document(json.dumps(arrays), source).lightcurves
    return lc


def test_the_fixture_reads_point_for_point_with_its_limits_and_bands():
    lc = _lc(json.loads(FIXTURE.read_text()), URL)
    assert lc.alert_key == "ivo://gaia/alerts#Gaia19bld"  # from the URL's alert_name=
    assert lc.refused == [] and len(lc.points) == 10
    limits = [p for p in lc.points if not p.detected]
    assert [(p.cpcs_id, p.limit_mag, p.mag, p.mag_err) for p in limits] == [
        (41291, 18.9, None, None),
        (41377, 19.2, None, None),
    ]
    first = lc.points[0]
    assert (first.mjd, first.mag, first.mag_err, first.caliberr) == (58610.91234, 15.642, 0.021, 0.034)
    assert (first.survey, first.filter, first.observatory, first.cpcs_id) == ("APASS", "V", "Ondrejov-D50", 41211)
    bands = {(p.survey, p.filter) for p in lc.points}
    assert ("APASS", "r'") in bands and ("GAIA", "G") in bands and ("APASS", "i'") in bands
    assert unknown_bands(lc.points) == {"R(USNO)": 1}  # kept as written, reported
    usno = next(p for p in lc.points if p.cpcs_id == 41355)
    assert (usno.survey, usno.filter, usno.mag) == ("USNO", "R", 16.02)


def test_a_limit_is_magerr_minus_one_a_negative_or_null_magerr_or_a_flag():
    lc = _lc(
        {
            "mjd": [58000.1, 58000.2, 58000.3, 58000.4, 58000.5],
            "mag": [18.5, 18.6, 18.7, 18.8, 15.0],
            "magerr": [-1, -99, None, 0.05, 0.02],
            "limit": [0, 0, 0, 1, 0],
            "observatory": ["A"] * 5,
        }
    )
    assert [p.detected for p in lc.points] == [False, False, False, False, True]
    assert [p.limit_mag for p in lc.points[:4]] == [18.5, 18.6, 18.7, 18.8]
    assert lc.points[4].mag == 15.0 and lc.points[4].limit_mag is None
    # no catalog/filter/caliberr/id arrays: kept empty, nothing invented
    assert (lc.points[4].survey, lc.points[4].filter, lc.points[4].caliberr, lc.points[4].cpcs_id) == (
        None,
        None,
        None,
        None,
    )


def test_what_photcal_serves_as_get_alert_lc_data_reads_back_to_the_same_points():
    points = [
        Datapoint(followup_id=7, upload_id="u7", ivorn="ivo://x/y#Z", observatory_id="o", observatory="Obs A",
                  mjd=59000.25, survey="APASS", filter="r'", mag=16.1, mag_err=0.03, zeropoint_err=0.02),
        Datapoint(followup_id=8, upload_id="u8", ivorn="ivo://x/y#Z", observatory_id="o", observatory="Obs A",
                  mjd=59001.25, survey="GaiaSP", filter="V", mag=None, mag_err=None, limit_mag=19.4,
                  detected=False, zeropoint_err=None),
    ]  # fmt: skip
    lc = _lc(cpcs_arrays(points))
    detected, limit = lc.points
    assert (detected.mag, detected.mag_err, detected.caliberr, detected.survey, detected.filter) == (
        16.1,
        0.03,
        0.02,
        "APASS",
        "r'",
    )
    assert (limit.detected, limit.limit_mag, limit.survey, limit.filter, limit.cpcs_id) == (
        False,
        19.4,
        "GaiaSP",
        "V",
        8,
    )


def test_unreadable_points_are_refused_one_by_one_and_misaligned_arrays_whole():
    lc = _lc({"mjd": [58000.1, "x", 2458000.5], "mag": [15, 15, 15], "magerr": [0.1, 0.1, 0.1],
              "observatory": ["A", "A", ""]})  # fmt: skip
    assert [p.mjd for p in lc.points] == [58000.1]
    assert len(lc.refused) == 2 and "is not an MJD" in lc.refused[0]
    # a non-detection without its limit cannot be stored
    lc = _lc({"mjd": [58000.1], "mag": [None], "magerr": [-1], "observatory": ["A"]})
    assert lc.points == [] and "without its limit" in lc.refused[0]
    with pytest.raises(ArchiveError, match="differ in length"):
        read_document(json.dumps({"mjd": [1, 2], "mag": [1], "magerr": [1, 1], "observatory": ["a", "b"]}), "x")
    with pytest.raises(ArchiveError, match="no magerr"):
        read_document(json.dumps({"mjd": [1], "mag": [1], "observatory": ["a"]}), "x")
    with pytest.raises(ArchiveError, match="not JSON"):
        read_document(b"<html>502 Bad Gateway</html>", "x")


def test_many_alerts_in_one_file_keyed_by_name_or_listed_each_with_its_own():
    one = {"mjd": [58000.1], "mag": [15.0], "magerr": [0.1], "observatory": ["A"]}
    doc = read_document(json.dumps({"Gaia19bld": one, "ivo://gaia/alerts#Gaia20aaa": one}), "many.json")
    assert [lc.alert_key for lc in doc.lightcurves] == ["Gaia19bld", "ivo://gaia/alerts#Gaia20aaa"]
    doc = read_document(json.dumps([one | {"ivorn": "ivo://a/b#C", "ra": 10.5, "dec": -3.25}, one]), "list.json")
    assert doc.lightcurves[0].alert_key == "ivo://a/b#C" and doc.lightcurves[0].ra == 10.5
    assert doc.lightcurves[1].alert_key is None
    # photcal's own light curve JSON: rows, a limit with mag_err null
    rows = {"ivorn": "ivo://a/b#C", "ra": 1.0, "dec": 2.0, "points": [
        {"mjd": 58000.1, "mag": 15.2, "mag_err": 0.02, "limit_mag": 19.0, "filter": "V", "survey": "APASS",
         "observatory": "A", "followup_id": 3},
        {"mjd": 58000.2, "mag": None, "mag_err": None, "limit_mag": 19.1, "filter": "V", "survey": "APASS",
         "observatory": "A", "followup_id": 4}]}  # fmt: skip
    (lc,) = read_document(json.dumps(rows), "lc.json").lightcurves
    assert [(p.detected, p.mag, p.limit_mag, p.cpcs_id) for p in lc.points] == [
        (True, 15.2, 19.0, 3),
        (False, None, 19.1, 4),
    ]


def test_harvested_files_name_their_cpcs_alert_which_list_of_alerts_resolves():
    one = {"mjd": [58000.1], "mag": [15.0], "magerr": [0.1], "observatory": ["A"]}
    (lc,) = read_document(json.dumps(one), "archive/CPCS/alert-07.json").lightcurves
    assert lc.cpcs_alert_id == 7 and lc.alert_key is None
    assert cpcs_alert_id_of("alert-123.json.gz") == 123 and cpcs_alert_id_of("notes.json") is None
    index_doc = read_document(
        json.dumps([{"id": 7, "ivorn": "ivo://gaia/alerts#Gaia16aye", "ra": 296.5, "dec": 30.1, "name": "x"}]),
        "archive/CPCS/index.json",
    )
    index = {e.cpcs_alert_id: e for e in index_doc.index}
    ref = alert_reference(lc, index, None)
    assert not isinstance(ref, str)
    assert (ref.key, ref.ra, ref.dec) == ("ivo://gaia/alerts#Gaia16aye", 296.5, 30.1)
    # without the index: refused, saying how to name the alert
    why = alert_reference(lc, {}, None)
    assert isinstance(why, str) and "list_of_alerts" in why and "--alert" in why
    # --alert names the alert of a file that names none; a file's own name wins
    ref = alert_reference(lc, {}, "Gaia19bld")
    assert not isinstance(ref, str) and ref.key == "Gaia19bld"
    own = _lc(one | {"ivorn": "ivo://a/b#C"})
    ref = alert_reference(own, {7: IndexEntry(7, "ivo://a/b#C", None, 1.0, 2.0)}, "Gaia19bld")
    assert not isinstance(ref, str) and (ref.key, ref.ra, ref.dec) == ("ivo://a/b#C", 1.0, 2.0)
    nothing = alert_reference(_lc(one), {}, None)
    assert isinstance(nothing, str) and "--alert" in nothing


@pytest.mark.parametrize(
    ("catalog", "band", "expected"),
    [
        ("APASS", "V", ("APASS", "V", True)),
        ("APASS", "r", ("APASS", "r'", True)),
        ("apass", "g'", ("APASS", "g'", True)),
        ("Gaia", "G", ("GAIA", "G", True)),
        ("GaiaSP", "R", ("GaiaSP", "R", True)),
        ("GaiaSP", "r", ("GaiaSP", "r", True)),
        ("PanSTARRS", "z", ("PS1", "z", True)),
        ("SDSS", "u", ("SDSS", "u", True)),
        ("APASS", "R", ("APASS", "R", False)),  # APASS has no Cousins R: kept, reported
        ("2MASS", "J", ("2MASS", "J", False)),
        (None, "V", (None, "V", False)),
    ],
)
def test_cpcs_band_names_map_to_photcal_surveys_and_bands(catalog, band, expected):
    assert map_band(catalog, band) == expected


def test_observatory_maps_in_csv_or_json():
    text = "# comment\ncpcs,photcal\nOndrejov-D50, Ondrejov 0.5m\n\nLCOGT-1m-SSO,a1b2c3d4e5f6\n"
    assert read_observatory_map(text) == {"Ondrejov-D50": "Ondrejov 0.5m", "LCOGT-1m-SSO": "a1b2c3d4e5f6"}
    assert read_observatory_map('{"Old": "New"}') == {"Old": "New"}
    with pytest.raises(ValueError, match="two columns"):
        read_observatory_map("Ondrejov-D50\n")
    with pytest.raises(ValueError, match="mapped twice"):
        read_observatory_map("A,B\nA,C\n")
    with pytest.raises(ValueError, match="JSON map"):
        read_observatory_map('{"Old": 3}')


def test_the_catalogue_manifest(tmp_path):
    (tmp_path / "manifest.csv").write_text(
        "# archive of 2019\nfile,event,mjd,filter,hashtag\n"
        "a.cat,ivo://gaia/alerts#Gaia19bld,58612.9,APASS/V,\n"
        "b.cat,Gaia19bld,58613.9,,OWN_TAG\n"
    )
    rows = read_manifest(tmp_path / "manifest.csv", tmp_path, "DEFAULT")
    assert [(r.file.name, r.event, r.mjd, r.filter, r.hashtag) for r in rows] == [
        ("a.cat", "ivo://gaia/alerts#Gaia19bld", "58612.9", "APASS/V", "DEFAULT"),
        ("b.cat", "Gaia19bld", "58613.9", "", "OWN_TAG"),
    ]
    with pytest.raises(ManifestError, match="no hashtag"):
        read_manifest(tmp_path / "manifest.csv", tmp_path, None)
    (tmp_path / "bad.csv").write_text("file,mjd\na.cat,1\n")
    with pytest.raises(ManifestError, match="needs event"):
        read_manifest(tmp_path / "bad.csv", tmp_path, "T")
    row = rows[0]
    assert outcome_of(row, 201, {"status": "ok", "stored": True, "followup_id": 3, "survey": "APASS",
                                 "filter": "V", "mag": 15.1234}).kind == "added"  # fmt: skip
    assert outcome_of(row, 409, {"error": "duplicate_datapoint", "message": "already stored"}).kind == "already"
    refused = outcome_of(row, 400, {"error": "too_few_stars", "message": "too few calibration stars"})
    assert refused.kind == "refused" and "too_few_stars" in refused.text
    assert outcome_of(row, 409, {"error": "alert_name_taken"}).kind == "refused"
    assert isinstance(row, ManifestRow)
