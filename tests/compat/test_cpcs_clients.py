"""CPCS's clients work against photcal unchanged but for the server's address.

Every test drives the real stack (`photcal run`, nats-server, nx-27017) with
the clients' own calls (tests/compat/clients.py) and asserts on what those
clients read from the answer.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from pathlib import Path

import pytest
import requests

from tests.compat.clients import (
    BHTOM_UPLOAD_KEYS,
    bhtom_error_shown,
    bhtom_lightcurve,
    bhtom_reads_upload,
    bhtom_upload,
    curl,
    curl_new_event,
    curl_upload,
    harvest_alerts,
    harvest_photometry,
)
from tests.compat.conftest import FIELD

pytestmark = pytest.mark.integration

CATALOGUE = FIELD / "sex_cpcs.cat"
PREFIXES = ("", "/followup")


def event_for(compat, name: str, prefix: str = "") -> str:
    """A new event through cgi/newevent, at the field's transient, CPCS-style ivorn (ivo://NAME)."""
    ivorn = f"ivo://{name}"
    alert = compat.truth["alert"]
    code, body = curl_new_event(compat.url + prefix, compat.hashtag, ivorn, alert["ra"], alert["dec"])
    assert code == 200, body
    return ivorn


def without_target(tmp_path: Path, truth: dict) -> Path:
    """The same frame with the transient's row removed: a non-detection (CPCS answers a limit)."""
    ra0, dec0 = truth["transient"]["ra"], truth["transient"]["dec"]
    kept = []
    for line in CATALOGUE.read_text().splitlines(keepends=True):
        cols = line.split()
        if not line.startswith("#") and len(cols) >= 4:
            d_ra = (float(cols[2]) - ra0) * math.cos(math.radians(dec0))
            if math.hypot(d_ra, float(cols[3]) - dec0) * 3600 < 5:
                continue
        kept.append(line)
    path = tmp_path / "no_target.cat"
    path.write_text("".join(kept))
    return path


def quoted(ivorn: str) -> str:
    return urllib.parse.quote(ivorn, safe="")


# --- cgi/newevent -------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_newevent_by_curl_form_adds_the_event_and_refuses_it_twice(compat, prefix):
    ivorn = event_for(compat, f"CompatNew{len(prefix)}", prefix)
    lc = requests.get(f"{compat.url}/api/v1/lightcurves/{quoted(ivorn)}", timeout=30).json()
    assert lc["ivorn"] == ivorn and lc["ra"] == pytest.approx(compat.truth["alert"]["ra"])
    code, body = curl_new_event(compat.url + prefix, compat.hashtag, ivorn, 10.0, 10.0)
    answer = json.loads(body)
    assert code == 409 and list(answer)[0] == "message" and answer["error"] == "alert_exists"
    code, body = curl_new_event(compat.url + prefix, "not-a-real-hashtag-123", "ivo://CompatNobody", 10.0, 10.0)
    assert code == 401 and json.loads(body)["status"] == "error"


def test_newevent_with_bad_coordinates_says_which_field(compat):
    code, body = curl(
        f"{compat.url}/cgi/newevent",
        "-F",
        f"hashtag={compat.hashtag}",
        "-F",
        "EventID=ivo://CompatBad",
        "-F",
        "ra=12:30:00",
        "-F",
        "dec=10",
    )
    answer = json.loads(body)
    assert code == 400 and "ra" in answer["message"] and len(answer["message"]) < 100


# --- cgi/upload: BHTOM and the scripts read the answer by key ------------------------------------


