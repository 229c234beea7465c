"""POST /cgi/upload (and /upload, /api/v1/uploads): the CPCS upload, start to answer."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

from aiohttp import BodyPartReader, web
from prometheus_client import Counter, Histogram

from services.ingest.auth import authenticate, hashtag_of
from services.ingest.cache import find_alert, find_observatory, optional, required
from services.ingest.forms import UploadForm, read_upload_form
from services.ingest.parsing import parse_catalogue
from services.ingest.publish import publish_upload
from services.ingest.render import render_result_html
from services.ingest.state import Gateway
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import CalibrationResult, UploadRequested
from shared.cpcs_http import WANT_HTML, html_errors, wants_html
from shared.db.datapoints import find_duplicate
from shared.db.uploads import get_upload, record_queued
from shared.errors import (
    BackendUnavailable,
    BadInput,
    CalibrationTimeout,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PhotcalError,
)
from shared.http_errors import compact_json, cpcs_error_body
from shared.logging import get_logger

log = get_logger(__name__)

ACCEPTED = Counter("photcal_gateway_uploads_total", "Uploads received by the gateway, by outcome", ["outcome"])
PARSE_TIME = Histogram(
    "photcal_gateway_parse_duration_seconds",
    "Time to parse an uploaded catalogue",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
CATALOGUE_FIELDS = ("sexCat", "file", "catalog", "catalogue")


async def read_form(request: web.Request, max_bytes: int) -> tuple[dict[str, str], bytes | None, str]:
    """The multipart (or urlencoded) form: text fields, the catalogue's bytes and file name."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    if not request.content_type.startswith("multipart/"):
        # no catalogue can come this way: read only a small form (the app's limit), for its hashtag and errors
        try:
            posted = await request.post()
        except web.HTTPRequestEntityTooLarge as exc:
            raise PayloadTooLarge(
                "send the catalogue as multipart/form-data (curl -F sexCat=@cat.txt), not url-encoded"
            ) from exc
        return {k: str(v) for k, v in posted.items()}, None, ""
    try:
        return await _read_multipart(request, max_bytes)
    except (PhotcalError, ConnectionError, asyncio.CancelledError):
        raise
    except Exception as exc:  # a malformed body (no boundary, broken headers...): the client's fault
        log.info("unreadable_form", error=type(exc).__name__)
        raise BadInput(
            "the form could not be read: send multipart/form-data as curl -F does", code=ErrorCode.BAD_FORM
        ) from exc


MAX_FORM_PARTS = 100
_PLAIN = {"", "identity", "binary", "8bit", "7bit"}


async def _read_multipart(request: web.Request, max_bytes: int) -> tuple[dict[str, str], bytes | None, str]:
    # read chunk by chunk: the limit holds also without Content-Length (chunked, compressed bodies)
    fields: dict[str, str] = {}
    data, filename = None, ""
    reader = await request.multipart()
    total, parts = 0, 0
    async for part in reader:
        parts += 1
        if parts > MAX_FORM_PARTS:
            raise BadInput(f"the form has more than {MAX_FORM_PARTS} fields", code=ErrorCode.BAD_FORM)
        if not isinstance(part, BodyPartReader):
            raise BadInput("nested multipart forms are not accepted", code=ErrorCode.BAD_FORM)
        for header in ("Content-Encoding", "Content-Transfer-Encoding"):
            if part.headers.get(header, "").strip().lower() not in _PLAIN:
                raise BadInput(f"form parts are sent as they are, without {header}", code=ErrorCode.BAD_FORM)
        buf = bytearray()
        while chunk := await part.read_chunk(256 * 1024):
            total += len(chunk)
            if total > max_bytes:
                raise _too_large(max_bytes)
            buf.extend(chunk)
        if not part.name:
            continue
        chunk = bytes(buf)
        if part.filename is not None or part.name in CATALOGUE_FIELDS:
            if part.name in CATALOGUE_FIELDS or data is None:
                data, filename = bytes(chunk), part.filename or ""
        else:
            fields[part.name] = chunk.decode("utf-8", "replace")
    return fields, data, filename


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the upload is larger than {max_bytes // (1024 * 1024)} MB: send only the catalogue, "
        "with the columns MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000"
    )


