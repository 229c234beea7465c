"""shared/db/uploads.py's listing against the MongoDB-protocol server: one observatory's uploads newest first,
whoever recorded the upload first, and never another observatory's whose id starts the same."""

from __future__ import annotations

import pytest

from shared.contracts.messages import CalibrationResult
from shared.db import connect_database, uploads
from shared.db.observatories import Observatory
from shared.errors import Forbidden
from shared.usecases.uploads import list_uploads

pytestmark = pytest.mark.integration
IVORN = "ivo://test/db#UploadList"


@pytest.fixture
async def db(mongo_proc, fresh_db_name):
    database = connect_database(mongo_proc.url, fresh_db_name)
    await database.ensure_indexes()
    yield database
    await database.close()


def _queued(observatory_id: str, mjd: float, **more) -> dict:
    return {"ivorn": IVORN, "observatory_id": observatory_id, "observatory": observatory_id.upper(), "mjd": mjd} | more


async def test_an_observatory_lists_its_own_uploads_newest_first_by_state(db):
    await uploads.record_queued(db, "u1", _queued("obs", 1.0, filename="a.cat", dry_run=False))
    await uploads.record_queued(db, "u2", _queued("obs2", 2.0))  # another observatory, its id starting the same
    await uploads.record_queued(db, "u3", _queued("obs", 3.0, dry_run=True))
    failed = CalibrationResult(status="error", error="too_few_stars", message="too few", upload_id="u1", ivorn=IVORN)
    await uploads.record_result(db, failed)
    # the worker answered u4 before the gateway recorded it queued: its state stays, its fields are added
    await uploads.record_result(db, CalibrationResult(status="ok", upload_id="u4", ivorn=IVORN, stored=True))
    await uploads.record_queued(db, "u4", _queued("obs", 4.0, filename="d.cat"))

    me = Observatory(observatory_id="obs", name="OBS")
    listing = await list_uploads(db, me, mine=True)
    assert [(u.upload_id, u.state) for u in listing.uploads] == [("u4", "done"), ("u3", "queued"), ("u1", "failed")]
    assert listing.total == 3 and listing.uploads[0].filename == "d.cat" and listing.uploads[0].stored
    assert listing.uploads[1].dry_run is True and listing.uploads[1].mjd == 3.0
    assert (listing.uploads[2].error, listing.uploads[2].message) == ("too_few_stars", "too few")
    only = await list_uploads(db, me, mine=True, state="failed")
    assert [u.upload_id for u in only.uploads] == ["u1"] and only.total == 1
    page = await list_uploads(db, me, mine=True, skip=1, limit=1)
    assert [u.upload_id for u in page.uploads] == ["u3"] and page.total == 3

    with pytest.raises(Forbidden):
        await list_uploads(db, me, mine=False)
    everyone = await list_uploads(db, Observatory(observatory_id="adm", name="Admin", is_admin=True), mine=False)
    assert [u.upload_id for u in everyone.uploads] == ["u4", "u3", "u2", "u1"]
    assert all(u.queued_at is not None and u.queued_at.tzinfo is not None for u in everyone.uploads)


async def test_an_upload_the_gateway_could_not_record_is_listed_from_the_workers_answer(db):
    from shared.contracts.messages import UploadRequested

    upload = UploadRequested(
        upload_id="w1",
        ivorn=IVORN,
        alert_ra=10.0,
        alert_dec=20.0,
        observatory_id="obs",
        observatory_name="OBS",
        mjd=5.0,
        filename="never-queued.cat",
        n_sources=10,
    )
    refused = CalibrationResult(status="error", error="too_few_stars", message="too few", upload_id="w1", ivorn=IVORN)
    await uploads.record_result(db, refused, upload)  # the database was away when the gateway queued it
    listing = await list_uploads(db, Observatory(observatory_id="obs", name="OBS"), mine=True)
    assert [(u.upload_id, u.state, u.filename, u.error) for u in listing.uploads] == [
        ("w1", "failed", "never-queued.cat", "too_few_stars")
    ]
