"""The gateway's other routes: new events, plots, reads forwarded to the lightcurve service."""

from __future__ import annotations

from aiohttp import web
from nats.js.errors import ObjectNotFoundError

from services.ingest.auth import authenticate, hashtag_of
from services.ingest.state import Gateway
from shared.bounds import loads_json, parse_id
from shared.contracts.errors import ErrorCode
from shared.contracts.subjects import OBJECT_BUCKET_PLOTS
from shared.errors import BackendUnavailable, BadInput, NotFound
from shared.natsio import ensure_object_store
from shared.usecases.datapoints import delete_datapoint
from shared.usecases.events import add_event, event_fields, refusal

MAX_JSON_BYTES = 64 * 1024


async def handle_new_alert(request: web.Request) -> web.Response:
    """POST /api/v1/alerts: ivorn, ra, dec, url, optional name; JSON or form (``shared.usecases.events``)."""
    gw: Gateway = request.app["gateway"]
    body = await _body(request)
    observatory = await authenticate(gw.db, gw.pepper, hashtag_of(request, body))
    values = {k: body.get(k) for k in ("ivorn", "ra", "dec", "url", "name")}
    if values["ivorn"] in (None, "") and body.get("EventID"):
        values["ivorn"] = body["EventID"]
    fields, problems = event_fields(values)
    if fields is None:
        raise refusal(problems)
    stored, warnings = await add_event(gw.db, fields, created_by=observatory.name)
    return web.json_response(
        {
            "status": "ok",
            "message": f"event {stored.ivorn} added",
            "ivorn": stored.ivorn,
            "id": stored.alert_id,
            "warnings": warnings,
        },
        status=201,
    )


async def handle_delete_datapoint(request: web.Request) -> web.Response:
    """DELETE /api/v1/datapoints/{followup_id}: a soft delete, only by the observatory that uploaded it.

    The hashtag as for every call (query parameter, form field, cookie);
    an optional ``reason`` is kept with the deleted datapoint.
    """
    gw: Gateway = request.app["gateway"]
    body = await _body(request) if request.can_read_body else {}
    observatory = await authenticate(gw.db, gw.pepper, hashtag_of(request, body))
    followup_id = parse_id(request.match_info["followup_id"], "followup_id", ": the one the upload answered")
    reason = str(body.get("reason") or request.query.get("reason") or "deleted by its observatory")
    point = await delete_datapoint(gw.db, followup_id, observatory, reason)
    return web.json_response(
        {
            "status": "ok",
            "message": f"datapoint {followup_id} deleted",
            "followup_id": followup_id,
            "ivorn": point.ivorn,
            "mjd": point.mjd,
        }
    )


async def _body(request: web.Request) -> dict:
    if request.content_length and request.content_length > MAX_JSON_BYTES:
        raise BadInput("the request body is too large for an event", code=ErrorCode.TOO_LARGE)
    if request.content_type == "application/json":
        try:
            text = await request.text()
        except UnicodeDecodeError as exc:
            raise BadInput("the body is not valid JSON", code=ErrorCode.BAD_JSON) from exc
        body = loads_json(text, max_chars=MAX_JSON_BYTES)  # size and nesting bounded before parsing
        if not isinstance(body, dict):
            raise BadInput("the body is a JSON object", code=ErrorCode.BAD_JSON)
        return body
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


async def handle_plot(request: web.Request) -> web.Response:
    gw: Gateway = request.app["gateway"]
    name = request.match_info["name"]
    stem = name[:-4].removesuffix("-cutout")  # <upload_id>.png, the calibration plot; <upload_id>-cutout.png
    if not name.endswith(".png") or not stem.isalnum():
        raise NotFound("no such plot", code=ErrorCode.UNKNOWN_PLOT)
    try:
        store = await ensure_object_store(gw.js, OBJECT_BUCKET_PLOTS, gw.settings.nats_replicas)
        obj = await store.get(name)
    except ObjectNotFoundError as exc:
        raise NotFound("no such plot (made only when noPlot is 0)", code=ErrorCode.UNKNOWN_PLOT) from exc
    except Exception as exc:
        raise BackendUnavailable("the plot store (NATS) is not answering; try again in a minute") from exc
    return web.Response(body=obj.data, content_type="image/png", headers={"Cache-Control": "max-age=86400"})
