"""The gateway's side of a FITS frame upload: which file is a frame, its date, its size limits, its answer page.

The multipart reader is driven over real HTTP (an aiohttp server in its own thread),
as a client sends: a catalogue keeps its limit, a FITS file may grow to the frame's.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json

import numpy as np
import pytest
from aiohttp import web
from astropy.io import fits

from services.ingest.forms import read_upload_form, resolve_frame_exposure
from services.ingest.parsing.image import inspect_frame, looks_like_fits
from services.ingest.render import render_result_html
from services.ingest.uploads import frame_object_name, read_form
from shared.contracts.messages import CalibrationResult, ImagePhotometry
from shared.errors import BadInput, PayloadTooLarge
from shared.frames import FrameHeader, FrameSite
from shared.http_errors import json_errors
from tests.threaded_app import serve_in_thread

CATALOGUE_LIMIT = 8 * 1024
FRAME_LIMIT = 64 * 1024
FORM = {"EventID": "ivo://gaia/alerts#Gaia21eeo"}


def _fits(shape=(40, 40), dtype=np.int16, **cards) -> bytes:
    header = fits.Header()
    for key, value in cards.items():
        header[key.replace("_", "-")] = value
    out = io.BytesIO()
    fits.PrimaryHDU(np.zeros(shape, dtype), header).writeto(out)
    return out.getvalue()


# -- which file may be a frame ---------------------------------------------------------------------------------


def test_plain_and_gzipped_fits_may_be_frames_text_and_gzipped_text_are_not():
    frame = _fits()
    assert looks_like_fits(frame[:512]) and looks_like_fits(gzip.compress(frame)[:512])
    assert not looks_like_fits(b"# 1 NUMBER\n# 2 MAG_AUTO\n1 15.0\n")
    assert not looks_like_fits(gzip.compress(b"# 1 NUMBER\n1 15.0\n" * 50)[:512])
    assert not looks_like_fits(b"\x1f\x8bnot really gzip")
    assert not looks_like_fits(b"")


# -- the date: the form's, else the header's -------------------------------------------------------------------


def test_a_frame_upload_needs_no_mjd_in_the_form_but_a_catalogue_does():
    assert read_upload_form(FORM, require_mjd=False).MJD is None
    with pytest.raises(BadInput, match="MJD is missing") as caught:
        read_upload_form(FORM)
    assert caught.value.code == "missing_field"


def test_the_headers_mid_exposure_mjd_is_taken_when_the_form_gives_none():
    frame = inspect_frame(_fits(MJD_OBS=60100.0, EXPTIME=120.0), 10**8, 10**8)
    assert frame is not None
    merged, taken = resolve_frame_exposure(read_upload_form(FORM, require_mjd=False), frame.header)
    assert merged.mjd == pytest.approx(60100.0 + 60.0 / 86400.0)
    assert merged.exptime == 120.0
    assert taken == {"mjd": "MJD-OBS+EXPTIME/2", "exptime": "EXPTIME"}


def test_the_form_wins_over_the_header_and_the_answer_says_what_came_from_the_header():
    frame = inspect_frame(_fits(MJD_OBS=60100.0, EXPTIME=120.0, FILTER="V"), 10**8, 10**8)
    assert frame is not None
    form = read_upload_form(FORM | {"MJD": "60200.25"}, require_mjd=False)
    merged, taken = resolve_frame_exposure(form, frame.header)
    assert merged.mjd == 60200.25 and merged.exptime == 120.0
    assert "mjd" not in taken and taken["exptime"] == "EXPTIME" and taken["filter"] == "FILTER"


def test_the_lower_case_mjd_field_is_the_forms_mjd():
    assert read_upload_form(FORM | {"mjd": "60100.5"}).MJD == 60100.5


def test_no_date_in_the_form_nor_the_header_is_no_mjd_saying_how_to_fix_it():
    frame = inspect_frame(_fits(EXPTIME=60.0), 10**8, 10**8)
    assert frame is not None
    with pytest.raises(BadInput) as caught:
        resolve_frame_exposure(read_upload_form(FORM, require_mjd=False), frame.header)
    assert caught.value.code == "no_mjd" and caught.value.http_status == 400
    assert "DATE-OBS/MJD-OBS" in caught.value.message and "mjd=" in caught.value.message


# -- limits ------------------------------------------------------------------------------------------------------


def test_the_frame_limits_name_their_settings():
    with pytest.raises(PayloadTooLarge) as pixels:
        inspect_frame(_fits((100, 100)), 10**8, 50 * 50)
    assert pixels.value.code == "image_too_large" and "PHOTCAL_MAX_IMAGE_PIXELS" in pixels.value.message
    with pytest.raises(PayloadTooLarge) as size:
        inspect_frame(_fits((100, 100), np.float64), 40_000, 10**8)
    assert size.value.code == "image_too_large" and "PHOTCAL_MAX_IMAGE_BYTES" in size.value.message


def test_a_frames_object_name_says_how_it_is_compressed():
    assert frame_object_name("ab12", "none") == "ab12.fits"
    assert frame_object_name("ab12", "gzip") == "ab12.fits.gz"
    assert frame_object_name("ab12", "tile") == "ab12.fits.fz"


@pytest.fixture(scope="module")
def form_server():
    """A real aiohttp server whose one route is the gateway's read_form with a catalogue and a frame limit."""

    async def handler(request: web.Request) -> web.Response:
        fields, data, filename = await read_form(request, CATALOGUE_LIMIT, FRAME_LIMIT)
        return web.json_response({"fields": fields, "size": None if data is None else len(data), "filename": filename})

    app = web.Application(middlewares=[json_errors])
    app.router.add_post("/api/v1/uploads", handler)  # the API path: errors keep their whole message
    with serve_in_thread(app) as port:
        yield port


