"""The gateway takes a FITS frame at the catalogue's endpoint (real stack, real HTTP, real NATS).

The stack runs without the photometry service (``photcal run --without photometry``): what the
gateway itself does with a frame. It is
stored as sent in the object store (``photcal-uploads``, ``<upload_id>.fits[.gz|.fz]``)
and its upload published on ``photcal.frame.v1`` (stream UPLOADS) with ``image`` set,
the header's MJD used when the form gives none; frames it cannot take are refused
with their 4xx and nothing stored; a catalogue goes the way it always went.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import threading
from collections.abc import Iterator

import nats
import nats.errors
import nats.js.errors
import numpy as np
import pytest
from astropy.io import fits

from shared.contracts.messages import UploadRequested
from shared.contracts.subjects import OBJECT_BUCKET_UPLOADS, STREAM_UPLOADS, SUBJECT_FRAME
from tests.integration.conftest import Stack, field_dir
from tests.integration.test_hostile_input import multipart, request
from tools.devstack import standalone_stack, stop_all
from tools.simfield.image import Camera, make_wcs

pytestmark = pytest.mark.integration

FIELD = field_dir("north_V")
IVORN = "ivo://gaia/alerts#SimGatewayFrame"
KB = 1024
#: small limits, so that a frame over them is small too
MAX_IMAGE_BYTES = 1024 * KB
MAX_IMAGE_PIXELS = 500 * 500
#: a catalogue's limit, below the frame's as by default (20 MB and 200 MB)
MAX_CATALOGUE_BYTES = 256 * KB
#: the header's exposure: start 2024-03-01T20:00:00 UTC (MJD 60370.8333...), 60 s
START_MJD = 60370.0 + 20.0 / 24.0
EXPTIME = 60.0


class FrameTap:
    """Every message published on photcal.frame.v1, seen by a plain NATS subscription of the test's own.

    It sees what the gateway published (with its Nats-Msg-Id) whether or not a worker takes it later.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.messages: list[tuple[UploadRequested, dict[str, str]]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._nc: nats.NATS | None = None

    def start(self) -> FrameTap:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._subscribe(), self._loop).result(10)
        return self

    async def _subscribe(self) -> None:
        self._nc = await nats.connect(self.url)

        async def seen(msg) -> None:
            self.messages.append((UploadRequested.model_validate_json(msg.data), dict(msg.headers or {})))

        await self.nc.subscribe(SUBJECT_FRAME, cb=seen)

    def published(self, upload_id: str, timeout: float = 5.0) -> tuple[UploadRequested, dict[str, str]]:
        deadline = self._loop.time() + timeout
        while self._loop.time() < deadline:
            for upload, headers in list(self.messages):
                if upload.upload_id == upload_id:
                    return upload, headers
            threading.Event().wait(0.05)
        raise AssertionError(f"no message for upload {upload_id} on {SUBJECT_FRAME}")

    @property
    def nc(self) -> nats.NATS:
        assert self._nc is not None, "the tap is not started"
        return self._nc

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def stop(self) -> None:
        if self._nc is not None:
            self.run(self._nc.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[Stack, FrameTap]]:
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("gwframes"),
        PHOTCAL_MONGO_DB="gwframes",
        PHOTCAL_UPLOAD_TIMEOUT="3",
        PHOTCAL_MAX_IMAGE_BYTES=str(MAX_IMAGE_BYTES),
        PHOTCAL_MAX_IMAGE_PIXELS=str(MAX_IMAGE_PIXELS),
        PHOTCAL_MAX_UPLOAD_BYTES=str(MAX_CATALOGUE_BYTES),
        PHOTCAL_MAX_FRAMES_IN_FLIGHT="1",
    )
    truth = stack.load_field(FIELD)
    stack.add_observatory()
    ra, dec = truth["alert"]["ra"], truth["alert"]["dec"]
    stack.cli("alert", "add", "--ivorn", IVORN, "--ra", str(ra), "--dec", str(dec), "--name", "SimGatewayFrame")
    stack.start(without=("photometry",))
    stack.truth = truth
    tap = FrameTap(stack.env["PHOTCAL_NATS_URL"]).start()
    try:
        yield stack, tap
    finally:
        tap.stop()
        stop_all(stack, servers)


