"""The foundation, as an observer meets it: `photcal run`, the CPCS curl command, the light curve."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import nats
import pytest

from shared.contracts.messages import CalibrationResult
from shared.contracts.subjects import SUBJECT_CALIBRATED
from tests.integration.conftest import Stack, field_dir, wait_until

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")


def curl_upload(
    stack: Stack,
    catalogue,
    hashtag: str,
    event: str,
    *,
    dry_run: int = 1,
    mjd: str = "58000.5",
    extra: tuple[str, ...] = (),
) -> tuple[int, dict]:
    """The CPCS manual's curl command, unchanged but for the values."""
    cmd = [
        "curl",
        "-s",
        "-w",
        "\n%{http_code}",
        "-F",
        "matchDist=2",
        "-F",
        f"EventID={event}",
        "-F",
        f"sexCat=@{catalogue};",
        "-F",
        f"hashtag={hashtag}",
        "-F",
        f"MJD={mjd}",
        "-F",
        "expTime=60",
        "-F",
        "noPlot=1",
        "-F",
        "forceFilter=no",
        "-F",
        f"dryRun={dry_run}",
        "-F",
        "outputFormat=json",
        *extra,
        f"{stack.url}/cgi/upload",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    body, _, code = out.rpartition("\n")
    return int(code), json.loads(body)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def field_stack(stack: Stack):
    truth = stack.load_field(FIELD)
    hashtag = stack.add_observatory()
    ivorn = "ivo://gaia/alerts#SimNorthV"
    stack.cli(
        "alert",
        "add",
        "--ivorn",
        ivorn,
        "--ra",
        str(truth["alert"]["ra"]),
        "--dec",
        str(truth["alert"]["dec"]),
        "--name",
        "SimNorthV",
        "--url",
        "http://example.org/SimNorthV",
    )
    stack.start()
    return stack, truth, hashtag, ivorn


def test_curl_dry_run_gives_the_true_magnitude_and_stores_nothing(field_stack):
    stack, truth, hashtag, ivorn = field_stack
    code, answer = curl_upload(stack, FIELD / "sex_ascii_head.cat", hashtag, ivorn, dry_run=1)
    assert code == 200, answer
    assert answer["status"] == "ok"
    assert (answer["survey"], answer["filter"]) == (truth["best"]["survey"], truth["best"]["band"])
    assert answer["detected"] is True
    assert abs(answer["mag"] - truth["transient"]["mag"]) < 0.1
    assert 0 < answer["mag_err"] < 0.2
    assert abs(answer["zeropoint"] - truth["zeropoint"]) < 0.1
    assert answer["npoints"] >= 5 and answer["stored"] is False and answer["followup_id"] is None
    lc = get_json(f"{stack.url}/api/v1/lightcurves/{urllib.parse.quote(ivorn, safe='')}")
    assert lc["points"] == []


def test_stored_upload_is_refused_the_second_time_and_shows_in_the_light_curve(field_stack):
    stack, truth, hashtag, ivorn = field_stack
    code, first = curl_upload(stack, FIELD / "sex_fits1.fits", hashtag, ivorn, dry_run=0, mjd=str(truth["mjd"]))
    assert code == 200, first
    assert first["stored"] is True and isinstance(first["followup_id"], int)
    code, second = curl_upload(stack, FIELD / "sex_ldac.fits", hashtag, ivorn, dry_run=0, mjd=str(truth["mjd"]))
    assert code == 409, second
    assert second["error"] == "duplicate_datapoint" and second["message"]

    quoted = urllib.parse.quote(ivorn, safe="")
    lc = get_json(f"{stack.url}/api/v1/lightcurves/{quoted}")
    assert [p["followup_id"] for p in lc["points"]] == [first["followup_id"]]
    point = lc["points"][0]
    assert point["mjd"] == pytest.approx(truth["mjd"])
    assert point["mag"] == pytest.approx(first["mag"]) and point["filter"] == first["filter"]
    with urllib.request.urlopen(f"{stack.url}/api/v1/lightcurves/{quoted}?format=csv", timeout=30) as r:
        rows = r.read().decode().splitlines()
    assert rows[0].startswith("mjd,mag,mag_err,limit_mag,filter,survey,observatory")
    assert len(rows) == 2 and str(first["followup_id"]) in rows[1]


def _delete(url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_datapoint_deleted_through_the_json_api_leaves_the_light_curve(field_stack):
    """Only its observatory may delete it; the same MJD can then be uploaded again (a corrected frame)."""
    stack, truth, hashtag, ivorn = field_stack
    other = stack.add_observatory("Another Observatory")
    code, first = curl_upload(stack, FIELD / "sex_ascii_head.cat", hashtag, ivorn, dry_run=0, mjd=str(truth["mjd"]))
    assert code == 200 and first["stored"], first
    url = f"{stack.url}/api/v1/datapoints/{first['followup_id']}"
    assert _delete(url)[0] == 401  # no hashtag
    code, body = _delete(f"{url}?hashtag={other}")
    assert code == 403 and body["error"] == "forbidden"
    assert _delete(f"{stack.url}/api/v1/datapoints/nine?hashtag={hashtag}")[0] == 400
    code, body = _delete(f"{url}?hashtag={hashtag}&reason=wrong+flat")
    assert code == 200 and body["followup_id"] == first["followup_id"] and body["ivorn"] == ivorn
    quoted = urllib.parse.quote(ivorn, safe="")
    assert get_json(f"{stack.url}/api/v1/lightcurves/{quoted}")["points"] == []
    assert _delete(f"{url}?hashtag={hashtag}")[0] == 404  # gone already
    code, again = curl_upload(stack, FIELD / "sex_ascii_head.cat", hashtag, ivorn, dry_run=0, mjd=str(truth["mjd"]))
    assert code == 200 and again["stored"] and again["followup_id"] != first["followup_id"]
    assert [p["followup_id"] for p in get_json(f"{stack.url}/api/v1/lightcurves/{quoted}")["points"]] == [
        again["followup_id"]
    ]


def test_unknown_hashtag_and_unknown_event_get_json_errors(field_stack):
    stack, _truth, hashtag, ivorn = field_stack
    code, answer = curl_upload(stack, FIELD / "sex_cpcs.cat", "not-a-real-hashtag-123", ivorn)
    assert code == 401 and answer["status"] == "error" and "hashtag" in answer["message"]
    code, answer = curl_upload(stack, FIELD / "sex_cpcs.cat", hashtag, "ivo://gaia/alerts#NoSuchAlert")
    assert code == 404 and answer["error"] == "unknown_event" and "NoSuchAlert" in answer["message"]


async def test_every_calibration_is_published_for_subscribers(field_stack):
    stack, truth, hashtag, ivorn = field_stack
    nc = await nats.connect(stack.env["PHOTCAL_NATS_URL"])
    received: asyncio.Queue = asyncio.Queue()

    async def on_result(msg) -> None:
        received.put_nowait(msg)

    await nc.subscribe(SUBJECT_CALIBRATED, cb=on_result)
    code, answer = await asyncio.to_thread(curl_upload, stack, FIELD / "sex_cpcs.cat", hashtag, ivorn)
    assert code == 200, answer
    msg = await asyncio.wait_for(received.get(), 10)
    event = CalibrationResult.model_validate_json(msg.data)
    assert event.upload_id == answer["upload_id"] and event.mag == answer["mag"]
    # the same event is kept in the RESULTS stream for subscribers that were away
    js = nc.jetstream()
    info = await js.stream_info("RESULTS")
    assert info.state.messages >= 1
    await nc.close()


def test_every_service_answers_health_readiness_and_metrics(field_stack):
    stack, *_ = field_stack
    for offset in (0, 1, 2, 3):
        base = f"http://127.0.0.1:{stack.port + offset}"
        assert get_json(base + "/healthz")["status"] == "ok"
        assert get_json(base + "/readyz")["ready"] is True
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            assert b"# TYPE" in r.read()


def test_correlation_id_travels_from_http_through_nats_to_the_worker_log(field_stack):
    stack, _truth, hashtag, ivorn = field_stack
    cid = "trace-me-0123456789"
    code, answer = curl_upload(stack, FIELD / "sex_cpcs.cat", hashtag, ivorn, extra=("-H", f"X-Correlation-ID: {cid}"))
    assert code == 200, answer

    def my_log_lines():
        # the worker logs after it acks, which may be just after the gateway answered
        lines = [
            json.loads(line)
            for line in stack.log().splitlines()
            if line.startswith("{") and '"upload_calibrated"' in line
        ]
        return [line for line in lines if line.get("upload_id") == answer["upload_id"]]

    mine = wait_until(my_log_lines, timeout=10)
    assert mine and mine[0]["correlation_id"] == cid and mine[0]["service"] == "calibrate"


def test_a_target_below_the_frame_limit_answers_a_limit_not_a_magnitude(stack):
    faint = field_dir("north_faint_target")
    truth = stack.load_field(faint)
    hashtag = stack.add_observatory()
    ivorn = "ivo://gaia/alerts#SimFaint"
    stack.cli("alert", "add", "--ivorn", ivorn, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"]))
    stack.start()
    code, answer = curl_upload(stack, faint / "sex_ldac.fits", hashtag, ivorn, dry_run=0, mjd=str(truth["mjd"]))
    assert code == 200, answer
    assert answer["detected"] is False and answer["mag"] is None and answer["mag_err"] is None
    assert (answer["survey"], answer["filter"]) == (truth["best"]["survey"], truth["best"]["band"])
    # the frame's limit, brighter than the transient (else it would have been seen), and no fantasy
    assert answer["limit_method"] == "completeness"
    assert truth["limit_mag_5sigma"] - 0.8 < answer["limit_mag"] < truth["transient"]["mag"]
    assert "not detected" in answer["message"]
    lc = get_json(f"{stack.url}/api/v1/lightcurves/{urllib.parse.quote(ivorn, safe='')}")
    [point] = lc["points"]
    assert point["mag"] is None and point["mag_err"] is None and point["limit_mag"] == answer["limit_mag"]


def test_a_stored_calibration_says_what_produced_it_and_rerunning_it_gives_the_same_bits(field_stack):
    """Issue 19's provenance: the input's checksum, each catalogue's release and loaded version, the code's
    version and every fit setting, at GET /api/v1/uploads/{id}; the same upload again, the same numbers."""
    import hashlib

    stack, truth, hashtag, ivorn = field_stack
    catalogue = FIELD / "sex_fits1.fits"
    code, stored = curl_upload(stack, catalogue, hashtag, ivorn, dry_run=0, mjd=str(truth["mjd"]))
    assert code == 200 and stored["stored"] is True, stored
    record = get_json(f"{stack.url}/api/v1/uploads/{stored['upload_id']}")
    prov = (record.get("result") or record)["provenance"]
    assert prov["input_sha256"] == hashlib.sha256(catalogue.read_bytes()).hexdigest()
    used = {c["survey"]: c for c in prov["catalogues"]}
    assert stored["survey"] in used
    assert used["APASS"]["release"] == "DR9" and used["APASS"]["version"] == "v1"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if head:  # a checkout without git (an sdist) has no commit to compare with
        assert prov["software"]["commit"] == head
    assert prov["software"]["package"]
    assert prov["fit_settings"]["twin_ct_sigma"] == 3.0 and prov["match_radius_arcsec"] == 2.0
    assert prov["observatory_filters"] == ["V", "r"]

    # the same file again (a dry run: the datapoint exists), against the same catalogue versions and code
    code, again = curl_upload(stack, catalogue, hashtag, ivorn, dry_run=1, mjd=str(truth["mjd"]))
    assert code == 200, again
    for key in ("survey", "filter", "mag", "mag_err", "limit_mag", "zeropoint", "zeropoint_err", "colour_term"):
        assert again[key] == stored[key], key  # bit-identical: == on floats, not approx
    assert again["candidates"] == stored["candidates"]


def test_the_json_api_answers_json_unless_a_page_is_asked_and_cpcs_keeps_its_html_default(field_stack):
    """A bare curl of /api/v1/uploads gets JSON (it used to get CPCS's default, a page); /cgi/upload
    without outputFormat stays HTML as CPCS answered."""
    stack, truth, hashtag, ivorn = field_stack

    def post(path: str, *extra: str) -> tuple[str, str]:
        cmd = ["curl", "-s", "-o", "-", "-w", "\n%{content_type}", "-F", f"EventID={ivorn}", "-F", f"hashtag={hashtag}",
               "-F", f"sexCat=@{FIELD / 'sex_cpcs.cat'};", "-F", "MJD=58000.5", "-F", "dryRun=1", "-F", "noPlot=1",
               *extra, f"{stack.url}{path}"]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
        body, _, content_type = out.rpartition("\n")
        return content_type, body

    content_type, body = post("/api/v1/uploads")
    assert content_type.startswith("application/json"), body[:200]
    assert json.loads(body)["filter"] == truth["best"]["band"]
    content_type, body = post("/api/v1/uploads", "-F", "outputFormat=html")
    assert content_type.startswith("text/html") and "Calibration result" in body
    content_type, body = post("/cgi/upload")
    assert content_type.startswith("text/html") and "Calibration result" in body
