"""HTTP reads: alerts, follow-up data, light curves (HTML, JSON, CSV)."""

from __future__ import annotations

from urllib.parse import quote, unquote

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve import pages, views
from shared.db import Database
from shared.db.alerts import find_alert, list_alerts
from shared.db.client import unavailable
from shared.db.datapoints import datapoints_of_alert, recent_datapoints
from shared.errors import NotFound


def _db(request: web.Request) -> Database:
    return request.app["db"]


async def _lightcurve_data(request: web.Request) -> dict:
    ivorn = unquote(request.match_info["ivorn"])
    try:
        alert = await find_alert(_db(request), ivorn)
        if alert is None:
            raise NotFound(f"unknown event {ivorn}", code="unknown_event")
        points = await datapoints_of_alert(_db(request), alert.ivorn)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return views.lightcurve(alert, points)


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


async def page_lightcurve(request: web.Request) -> web.Response:
    data = await _lightcurve_data(request)
    link = quote(data["ivorn"], safe="")
    content = (
        f"<p>{pages._cell(data['ivorn'])} · RA {data['ra']:.5f} Dec {data['dec']:.5f} · "
        f'<a href="/api/v1/lightcurves/{link}?format=csv">CSV</a> · <a href="/api/v1/lightcurves/{link}">JSON</a></p>'
        + pages.table(data["points"], views.POINT_COLUMNS)
    )
    return web.Response(text=pages.page(f"Light curve of {data['name']}", content), content_type="text/html")


async def _alert_rows(request: web.Request) -> list[dict]:
    db = _db(request)
    try:
        alerts = await list_alerts(db)
        points = await recent_datapoints(db, limit=100_000)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    by_alert: dict[str, list] = {}
    for p in points:
        by_alert.setdefault(p.ivorn, []).append(p)
    rows = []
    for alert in alerts:
        mine = sorted(by_alert.get(alert.ivorn, []), key=lambda p: p.mjd)
        rows.append(views.alert_row(alert, len(mine), mine[-1] if mine else None))
    if request.query.get("with_data") in {"1", "true"}:
        rows = [r for r in rows if r["n_datapoints"]]
    return rows


async def api_alerts(request: web.Request) -> web.Response:
    return web.json_response(await _alert_rows(request))


async def page_alerts(request: web.Request) -> web.Response:
    rows = await _alert_rows(request)
    columns = ("name", "ivorn", "ra", "dec", "n_datapoints", "last_mag", "last_mjd")
    return web.Response(text=pages.page("Alerts", pages.table(rows, columns, "name")), content_type="text/html")


async def _followup_rows(request: web.Request) -> list[dict]:
    try:
        points = await recent_datapoints(_db(request), limit=1000)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return [views.followup_row(p) for p in points]


async def api_followup(request: web.Request) -> web.Response:
    return web.json_response(await _followup_rows(request))


async def page_followup(request: web.Request) -> web.Response:
    rows = await _followup_rows(request)
    columns = ("alert_name", "observatory", "mjd", "filter", "survey", "mag", "mag_err", "limit_mag", "exptime", "comment")
    return web.Response(text=pages.page("Follow-up data", pages.table(rows, columns)), content_type="text/html")
