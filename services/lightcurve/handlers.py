"""HTTP reads as data: alerts, follow-up data, light curves (JSON, CSV). The HTML pages are in web/."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve import datapoints, summary, views
from shared.bounds import parse_id
from shared.contracts.errors import ErrorCode
from shared.db import Database
from shared.db.alerts import find_alert
from shared.db.client import unavailable
from shared.db.datapoints import datapoint_docs_of_alert, recent_datapoints
from shared.errors import NotFound

SUMMARIES = "photcal.alert_summaries"
LIGHTCURVES = "photcal.lightcurves"


def _db(request: web.Request) -> Database:
    return request.app["db"]


def summaries(app: web.Application) -> summary.AlertSummaries:
    return app[SUMMARIES]


def invalidate(app: web.Application) -> None:
    """This service changed data (a delete, a new event): drop what it reuses at once."""
    app[SUMMARIES].invalidate()
    app[LIGHTCURVES].invalidate()


async def lightcurve_of(request: web.Request, ivorn: str) -> dict:
    """The light curve (views.lightcurve's shape), reused while none of its datapoints was added or deleted."""
    db = _db(request)
    cache: summary.LightcurveCache = request.app[LIGHTCURVES]
    try:
        alert = await find_alert(db, ivorn)
        if alert is None:
            raise NotFound(f"unknown event {ivorn[:200]}", code=ErrorCode.UNKNOWN_EVENT)
        # the alert's data_version moves with every datapoint of its own stored or deleted (and the
        # rest of the alert document with an edit): other alerts' uploads leave this light curve cached
        version = (alert.model_dump_json(),)
        data = cache.get(alert.ivorn, version)
        if data is None:
            docs = await datapoint_docs_of_alert(db, alert.ivorn)
            data = views.lightcurve_of_docs(alert, docs)
            cache.put(alert.ivorn, version, data)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return data


async def _lightcurve_data(request: web.Request) -> dict:
    # match_info is already decoded (once): decoding again would read "#b%42" as "#bB"
    return await lightcurve_of(request, request.match_info["ivorn"])


async def api_lightcurve(request: web.Request) -> web.Response:
    data = await _lightcurve_data(request)
    if request.query.get("format") == "csv":
        filename = quote(data["name"], safe="") + ".csv"
        return web.Response(
            text=views.to_csv(data["points"], views.POINT_COLUMNS),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return web.json_response(data)


async def summary_rows(request: web.Request) -> list[dict]:
    try:
        return await summaries(request.app).rows(_db(request))
    except PyMongoError as exc:
        raise unavailable(exc) from exc


async def _alert_rows(request: web.Request) -> list[dict]:
    """Every alert, newest first, with its datapoint count and last point (``?with_data=1``: only those with data)."""
    rows = await summary_rows(request)
    with_data = request.query.get("with_data") in {"1", "true"}
    return [summary.public(r) for r in rows if r["n_datapoints"] or not with_data]


async def api_alerts(request: web.Request) -> web.Response:
    return web.json_response(await _alert_rows(request))


async def _followup_rows(request: web.Request) -> list[dict]:
    try:
        points = await recent_datapoints(_db(request), limit=1000)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return [views.followup_row(p) for p in points]


async def api_followup(request: web.Request) -> web.Response:
    return web.json_response(await _followup_rows(request))


async def api_datapoint(request: web.Request) -> web.Response:
    """GET /api/v1/datapoints/{followup_id}: the datapoint, its calibration, plot, provenance and history."""
    followup_id = parse_id(request.match_info["followup_id"], "followup_id", ": the one the upload answered")
    detail = await datapoints.datapoint_detail(_db(request), followup_id)
    return web.Response(text=detail.model_dump_json(), content_type="application/json")