@html_errors
async def handle_upload(request: web.Request) -> web.StreamResponse:
    request_started = time.perf_counter()
    gw: Gateway = request.app["gateway"]
    fields, data, filename = await read_form(request, gw.settings.max_upload_bytes)
    # errors answer HTML when outputFormat=html was asked (or, absent, when a browser asks)
    request[WANT_HTML] = wants_html(request, fields, None)
    wait = request.query.get("wait", "1") != "0"
    # the cached lookups keep uploads coming while the database is down (services/ingest/cache.py)
    observatory = await authenticate(
        gw.db, gw.pepper, hashtag_of(request, fields), upload=True, lookup=find_observatory
    )
    form = read_upload_form(fields)
    if data is None:
        raise BadInput(
            "sexCat is missing: attach your SExtractor catalogue as -F sexCat=@cat.txt",
            code=ErrorCode.MISSING_CATALOGUE,
        )
    alert = await find_alert(gw.db, form.EventID)
    if alert is None:
        raise NotFound(
            f"unknown event {form.EventID}: add it first (POST /api/v1/alerts)", code=ErrorCode.UNKNOWN_EVENT
        )
    # without the database the worker's unique key still refuses a second copy (409 in the result)
    duplicate = (
        None
        if form.dryRun
        else await optional(lambda: find_duplicate(gw.db, form.EventID, observatory.observatory_id, form.MJD), None)
    )
    if duplicate is not None:
        raise Conflict(
            (
                f"this datapoint is already stored (followup_id {duplicate['followup_id']}): same event, observatory "
                "and MJD"
            ),
            code=ErrorCode.DUPLICATE_DATAPOINT,
        )
    parse_started = time.perf_counter()
    parsed = await asyncio.to_thread(parse_catalogue, data, filename, gw.settings.max_catalogue_rows)
    parse_s = time.perf_counter() - parse_started
    PARSE_TIME.observe(parse_s)
    upload = UploadRequested(
        upload_id=uuid.uuid4().hex,
        ivorn=alert.ivorn,
        alert_name=alert.name,
        alert_ra=alert.ra,
        alert_dec=alert.dec,
        observatory_id=observatory.observatory_id,
        observatory_name=observatory.name,
        mjd=form.MJD,
        exptime=form.expTime,
        match_dist_arcsec=form.matchDist,
        force_filter=None if form.forced_band is None else form.forced_band.text,
        dry_run=form.dryRun,
        no_plot=form.noPlot,
        comment=form.comment,
        filename=_safe_name(filename),
        catalogue_format=parsed.format,
        n_sources=parsed.n_rows,
        sources=parsed.table,
        observatory_filters=list(observatory.filters),
        forced_band=form.forced_band,
        input_sha256=hashlib.sha256(data).hexdigest(),
    )
    submit_started = time.perf_counter()
    timings: dict[str, float] = {}
    result = await submit(gw, upload, wait, timings)
    if result is not None:
        # the worker's stages plus the gateway's own, so a slow answer says where the time went
        result.duration_ms |= timings | {
            "parse": round(parse_s * 1000, 2),
            "publish_to_result": round((time.perf_counter() - submit_started) * 1000, 2),
            "gateway_total": round((time.perf_counter() - request_started) * 1000, 2),
        }
    ACCEPTED.labels("accepted").inc()
    if result is None:
        return web.json_response(
            {
                "status": "queued",
                "upload_id": upload.upload_id,
                "status_url": f"/api/v1/uploads/{upload.upload_id}",
                "message": "accepted; calibration queued",
            },
            status=202,
        )
    return answer(result, form, parsed.warnings, full_errors=request.path.startswith("/api/"))


