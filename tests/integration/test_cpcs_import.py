"""The CPCS archive imported into a running stack: `photcal import cpcs` from a URL, `photcal import catalogues`.

What an operator sees: the command's counts and refusals, the light curve
(`/api/v1/lightcurves/...`, CPCS's `get_alert_lc_data`) with the imported
points, and a second import that changes nothing.
"""

from __future__ import annotations

import json
import shutil
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.integration.conftest import Stack, field_dir

pytestmark = pytest.mark.integration

CPCS_DATA = Path(__file__).parent.parent / "data" / "cpcs"
LC_FILE = CPCS_DATA / "get_alert_lc_data_Gaia19bld.json"
MAP_FILE = CPCS_DATA / "observatory_map.csv"
IVORN = "ivo://gaia/alerts#Gaia19bld"


@pytest.fixture
def cpcs_server() -> Iterator[tuple[str, list[str]]]:
    """A local stand-in for CPCS's host: ``/followup/get_alert_lc_data?...`` answers the fixture; its requests."""
    body = LC_FILE.read_bytes()
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if not self.path.startswith("/followup/get_alert_lc_data?"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _lightcurve(stack: Stack) -> dict:
    data = _get_json(f"{stack.url}/api/v1/lightcurves/{urllib.parse.quote(IVORN, safe='')}")
    assert isinstance(data, dict)
    return data


def _db(stack: Stack):
    client: MongoClient = MongoClient(stack.env["PHOTCAL_MONGO_URL"], serverSelectionTimeoutMS=5000)
    return client, client[stack.env["PHOTCAL_MONGO_DB"]]


def test_import_cpcs_from_a_url_is_idempotent_and_shows_in_the_light_curve(stack: Stack, cpcs_server, tmp_path):
    base, asked = cpcs_server
    hashtag = stack.add_observatory("Ondrejov 0.5m")
    stack.add_observatory("LCO 1m SSO")
    stack.add_observatory("Loiano 1.52m")
    stack.cli("alert", "add", "--ivorn", IVORN, "--ra", "95.2133", "--dec", "-1.9542", "--name", "Gaia19bld")
    stack.start()
    url = f"{base}/followup/get_alert_lc_data?alert_name={urllib.parse.quote(IVORN, safe='')}"

    # one observatory of the three is not in the map: its points are refused and named
    first = stack.cli("import", "cpcs", url, "--observatory-map", str(MAP_FILE), check=False)
    assert first.returncode == 1, first.stdout + first.stderr
    assert asked and asked[0].startswith("/followup/get_alert_lc_data?alert_name=")
    assert "total: 8 added, 0 already there, 2 refused" in first.stdout, first.stdout
    assert "'Loiano-1.52': 2 points" in first.stderr and "--unmapped-to" in first.stderr, first.stderr
    assert "R(USNO) (1 point)" in first.stdout  # a band photcal does not serve: kept as written, said so

    lc = _lightcurve(stack)
    points = lc["points"]
    assert len(points) == 8 and all(p["imported"] == "cpcs" for p in points)
    assert [p["mjd"] for p in points] == sorted(p["mjd"] for p in points)
    assert {p["observatory"] for p in points} == {"Ondrejov 0.5m", "LCO 1m SSO"}
    limits = [p for p in points if p["mag_err"] is None]
    assert [(p["mjd"], p["limit_mag"], p["mag"]) for p in limits] == [
        (58613.11021, 18.9, None),
        (58616.1024, 19.2, None),
    ]
    by_mjd = {p["mjd"]: p for p in points}
    assert (by_mjd[58610.91234]["mag"], by_mjd[58610.91234]["mag_err"]) == (15.642, 0.021)
    assert (by_mjd[58612.0885]["survey"], by_mjd[58612.0885]["filter"]) == ("APASS", "r'")  # CPCS's APASS r
    assert (by_mjd[58614.87007]["survey"], by_mjd[58614.87007]["filter"]) == ("GAIA", "G")  # CPCS's Gaia
    assert (by_mjd[58615.9223]["survey"], by_mjd[58615.9223]["filter"]) == ("USNO", "R")

    # CPCS's own read answers them as CPCS did: limits with magerr -1, caliberr as imported
    cpcs = _get_json(f"{stack.url}/get_alert_lc_data?alert_name={urllib.parse.quote(IVORN)}&hashtag={hashtag}")
    assert isinstance(cpcs, dict)
    assert cpcs["magerr"].count(-1) == 2 and 18.9 in cpcs["mag"] and 19.2 in cpcs["mag"]
    assert cpcs["caliberr"][0] == 0.034 and len(cpcs["id"]) == 8

    client, db = _db(stack)
    try:
        doc = db.datapoints.find_one({"cpcs_id": 41211}, {"_id": 0})
        assert doc is not None
        assert doc["upload_id"] == "cpcs:41211" and doc["imported"] == "cpcs" and doc["calibration_id"] is None
        assert doc["zeropoint_err"] == 0.034 and doc["version"] == 1 and doc["history"] == []
        assert doc["cpcs_observatory"] == "Ondrejov-D50"
        # nothing to recalibrate from: no calibration record, no sources
        assert db.calibrations.count_documents({}) == 0 and db.upload_sources.count_documents({}) == 0
        stored = sorted(d["followup_id"] for d in db.datapoints.find({}, {"followup_id": 1}))
    finally:
        client.close()

    # the same archive again: nothing new, the light curve unchanged
    again = stack.cli("import", "cpcs", url, "--observatory-map", str(MAP_FILE), check=False)
    assert again.returncode == 1
    assert "total: 0 added, 8 already there, 2 refused" in again.stdout, again.stdout
    assert _lightcurve(stack) == lc

    # the unmapped observatory given a home: only its two points are added; then everything is accounted for
    mapped = stack.cli("import", "cpcs", url, "--observatory-map", str(MAP_FILE), "--unmapped-to", "Loiano 1.52m")
    assert "total: 2 added, 8 already there, 0 refused" in mapped.stdout, mapped.stdout
    points = _lightcurve(stack)["points"]
    assert len(points) == 10 and sum(p["observatory"] == "Loiano 1.52m" for p in points) == 2
    final = stack.cli("import", "cpcs", url, "--observatory-map", str(MAP_FILE), "--unmapped-to", "Loiano 1.52m")
    assert "total: 0 added, 10 already there, 0 refused" in final.stdout, final.stdout
    client, db = _db(stack)
    try:
        assert db.datapoints.count_documents({}) == 10
        assert sorted(d["followup_id"] for d in db.datapoints.find({}, {"followup_id": 1}))[:8] == stored
    finally:
        client.close()

    # the pages and the other reads take imported points (no calibration, no plot) like any other
    csv_text = (
        urllib.request.urlopen(
            f"{stack.url}/api/v1/lightcurves/{urllib.parse.quote(IVORN, safe='')}?format=csv", timeout=30
        )
        .read()
        .decode()
    )
    header, *rows = csv_text.splitlines()
    assert header.endswith(",comment,imported") and len(rows) == 10 and all(r.endswith(",cpcs") for r in rows)
    followup = _get_json(f"{stack.url}/api/v1/followup")
    assert isinstance(followup, list) and len(followup) == 10 and all(p["calibration_id"] is None for p in followup)
    for page in (f"/lightcurve/{urllib.parse.quote(IVORN, safe='')}", "/followup", "/alerts"):
        with urllib.request.urlopen(stack.url + page, timeout=30) as response:
            assert response.status == 200 and "Gaia19bld" in response.read().decode(), page

    # a file of an alert photcal does not have: refused, saying how to add it
    local = tmp_path / "alert-12.json"
    shutil.copy(LC_FILE, local)
    missing = stack.cli(
        "import", "cpcs", str(local), "--observatory-map", str(MAP_FILE), "--alert", "ivo://gaia/alerts#Gaia99zzz",
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "alerts not in photcal" in missing.stderr and "photcal alert add" in missing.stderr, missing.stderr
    assert "total: 0 added, 0 already there, 10 refused" in missing.stdout


def test_import_catalogues_recalibrates_old_catalogues_through_the_gateway(stack: Stack, tmp_path):
    field = field_dir("north_V")
    truth = stack.load_field(field)
    hashtag = stack.add_observatory()
    ivorn = "ivo://gaia/alerts#SimNorthV"
    stack.cli("alert", "add", "--ivorn", ivorn, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"]))
    stack.start()

    archive = tmp_path / "archive"
    (archive / "2019").mkdir(parents=True)
    shutil.copy(field / "sex_cpcs.cat", archive / "2019" / "night1.cat")
    shutil.copy(field / "sex_ascii_head.cat", archive / "2019" / "night2.cat")
    (archive / "manifest.csv").write_text(
        "file,event,mjd,filter,hashtag,exptime,comment\n"
        f"2019/night1.cat,{ivorn},58612.91234,,,120,from the CPCS archive\n"
        f"2019/night2.cat,{ivorn},58613.90110,APASS/V,,120,\n"
        f"2019/missing.cat,{ivorn},58614.9,,,120,\n"
    )

    first = stack.cli("import", "catalogues", str(archive), "--hashtag", hashtag, check=False)
    assert first.returncode == 1, first.stdout + first.stderr  # the missing file
    assert "total: 2 added, 0 already there, 1 refused" in first.stdout, first.stdout + first.stderr
    assert "2019/night1.cat (line 2): added" in first.stdout and "APASS/V" in first.stdout
    assert "2019/missing.cat (line 4): refused: cannot read" in first.stderr

    lc = _get_json(f"{stack.url}/api/v1/lightcurves/{urllib.parse.quote(ivorn, safe='')}")
    assert isinstance(lc, dict)
    points = lc["points"]
    assert [p["mjd"] for p in points] == [58612.91234, 58613.9011]
    assert all(p["imported"] is None and p["survey"] == "APASS" and p["filter"] == "V" for p in points)
    assert all(abs(p["mag"] - truth["transient"]["mag"]) < 0.3 for p in points)
    client, db = _db(stack)
    try:
        # calibrated on the way: each with its calibration record and its sources, so recalibration can redo it
        assert db.calibrations.count_documents({}) == 2 and db.upload_sources.count_documents({}) == 2
    finally:
        client.close()

    again = stack.cli("import", "catalogues", str(archive), "--hashtag", hashtag, check=False)
    assert "total: 0 added, 2 already there, 1 refused" in again.stdout, again.stdout + again.stderr
    assert "already there" in again.stdout
    lc_again = _get_json(f"{stack.url}/api/v1/lightcurves/{urllib.parse.quote(ivorn, safe='')}")
    assert lc_again == lc


def test_harvested_alert_files_resolve_through_list_of_alerts_and_may_create_the_alert(stack: Stack, tmp_path):
    stack.add_observatory("Ondrejov 0.5m")
    stack.add_observatory("LCO 1m SSO")
    stack.add_observatory("Loiano 1.52m")
    # the harvesters' cache: list_of_alerts as index.json, get_alert_lc_data?alert_id=12 as alert-12.json
    harvest = tmp_path / "CPCS"
    harvest.mkdir()
    ivorn = "ivo://gaia/alerts#Gaia19dxx"
    (harvest / "index.json").write_text(
        json.dumps([{"id": 12, "ivorn": ivorn, "name": "Gaia19dxx", "ra": 10.125, "dec": -20.5, "n_datapoints": 10}])
    )
    arrays = json.loads(LC_FILE.read_text())
    arrays["id"] = [i + 100_000 for i in arrays["id"]]
    (harvest / "alert-12.json").write_text(json.dumps(arrays))
    args = ("import", "cpcs", str(harvest), "--observatory-map", str(MAP_FILE), "--unmapped-to", "Loiano 1.52m")

    refused = stack.cli(*args, check=False)
    assert refused.returncode == 1
    assert f"{ivorn}: 10 points" in refused.stderr and "--create-missing-alerts" in refused.stderr, refused.stderr

    created = stack.cli(*args, "--create-missing-alerts")
    assert f"alert {ivorn} created" in created.stdout
    assert "total: 10 added, 0 already there, 0 refused" in created.stdout, created.stdout
    again = stack.cli(*args, "--create-missing-alerts")
    assert "total: 0 added, 10 already there, 0 refused" in again.stdout and "created" not in again.stdout
    client, db = _db(stack)
    try:
        alert = db.alerts.find_one({"ivorn": ivorn})
        assert alert is not None and (alert["ra"], alert["dec"], alert["name"]) == (10.125, -20.5, "Gaia19dxx")
        assert db.datapoints.count_documents({"ivorn": ivorn, "imported": "cpcs"}) == 10
        assert db.datapoints.find_one({"cpcs_id": 141211})["upload_id"] == "cpcs:141211"
    finally:
        client.close()
