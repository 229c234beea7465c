"""A light curve stays cached while its own datapoints do not change, whatever other alerts receive."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest
from aiohttp import web

from services.lightcurve import summary
from services.lightcurve.handlers import LIGHTCURVES, lightcurve_of
from shared.db import connect_database
from shared.db.alerts import Alert, add_alert
from shared.db.datapoints import delete_datapoint, store_datapoint

pytestmark = pytest.mark.integration


def _point(ivorn: str, mjd: float, upload_id: str) -> dict:
    return {
        "upload_id": upload_id,
        "ivorn": ivorn,
        "observatory_id": "obs1",
        "observatory": "Obs",
        "mjd": mjd,
        "survey": "APASS",
        "filter": "V",
        "mag": 15.0,
        "mag_err": 0.05,
        "limit_mag": 19.0,
        "detected": True,
    }


async def test_other_alerts_uploads_leave_a_light_curve_cached_its_own_change_it(mongo_proc, fresh_db_name):
    db = connect_database(mongo_proc.url, fresh_db_name)
    try:
        await db.ensure_indexes()
        busy, quiet = "ivo://test/alerts#Busy", "ivo://test/alerts#Quiet"
        for ivorn in (busy, quiet):
            await add_alert(db, Alert(ivorn=ivorn, ra=10.0, dec=20.0))
        await store_datapoint(db, _point(quiet, 60000.1, "q1"))
        # the handler reads only request.app: a namespace stands in for the aiohttp request
        request = cast(web.Request, SimpleNamespace(app={"db": db, LIGHTCURVES: summary.LightcurveCache()}))

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


async def test_the_alert_list_adds_new_datapoints_without_rereading_all_and_agrees_with_a_full_read(
    mongo_proc, fresh_db_name
):
    db = connect_database(mongo_proc.url, fresh_db_name)
    try:
        await db.ensure_indexes()
        ivorns = [f"ivo://test/alerts#A{i}" for i in range(5)]
        for ivorn in ivorns:
            await add_alert(db, Alert(ivorn=ivorn, ra=10.0, dec=20.0))
        await store_datapoint(db, _point(ivorns[0], 60000.0, "u0"))
        summaries = summary.AlertSummaries()
        before = await summaries.rows(db)
        assert summaries._summary is not None
        built = summaries._summary.built
        # new datapoints, one a limit, one older than the alert's last
        await store_datapoint(db, _point(ivorns[0], 60002.0, "u1") | {"detected": False, "mag": None})
        await store_datapoint(db, _point(ivorns[0], 59999.0, "u2"))
        await store_datapoint(db, _point(ivorns[3], 60001.0, "u3") | {"mag": 16.5})
        after = await summaries.rows(db)
        assert summaries._summary.built == built  # updated, not rebuilt
        assert after == await summary._build(db)  # the same as reading everything again
        row = {r["ivorn"]: r for r in after}
        assert row[ivorns[0]]["n_datapoints"] == 3 and row[ivorns[0]]["last_is_limit"] is True
        assert row[ivorns[0]]["last_mag"] == 19.0 and row[ivorns[0]]["last_mjd"] == 60002.0
        assert row[ivorns[3]]["last_mag"] == 16.5 and before != after
        # a delete is not an addition: read again in full
        point = await store_datapoint(db, _point(ivorns[1], 60003.0, "u4"))
        await delete_datapoint(db, point.followup_id, "obs1", "test")
        assert await summaries.rows(db) == await summary._build(db)
        assert summaries._summary.built > built
    finally:
        await db.close()


async def test_new_alerts_join_the_list_without_a_full_read(mongo_proc, fresh_db_name):
    """A Gaia alerts import adds alerts every day: each no longer costs a read of every datapoint."""
    db = connect_database(mongo_proc.url, fresh_db_name)
    try:
        await db.ensure_indexes()
        await add_alert(db, Alert(ivorn="ivo://test/alerts#Old", ra=10.0, dec=20.0))
        await store_datapoint(db, _point("ivo://test/alerts#Old", 60000.0, "o1"))
        summaries = summary.AlertSummaries()
        await summaries.rows(db)
        assert summaries._summary is not None
        built = summaries._summary.built
        await add_alert(db, Alert(ivorn="ivo://test/alerts#New", ra=11.0, dec=21.0, name="New"))
        await store_datapoint(db, _point("ivo://test/alerts#New", 60001.0, "n1"))
        await store_datapoint(db, _point("ivo://test/alerts#Old", 60002.0, "o2"))
        rows = await summaries.rows(db)
        assert summaries._summary.built == built
        assert rows == await summary._build(db)
        assert [(r["name"], r["n_datapoints"]) for r in rows] == [("New", 1), ("Old", 2)]
    finally:
        await db.close()