async def submit(
    gw: Gateway, upload: UploadRequested, wait: bool, timings: dict[str, float] | None = None
) -> CalibrationResult | None:
    """Publish (acknowledged by JetStream) and, if asked, wait for our own result.

    ``timings["publish"]``: ms until JetStream acknowledged the upload.
    """
    future = gw.waiter.expect(upload.upload_id) if wait else None
    started = time.perf_counter()
    try:
        await publish_upload(
            gw.js, upload, gw.settings.inline_table_bytes, gw.settings.nats_replicas, gw.settings.publish_timeout
        )
        if timings is not None:
            timings["publish"] = round((time.perf_counter() - started) * 1000, 2)
    except BackendUnavailable as exc:
        gw.waiter.forget(upload.upload_id)
        # a publish that timed out may still have been stored: the id lets the client look
        if getattr(exc, "maybe_published", False):
            _with_upload_id(exc, upload.upload_id)
        raise
    except Exception:
        gw.waiter.forget(upload.upload_id)
        raise
    fields = {"ivorn": upload.ivorn, "observatory_id": upload.observatory_id}
    if not await optional(lambda: _record_queued(gw, upload.upload_id, fields), False):
        log.warning("upload_state_not_recorded", upload_id=upload.upload_id)  # the worker records it later
    if future is None:
        return None
    try:
        return await asyncio.wait_for(future, gw.settings.upload_timeout)
    except TimeoutError as exc:
        gw.waiter.forget(upload.upload_id)
        err = CalibrationTimeout(
            f"the calibration is taking longer than {gw.settings.upload_timeout:.0f} s; it continues: "
            f"see /api/v1/uploads/{upload.upload_id}"
        )
        raise _with_upload_id(err, upload.upload_id) from exc


async def _record_queued(gw: Gateway, upload_id: str, fields: dict) -> bool:
    await record_queued(gw.db, upload_id, fields)
    return True


def _with_upload_id(err, upload_id: str):
    original = err.to_dict

    def to_dict():
        return original() | {"upload_id": upload_id}

    err.to_dict = to_dict
    return err


def answer(
    result: CalibrationResult, form: UploadForm, warnings: list[str], *, full_errors: bool = True
) -> web.Response:
    status = 200 if result.status == "ok" else result.http_status
    headers = {"X-Upload-ID": result.upload_id}
    if form.outputFormat == "html":
        return web.Response(text=render_result_html(result), content_type="text/html", status=status, headers=headers)
    if result.status != "ok" and not full_errors:
        # CPCS clients show an error body under 100 characters to the user (BHTOM retries longer ones):
        # the short form on the CPCS paths; everything is at /api/v1/uploads/{X-Upload-ID}
        return web.json_response(
            cpcs_error_body(result.message or "", result.error or ErrorCode.CALIBRATION_FAILED),
            status=status,
            headers=headers,
            dumps=compact_json,
        )
    body = result.model_dump(mode="json")
    body["warnings"] = warnings
    return web.json_response(body, status=status, headers=headers)


async def handle_upload_status(request: web.Request) -> web.Response:
    gw: Gateway = request.app["gateway"]
    upload_id = request.match_info["upload_id"]
    if not upload_id.isalnum() or len(upload_id) > 64:
        raise BadInput("an upload id is the hexadecimal id the upload answered", code=ErrorCode.BAD_UPLOAD_ID)
    doc = await required(lambda: get_upload(gw.db, upload_id))
    if doc is None:
        raise NotFound(f"no upload {upload_id}", code=ErrorCode.UNKNOWN_UPLOAD)
    return web.json_response(
        {"upload_id": upload_id, "state": doc.get("state"), "result": doc.get("result")}, dumps=_dumps
    )


def _dumps(obj) -> str:
    import json

    return json.dumps(obj, default=str)


def _safe_name(filename: str) -> str:
    # only the base name, printable, short: it is shown back to users and logged
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isprintable())[:120]
