"""A light curve stays cached while its own datapoints do not change, whatever other alerts receive."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.lightcurve import summary
from services.lightcurve.handlers import LIGHTCURVES, lightcurve_of
from shared.db import connect_database
from shared.db.alerts import Alert, add_alert
from shared.db.datapoints import delete_datapoint, store_datapoint

pytestmark = pytest.mark.integration


def _point(ivorn: str, mjd: float, upload_id: str) -> dict:
    return {"upload_id": upload_id, "ivorn": ivorn, "observatory_id": "obs1", "observatory": "Obs", "mjd": mjd,
            "survey": "APASS", "filter": "V", "mag": 15.0, "mag_err": 0.05, "limit_mag": 19.0, "detected": True}


async def test_other_alerts_uploads_leave_a_light_curve_cached_its_own_change_it(mongo_proc, fresh_db_name):
    db = connect_database(mongo_proc.url, fresh_db_name)
    try:
        await db.ensure_indexes()
        busy, quiet = "ivo://test/alerts#Busy", "ivo://test/alerts#Quiet"
        for ivorn in (busy, quiet):
            await add_alert(db, Alert(ivorn=ivorn, ra=10.0, dec=20.0))
        await store_datapoint(db, _point(quiet, 60000.1, "q1"))
        request = SimpleNamespace(app={"db": db, LIGHTCURVES: summary.LightcurveCache()})

        first = await lightcurve_of(request, quiet)
        for i in range(3):  # a campaign on another alert
            await store_datapoint(db, _point(busy, 60000.2 + i, f"b{i}"))
        assert await lightcurve_of(request, quiet) is first  # the cached object, not re-read

        own = await store_datapoint(db, _point(quiet, 60001.1, "q2"))
        second = await lightcurve_of(request, quiet)
        assert second is not first and len(second["points"]) == 2
        await delete_datapoint(db, own.followup_id, "obs1", "test")
        third = await lightcurve_of(request, quiet)
        assert third is not second and [p["mjd"] for p in third["points"]] == [60000.1]
        # a redelivered store of the same upload changes nothing but is not trusted to have been counted
        await store_datapoint(db, _point(busy, 60000.2, "b0"))
        assert await lightcurve_of(request, quiet) is third
    finally:
        await db.close()
