"""HTTP reads as data: alerts, follow-up data, light curves (JSON, CSV; VOTable, ECSV, AAVSO in exports.py).

The HTML pages are in web/."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from astropy.table import Table
from pymongo.errors import PyMongoError

from services.lightcurve import datapoints, exports, summary, views
from shared.bounds import parse_id
from shared.contracts.errors import ErrorCode
from shared.db import Database
from shared.db.alerts import Alert, find_alert
from shared.db.calibrations import limit_methods_of
from shared.db.client import unavailable
from shared.db.datapoints import datapoint_docs_of_alert, recent_datapoints
from shared.errors import BadInput, NotFound
from shared.session import request_origin

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


def _format(request: web.Request, formats: tuple[str, ...]) -> str:
    """``?format=`` (json when absent), one of ``formats``; else 400 listing them."""
    fmt = request.query.get("format", "json").strip().lower() or "json"
    if fmt not in formats:
        raise BadInput(
            f"format {fmt[:40]!r} is not one this path serves: ask ?format= one of {', '.join(formats)}",
            code=ErrorCode.BAD_FIELD,
        )
    return fmt


def _attachment(body: str | bytes, fmt: str, stem: str) -> web.Response:
    filename = quote(stem, safe="") + "." + exports.EXTENSIONS[fmt]
    content_type = exports.CONTENT_TYPES.get(fmt, "text/csv")
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if isinstance(body, bytes):
        return web.Response(body=body, content_type=content_type, headers=headers)
    return web.Response(text=body, content_type=content_type, headers=headers)


async def _alerts_of(db: Database, keys: list[str]) -> list[Alert]:
    alerts = []
    for key in keys:
        alert = await find_alert(db, key)
        if alert is None:
            raise NotFound(f"unknown event {key[:200]}", code=ErrorCode.UNKNOWN_EVENT)
        alerts.append(alert)
    return alerts


async def _export_table(request: web.Request, keys: list[str], *, bulk: bool) -> Table:
    """The alerts' light curves as :func:`exports.lightcurve_table` builds them (raw documents, with each
    calibration's limit method): the JSON's cache holds neither, and an export is a download, not a poll."""
    db = _db(request)
    try:
        curves = []
        for alert in await _alerts_of(db, keys):
            docs = await datapoint_docs_of_alert(db, alert.ivorn)
            curves.append(exports.AlertCurve(alert.ivorn, alert.display_name, alert.ra, alert.dec, docs))
        upload_ids = [str(d["upload_id"]) for c in curves for d in c.docs if d.get("upload_id")]
        limit_methods = await limit_methods_of(db, upload_ids)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return exports.lightcurve_table(curves, limit_methods, request_origin(request), bulk=bulk)


def _export_body(table: Table, fmt: str, request: web.Request) -> str | bytes:
    if fmt == "votable":
        return exports.votable_bytes(table)
    if fmt == "ecsv":
        return exports.ecsv_text(table)
    return exports.aavso_text(table, obscode=request.query.get("obscode", "na"))


async def api_lightcurve(request: web.Request) -> web.Response:
    """GET /api/v1/lightcurves/{ivorn}?format=json|csv|votable|ecsv|aavso (json when absent)."""
    fmt = _format(request, exports.FORMATS)
    if fmt in {"votable", "ecsv", "aavso"}:
        table = await _export_table(request, [request.match_info["ivorn"]], bulk=False)
        return _attachment(_export_body(table, fmt, request), fmt, table.meta["alert"]["name"])
    data = await _lightcurve_data(request)
    if fmt == "csv":
        return _attachment(views.to_csv(data["points"], views.POINT_COLUMNS), "csv", data["name"])
    return web.json_response(data)


#: the bulk CSV's columns: the alert, then a light curve's
BULK_POINT_COLUMNS = ("alert", "alert_name", *views.POINT_COLUMNS)


def _bulk_keys(request: web.Request) -> list[str]:
    """``?alerts=ivorn1,ivorn2`` (ivorns or names, URL-encoded), each once, at most MAX_BULK_ALERTS."""
    keys = list(dict.fromkeys(k.strip() for k in request.query.get("alerts", "").split(",") if k.strip()))
    if not keys:
        raise BadInput(
            "alerts is missing: ?alerts=IVORN1,IVORN2 (URL-encoded ivorns or names, comma-separated)",
            code=ErrorCode.MISSING_FIELD,
        )
    if len(keys) > exports.MAX_BULK_ALERTS:
        raise BadInput(
            f"{len(keys)} alerts asked: at most {exports.MAX_BULK_ALERTS} a request; ask in batches",
            code=ErrorCode.BAD_FIELD,
        )
    return keys


async def api_lightcurves(request: web.Request) -> web.Response:
    """GET /api/v1/lightcurves?alerts=IVORN1,IVORN2&format=json|csv|votable|ecsv: one table, an alert column."""
    keys = _bulk_keys(request)
    fmt = _format(request, exports.BULK_FORMATS)
    if fmt in {"votable", "ecsv"}:
        table = await _export_table(request, keys, bulk=True)
        return _attachment(_export_body(table, fmt, request), fmt, "lightcurves")
    try:
        alerts = await _alerts_of(_db(request), keys)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    curves = [await lightcurve_of(request, alert.ivorn) for alert in alerts]
    points = [
        {"alert": curve["ivorn"], "alert_name": curve["name"]} | point for curve in curves for point in curve["points"]
    ]
    if fmt == "csv":
        return _attachment(views.to_csv(points, BULK_POINT_COLUMNS), "csv", "lightcurves")
    listed = [{k: curve[k] for k in ("ivorn", "name", "ra", "dec")} for curve in curves]
    return web.json_response({"alerts": listed, "points": points})


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


#: most alerts a search answers (the upload form's autocomplete asks a few)
MAX_ALERTS_LIMIT = 10_000


async def api_alerts(request: web.Request) -> web.Response:
    """GET /api/v1/alerts: every alert, newest first (``?with_data=1``: only those with data); ``?q=`` a search
    (name, ivorn or TNS name substring, or a position "RA Dec [radius]"), best matches first (a name that
    starts so, then alerts with data); ``?limit=`` at most that many."""
    q = request.query.get("q", "").strip()[:200]
    limit_text = request.query.get("limit")
    limit = None
    if limit_text not in (None, ""):
        try:
            limit = int(limit_text)
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_ALERTS_LIMIT:
            raise BadInput(f"limit is a whole number from 1 to {MAX_ALERTS_LIMIT:,}", code=ErrorCode.BAD_FIELD)
    if not q:
        rows = await _alert_rows(request)
        return web.json_response(rows if limit is None else rows[:limit])
    with_data = request.query.get("with_data") in {"1", "true"}
    found = summary.select(await summary_rows(request), with_data=with_data, q=q, sort="name", descending=False)
    needle = q.lower()
    found.sort(key=lambda r: (not str(r["name"]).lower().startswith(needle), r["n_datapoints"] == 0))
    return web.json_response([summary.public(r) for r in (found if limit is None else found[:limit])])


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