def test_bhtom_upload_is_stored_and_answers_every_key_bhtom_reads(compat):
    ivorn = event_for(compat, "CompatBhtom")
    mjd = 59000.123456789012  # BHTOM sends a Python float's repr
    response = bhtom_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, mjd)
    read = bhtom_reads_upload(response)
    truth = compat.truth
    assert (read["survey"], read["filter"]) == (truth["best"]["survey"], truth["best"]["band"])
    assert abs(read["mag"] - truth["transient"]["mag"]) < 0.1 and 0 < read["mag_err"] < 0.2
    assert abs(read["zeropoint"] - truth["zeropoint"]) < 0.1
    assert (
        math.hypot(
            (read["ra"] - truth["transient"]["ra"]) * math.cos(math.radians(read["dec"])),
            read["dec"] - truth["transient"]["dec"],
        )
        * 3600
        < 2
    )
    assert read["npoints"] >= 5 and 0 <= read["outlier_fraction"] <= 0.5 and read["scatter"] > 0
    assert isinstance(read["followup_id"], int)
    # noPlot absent = plot (CPCS's default); the link serves the PNG
    assert read["image_link"] and requests.get(read["image_link"], timeout=30).content[:4] == b"\x89PNG"
    # dryRun=0 (int(allow_upload)) stored it; a second upload of the same MJD is refused, shortly
    again = bhtom_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, mjd)
    assert again.status_code == 409 and list(again.json())[0] == "message"
    # short enough that BHTOM shows it instead of retrying the upload
    assert "already stored" in again.json()["message"] and bhtom_error_shown(again)
    # the JSON API keeps the whole sentence, with the stored datapoint's id
    code, body = curl(
        f"{compat.url}/api/v1/uploads",
        "-F",
        f"EventID={ivorn}",
        "-F",
        f"sexCat=@{CATALOGUE}",
        "-F",
        f"MJD={mjd!r}",
        "-F",
        f"hashtag={compat.hashtag}",
        "-F",
        "noPlot=1",
    )
    assert code == 409 and f"followup_id {read['followup_id']}" in json.loads(body)["message"]


@pytest.mark.parametrize("flag,stored", [("1", False), ("true", False), ("True", False), ("0", True), (None, True)])
def test_dry_run_values_as_clients_send_them(compat, flag, stored):
    ivorn = event_for(compat, f"CompatDry{flag}")
    code, body = curl_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, "59001.5", dry_run=flag)
    answer = json.loads(body)
    assert code == 200, answer
    assert answer["stored"] is stored and (answer["followup_id"] is not None) is stored
    lc = requests.get(f"{compat.url}/api/v1/lightcurves/{quoted(ivorn)}", timeout=30).json()
    assert len(lc["points"]) == (1 if stored else 0)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_hashtag_as_cookie_or_query_parameter(compat, prefix):
    ivorn = event_for(compat, f"CompatWhere{len(prefix)}")
    base = compat.url + prefix
    code, body = curl_upload(base, CATALOGUE, None, ivorn, "59002.5", "-b", f"hashtag={compat.hashtag}")
    assert code == 200 and json.loads(body)["status"] == "ok", body
    args = [
        "-F",
        "matchDist=2",
        "-F",
        f"EventID={ivorn}",
        "-F",
        f"sexCat=@{CATALOGUE}",
        "-F",
        "MJD=59002.6",
        "-F",
        "dryRun=1",
        "-F",
        "noPlot=1",
        "-F",
        "outputFormat=json",
    ]
    code, body = curl(f"{base}/cgi/upload?hashtag={urllib.parse.quote(compat.hashtag)}", *args)
    assert code == 200 and json.loads(body)["status"] == "ok", body


def test_force_filter_values(compat):
    ivorn = event_for(compat, "CompatForce")
    code, body = curl_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, "59003.5", "-F", "forceFilter=APASS/V")
    answer = json.loads(body)
    assert code == 200 and (answer["survey"], answer["filter"]) == ("APASS", "V"), answer
    # GaiaSP (the Warsaw CPCS's synthetic photometry) is served, but this field has no GaiaSP extract
    # loaded: a clear, short 400 (tests/integration/test_gaiasp_end_to_end.py has one that is loaded)
    response = bhtom_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, 59003.6, force_filter="GaiaSP/V")
    answer = response.json()
    assert response.status_code == 400 and list(answer)[0] == "message"
    assert answer["error"] == "force_filter_unavailable" and "GaiaSP" in answer["message"]
    assert len(answer["message"]) < 100
    # a survey not served at all: refused at the gateway
    response = bhtom_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, 59003.65, force_filter="2MASS/J")
    answer = response.json()
    assert response.status_code == 400 and answer["error"] == "force_filter_unavailable"
    assert "2MASS" in answer["message"] and len(answer["message"]) < 100
    code, body = curl_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, "59003.7", "-F", "forceFilter=APASS")
    assert code == 400 and json.loads(body)["error"] == "bad_force_filter"