# -- frames as an observer's camera writes them -----------------------------------------------------------------


def _header(**cards: object) -> fits.Header:
    header = make_wcs(150.0, 30.0, Camera(), 0.0).to_header()
    header["DATE-OBS"] = "2024-03-01T20:00:00"
    header["EXPTIME"] = EXPTIME
    header["FILTER"] = "V"
    header["AIRMASS"] = 1.25
    for key, value in cards.items():
        if value is None:
            header.remove(key, ignore_missing=True)
        else:
            header[key] = value
    return header


def frame(
    shape=(200, 200), dtype: type = np.float32, compression: str = "none", cards: dict[str, object] | None = None
) -> bytes:
    pixels = np.random.default_rng(3).normal(1000, 10, shape).astype(dtype)
    header = _header(**(cards or {}))
    out = io.BytesIO()
    if compression == "tile":
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(pixels.astype(np.int16), header)]).writeto(out)
        return out.getvalue()
    fits.PrimaryHDU(pixels, header).writeto(out)
    return gzip.compress(out.getvalue()) if compression == "gzip" else out.getvalue()


def send(
    stack: Stack,
    data: bytes,
    *,
    field: str = "sexCat",
    filename: str = "frame.fits",
    path: str = "/api/v1/uploads",
    wait: bool = False,
    **over: str | None,
) -> tuple[int, dict, dict]:
    form = {
        "hashtag": stack.hashtags["Test Observatory"],
        "EventID": IVORN,
        "noPlot": "1",
        "dryRun": "1",
        "outputFormat": "json",
    } | over
    body, content_type = multipart({k: v for k, v in form.items() if v is not None}, {field: (filename, data)})
    status, headers, raw = request(
        stack, "POST", path + ("" if wait else "?wait=0"), body, {"Content-Type": content_type}
    )
    return status, headers, json.loads(raw)


def stored_objects(tap: FrameTap) -> dict[str, bytes]:
    async def read() -> dict[str, bytes]:
        js = tap.nc.jetstream()
        try:
            store = await js.object_store(OBJECT_BUCKET_UPLOADS)
            infos = await store.list()
        except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):  # no bucket, or it is empty
            return {}
        return {info.name: (await store.get(info.name)).data or b"" for info in infos if not info.deleted}

    return tap.run(read())


def queued_frames(tap: FrameTap) -> dict[str, UploadRequested]:
    """The uploads waiting on photcal.frame.v1 in the UPLOADS stream, read by a JetStream consumer (not acked)."""

    async def read() -> dict[str, UploadRequested]:
        js = tap.nc.jetstream()
        sub = await js.pull_subscribe(SUBJECT_FRAME, durable="gateway-frames-test", stream=STREAM_UPLOADS)
        found: dict[str, UploadRequested] = {}
        try:
            while True:
                try:
                    batch = await sub.fetch(100, timeout=1)
                except nats.errors.TimeoutError:
                    break
                for msg in batch:
                    upload = UploadRequested.model_validate_json(msg.data)
                    found[upload.upload_id] = upload
        finally:
            await js.delete_consumer(STREAM_UPLOADS, "gateway-frames-test")  # the messages stay, unacked
        return found

    return tap.run(read())


# -- accepted frames ---------------------------------------------------------------------------------------------


