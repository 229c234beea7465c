"""The shared/db modules against the MongoDB-protocol server: what each read answers after each write."""

from __future__ import annotations

import pytest

from shared.contracts.collections import COLLECTIONS
from shared.contracts.messages import CalibrationResult
from shared.db import (
    alerts,
    calibrations,
    connect_database,
    counters,
    datapoints,
    sessions,
    upload_sources,
    uploads,
)
from shared.errors import Forbidden, NotFound

IVORN = "ivo://test/db#Modules1"


def _point(upload_id: str, mjd: float, observatory_id: str = "obs1") -> dict:
    return {
        "upload_id": upload_id,
        "ivorn": IVORN,
        "observatory_id": observatory_id,
        "observatory": "Obs",
        "mjd": mjd,
        "mag": 15.0,
        "mag_err": 0.1,
        "filter": "V",
        "survey": "APASS",
    }


pytestmark = pytest.mark.integration


@pytest.fixture
async def db(mongo_proc, fresh_db_name):
    database = connect_database(mongo_proc.url, fresh_db_name)
    await database.ensure_indexes()
    yield database
    await database.close()


async def test_a_soft_delete_is_seen_by_every_reader_and_frees_the_mjd(db):
    await alerts.add_alert(db, alerts.Alert(ivorn=IVORN, ra=10.0, dec=20.0, url="https://example.org/e"))
    first = await datapoints.store_datapoint(db, _point("u1", 60000.1))
    second = await datapoints.store_datapoint(db, _point("u2", 60000.2))
    other = await datapoints.store_datapoint(db, _point("u3", 60000.3, observatory_id="obs2"))
    assert await datapoints.newest_followup_id(db) == other.followup_id
    assert await datapoints.count_listed(db) == 3
    with pytest.raises(Forbidden):
        await datapoints.delete_datapoint(db, first.followup_id, "obs2", "not mine")
    await datapoints.delete_datapoint(db, first.followup_id, "obs1", "bad frame")
    with pytest.raises(NotFound):
        await datapoints.delete_datapoint(db, first.followup_id, "obs1", "twice")

    assert await datapoints.deleted_followup_ids(db) == [first.followup_id]
    assert await datapoints.count_listed(db) == 2
    assert [p.followup_id for p in await datapoints.list_datapoints(db)] == [other.followup_id, second.followup_id]
    # an observatory's own list keeps its deleted points, with the reason
    mine = await datapoints.list_datapoints(db, observatory_id="obs1")
    assert [(p.followup_id, p.deleted, p.delete_reason) for p in mine] == [
        (second.followup_id, False, None),
        (first.followup_id, True, "bad frame"),
    ]
    assert await datapoints.count_listed(db, observatory_id="obs1") == 2
    assert await datapoints.count_listed(db, ivorn="ivo://test/db#other") == 0
    assert not await datapoints.has_live_datapoint(db, "u1")
    assert await datapoints.has_live_datapoint(db, "u2")
    assert [d["upload_id"] for d in await datapoints.datapoint_docs_of_alert(db, IVORN)] == ["u1", "u2", "u3"]
    summaries = [d async for d in datapoints.live_summaries(db, after_followup_id=first.followup_id)]
    assert [d["followup_id"] for d in summaries] == [second.followup_id, other.followup_id]
    # the deleted datapoint's MJD can be uploaded again (corrected)
    again = await datapoints.store_datapoint(db, _point("u4", 60000.1))
    assert again.followup_id > other.followup_id
    alert = await alerts.get_alert(db, IVORN)
    assert alert is not None and alert.data_version == 5  # 4 stored, 1 deleted
    assert await alerts.get_alert_url(db, IVORN) == "https://example.org/e"
    assert await alerts.newest_alert_id(db) == 1


async def test_an_uploads_record_counts_crashes_and_keeps_its_result(db):
    await uploads.record_queued(db, "u1", {"ivorn": IVORN})
    assert [await uploads.count_crash(db, "u1") for _ in range(3)] == [1, 2, 3]
    done = CalibrationResult(upload_id="u1", ivorn=IVORN, status="ok", image_link="http://x/plots/u1.png")
    await uploads.record_result(db, done)
    await uploads.record_failure(
        db, CalibrationResult(upload_id="u1", ivorn=IVORN, status="error", error="internal_error")
    )
    record = await uploads.get_upload(db, "u1")
    assert record is not None
    assert record["state"] == "done" and record["result"]["status"] == "ok" and record["crashes"] == 3
    assert await uploads.image_link_of(db, "u1") == "http://x/plots/u1.png"
    assert await uploads.image_link_of(db, "nosuch") is None
    await uploads.record_failure(
        db, CalibrationResult(upload_id="u2", ivorn=IVORN, status="error", error="internal_error")
    )
    failed = await uploads.get_upload(db, "u2")
    assert failed is not None and failed["state"] == "failed"


async def test_records_written_once_and_read_back_by_upload(db):
    record = {"upload_id": "u1", "survey": "APASS", "filter": "V", "mag": 15.25, "zeropoint": 22.1, "stars": None}
    assert await calibrations.store_calibration(db, record) is True
    assert await calibrations.store_calibration(db, record | {"mag": 99.0}) is False
    assert await calibrations.calibration_summary(db, "u1") == {
        "survey": "APASS",
        "filter": "V",
        "mag": 15.25,
        "zeropoint": 22.1,
    }
    sources = {"upload_id": "u1", "ivorn": IVORN, "alert_ra": 1.0, "alert_dec": 2.0, "n_sources": 3}
    assert await upload_sources.store_sources(db, sources) is True
    assert await upload_sources.store_sources(db, sources | {"n_sources": 4}) is False
    assert [d["n_sources"] async for d in upload_sources.all_sources(db)] == [3]
    # photcal recalibrate reads them back by upload, with the calibrations' provenance
    by_upload = await upload_sources.sources_of_uploads(db, ["u1", "nosuch"])
    assert {k: d["n_sources"] for k, d in by_upload.items()} == {"u1": 3}
    assert await calibrations.provenances_of(db, ["u1"]) == {}  # stored before provenance was recorded
    await calibrations.store_calibration(db, {"upload_id": "u3", "provenance": {"input_sha256": "ab"}})
    assert await calibrations.provenances_of(db, ["u1", "u3"]) == {"u3": {"input_sha256": "ab"}}
    assert [await counters.next_id(db, "things") for _ in range(3)] == [1, 2, 3]
    await sessions.revoke(db, "s1", 2e9)
    assert await sessions.is_revoked(db, "s1") and not await sessions.is_revoked(db, "s2")
    # every write above landed in a catalogued collection
    assert set(await db.db.list_collection_names()) <= {c.name for c in COLLECTIONS}