def test_calibration_error_is_short_for_bhtom(compat, tmp_path):
    ivorn = event_for(compat, "CompatFail")
    lines = CATALOGUE.read_text().splitlines(keepends=True)
    few = tmp_path / "few.cat"
    few.write_text(
        "".join(
            [line for line in lines if line.startswith("#")] + [line for line in lines if not line.startswith("#")][:3]
        )
    )
    response = bhtom_upload(compat.url, few, compat.hashtag, ivorn, 59004.5, dry_run=1)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert list(answer) == ["message", "status", "error"] and answer["status"] == "error"
    assert answer["error"] == "too_few_stars" and "calibration stars" in (bhtom_error_shown(response) or "")
    assert response.headers["X-Upload-ID"]  # the full record: /api/v1/uploads/{id}
    full = requests.get(f"{compat.url}/api/v1/uploads/{response.headers['X-Upload-ID']}", timeout=30).json()
    assert full["result"]["status"] == "error" and "need" in full["result"]["message"]  # the whole sentence


def test_a_bad_catalogue_is_an_error_bhtom_shows(compat, tmp_path):
    """A malformed row's message is long on /api/v1; on the CPCS path it still fits what BHTOM shows."""
    ivorn = event_for(compat, "CompatBadRow")
    lines = CATALOGUE.read_text().splitlines(keepends=True)
    body_at = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    lines[body_at + 2] = lines[body_at + 2].replace(".", ",", 1)
    bad = tmp_path / "bad.cat"
    bad.write_text("".join(lines))
    response = bhtom_upload(compat.url, bad, compat.hashtag, ivorn, 59004.75, dry_run=1)
    assert response.status_code == 400 and response.json()["error"] == "bad_values"
    assert bhtom_error_shown(response) and "line" in response.json()["message"]


def test_missing_hashtag_is_a_short_error_bhtom_shows(compat):
    ivorn = event_for(compat, "CompatNoTag")
    code, body = curl_upload(compat.url, CATALOGUE, None, ivorn, "59005.5")
    assert code == 401 and body.startswith('{"message"') and "hashtag" in json.loads(body)["message"]
    assert len(body) < 100  # BHTOM shows it to the user as "Cpcs error: ..."
    response = bhtom_upload(compat.url, CATALOGUE, "not-a-real-hashtag-123", ivorn, 59005.6)
    assert response.status_code == 401 and "hashtag" in (bhtom_error_shown(response) or "")


# --- outputFormat=html, as browsers posted ---------------------------------------------------------


def test_html_answer_with_the_plot_and_html_errors(compat):
    ivorn = event_for(compat, "CompatHtml")
    code, body = curl_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, "59006.5", output="html", no_plot="0")
    assert code == 200 and body.startswith("<!doctype html>")
    assert "Calibration result" in body and '<img src="http' in body and "APASS/V" in body
    code, body = curl_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, "59006.6", output="html", no_plot="1")
    assert code == 200 and "<img" not in body
    # outputFormat absent = html (CPCS's default)
    code, body = curl(
        f"{compat.url}/cgi/upload",
        "-F",
        f"EventID={ivorn}",
        "-F",
        f"sexCat=@{CATALOGUE}",
        "-F",
        "MJD=59006.7",
        "-F",
        "dryRun=1",
        "-F",
        f"hashtag={compat.hashtag}",
    )
    assert code == 200 and body.startswith("<!doctype html>")
    code, body = curl_upload(compat.url, CATALOGUE, "not-a-real-hashtag-123", ivorn, "59006.8", output="html")
    assert code == 401 and body.startswith("<!doctype html>") and "hashtag" in body


# --- get_alert_lc_data and the light curve ---------------------------------------------------------


