"""Light-curve exports through the gateway, from real uploads: VOTable, ECSV, AAVSO and the bulk export."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from astropy import units as u
from astropy.io.votable import parse, validate
from astropy.table import Table

from tests.integration.conftest import Stack, field_dir
from tests.integration.test_end_to_end import curl_upload

pytestmark = pytest.mark.integration

BRIGHT = field_dir("north_V")
FAINT = field_dir("north_faint_target")  # the transient is fainter than the frame's limit


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _add_alert(stack: Stack, truth: dict, name: str) -> str:
    ivorn = f"ivo://gaia/alerts#{name}"
    ra, dec = truth["alert"]["ra"], truth["alert"]["dec"]
    stack.cli(
        "alert",
        "add",
        "--ivorn",
        ivorn,
        "--ra",
        str(ra),
        "--dec",
        str(dec),
        "--name",
        name,
        "--url",
        f"http://example.org/{name}",
    )
    return ivorn


@pytest.fixture
def two_alerts(stack: Stack):
    """north_V uploaded twice (two detections), north_faint_target once (a limit), each stored."""
    bright_truth, faint_truth = stack.load_field(BRIGHT), stack.load_field(FAINT)
    hashtag = stack.add_observatory("Skalnate Pleso 0.6m")
    bright, faint = _add_alert(stack, bright_truth, "SimBright"), _add_alert(stack, faint_truth, "SimFaint")
    stack.start()
    answers = []
    for catalogue, ivorn, mjd in (
        (BRIGHT / "sex_fits1.fits", bright, bright_truth["mjd"]),
        (BRIGHT / "sex_ldac.fits", bright, bright_truth["mjd"] + 1.0),
        (FAINT / "sex_fits1.fits", faint, faint_truth["mjd"]),
    ):
        code, answer = curl_upload(stack, catalogue, hashtag, ivorn, dry_run=0, mjd=str(mjd))
        assert code == 200 and answer["stored"], answer
        answers.append(answer)
    assert answers[2]["detected"] is False, answers[2]
    return stack, bright, faint, answers


def test_exports_describe_the_stored_points(two_alerts):
    stack, bright, faint, answers = two_alerts
    base = f"{stack.url}/api/v1/lightcurves"

    # VOTable: passes astropy's validator and reads back with units and UCDs
    status, headers, body = _get(f"{base}/{urllib.parse.quote(bright, safe='')}?format=votable")
    assert status == 200 and headers["Content-Type"].startswith("application/x-votable+xml")
    assert 'filename="SimBright.vot"' in headers["Content-Disposition"]
    report = io.StringIO()
    assert validate(io.BytesIO(body), output=report), report.getvalue()
    element = parse(io.BytesIO(body)).get_first_table()
    table = element.to_table()
    assert list(table["followup_id"]) == [answers[0]["followup_id"], answers[1]["followup_id"]]
    assert table["mag"].unit == u.mag and table["mjd"].unit == u.d
    assert list(table["mag"]) == pytest.approx([answers[0]["mag"], answers[1]["mag"]], abs=1e-4)
    assert list(table["zeropoint_err"]) == pytest.approx([a["zeropoint_err"] for a in answers[:2]], abs=1e-4)
    assert list(table["system"]) == ["Vega", "Vega"]  # APASS V
    assert list(table["limit_method"]) == [answers[0]["limit_method"], answers[1]["limit_method"]]
    assert {f.name: f.ucd for f in element.fields}["mag"] == "phot.mag;em.opt.V"
    assert table["url"][0].startswith("http") and table["url"][0].endswith(f"/datapoints/{answers[0]['followup_id']}")

    # ECSV of the limit: round-trips with its units, dtypes and meta
    status, headers, body = _get(f"{base}/{urllib.parse.quote(faint, safe='')}?format=ecsv")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    back = Table.read(body.decode(), format="ascii.ecsv")
    assert back["limit_mag"].unit == u.mag and back["mjd"].dtype == np.float64 and back["detected"].dtype == bool
    assert len(back) == 1 and not back["detected"][0] and np.ma.is_masked(back["mag"][0])
    assert back["limit_mag"][0] == pytest.approx(answers[2]["limit_mag"], abs=1e-4)
    assert back["system"][0] == "AB"  # APASS r'
    assert back.meta["alert"]["ivorn"] == faint and "mid-exposure" in back.meta["time"]

    # AAVSO: its headers, one row per point, the limit written "<"
    status, headers, body = _get(f"{base}/{urllib.parse.quote(faint, safe='')}?format=aavso&obscode=TST01")
    lines = body.decode().splitlines()
    assert status == 200 and "#TYPE=EXTENDED" in lines and "#OBSCODE=TST01" in lines and "#DATE=JD" in lines
    rows = [line.split(",") for line in lines if not line.startswith("#")]
    assert len(rows) == 1 and rows[0][0] == "SimFaint" and rows[0][2] == f"<{answers[2]['limit_mag']:.3f}"
    assert rows[0][4] == "SR" and len(rows[0]) == 15

    # the bulk export: one table, an alert column; the JSON and CSV too
    both = urllib.parse.quote(f"{bright},{faint}", safe="")
    status, _, body = _get(f"{base}?alerts={both}&format=ecsv")
    bulk = Table.read(body.decode(), format="ascii.ecsv")
    assert status == 200 and list(bulk["alert"]) == [bright, bright, faint]
    status, _, body = _get(f"{base}?alerts={both}&format=votable")
    assert status == 200 and validate(io.BytesIO(body), output=io.StringIO())
    status, _, body = _get(f"{base}?alerts={both}")
    data = json.loads(body)
    assert [a["ivorn"] for a in data["alerts"]] == [bright, faint] and len(data["points"]) == 3
    status, _, body = _get(f"{base}?alerts={both}&format=csv")
    assert body.decode().splitlines()[0].startswith("alert,alert_name,mjd,mag")

    # refusals say what to do
    status, _, body = _get(f"{base}/{urllib.parse.quote(bright, safe='')}?format=fits")
    assert status == 400 and "votable" in json.loads(body)["message"]
    status, _, body = _get(f"{base}?alerts={both}&format=aavso")
    assert status == 400 and "ecsv" in json.loads(body)["message"]
    many = urllib.parse.quote(",".join(f"ivo://x#{i}" for i in range(201)), safe="")
    status, _, body = _get(f"{base}?alerts={many}")
    assert status == 400 and "at most 200" in json.loads(body)["message"]
    status, _, body = _get(f"{base}?alerts={urllib.parse.quote('ivo://nowhere#none', safe='')}&format=ecsv")
    assert status == 404 and json.loads(body)["error"] == "unknown_event"
