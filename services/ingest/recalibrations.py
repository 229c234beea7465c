"""``/api/v1/recalibrations``: administrators recalibrate stored datapoints through the work queue.

Thin adapters over :mod:`shared.usecases.recalibrations`: the request in
(an administrator's hashtag as for every /api/v1 write; a JSON body), the
answer out. The work is the calibrate service's (services/calibrate/recalibrate.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from services.ingest.auth import authenticate, hashtag_of
from services.ingest.guards import SMALL_BODY_BYTES
from services.ingest.state import Gateway
from shared.bounds import loads_json
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import CatalogueVersionsReply, CatalogueVersionsRequest, RecalibrationRequest
from shared.contracts.subjects import SUBJECT_CATALOG_VERSIONS
from shared.db.recalibrations import ITEM_STATES, ItemState
from shared.errors import BackendUnavailable, BadInput
from shared.natsio import headers
from shared.usecases import recalibrations as usecase

API = "/api/v1/recalibrations"
MAX_PAGE = 1000


async def handle_create(request: web.Request) -> web.Response:
    """POST /api/v1/recalibrations: a RecalibrationRequest (JSON) -> 202 with the job id at once."""
    gw: Gateway = request.app["gateway"]
    body = await _json_body(request)
    hashtag = body.pop("hashtag", None)
    # as a form field, so that the per-hashtag rate limit counts it too
    admin = await authenticate(gw.db, gw.pepper, hashtag_of(request, _as_form(hashtag)), admin=True)
    try:
        wanted = RecalibrationRequest.model_validate(body)
    except ValidationError as exc:
        raise BadInput(describe(exc), code=ErrorCode.BAD_FIELD) from exc

    async def catalogue_versions() -> dict[str, list[str]]:
        return await _catalogue_versions(gw)

    job = await usecase.create_recalibration(
        gw.db, gw.js, wanted, created_by=admin.observatory_id, catalogue_versions=catalogue_versions
    )
    return web.json_response(_accepted(job.job_id, job.state, job.total), status=202)


async def handle_get(request: web.Request) -> web.Response:
    """GET /api/v1/recalibrations/{job_id}: state, request, progress (items per state), summary."""
    gw: Gateway = request.app["gateway"]
    await _admin(request, gw)
    job_id = _job_id(request)
    report = await usecase.job_report(gw.db, job_id)
    return web.json_response(report | {"links": _links(job_id)})


async def handle_items(request: web.Request) -> web.Response:
    """GET /api/v1/recalibrations/{job_id}/items?changed=1&state=computed,applied&skip=0&limit=100&result=1
    (``result=1``: each point's whole new answer, its candidates and provenance)."""
    gw: Gateway = request.app["gateway"]
    await _admin(request, gw)
    job_id = _job_id(request)
    query = request.query
    states = _states(query.get("state"))
    changed = _flag(query.get("changed"))
    skip = _number(query.get("skip"), "skip", 0, 10**9, 0)
    limit = _number(query.get("limit"), "limit", 1, MAX_PAGE, 100)
    with_result = bool(_flag(query.get("result"), "result"))
    items, more = await usecase.job_items(
        gw.db, job_id, states=states, changed=changed, skip=skip, limit=limit, with_result=with_result
    )
    next_link = None
    if more:
        params = {k: v for k, v in query.items() if k not in ("skip", "hashtag")} | {"skip": str(skip + limit)}
        next_link = f"{API}/{job_id}/items?" + "&".join(f"{k}={v}" for k, v in params.items())
    return web.json_response({"job_id": job_id, "skip": skip, "limit": limit, "items": items, "next": next_link})


async def handle_apply(request: web.Request) -> web.Response:
    """POST /api/v1/recalibrations/{job_id}/apply: a ready job's changed points become current (202);
    an applied job again: 200, nothing changes; any other state 409."""
    gw: Gateway = request.app["gateway"]
    await _admin(request, gw)
    job_id = _job_id(request)
    job, started = await usecase.start_apply(gw.db, gw.js, job_id)
    body = _accepted(job_id, job.state, job.total)
    if not started:
        body["message"] = f"recalibration {job_id} was applied already: nothing changed"
        return web.json_response(body, status=200)
    body["message"] = f"applying recalibration {job_id}"
    return web.json_response(body, status=202)


async def handle_resume(request: web.Request) -> web.Response:
    """POST /api/v1/recalibrations/{job_id}/resume: queue again what the job has still to do."""
    gw: Gateway = request.app["gateway"]
    await _admin(request, gw)
    job_id = _job_id(request)
    job, queued = await usecase.resume_recalibration(gw.db, gw.js, job_id)
    body = _accepted(job_id, job.state, job.total) | {
        "queued": queued,
        "message": f"{queued} task(s) of recalibration {job_id} queued again",
    }
    return web.json_response(body, status=202 if queued else 200)


def _accepted(job_id: str, state: str, total: int) -> dict[str, Any]:
    return {"status": "ok", "job_id": job_id, "state": state, "total": total, "links": _links(job_id)}


def _links(job_id: str) -> dict[str, str]:
    return {
        "self": f"{API}/{job_id}",
        "items": f"{API}/{job_id}/items",
        "apply": f"{API}/{job_id}/apply",
        "resume": f"{API}/{job_id}/resume",
    }


async def _admin(request: web.Request, gw: Gateway):
    body: dict[str, Any] = {}
    if request.method == "POST" and request.can_read_body and request.content_type == "application/json":
        body = await _json_body(request)
    return await authenticate(gw.db, gw.pepper, hashtag_of(request, _as_form(body.get("hashtag"))), admin=True)


def _as_form(hashtag: object) -> dict[str, str]:
    """A hashtag sent in a JSON body, as the form field hashtag_of reads first."""
    return {"hashtag": str(hashtag)} if hashtag else {}


def _job_id(request: web.Request) -> str:
    job_id = request.match_info["job_id"]
    if not job_id.isalnum() or len(job_id) > 64:
        raise BadInput(
            "a recalibration job id is the hexadecimal id POST /api/v1/recalibrations answered",
            code=ErrorCode.BAD_FIELD,
        )
    return job_id


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    if request.content_type != "application/json":
        raise BadInput(
            "send the recalibration request as JSON (Content-Type: application/json)", code=ErrorCode.BAD_JSON
        )
    try:
        text = await request.text()
    except UnicodeDecodeError as exc:
        raise BadInput("the body is not valid JSON", code=ErrorCode.BAD_JSON) from exc
    body = loads_json(text, max_chars=SMALL_BODY_BYTES) if text.strip() else {}
    if not isinstance(body, dict):
        raise BadInput("the body is a JSON object: {selection, change, dry_run, reason}", code=ErrorCode.BAD_JSON)
    return body


def describe(exc: ValidationError) -> str:
    """The first problem of a request body, as ``selection.mjd_min: Input should be a valid number``."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    reason = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        reason = "not a field of a recalibration request (selection, change, dry_run, reason)"
    return f"{where}: {reason}"


def _states(value: str | None) -> tuple[ItemState, ...] | None:
    if not value:
        return None
    states = tuple(s.strip() for s in value.split(",") if s.strip())
    unknown = [s for s in states if s not in ITEM_STATES]
    if unknown:
        raise BadInput(f"state: {unknown[0][:20]!r} is not one of {', '.join(ITEM_STATES)}", code=ErrorCode.BAD_FIELD)
    return states  # type: ignore[return-value]


def _flag(value: str | None, name: str = "changed") -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise BadInput(f"{name}: 1 or 0", code=ErrorCode.BAD_FIELD)


def _number(value: str | None, name: str, low: int, high: int, default: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise BadInput(f"{name}: a whole number from {low} to {high}", code=ErrorCode.BAD_FIELD)
    return int(value)


async def _catalogue_versions(gw: Gateway) -> dict[str, list[str]]:
    """Which catalogue versions the catalogue service has on disk (503 if it does not answer)."""
    nc = getattr(gw.js, "_nc", None)  # nats-py keeps the connection there; no public accessor
    if nc is None:
        raise BackendUnavailable("the reference catalogue service cannot be asked (no NATS connection)")
    try:
        reply = await nc.request(
            SUBJECT_CATALOG_VERSIONS,
            CatalogueVersionsRequest().model_dump_json().encode(),
            timeout=gw.settings.backend_timeout,
            headers=headers(),
        )
        return CatalogueVersionsReply.model_validate_json(reply.data).versions
    except Exception as exc:
        raise BackendUnavailable(
            "the reference catalogue service did not say which catalogue versions it has; try again in a minute",
            code=ErrorCode.CATALOG_UNAVAILABLE,
        ) from exc
