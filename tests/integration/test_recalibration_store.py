"""The recalibration records against the MongoDB-protocol server: a job's items move once, a datapoint's
version moves once per job, and its old calibration stays in its history."""

from __future__ import annotations

import asyncio

import pytest

from shared.contracts.messages import PointCalibration, RecalibrationRequest
from shared.db import alerts, connect_database, datapoints, recalibrations

IVORN = "ivo://test/db#Recal1"

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(mongo_proc, fresh_db_name):
    database = connect_database(mongo_proc.url, fresh_db_name)
    await database.ensure_indexes()
    yield database
    await database.close()


def _point(upload_id: str, mjd: float) -> dict:
    return {
        "upload_id": upload_id,
        "ivorn": IVORN,
        "observatory_id": "obs1",
        "observatory": "Obs",
        "mjd": mjd,
        "mag": 15.0,
        "mag_err": 0.1,
        "filter": "V",
        "survey": "APASS",
        "detected": True,
        "calibration_id": upload_id,
    }


NEW = {"survey": "GaiaSP", "filter": "V", "mag": 15.04, "mag_err": 0.05, "detected": True, "calibration_id": "j1|1"}


async def test_a_job_moves_each_item_once_and_counts_its_states(db):
    job = recalibrations.RecalibrationJob(job_id="j1", request=RecalibrationRequest(), total=3)
    items = [
        recalibrations.RecalibrationItem(
            job_id="j1", followup_id=i, upload_id=f"u{i}", ivorn=IVORN, old=PointCalibration()
        )
        for i in (1, 2, 3)
    ]
    await recalibrations.create_job(db, job, items)
    await recalibrations.create_job(db, job, items)  # again (a resumed job): nothing doubles
    assert (await recalibrations.count_items(db, "j1"))["pending"] == 3
    new = PointCalibration(survey="GaiaSP", filter="V", mag=15.04)
    assert await recalibrations.move_item(
        db, "j1", 1, leaving="pending", to="computed", new=new, changed=True, dmag=0.04
    )
    # the redelivered task finds it moved already
    assert not await recalibrations.move_item(db, "j1", 1, leaving="pending", to="failed", reason="x")
    assert await recalibrations.move_item(db, "j1", 2, leaving="pending", to="skipped", reason="datapoint_deleted")
    counts = await recalibrations.count_items(db, "j1")
    assert (counts["pending"], counts["computed"], counts["skipped"], counts["failed"]) == (1, 1, 1, 0)
    computed = [i async for i in recalibrations.items_of_job(db, "j1", states=("computed", "skipped"))]
    assert [(i.followup_id, i.state) for i in computed] == [(1, "computed"), (2, "skipped")]
    assert computed[0].new == new and computed[0].dmag == 0.04
    assert await recalibrations.set_job(db, "j1", expect="computing", state="ready")
    assert not await recalibrations.set_job(db, "j1", expect="computing", state="failed")
    stored = await recalibrations.get_job(db, "j1")
    assert stored is not None and stored.state == "ready" and stored.total == 3


async def test_applying_keeps_the_old_calibration_in_the_history_once(db):
    await alerts.add_alert(db, alerts.Alert(ivorn=IVORN, ra=10.0, dec=20.0, url="https://example.org/e"))
    point = await datapoints.store_datapoint(db, _point("u1", 60000.1))
    outcome, now = await datapoints.apply_recalibration(db, point.followup_id, from_version=1, new=NEW, job_id="j1")
    assert outcome == "applied" and now is not None
    assert (now.version, now.survey, now.mag) == (2, "GaiaSP", 15.04)
    # re-applying the same job changes nothing
    again, _ = await datapoints.apply_recalibration(db, point.followup_id, from_version=1, new=NEW, job_id="j1")
    assert again == "already_applied"
    # another job computed from version 1 does not overwrite version 2
    late, _ = await datapoints.apply_recalibration(db, point.followup_id, from_version=1, new=NEW, job_id="j2")
    assert late == "moved"
    stored = await datapoints.datapoint_by_id(db, point.followup_id)
    assert stored is not None and stored.version == 2 and stored.mag == 15.04
    assert [(h.version, h.survey, h.mag, h.replaced_by_job) for h in stored.history] == [(1, "APASS", 15.0, "j1")]
    # the light curve serves the current version
    (served,) = await datapoints.datapoints_of_alert(db, IVORN)
    assert (served.mag, served.version) == (15.04, 2)


async def test_two_jobs_applying_at_once_only_one_wins(db):
    await alerts.add_alert(db, alerts.Alert(ivorn=IVORN, ra=10.0, dec=20.0, url="https://example.org/e"))
    point = await datapoints.store_datapoint(db, _point("u1", 60000.1))
    outcomes = await asyncio.gather(
        *(datapoints.apply_recalibration(db, point.followup_id, from_version=1, new=NEW, job_id=j) for j in ("a", "b"))
    )
    assert sorted(o for o, _ in outcomes) == ["applied", "moved"]


async def test_a_deleted_point_is_not_recalibrated(db):
    await alerts.add_alert(db, alerts.Alert(ivorn=IVORN, ra=10.0, dec=20.0, url="https://example.org/e"))
    point = await datapoints.store_datapoint(db, _point("u1", 60000.1))
    await datapoints.delete_datapoint(db, point.followup_id, "obs1", "bad frame")
    outcome, _ = await datapoints.apply_recalibration(db, point.followup_id, from_version=1, new=NEW, job_id="j1")
    assert outcome == "deleted"
    stored = await datapoints.datapoint_by_id(db, point.followup_id)
    assert stored is not None and stored.mag == 15.0 and stored.history == []