def test_light_curve_built_through_cpcs_reads_the_same_in_both_apis(compat, tmp_path):
    ivorn = event_for(compat, "CompatCurve")
    responses = [bhtom_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, mjd) for mjd in (59010.25, 59011.75)]
    answers = [bhtom_reads_upload(r) for r in responses]
    code, body = curl_upload(
        compat.url, without_target(tmp_path, compat.truth), compat.hashtag, ivorn, "59012.5", dry_run="0"
    )
    limit = json.loads(body)
    assert code == 200 and limit["detected"] is False and limit["mag"] is None and limit["limit_mag"] > 18, limit

    lc = requests.get(f"{compat.url}/api/v1/lightcurves/{quoted(ivorn)}", timeout=30).json()
    data = requests.get(
        f"{compat.url}/get_alert_lc_data", params={"alert_name": ivorn, "hashtag": compat.hashtag}, timeout=30
    ).json()
    assert set(data) >= {"mjd", "mag", "magerr", "caliberr", "filter", "catalog", "observatory", "id"}
    assert len(data["mjd"]) == len(lc["points"]) == 3
    for i, p in enumerate(lc["points"]):
        assert data["mjd"][i] == p["mjd"] and data["id"][i] == p["followup_id"]
        assert (data["filter"][i], data["catalog"][i], data["observatory"][i]) == (
            p["filter"],
            p["survey"],
            p["observatory"],
        )
        if p["mag_err"] is None:  # the non-detection: magerr -1, its limit in mag
            assert data["magerr"][i] == -1 and data["mag"][i] == p["limit_mag"]
        else:
            assert (data["mag"][i], data["magerr"][i]) == (p["mag"], p["mag_err"])
    assert data["id"][2] == limit["followup_id"]
    # caliberr is the stored zero point's error: what each upload answered as zeropoint_err
    zeropoint_errs = [r.json()["zeropoint_err"] for r in responses] + [limit["zeropoint_err"]]
    assert data["caliberr"] == pytest.approx(zeropoint_errs) and all(e > 0 for e in zeropoint_errs)

    # BHTOM reads it with the hashtag as a cookie, skipping limits and adding caliberr in quadrature
    points = bhtom_lightcurve(compat.url + "/followup", compat.hashtag, ivorn)
    assert [p["id"] for p in points] == [a["followup_id"] for a in answers]
    assert all(p["filter"] == "V(APASS)" and p["observatory"] == "Compat Observatory" for p in points)
    for p, a in zip(points, answers):
        assert p["magnitude"] == a["mag"] and p["error"] >= a["mag_err"]
    # a POSTed form reads the same (CPCS took both)
    posted = requests.post(
        f"{compat.url}/followup/get_alert_lc_data", data={"alert_name": ivorn, "hashtag": compat.hashtag}, timeout=30
    ).json()
    assert posted == data


def test_get_alert_lc_data_checks_the_hashtag(compat):
    ivorn = event_for(compat, "CompatLcAuth")
    response = requests.get(f"{compat.url}/get_alert_lc_data", params={"alert_name": ivorn}, timeout=30)
    assert response.status_code == 401 and list(response.json())[0] == "message"
    response = requests.get(
        f"{compat.url}/get_alert_lc_data",
        params={"alert_name": "ivo://NoSuchAlert"},
        cookies={"hashtag": compat.hashtag},
        timeout=30,
    )
    assert response.status_code == 404 and response.json()["error"] == "unknown_event"
    response = requests.get(
        f"{compat.url}/get_alert_lc_data",
        params={"alert_name": ivorn, "format": "html"},
        cookies={"hashtag": compat.hashtag},
        timeout=30,
    )
    assert response.status_code == 200 and response.text.startswith("<!doctype html>")


# --- list_of_alerts and alert ids --------------------------------------------------------------------


