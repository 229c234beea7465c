"""The CPCS read endpoints, on the same queries as photcal's own reads.

``get_alert_lc_data`` answers a light curve as CPCS did: one JSON object of
parallel arrays (``mjd``, ``mag``, ``magerr``, ``caliberr``, ``filter``,
``catalog``, ``observatory``, ``id``), a non-detection with ``magerr = -1`` and
its limit in ``mag``. ``list_of_alerts`` answers the alert list. Both check
the hashtag (parameter, form field or ``hashtag`` cookie) as CPCS did.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve import handlers, pages, views
from shared.auth import authenticate, hashtag_of
from shared.bounds import parse_id
from shared.contracts.errors import ErrorCode
from shared.cpcs_http import (
    WANT_HTML,
    html_errors,
    html_response,
    parse_flag,
    request_params,
    wants_html,
)
from shared.db.alerts import Alert, find_alert, get_alert_by_id
from shared.db.client import unavailable
from shared.db.datapoints import Datapoint, datapoints_of_alert
from shared.errors import BadInput, NotFound

#: CPCS marks a non-detection with this magerr (its limit is in ``mag``)
NON_DETECTION_MAGERR = -1
LC_KEYS = ("mjd", "mag", "magerr", "caliberr", "filter", "catalog", "observatory", "id")


async def _checked(request: web.Request, *, default_html: bool) -> dict[str, str]:
    params = await request_params(request)
    request[WANT_HTML] = wants_html(request, params, default_html)
    await authenticate(request.app["db"], request.app["pepper"], hashtag_of(request, params))
    return params


def cpcs_arrays(points: list[Datapoint]) -> dict[str, list]:
    """A light curve as CPCS's parallel arrays, in the light curve's order (by MJD)."""
    out: dict[str, list] = {k: [] for k in LC_KEYS}
    for p in sorted(points, key=lambda p: p.mjd):
        limit = not p.detected or p.mag is None
        out["mjd"].append(p.mjd)
        out["mag"].append(p.limit_mag if limit else p.mag)
        out["magerr"].append(NON_DETECTION_MAGERR if limit else p.mag_err)
        # clients add it in quadrature with float(): never null
        out["caliberr"].append(p.zeropoint_err if p.zeropoint_err is not None else 0.0)
        out["filter"].append(p.filter)
        out["catalog"].append(p.survey)
        out["observatory"].append(p.observatory)
        out["id"].append(p.followup_id)
    return out


async def _alert_of(request: web.Request, params: dict[str, str]) -> Alert:
    db = request.app["db"]
    name, alert_id = params.get("alert_name"), params.get("alert_id")
    try:
        if alert_id:
            number = parse_id(alert_id, "alert_id", " (see list_of_alerts)")
            alert = await get_alert_by_id(db, number)
            key = f"id {number}"
        elif name:
            alert = await find_alert(db, name)
            key = name
        else:
            raise BadInput("give alert_name (the ivorn or name) or alert_id", code=ErrorCode.MISSING_FIELD)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    if alert is None:
        raise NotFound(f"unknown event {key[:80]}", code=ErrorCode.UNKNOWN_EVENT)
    return alert


@html_errors
async def get_alert_lc_data(request: web.Request) -> web.Response:
    params = await _checked(request, default_html=False)
    alert = await _alert_of(request, params)
    try:
        points = await datapoints_of_alert(request.app["db"], alert.ivorn)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    if not request[WANT_HTML]:
        return web.json_response(cpcs_arrays(points))
    data = views.lightcurve(alert, points)
    link = quote(alert.ivorn, safe="")
    content = f'<p>{escape(alert.ivorn)} · <a href="/lightcurve/{link}">light curve</a></p>' + pages.table(
        data["points"], views.POINT_COLUMNS
    )
    return html_response(f"Follow-up of {alert.display_name}", content)


@html_errors
async def list_of_alerts(request: web.Request) -> web.Response:
    params = await _checked(request, default_html=True)
    try:
        observed_only = parse_flag(params.get("observed_only", "0"))
        # photcal holds only published alerts (Gaia's public list, observers' events): accepted, changes nothing
        parse_flag(params.get("published", "0"))
        num = int(params["num"]) if params.get("num") else None
    except ValueError as exc:
        raise BadInput("num is a number; published and observed_only are 1 or 0", code=ErrorCode.BAD_FIELD) from exc
    if num is not None and num < 0:
        raise BadInput("num is a positive number of alerts", code=ErrorCode.BAD_FIELD)
    rows = await handlers._alert_rows(request)  # the same list as /api/v1/alerts, newest first
    if observed_only:
        rows = [r for r in rows if r["n_datapoints"]]
    if num is not None:
        rows = rows[:num]
    if not request[WANT_HTML]:
        return web.json_response(rows)
    columns = ("id", "name", "ivorn", "ra", "dec", "n_datapoints", "last_mag", "last_mjd")
    return html_response("Alerts", pages.table(rows, columns, "name"))