def test_a_frame_with_the_headers_date_only_is_stored_as_sent_and_published_for_photometry(site):
    stack, tap = site
    data = frame()
    status, headers, body = send(stack, data)
    assert status == 202, body
    upload_id = body["upload_id"]
    assert "photometry" in body["message"]
    assert stored_objects(tap)[f"{upload_id}.fits"] == data
    upload, nats_headers = tap.published(upload_id)
    assert nats_headers.get("Nats-Msg-Id") == upload_id  # a retried publish is kept once
    assert upload.image is not None and upload.sources is None and upload.n_sources == 0
    assert upload.image.object_name == f"{upload_id}.fits" and upload.image.compression == "none"
    assert upload.image.size_bytes == len(data) and upload.image.hdu == 0
    # mid-exposure from the header: DATE-OBS + EXPTIME/2
    assert upload.mjd == pytest.approx(START_MJD + EXPTIME / 2 / 86400, abs=1e-8)
    assert upload.exptime == EXPTIME and upload.dry_run
    assert upload.image.header.filter == "V" and upload.image.header.airmass == 1.25
    assert upload.image.header.from_header["mjd"] == "DATE-OBS+EXPTIME/2"
    assert upload_id in queued_frames(tap)  # in the UPLOADS stream, waiting for the photometry service


def test_the_forms_mjd_and_exposure_win_over_the_header(site):
    stack, tap = site
    status, _h, body = send(stack, frame(), path="/cgi/upload", MJD="60400.25", expTime="30")
    assert status == 202, body
    upload, _ = tap.published(body["upload_id"])
    assert upload.mjd == 60400.25 and upload.exptime == 30.0
    assert upload.image is not None
    assert "mjd" not in upload.image.header.from_header and "exptime" not in upload.image.header.from_header
    assert upload.image.header.from_header["filter"] == "FILTER"


@pytest.mark.parametrize(
    "compression,field,filename,suffix",
    [("gzip", "sexCat", "frame.fits.gz", ".fits.gz"), ("tile", "image", "frame.fits.fz", ".fits.fz")],
)
def test_gzipped_and_tile_compressed_frames_are_frames(site, compression, field, filename, suffix):
    stack, tap = site
    data = frame(compression=compression)
    status, _h, body = send(stack, data, field=field, filename=filename, path="/followup/cgi/upload")
    assert status == 202, body
    name = body["upload_id"] + suffix
    assert stored_objects(tap)[name] == data
    upload, _ = tap.published(body["upload_id"])
    assert upload.image is not None and upload.image.compression == compression and upload.image.object_name == name
    assert upload.image.hdu == (1 if compression == "tile" else 0)
    assert upload.image.decompressed_bytes > (len(data) if compression == "gzip" else 0)
    assert upload.mjd == pytest.approx(START_MJD + EXPTIME / 2 / 86400, abs=1e-8)


def test_a_frame_larger_than_a_catalogue_may_be_is_taken(site):
    stack, tap = site
    data = frame((300, 300))  # 360 KB: over the catalogue's 256 KB, under the frame's 1 MB
    assert MAX_CATALOGUE_BYTES < len(data) < MAX_IMAGE_BYTES
    status, _h, body = send(stack, data)
    assert status == 202, body
    assert stored_objects(tap)[f"{body['upload_id']}.fits"] == data


def test_a_text_catalogue_over_its_limit_is_413(site):
    stack, _tap = site
    rows = b"12.000 0.010 150.000 30.000\n" * 12_000  # 336 KB
    status, _h, body = send(stack, rows, filename="big.cat", MJD="60100.5")
    assert (status, body["error"]) == (413, "too_large") and "256 KB" in body["message"]


def test_a_frame_waited_for_without_a_photometry_service_times_out_saying_where_to_look(site):
    stack, tap = site
    status, headers, body = send(stack, frame(), wait=True)
    assert status == 504, body
    assert body["error"] == "timeout" and body["upload_id"] == headers["X-Upload-ID"]
    assert f"{body['upload_id']}.fits" in stored_objects(tap)