def test_harvester_lists_observed_alerts_and_reads_each_by_id(compat):
    observed = event_for(compat, "CompatListed")
    unobserved = event_for(compat, "CompatUnobserved")
    read = bhtom_reads_upload(bhtom_upload(compat.url, CATALOGUE, compat.hashtag, observed, 59020.5))

    alerts = harvest_alerts(compat.url + "/followup", compat.hashtag)
    names = [a["name"] for a in alerts]
    assert "CompatListed" in names and "CompatUnobserved" not in names
    raw = requests.get(
        f"{compat.url}/list_of_alerts", params={"format": "json", "num": 1000, "hashtag": compat.hashtag}, timeout=30
    ).json()
    mine = {a["ivorn"]: a for a in raw}
    assert isinstance(mine[observed]["id"], int) and mine[observed]["n_datapoints"] == 1
    assert mine[observed]["name"] == "CompatListed" and mine[unobserved]["n_datapoints"] == 0
    assert float(mine[observed]["ra"]) == pytest.approx(compat.truth["alert"]["ra"])
    assert (
        len(
            requests.get(
                f"{compat.url}/list_of_alerts",
                params={"format": "json", "num": 1, "hashtag": compat.hashtag},
                timeout=30,
            ).json()
        )
        == 1
    )

    alert_id = next(a["id"] for a in alerts if a["name"] == "CompatListed")
    photometry = harvest_photometry(compat.url + "/followup", compat.hashtag, alert_id)
    assert photometry == [(59020.5, read["mag"], read["mag_err"], "V", "Compat Observatory")]

    assert requests.get(f"{compat.url}/list_of_alerts?format=json", timeout=30).status_code == 401
    page = requests.get(f"{compat.url}/list_of_alerts", params={"hashtag": compat.hashtag}, timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"] and "CompatListed" in page.text


# --- cgi/delpoint ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_delpoint_only_by_the_uploading_observatory(compat, prefix):
    ivorn = event_for(compat, f"CompatDel{len(prefix)}")
    read = bhtom_reads_upload(bhtom_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, 59030.5))
    base = compat.url + prefix
    fid = str(read["followup_id"])
    code, body = curl(f"{base}/cgi/delpoint", "-F", f"followupid={fid}", "-F", f"hashtag={compat.other_hashtag}")
    assert code == 403 and json.loads(body)["status"] == "error"
    # a GET with only the cookie is refused: a link on another site must not delete data
    code, body = curl(f"{base}/cgi/delpoint?followupid={fid}", "-b", f"hashtag={compat.hashtag}")
    assert code == 401
    code, body = curl(f"{base}/cgi/delpoint", "-F", f"followupid={fid}", "-F", f"hashtag={compat.hashtag}")
    answer = json.loads(body)
    assert code == 200 and answer["status"] == "ok" and answer["followup_id"] == read["followup_id"], answer
    assert requests.get(f"{compat.url}/api/v1/lightcurves/{quoted(ivorn)}", timeout=30).json()["points"] == []
    data = requests.get(
        f"{compat.url}/get_alert_lc_data", params={"alert_name": ivorn}, cookies={"hashtag": compat.hashtag}, timeout=30
    ).json()
    assert data["id"] == []
    code, body = curl(f"{base}/cgi/delpoint", "-F", f"followupid={fid}", "-F", f"hashtag={compat.hashtag}")
    assert code == 404
    # deleted, the same MJD may be uploaded again (a corrected frame)
    again = bhtom_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, 59030.5)
    assert again.status_code == 200 and again.json()["followup_id"] != read["followup_id"]


# --- cgi/newuser ------------------------------------------------------------------------------------------


def test_newuser_by_an_administrator_gives_a_working_hashtag(compat):
    form = {
        "obsName": "Compat New Site",
        "lon": "21.0",
        "lat": "52.2",
        "allow_upload": "1",
        "prefix": "CNS",
        "hashtag": compat.admin_hashtag,
    }
    refused = requests.post(f"{compat.url}/cgi/newuser", data=form | {"hashtag": compat.hashtag}, timeout=30)
    assert refused.status_code == 403 and list(refused.json())[0] == "message"
    response = requests.post(f"{compat.url}/followup/cgi/newuser", data=form, timeout=30)
    answer = response.json()
    assert response.status_code == 200 and answer["hashtag"].startswith("CNS_"), answer
    again = requests.post(f"{compat.url}/cgi/newuser", data=form, timeout=30)
    assert again.status_code == 409

    ivorn = event_for(compat, "CompatNewUser")
    read = bhtom_reads_upload(bhtom_upload(compat.url, CATALOGUE, answer["hashtag"], ivorn, 59040.5, dry_run=1))
    assert read["followup_id"] is None and read["filter"] == "V"

    viewer = requests.post(
        f"{compat.url}/cgi/newuser",
        timeout=30,
        data=form | {"obsName": "Compat Viewer", "allow_upload": "0", "prefix": ""},
    ).json()
    denied = bhtom_upload(compat.url, CATALOGUE, viewer["hashtag"], ivorn, 59040.6, dry_run=1)
    assert denied.status_code == 403 and bhtom_error_shown(denied)
    html = requests.post(
        f"{compat.url}/cgi/newuser",
        timeout=30,
        data=form | {"obsName": "Compat <b>Html</b>", "outputFormat": "html", "prefix": ""},
    )
    assert html.status_code == 200 and "<b>Html</b>" not in html.text and "&lt;b&gt;" in html.text


def test_every_cpcs_upload_key_is_documented_in_the_answer(compat):
    ivorn = event_for(compat, "CompatKeys")
    code, body = curl_upload(compat.url, CATALOGUE, compat.hashtag, ivorn, "59050.5")
    answer = json.loads(body)
    assert code == 200 and set(BHTOM_UPLOAD_KEYS) <= set(answer)
    assert answer["image_link"] is None  # noPlot=1
