"""`photcal recalibrate --survey S`: a recalibration job over stored datapoints, computed through lsdb/Dask.

The whole stack calibrates real uploads against APASS; then a Gaia DR3
catalogue appears and the selected datapoints are recalibrated against it,
locally and on a (real, local) Dask cluster. Each run is a ready job (a dry
run) whose items hold the old and new band and magnitude; the calibrations
and datapoints stay as they were until an administrator applies it.
"""

from __future__ import annotations

import json
import re
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


def _job_of(out: str) -> str:
    found = re.search(r"job ([0-9a-f]{32}) ready", out)
    assert found is not None, out
    return found.group(1)


def _items(db, job_id: str) -> dict[int, dict]:
    return {d["followup_id"]: d for d in db.recalibrations.find({"job_id": job_id})}


@pytest.mark.timeout(900)
def test_recalibrate_writes_a_ready_job_and_changes_nothing(stack: Stack, dask_cluster):
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

    late_mjd = truth["mjd"] + 10.0
    code, stored = curl_upload(stack, FIELD / "sex_fits1.fits", hashtag, ivorn, dry_run=0, mjd=str(truth["mjd"]))
    assert code in (200, 201) and stored["status"] == "ok" and stored["stored"], stored
    assert (stored["survey"], stored["filter"]) == ("APASS", "V")
    code, late = curl_upload(stack, FIELD / "sex_cpcs.cat", hashtag, ivorn, dry_run=0, mjd=str(late_mjd))
    assert code in (200, 201) and late["status"] == "ok" and late["stored"], late
    code, dry = curl_upload(stack, FIELD / "sex_cpcs.cat", hashtag, ivorn, dry_run=1, mjd="60000.5")
    assert code == 200 and dry["status"] == "ok" and not dry["stored"], dry

    client, db = _db(stack)
    try:
        # the calibrate service keeps the sources of stored uploads only
        kept = {d["upload_id"] for d in db.upload_sources.find({}, {"upload_id": 1})}
        assert kept == {stored["upload_id"], late["upload_id"]}
        calibrations_before = list(db.calibrations.find({}, {"_id": 0}).sort("upload_id", 1))
        datapoints_before = list(db.datapoints.find({}, {"_id": 0}).sort("followup_id", 1))
        first, second = stored["followup_id"], late["followup_id"]

        # same catalogue, through lsdb: the same answer as the live calibration, so nothing would change
        out = stack.cli("recalibrate", "--survey", "APASS").stdout
        same = _job_of(out)
        assert "curl -X POST -F hashtag=$ADMIN_HASHTAG http://" in out and f"/api/v1/recalibrations/{same}/apply" in out
        job = db.recalibration_jobs.find_one({"_id": same})
        assert (job["engine"], job["state"], job["total"]) == ("dask", "ready", 2)
        assert job["request"]["dry_run"] and job["request"]["change"]["force_filter"] == "APASS/any"
        assert job["request"]["change"]["catalogue_versions"] == {"APASS": "v1"}
        assert job["summary"]["computed"] == 2 and job["summary"]["failed"] == 0
        items = _items(db, same)
        assert set(items) == {first, second}
        mine = items[first]
        assert mine["state"] == "computed" and mine["upload_id"] == stored["upload_id"]
        assert (
            (mine["old"]["survey"], mine["old"]["filter"])
            == ("APASS", "V")
            == (mine["new"]["survey"], mine["new"]["filter"])
        )
        assert mine["new"]["zeropoint"] == pytest.approx(stored["zeropoint"], abs=0.01)
        assert mine["new"]["mag"] == pytest.approx(stored["mag"], abs=0.01)
        assert abs(mine["dmag"]) < 0.01
        # the whole answer, with what produced it
        provenance = mine["result"]["provenance"]
        assert provenance["catalogues"][0]["survey"] == "APASS" and provenance["catalogues"][0]["version"] == "v1"
        assert provenance["match_radius_arcsec"] == 2.0

        # a new survey release appears: the early points only, against it
        stack.cli("catalog", "load", "--survey", "GAIA", str(FIELD / "ref_GAIA.csv"))
        out = stack.cli(
            "recalibrate", "--survey", "GAIA", "--mjd-max", str(truth["mjd"] + 1), "--alert", "SimNorthV"
        ).stdout
        assert "local Dask" in out, out
        gaia_job = _job_of(out)
        assert gaia_job != same  # a new job each run
        (gaia,) = _items(db, gaia_job).values()
        assert gaia["followup_id"] == first and gaia["state"] == "computed"
        assert gaia["new"]["survey"] == "GAIA" and gaia["new"]["filter"] in ("G", "BP", "RP")
        assert gaia["changed"] and gaia["new"]["mag"] is not None and gaia["dmag"] is not None
        assert gaia["dmag"] == pytest.approx(gaia["new"]["mag"] - gaia["old"]["mag"], abs=1e-3)
        assert gaia["result"]["npoints"] >= 5 and gaia["result"]["scatter"] < 0.2
        # the transient's magnitude in Gaia's band is within the band-to-band difference of V
        assert abs(gaia["new"]["mag"] - truth["transient"]["mag"]) < 1.0
        summary = db.recalibration_jobs.find_one({"_id": gaia_job})["summary"]
        assert (summary["changed"], summary["band_changed"]) == (1, 1)
        assert summary["max_abs_dmag"] == pytest.approx(abs(gaia["dmag"]), abs=1e-4)
        assert "1 change (1 change band)" in out, out

        # a job interrupted with a point still pending (as a crash would leave it) is resumed, not redone
        db.recalibration_jobs.update_one({"_id": gaia_job}, {"$set": {"state": "computing", "summary": None}})
        db.recalibrations.update_one(
            {"_id": f"{gaia_job}|{first}"},
            {"$set": {"state": "pending", "job_state_key": f"{gaia_job}|pending", "new": None}},
        )
        out = stack.cli("recalibrate", "--resume", gaia_job).stdout
        assert _job_of(out) == gaia_job and "recalibrating 1 point(s)" in out, out
        (resumed,) = _items(db, gaia_job).values()
        assert resumed["state"] == "computed" and resumed["new"] == gaia["new"]
        assert "nothing to compute" in stack.cli("recalibrate", "--resume", gaia_job).stdout

        # one datapoint by id, a band forced within the survey
        out = stack.cli(
            "recalibrate", "--survey", "GAIA", "--followup-id", str(second), "--force-filter", "GAIA/BP"
        ).stdout
        (forced,) = _items(db, _job_of(out)).values()
        assert forced["followup_id"] == second and (forced["new"]["survey"], forced["new"]["filter"]) == ("GAIA", "BP")
        # a selection that names an unknown event is refused, not empty
        refused = stack.cli("recalibrate", "--survey", "GAIA", "--alert", "NoSuchEvent", check=False)
        assert refused.returncode != 0 and "NoSuchEvent" in refused.stdout + refused.stderr

        # on a Dask cluster: the same numbers, in a job of its own
        if dask_cluster is None:
            pytest.skip("dask.distributed is not installed: the cluster half is skipped")
        env = stack.env | {"PHOTCAL_DASK_SCHEDULER": dask_cluster}
        done = subprocess.run(
            [*PHOTCAL, "recalibrate", "--survey", "GAIA", "--followup-id", str(first)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert dask_cluster in done.stdout, done.stdout
        (cluster,) = _items(db, _job_of(done.stdout)).values()
        assert cluster["new"] == gaia["new"] and cluster["dmag"] == gaia["dmag"]
        assert db.recalibration_jobs.count_documents({}) == 4

        # a dry run: the calibrations and datapoints are untouched
        assert list(db.calibrations.find({}, {"_id": 0}).sort("upload_id", 1)) == calibrations_before
        assert list(db.datapoints.find({}, {"_id": 0}).sort("followup_id", 1)) == datapoints_before
    finally:
        client.close()