def _post(port: int, name: str, data: bytes, *, chunked: bool = False) -> tuple[int, dict]:
    boundary = "fr4me"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="MJD"\r\n\r\n60100.5\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="f.fits"\r\n\r\n'.encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    try:
        if chunked:
            conn.putrequest("POST", "/api/v1/uploads")
            for key, value in (headers | {"Transfer-Encoding": "chunked"}).items():
                conn.putheader(key, value)
            conn.endheaders()
            try:
                for i in range(0, len(body), 4096):
                    piece = body[i : i + 4096]
                    conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered 413 and closed while we were still sending
        else:
            conn.request("POST", "/api/v1/uploads", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True])
def test_a_fits_file_may_be_larger_than_a_catalogue_up_to_the_frame_limit(form_server, chunked):
    frame = _fits((150, 150))  # 45 KB: over the catalogue's 8 KB, under the frame's 64 KB
    status, body = _post(form_server, "sexCat", frame, chunked=chunked)
    assert status == 200, body
    assert body["size"] == len(frame) and body["fields"] == {"MJD": "60100.5"}
    gzipped = gzip.compress(_fits((120, 120), np.float32), compresslevel=0)  # 58 KB sent
    status, body = _post(form_server, "image", gzipped, chunked=chunked)
    assert status == 200 and body["size"] == len(gzipped)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_catalogue_keeps_its_limit(form_server, chunked):
    status, body = _post(form_server, "sexCat", b"1 15.0 0.01 150.0 30.0\n" * 1000, chunked=chunked)
    assert status == 413 and body["error"] == "too_large"
    assert "8 KB" in body["message"] and "catalogue" in body["message"]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_frame_over_the_frame_limit_is_refused_naming_the_setting(form_server, chunked):
    status, body = _post(form_server, "sexCat", _fits((200, 200), np.float32), chunked=chunked)  # 160 KB
    assert status == 413
    if chunked:  # read until the FITS part passes the frame's limit
        assert body["error"] == "image_too_large" and "over 64 KB (PHOTCAL_MAX_IMAGE_BYTES" in body["message"]
    else:  # its Content-Length is over every limit: refused before it is read
        assert body["error"] == "too_large" and "64 KB for a FITS frame (PHOTCAL_MAX_IMAGE_BYTES)" in body["message"]


# -- the HTML answer ---------------------------------------------------------------------------------------------


def _result(**over) -> CalibrationResult:
    return CalibrationResult(status="ok", upload_id="u1", ivorn="ivo://gaia/alerts#X", mag=15.2, **over)


def test_the_html_answer_shows_the_photometry_method_and_the_header_fields():
    page = render_result_html(
        _result(
            photometry=ImagePhotometry(radius_px=3.1, fwhm_px=2.6, snr=42.0, snr_limit=5.0, n_detected=180),
            from_header={"mjd": "DATE-OBS+EXPTIME/2", "filter": "FILTER"},
            frame=FrameHeader(filter="V", airmass=1.23, gain=1.5, site=FrameSite(name="Ondrejov")),
        )
    )
    assert "forced aperture" in page and "FWHM 2.6 px" in page and "42.0" in page
    assert "mjd from DATE-OBS+EXPTIME/2" in page and "1.230" in page and "Ondrejov" in page


def test_the_html_answer_of_a_frame_with_values_missing_still_renders():
    page = render_result_html(
        _result(
            photometry=ImagePhotometry(radius_px=float("nan"), fwhm_px=2.0, snr=None, snr_limit=5.0, n_detected=0),
            from_header={},
            frame=FrameHeader(site=FrameSite()),
        )
    )
    assert "forced aperture" in page and "NaN" in page and "Site" in page
