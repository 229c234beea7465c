"""The CPCS endpoints of the gateway: new event, new observatory, delete a datapoint; CPCS reads forwarded.

Paths, parameter names and methods are CPCS's (docs/design.md, "CPCS compatibility"),
served at the root and under ``/followup/``. Each endpoint is a thin adapter
over the same use cases as photcal's own API (``shared.usecases.events.add_event``,
``shared.db.observatories.add_observatory``, ``shared.usecases.datapoints.delete_datapoint``);
the reads (``get_alert_lc_data``, ``list_of_alerts``) are the lightcurve service's.
"""

from __future__ import annotations

import math
from html import escape

from aiohttp import web
from pymongo.errors import PyMongoError

from services.ingest.state import Gateway
from shared.auth import authenticate, hashtag_of
from shared.bounds import parse_id
from shared.contracts.errors import ErrorCode
from shared.cpcs_http import (
    WANT_HTML,
    html_errors,
    html_response,
    parse_flag,
    request_params,
    table,
    wants_html,
)
from shared.db.client import unavailable
from shared.db.observatories import add_observatory
from shared.errors import BadInput
from shared.usecases.datapoints import delete_datapoint
from shared.usecases.events import add_event, event_fields, refusal


def _gateway(request: web.Request) -> Gateway:
    return request.app["gateway"]


async def _params(request: web.Request) -> dict[str, str]:
    params = await request_params(request)
    request[WANT_HTML] = wants_html(request, params, False)
    return params


def _hashtag(request: web.Request, params: dict[str, str]) -> str | None:
    """Form, query or cookie, as CPCS; but a write by GET needs it in the query.

    A link on another site opens a GET with the browser's cookies: with the
    cookie alone, following it could add events or delete datapoints.
    """
    if request.method == "GET":
        return params.get("hashtag") or None
    return hashtag_of(request, params)


def _ok(request: web.Request, title: str, body: dict) -> web.Response:
    """``message`` first, ``status: ok``, then the fields; or the same as an HTML page."""
    if request[WANT_HTML]:
        rows = [(k, v) for k, v in body.items() if k not in {"message", "status"}]
        return html_response(title, f'<p class="message">{escape(body["message"])}</p>' + table(rows))
    return web.json_response({"message": body["message"], "status": "ok", **body})


def _number(params: dict[str, str], key: str, low: float, high: float, *, required: bool) -> float | None:
    text = params.get(key, "")
    if not text:
        if required:
            raise BadInput(f"{key} is missing (decimal degrees)", code=ErrorCode.MISSING_FIELD)
        return None
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise BadInput(f"{key} is decimal degrees between {low:g} and {high:g}", code=ErrorCode.BAD_FIELD)
    return value


#: CPCS's names of the event's fields
_EVENT_PARAMS = {"ivorn": "EventID"}


def _cpcs_ra(text: str | None) -> str | None:
    """CPCS took RA 360 as 0 (every other RA is as sent)."""
    try:
        return "0" if text is not None and float(text.replace(",", ".")) == 360.0 else text
    except ValueError:
        return text


@html_errors
async def new_event(request: web.Request) -> web.Response:
    """``cgi/newevent``: ``EventID`` (ivorn), ``ra``, ``dec`` (degrees), ``url``, optional ``name``."""
    gw = _gateway(request)
    params = await _params(request)
    observatory = await authenticate(gw.db, gw.pepper, _hashtag(request, params))
    fields, problems = event_fields(
        {
            "ivorn": params.get("EventID") or params.get("ivorn"),
            "ra": _cpcs_ra(params.get("ra")),
            "dec": params.get("dec"),
            "url": params.get("url"),
            "name": params.get("name"),
        }
    )
    if fields is None:
        raise refusal(problems, _EVENT_PARAMS)
    stored, warnings = await add_event(gw.db, fields, created_by=observatory.name)
    body = {
        "message": f"event {stored.ivorn} added",
        "ivorn": stored.ivorn,
        "id": stored.alert_id,
        "name": stored.display_name,
    }
    if request[WANT_HTML]:
        return _ok(request, "Event added", body | {"warnings": "; ".join(warnings) or None})
    return _ok(request, "Event added", body | {"warnings": warnings})


@html_errors
async def new_user(request: web.Request) -> web.Response:
    """``cgi/newuser`` (an administrator's hashtag): ``obsName``, ``lon``, ``lat``, ``allow_upload``, ``prefix``."""
    gw = _gateway(request)
    params = await _params(request)
    await authenticate(gw.db, gw.pepper, _hashtag(request, params), admin=True)
    name = params.get("obsName", "")
    if not name:
        raise BadInput("obsName is missing: the new observatory's name", code=ErrorCode.MISSING_FIELD)
    if len(name) > 100 or not name.isprintable():
        raise BadInput("obsName is at most 100 printable characters", code=ErrorCode.BAD_FIELD)
    prefix = params.get("prefix", "")
    if prefix and not (len(prefix) <= 16 and prefix.replace("-", "").isalnum() and prefix.isascii()):
        raise BadInput("prefix is up to 16 letters or digits, e.g. the observer's initials", code=ErrorCode.BAD_FIELD)
    try:
        allow_upload = parse_flag(params.get("allow_upload", "1"))
    except ValueError as exc:
        raise BadInput("allow_upload is 1 or 0", code=ErrorCode.BAD_FIELD) from exc
    filters = [f.strip() for f in params.get("filters", "").split(",") if f.strip()][:50]
    try:
        observatory, hashtag = await add_observatory(
            gw.db,
            gw.pepper,
            name=name,
            lon=_number(params, "lon", -180.0, 360.0, required=False),
            lat=_number(params, "lat", -90.0, 90.0, required=False),
            filters=filters,
            allow_upload=allow_upload,
            prefix=prefix,
        )
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return _ok(
        request,
        "Observatory added",
        {
            "message": f"observatory {observatory.name} added: keep its hashtag, it is shown once",
            "hashtag": hashtag,
            "name": observatory.name,
            "observatory_id": observatory.observatory_id,
            "allow_upload": observatory.allow_upload,
        },
    )


@html_errors
async def delete_point(request: web.Request) -> web.Response:
    """``cgi/delpoint``: ``followupid`` (the upload's ``followup_id``); only its observatory may."""
    gw = _gateway(request)
    params = await _params(request)
    observatory = await authenticate(gw.db, gw.pepper, _hashtag(request, params))
    text = params.get("followupid") or params.get("followup_id") or ""
    if not text:
        raise BadInput("followupid is missing: the followup_id the upload answered", code=ErrorCode.MISSING_FIELD)
    followup_id = parse_id(text, "followupid")
    reason = params.get("reason") or params.get("comment") or "deleted by its observatory (cgi/delpoint)"
    point = await delete_datapoint(gw.db, followup_id, observatory, reason)
    return _ok(
        request,
        "Datapoint deleted",
        {
            "message": f"datapoint {followup_id} deleted",
            "followup_id": followup_id,
            "ivorn": point.ivorn,
            "mjd": point.mjd,
        },
    )
