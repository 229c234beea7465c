"""`photcal recalibrate --survey S`: stored uploads re-fitted against a new catalogue through lsdb/Dask.

The whole stack calibrates a real upload against APASS; then a Gaia DR3
catalogue appears and every stored upload is re-calibrated against it,
locally and on a (real, local) Dask cluster, leaving the original
calibration and datapoint untouched.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from pymongo import MongoClient

from tests.integration.conftest import PHOTCAL, Stack, field_dir
from tests.integration.test_end_to_end import curl_upload
from tools.infra import free_port, terminate, venv_binary, wait_for_port

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")


def _db(stack: Stack):
    client: MongoClient[dict] = MongoClient(stack.env["PHOTCAL_MONGO_URL"], serverSelectionTimeoutMS=5000)
    return client, client[stack.env["PHOTCAL_MONGO_DB"]]


@pytest.fixture
def dask_cluster(tmp_path):
    """A real Dask scheduler and one worker, as separate processes."""
    try:
        import distributed  # noqa: F401
    except ImportError:  # the local-Dask half of the test still runs
        yield None
        return
    port = free_port()
    dask = venv_binary("dask")
    log = open(tmp_path / "dask.log", "ab")  # noqa: SIM115 - scheduler and worker write to it until the finally
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = None
    try:
        wait_for_port(port, timeout=60, proc=scheduler)
        worker = subprocess.Popen(
            [
                dask,
                "worker",
                f"tcp://127.0.0.1:{port}",
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--local-directory",
                str(tmp_path / "dask-worker"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        yield f"tcp://127.0.0.1:{port}"
    finally:
        for proc in (worker, scheduler):
            terminate(proc, 20)
        log.close()


def test_recalibrate_against_a_new_catalogue(stack: Stack, dask_cluster):
    # only APASS at first; Gaia DR3 "appears" later
    truth = json.loads((FIELD / "truth.json").read_text())
    stack.cli("catalog", "load", "--survey", "APASS", str(FIELD / "ref_APASS.csv"))
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

    code, stored = curl_upload(stack, FIELD / "sex_fits1.fits", hashtag, ivorn, dry_run=0, mjd=str(truth["mjd"]))
    assert code in (200, 201) and stored["status"] == "ok" and stored["stored"], stored
    assert (stored["survey"], stored["filter"]) == ("APASS", "V")
    code, dry = curl_upload(stack, FIELD / "sex_cpcs.cat", hashtag, ivorn, dry_run=1, mjd="60000.5")
    assert code == 200 and dry["status"] == "ok" and not dry["stored"], dry

    client, db = _db(stack)
    try:
        # the calibrate service keeps the sources of stored uploads only
        kept = list(db.upload_sources.find({}, {"upload_id": 1, "n_sources": 1}))
        assert [d["upload_id"] for d in kept] == [stored["upload_id"]]
        assert kept[0]["n_sources"] > 50
        calibration_before = db.calibrations.find_one({"upload_id": stored["upload_id"]}, {"_id": 0})
        datapoint_before = db.datapoints.find_one({"upload_id": stored["upload_id"]}, {"_id": 0})

        # same catalogue, through lsdb: the same answer as the live calibration
        out = stack.cli("recalibrate", "--survey", "APASS").stdout
        assert "1 recalibrated, 0 could not be" in out, out
        (again,) = list(db.recalibrations.find({"survey": "APASS"}))
        assert again["ok"] and again["upload_id"] == stored["upload_id"]
        assert (again["survey"], again["filter"]) == ("APASS", "V")
        assert again["zeropoint"] == pytest.approx(stored["zeropoint"], abs=0.01)
        assert again["mag"] == pytest.approx(stored["mag"], abs=0.01)
        assert again["previous"]["survey"] == "APASS"

        # a new survey release appears: every stored upload against it
        stack.cli("catalog", "load", "--survey", "GAIA", str(FIELD / "ref_GAIA.csv"))
        out = stack.cli("recalibrate", "--survey", "GAIA").stdout
        assert "1 recalibrated, 0 could not be" in out and "local Dask" in out, out
        (gaia,) = list(db.recalibrations.find({"survey": "GAIA"}))
        assert gaia["ok"] and gaia["filter"] in ("G", "BP", "RP")
        assert gaia["npoints"] >= 5 and gaia["zeropoint"] is not None and gaia["scatter"] < 0.2
        assert gaia["detected"] and gaia["mag"] is not None
        assert gaia["catalogue_version"] == "v1"
        # the transient's magnitude in Gaia's band is within the band-to-band difference of V
        assert abs(gaia["mag"] - truth["transient"]["mag"]) < 1.0

        # on a Dask cluster: the same numbers; running again replaces, never duplicates
        if dask_cluster is None:
            pytest.skip("dask.distributed is not installed: the cluster half is skipped")
        env = stack.env | {"PHOTCAL_DASK_SCHEDULER": dask_cluster}
        done = subprocess.run(
            [*PHOTCAL, "recalibrate", "--survey", "GAIA"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert dask_cluster in done.stdout and "1 recalibrated" in done.stdout, done.stdout
        (gaia2,) = list(db.recalibrations.find({"survey": "GAIA"}))
        assert gaia2["zeropoint"] == pytest.approx(gaia["zeropoint"], abs=1e-6)
        assert gaia2["mag"] == pytest.approx(gaia["mag"], abs=1e-6)
        assert db.recalibrations.count_documents({}) == 2

        # the original calibration and datapoint are untouched
        assert db.calibrations.find_one({"upload_id": stored["upload_id"]}, {"_id": 0}) == calibration_before
        assert db.datapoints.find_one({"upload_id": stored["upload_id"]}, {"_id": 0}) == datapoint_before
    finally:
        client.close()
