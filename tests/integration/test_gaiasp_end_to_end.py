"""``forceFilter=GaiaSP/V`` end to end, as BHTOM sends it: the CPCS curl command on a real stack.

One stack: the committed field south_R_gaiasp with its APASS, GAIA and
GaiaSP extracts loaded through ``photcal catalog load --survey GaiaSP``.
"""

from __future__ import annotations

import json
import subprocess

from tests.integration.conftest import Stack, field_dir
from tools import fieldio

FIELD = field_dir("south_R_gaiasp")


def curl_forced(stack: Stack, hashtag: str, event: str, force: str) -> tuple[int, dict]:
    """The CPCS manual's curl command (dry run) with ``forceFilter`` set."""
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
        f"sexCat=@{FIELD / 'sex_ascii_head.cat'};",
        "-F",
        f"hashtag={hashtag}",
        "-F",
        "MJD=58000.5",
        "-F",
        "expTime=60",
        "-F",
        "noPlot=1",
        "-F",
        f"forceFilter={force}",
        "-F",
        "dryRun=1",
        "-F",
        "outputFormat=json",
        f"{stack.url}/cgi/upload",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    body, _, code = out.rpartition("\n")
    return int(code), json.loads(body)


def test_force_filter_gaiasp_v_and_r_calibrate_end_to_end(stack):
    truth = stack.load_field(FIELD)
    hashtag = stack.add_observatory()
    ivorn = "ivo://gaia/alerts#SimSouthR"
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
        "SimSouthR",
        "--url",
        "http://example.org/SimSouthR",
    )
    stack.start()
    for band in ("V", "R"):
        code, answer = curl_forced(stack, hashtag, ivorn, f"GaiaSP/{band}")
        assert code == 200, answer
        assert answer["status"] == "ok", answer
        assert (answer["survey"], answer["filter"]) == ("GaiaSP", band)
        assert answer["detected"] is True
        true_mag, _ = fieldio.true_magnitude(FIELD, "GaiaSP", band)
        # V on an R frame: the unknown target colour costs more than the R fit does
        assert abs(answer["mag"] - true_mag) < (0.03 if band == "R" else 3 * answer["mag_err"]), answer
    code, answer = curl_forced(stack, hashtag, ivorn, "GaiaSP/Y")
    assert code == 400 and answer["error"] == "force_filter_unavailable", answer