def test_a_frame_beyond_the_frames_in_flight_is_429_with_retry_after_and_a_catalogue_is_not(site):
    stack, _tap = site
    # the stack holds one frame at a time: the first, waited for, keeps its slot until its 504 (3 s)
    first: dict = {}
    waiting = threading.Thread(target=lambda: first.update(answer=send(stack, frame(), wait=True)))
    waiting.start()
    threading.Event().wait(1.0)
    status, headers, body = send(stack, frame(cards={"DATE-OBS": "2024-03-02T20:00:00"}))
    assert (status, body["error"]) == (429, "frames_busy"), body
    assert int(headers["Retry-After"]) > 0 and "PHOTCAL_MAX_FRAMES_IN_FLIGHT" in body["message"]
    # a catalogue meanwhile takes no slot
    got, _h, answer = send(stack, (FIELD / "sex_cpcs.cat").read_bytes(), filename="field.cat", MJD="60100.6")
    assert got == 202, answer
    waiting.join(30)
    assert first["answer"][0] == 504
    # the slot is free again
    status, _h, body = send(stack, frame(cards={"DATE-OBS": "2024-03-03T20:00:00"}))
    assert status == 202, body


# -- refused frames: the specific 4xx, nothing stored ------------------------------------------------------------


def _refused(site, data: bytes, status: int, code: str) -> dict:
    stack, tap = site
    before = set(stored_objects(tap))
    seen = len(tap.messages)
    got, _h, body = send(stack, data)
    assert (got, body.get("error")) == (status, code), body
    assert set(stored_objects(tap)) == before, "a refused frame was stored"
    assert len(tap.messages) == seen, "a refused frame was published"
    return body


def test_a_cube_is_refused(site):
    body = _refused(site, frame((3, 40, 40)), 400, "image_cube")
    assert "3" in body["message"] and "2-D" in body["message"]


def test_a_frame_without_a_date_anywhere_is_no_mjd(site):
    body = _refused(site, frame(cards={"DATE-OBS": None}), 400, "no_mjd")
    assert "DATE-OBS/MJD-OBS" in body["message"] and "mjd=" in body["message"]


def test_a_frame_over_the_byte_limit_is_413_naming_the_setting(site):
    data = frame((600, 600))  # 1.4 MB of float32 pixels, over the 1 MB limit on the wire
    # its Content-Length says so before a byte is read: refused unread, whatever the body holds
    body = _refused(site, data, 413, "too_large")
    assert "1 MB for a FITS frame (PHOTCAL_MAX_IMAGE_BYTES)" in body["message"]


def test_a_frame_over_the_pixel_limit_is_413_naming_the_setting(site):
    data = frame((600, 600), np.uint8)  # 360 KB, but 360,000 pixels
    body = _refused(site, data, 413, "image_too_large")
    assert "250,000 pixels" in body["message"] and "PHOTCAL_MAX_IMAGE_PIXELS" in body["message"]


def test_a_gzip_bomb_frame_is_413_read_as_a_stream(site):
    pixels = np.zeros((2048, 2048), np.float32)  # 16 MB inflated, a few KB sent
    out = io.BytesIO()
    fits.PrimaryHDU(pixels, _header()).writeto(out)
    bomb = gzip.compress(out.getvalue(), compresslevel=9)
    assert len(bomb) < 64 * KB
    _refused(site, bomb, 413, "image_too_large")


def test_a_truncated_frame_is_refused(site):
    data = frame()
    body = _refused(site, data[: len(data) // 2], 400, "bad_fits")
    assert "truncated" in body["message"]


# -- catalogues, as before ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sex_ascii_head.cat", "sex_ldac.fits"])
def test_a_catalogue_upload_is_unchanged(site, name):
    stack, tap = site
    seen = len(tap.messages)
    status, _h, body = send(stack, (FIELD / name).read_bytes(), filename=name, wait=True, MJD=str(stack.truth["mjd"]))
    assert status == 200, body
    assert body["status"] == "ok" and body["mag"] is not None and body["dry_run"]
    assert body.get("photometry") is None and body.get("frame") is None
    assert len(tap.messages) == seen  # nothing for the photometry service


def test_a_catalogue_still_needs_the_forms_mjd(site):
    stack, _tap = site
    status, _h, body = send(stack, (FIELD / "sex_ldac.fits").read_bytes(), filename="cat.fits")
    assert (status, body["error"]) == (400, "missing_field") and "MJD" in body["message"]
