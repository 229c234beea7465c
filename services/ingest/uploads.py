"""POST /cgi/upload (and /upload, /api/v1/uploads): the CPCS upload, start to answer."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import cast

from aiohttp import BodyPartReader, web
from prometheus_client import Counter, Histogram

from services.ingest.auth import authenticate, hashtag_of
from services.ingest.cache import find_alert, find_observatory, optional, required
from services.ingest.forms import FIELD_HINTS, UploadForm, read_upload_form, resolve_frame_exposure
from services.ingest.frameslots import FRAME_SLOT, FrameSlots
from services.ingest.parsing import parse_catalogue
from services.ingest.parsing.image import SNIFF_BYTES, InspectedFrame, inspect_frame, looks_like_fits, size_text
from services.ingest.publish import forget_frame, publish_upload, store_frame
from services.ingest.render import render_result_html
from services.ingest.settings import IngestSettings
from services.ingest.state import Gateway
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import CalibrationResult, UploadedImage, UploadRequested
from shared.cpcs_http import WANT_HTML, html_errors, wants_html
from shared.db.datapoints import find_duplicate
from shared.db.deliveries import callback_state
from shared.db.uploads import get_upload, queued_fields, record_queued
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
from shared.usecases.recalibrations import datapoint_now
from shared.usecases.uploads import list_uploads, parse_paging
from shared.webhooks import check_url

log = get_logger(__name__)

ACCEPTED = Counter("photcal_gateway_uploads_total", "Uploads received by the gateway, by outcome", ["outcome"])
PARSE_TIME = Histogram(
    "photcal_gateway_parse_duration_seconds",
    "Time to parse an uploaded catalogue",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)
#: the form fields a file may come in: CPCS's catalogue names, and ``image`` for a FITS frame
CATALOGUE_FIELDS = ("sexCat", "file", "catalog", "catalogue", "image")
#: the text fields beside the file (hashtag, EventID, MJD...) are small; what the form may hold beyond the file
FORM_FIELDS_SLACK = 64 * 1024


async def read_form(
    request: web.Request, max_bytes: int, max_image_bytes: int | None = None, frame_slots: FrameSlots | None = None
) -> tuple[dict[str, str], bytes | None, str]:
    """The multipart (or urlencoded) form: text fields, the uploaded file's bytes and file name.

    ``max_bytes`` bounds a catalogue and the whole form; a file whose first bytes are FITS
    (plain or gzipped: it may be a frame) may grow to ``max_image_bytes`` instead. Read chunk
    by chunk, nothing beyond the limit is read into memory.
    """
    bound = max_bytes if max_image_bytes is None else max(max_bytes, max_image_bytes) + FORM_FIELDS_SLACK
    if request.content_length is not None and request.content_length > bound:
        raise _too_large(max_bytes, max_image_bytes)
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
        return await _read_multipart(request, max_bytes, max_image_bytes, frame_slots)
    except (PhotcalError, ConnectionError, asyncio.CancelledError):
        raise
    except Exception as exc:  # a malformed body (no boundary, broken headers...): the client's fault
        log.info("unreadable_form", error=type(exc).__name__)
        raise BadInput(
            "the form could not be read: send multipart/form-data as curl -F does", code=ErrorCode.BAD_FORM
        ) from exc


MAX_FORM_PARTS = 100
_PLAIN = {"", "identity", "binary", "8bit", "7bit"}


async def _read_multipart(
    request: web.Request, max_bytes: int, max_image_bytes: int | None, frame_slots: FrameSlots | None
) -> tuple[dict[str, str], bytes | None, str]:
    # read chunk by chunk: the limit holds also without Content-Length (chunked, compressed bodies)
    fields: dict[str, str] = {}
    data, filename = None, ""
    reader = await request.multipart()
    total, parts = 0, 0
    # the whole form's bound: a catalogue's, raised once to a frame's when a file part starts as FITS
    limit = max_bytes
    frame_seen = False
    async for part in reader:
        parts += 1
        if parts > MAX_FORM_PARTS:
            raise BadInput(f"the form has more than {MAX_FORM_PARTS} fields", code=ErrorCode.BAD_FORM)
        if not isinstance(part, BodyPartReader):
            raise BadInput("nested multipart forms are not accepted", code=ErrorCode.BAD_FORM)
        for header in ("Content-Encoding", "Content-Transfer-Encoding"):
            if part.headers.get(header, "").strip().lower() not in _PLAIN:
                raise BadInput(f"form parts are sent as they are, without {header}", code=ErrorCode.BAD_FORM)
        is_file = part.filename is not None or part.name in CATALOGUE_FIELDS
        # a file part's kind is decided on its first bytes, before the rest is read
        sniffing = is_file and max_image_bytes is not None and not frame_seen
        buf = bytearray()
        while chunk := await part.read_chunk(256 * 1024):
            total += len(chunk)
            buf.extend(chunk)
            if sniffing and len(buf) >= SNIFF_BYTES:
                sniffing = False
                if looks_like_fits(bytes(buf[:SNIFF_BYTES])):
                    if frame_slots is not None:
                        frame_slots.take()
                        request[FRAME_SLOT] = frame_slots
                    frame_seen = True
                    limit = max(max_bytes, cast(int, max_image_bytes)) + FORM_FIELDS_SLACK
            if total > limit:
                raise _too_large(max_bytes, max_image_bytes if frame_seen else None, frame=frame_seen)
        if not part.name:
            continue
        chunk = bytes(buf)
        if is_file:
            if part.name in CATALOGUE_FIELDS or data is None:
                data, filename = bytes(chunk), part.filename or ""
        else:
            fields[part.name] = chunk.decode("utf-8", "replace")
    return fields, data, filename


def _too_large(max_bytes: int, max_image_bytes: int | None = None, *, frame: bool = False) -> PayloadTooLarge:
    """413: ``frame`` the file is FITS and over the frame limit; else over the catalogue's (or, with
    ``max_image_bytes``, a declared body over both, whatever it holds)."""
    if frame and max_image_bytes is not None:
        return PayloadTooLarge(
            f"the FITS frame is over {size_text(max_image_bytes)} (PHOTCAL_MAX_IMAGE_BYTES): bin or crop it, "
            "or send its catalogue",
            code=ErrorCode.IMAGE_TOO_LARGE,
        )
    if max_image_bytes is not None:
        return PayloadTooLarge(
            f"the upload is larger than {size_text(max_image_bytes)} for a FITS frame (PHOTCAL_MAX_IMAGE_BYTES) "
            f"and {size_text(max_bytes)} for a catalogue (PHOTCAL_MAX_UPLOAD_BYTES)"
        )
    return PayloadTooLarge(
        f"the upload is larger than {size_text(max_bytes)}: send only the catalogue, "
        "with the columns MAG_AUTO MAGERR_AUTO ALPHA_J2000 DELTA_J2000"
    )


@html_errors
async def handle_upload(request: web.Request) -> web.StreamResponse:
    try:
        return await _handle_upload(request)
    finally:
        # a frame's slot is free again once its bytes are dropped (stored, answered or refused)
        slots = request.get(FRAME_SLOT)
        if slots is not None:
            del request[FRAME_SLOT]
            slots.give_back()


async def _handle_upload(request: web.Request) -> web.StreamResponse:
    request_started = time.perf_counter()
    gw: Gateway = request.app["gateway"]
    settings = gw.settings
    fields, data, filename = await read_form(
        request, settings.max_upload_bytes, settings.max_image_bytes, gw.frame_slots
    )
    if request.path.startswith("/api/") and not (fields.get("outputFormat") or "").strip():
        # the JSON API answers JSON unless a page is asked for; CPCS paths keep CPCS's default, html
        fields = {**fields, "outputFormat": "json"}
    # errors answer HTML when outputFormat=html was asked (or, absent, when a browser asks)
    request[WANT_HTML] = wants_html(request, fields, None)
    wait = request.query.get("wait", "1") != "0"
    # the cached lookups keep uploads coming while the database is down (services/ingest/cache.py)
    observatory = await authenticate(
        gw.db, gw.pepper, hashtag_of(request, fields), upload=True, lookup=find_observatory
    )
    # a FITS file may be a frame, whose header can give the date; any other file needs the form's MJD
    maybe_frame = data is not None and looks_like_fits(data[:SNIFF_BYTES])
    form = read_upload_form(fields, require_mjd=not maybe_frame)
    if data is None:
        raise BadInput(
            "sexCat is missing: attach your SExtractor catalogue (-F sexCat=@cat.txt) or FITS frame "
            "(-F sexCat=@frame.fits)",
            code=ErrorCode.MISSING_CATALOGUE,
        )
    callback_url = (
        None
        if form.callback_url is None
        else await check_url(form.callback_url, allow_private=settings.callback_allow_private)
    )
    alert = await find_alert(gw.db, form.EventID)
    if alert is None:
        raise NotFound(
            f"unknown event {form.EventID}: add it first (POST /api/v1/alerts)", code=ErrorCode.UNKNOWN_EVENT
        )
    parse_started = time.perf_counter()
    frame = await _inspect(data, settings) if maybe_frame else None
    if frame is None:
        mjd, exptime = _catalogue_mjd(form, len(data), settings.max_upload_bytes), form.expTime
        header, from_header = None, None
    else:
        header, from_header = resolve_frame_exposure(form, frame.header)
        mjd, exptime = cast(float, header.mjd), header.exptime
    # without the database the worker's unique key still refuses a second copy (409 in the result)
    duplicate = (
        None
        if form.dryRun
        else await optional(lambda: find_duplicate(gw.db, alert.ivorn, observatory.observatory_id, mjd), None)
    )
    if duplicate is not None:
        raise Conflict(
            (
                f"this datapoint is already stored (followup_id {duplicate['followup_id']}): same event, observatory "
                "and MJD"
            ),
            code=ErrorCode.DUPLICATE_DATAPOINT,
            details={"followup_id": duplicate["followup_id"]},
        )
    upload_id = uuid.uuid4().hex
    warnings: list[str] = []
    image: UploadedImage | None = None
    if frame is None or header is None:
        parsed = await asyncio.to_thread(parse_catalogue, data, filename, settings.max_catalogue_rows)
        catalogue_format, n_sources, sources, warnings = parsed.format, parsed.n_rows, parsed.table, parsed.warnings
    else:
        # the frame is photometered by the photometry service; it goes there as sent, through the object store
        image = UploadedImage(
            object_name=frame_object_name(upload_id, frame.compression),
            compression=frame.compression,
            hdu=frame.hdu,
            size_bytes=len(data),
            decompressed_bytes=frame.decompressed_bytes,
            header=header,
        )
        catalogue_format, n_sources, sources = FRAME_FORMAT, 0, None
    parse_s = time.perf_counter() - parse_started
    PARSE_TIME.observe(parse_s)
    upload = UploadRequested(
        upload_id=upload_id,
        ivorn=alert.ivorn,
        alert_name=alert.name,
        alert_ra=alert.ra,
        alert_dec=alert.dec,
        observatory_id=observatory.observatory_id,
        observatory_name=observatory.name,
        mjd=mjd,
        exptime=exptime,
        match_dist_arcsec=form.matchDist,
        force_filter=None if form.forced_band is None else form.forced_band.text,
        dry_run=form.dryRun,
        no_plot=form.noPlot,
        comment=form.comment,
        filename=_safe_name(filename),
        catalogue_format=catalogue_format,
        n_sources=n_sources,
        sources=sources,
        observatory_filters=list(observatory.filters),
        forced_band=form.forced_band,
        image=image,
        input_sha256=hashlib.sha256(data).hexdigest(),
        callback_url=callback_url,
    )
    submit_started = time.perf_counter()
    timings: dict[str, float] = {}
    if image is not None:
        await store_frame(gw.js, image.object_name, data, settings.nats_replicas)
        timings["store_frame"] = round((time.perf_counter() - submit_started) * 1000, 2)
    try:
        result = await submit(gw, upload, wait, timings)
    except BackendUnavailable as exc:
        if image is not None and not getattr(exc, "maybe_published", False):
            await forget_frame(gw.js, image.object_name, settings.nats_replicas)
        raise
    if result is not None:
        # the worker's stages plus the gateway's own, so a slow answer says where the time went
        result.duration_ms |= timings | {
            "parse": round(parse_s * 1000, 2),
            "publish_to_result": round((time.perf_counter() - submit_started) * 1000, 2),
            "gateway_total": round((time.perf_counter() - request_started) * 1000, 2),
        }
        if header is not None:
            # the gateway read the header: the answer says what came from it, whether or not the worker echoes it
            result.from_header = result.from_header if result.from_header is not None else from_header
            result.frame = result.frame or header
    ACCEPTED.labels("accepted").inc()
    if result is None:
        return web.json_response(
            {
                "status": "queued",
                "upload_id": upload.upload_id,
                "status_url": f"/api/v1/uploads/{upload.upload_id}",
                "message": "accepted; photometry and calibration queued" if image else "accepted; calibration queued",
            },
            status=202,
        )
    return answer(result, form, warnings, full_errors=request.path.startswith("/api/"))


#: ``catalogue_format`` of an upload that is a FITS frame (its sources are measured by the photometry service)
FRAME_FORMAT = "fits_frame"
_FRAME_SUFFIX = {"none": ".fits", "gzip": ".fits.gz", "tile": ".fits.fz"}


def frame_object_name(upload_id: str, compression: str) -> str:
    """The frame's name in the uploads bucket: ``<upload_id>.fits``, ``.fits.gz`` or ``.fits.fz`` as sent."""
    return upload_id + _FRAME_SUFFIX[compression]


async def _inspect(data: bytes, settings: IngestSettings) -> InspectedFrame | None:
    """The frame in a FITS file, its headers checked against the limits; None for a FITS table (a catalogue)."""
    return await asyncio.to_thread(inspect_frame, data, settings.max_image_bytes, settings.max_image_pixels)


def _catalogue_mjd(form: UploadForm, size: int, max_bytes: int) -> float:
    """A catalogue's MJD, from the form alone; a FITS catalogue is held to the catalogue's size limit too."""
    if size > max_bytes:
        raise _too_large(max_bytes)
    if form.MJD is None:
        raise BadInput("MJD is missing: " + FIELD_HINTS["MJD"], code=ErrorCode.MISSING_FIELD)
    return form.MJD


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
    fields = queued_fields(upload)
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
    # the catalogue's (what parsing noticed) first, then the calibration's own (an assumed colour term,
    # where the target's colour came from, a blended target)
    warnings = [*warnings, *(w for w in result.warnings if w not in warnings)]
    if form.outputFormat == "html":
        return web.Response(
            text=render_result_html(result, warnings), content_type="text/html", status=status, headers=headers
        )
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
    answer = {"upload_id": upload_id, "state": doc.get("state"), "result": doc.get("result")}
    followup_id = (doc.get("result") or {}).get("followup_id")
    if isinstance(followup_id, int):  # the result is the upload's own answer; its datapoint may be recalibrated since
        answer["datapoint"] = await optional(lambda: datapoint_now(gw.db, followup_id), None)
    if doc.get("callback_url"):  # where its callback stands (issue 22); the URL itself is not shown
        answer["callback"] = await optional(lambda: callback_state(gw.db, upload_id), None)
    return web.json_response(answer, dumps=_dumps)


async def handle_upload_list(request: web.Request) -> web.Response:
    """GET /api/v1/uploads?mine=1&state=failed|done|queued|any&limit=&skip=: the caller's observatory's
    uploads newest first (shared/usecases/uploads.py); without ``mine=1``, every observatory's (administrators)."""
    gw: Gateway = request.app["gateway"]
    caller = await authenticate(gw.db, gw.pepper, hashtag_of(request))
    state, limit, skip = parse_paging(dict(request.query))
    mine = request.query.get("mine", "").strip().lower() in {"1", "true", "yes"}
    listing = await list_uploads(gw.db, caller, mine=mine, state=state, skip=skip, limit=limit)
    return web.Response(text=listing.model_dump_json(), content_type="application/json")


def _dumps(obj) -> str:
    import json

    return json.dumps(obj, default=str)


def _safe_name(filename: str) -> str:
    # only the base name, printable, short: it is shown back to users and logged
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isprintable())[:120]
