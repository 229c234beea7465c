"""A FITS frame uploaded as an observer does (multipart, the catalogue's endpoint), answered end to end.

Real stack (`photcal run`: gateway, photometry, calibrate, catalog; real NATS and
database), real HTTP. The frames are the field simulator's CCD images with known
stars; the answer's magnitude is checked against the simulator's truth, and bad
frames against their specific 4xx, with nothing stored.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib

import numpy as np
import pymongo
import pytest
from astropy.io import fits

from tests.integration.conftest import Stack
from tests.integration.test_hostile_input import multipart, request
from tools.datasets import simulate_field
from tools.devstack import standalone_stack, stop_all

pytest.importorskip(
    "services.photometry",
    reason="the photometry service (services/photometry, branch s26-photometry) is not on this branch yet",
)

pytestmark = pytest.mark.integration

BRIGHT = "ivo://gaia/alerts#SimUploadedFrame"
FAINT = "ivo://gaia/alerts#SimUploadedFaint"


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    bright_dir, faint_dir = tmp_path_factory.mktemp("bright"), tmp_path_factory.mktemp("faint")
    bright = simulate_field(1, 150.0, 30.0, "V", name="upload_V", out=bright_dir, keep_image=True, sextract=False)
    faint = simulate_field(7, 200.0, 40.0, "V", faint=True, out=faint_dir, keep_image=True, sextract=False)
    return {"bright": (bright, bright_dir), "faint": (faint, faint_dir)}


@pytest.fixture(scope="module")
def site(fields, tmp_path_factory):
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("frame_uploads"), PHOTCAL_MONGO_DB="frameuploads", PHOTCAL_UPLOAD_TIMEOUT="90"
    )
    try:
        stack.add_observatory()
        for (sim, out), ivorn in ((fields["bright"], BRIGHT), (fields["faint"], FAINT)):
            stack.load_field(out)
            alert = sim.truth["alert"]
            stack.cli("alert", "add", "--ivorn", ivorn, "--ra", str(alert["ra"]), "--dec", str(alert["dec"]))
        stack.start()
        yield stack
    finally:
        stop_all(stack, servers)


def fits_file(image: np.ndarray, header: fits.Header, compression: str = "none") -> bytes:
    """The frame as a camera (or fpack, or gzip) writes it."""
    out = io.BytesIO()
    if compression == "tile":
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(image, header)]).writeto(out)
        return out.getvalue()
    fits.PrimaryHDU(image, header).writeto(out)
    return gzip.compress(out.getvalue(), compresslevel=1) if compression == "gzip" else out.getvalue()


def upload(stack: Stack, data: bytes, ivorn: str = BRIGHT, filename: str = "frame.fits", **over: str | None):
    """`curl -F sexCat=@frame.fits -F EventID=... -F hashtag=...` (dry run unless told otherwise)."""
    form = {
        "hashtag": stack.hashtags["Test Observatory"],
        "EventID": ivorn,
        "noPlot": "1",
        "dryRun": "1",
        "outputFormat": "json",
    } | over
    body, content_type = multipart({k: v for k, v in form.items() if v is not None}, {"sexCat": (filename, data)})
    status, headers, raw = request(stack, "POST", "/api/v1/uploads", body, {"Content-Type": content_type})
    return status, json.loads(raw)


def datapoints(stack: Stack) -> int:
    client: pymongo.MongoClient = pymongo.MongoClient(stack.env["PHOTCAL_MONGO_URL"], serverSelectionTimeoutMS=5000)
    try:
        return client[stack.env["PHOTCAL_MONGO_DB"]].datapoints.count_documents({})
    finally:
        client.close()


def start_mid_mjd(sim) -> float:
    return sim.truth["mjd"] + sim.truth["exptime"] / 2 / 86400


@pytest.mark.parametrize("compression", ["none", "gzip", "tile"])
def test_a_frame_is_answered_with_the_targets_magnitude_by_forced_photometry(site, fields, compression):
    sim, _ = fields["bright"]
    data = fits_file(sim.image, sim.header, compression)
    status, body = upload(site, data, MJD=str(start_mid_mjd(sim)))
    assert status == 200, body
    assert body["status"] == "ok" and body["detected"] is True
    assert abs(body["mag"] - sim.truth["transient"]["mag"]) < 0.05, (body["mag"], sim.truth["transient"])
    assert body["photometry"]["method"] == "forced_aperture"
    assert body["frame"]["filter"] == "V" and body["frame"]["exptime"] == sim.truth["exptime"]
    assert "mjd" not in body["from_header"] and body["from_header"]["exptime"] == "EXPTIME"


def test_a_frame_asked_with_plots_has_its_cut_out_beside_the_calibration_plot(site, fields):
    """noPlot=0: the calibration plot, and the frame around the target with the aperture drawn, both served."""
    sim, _ = fields["bright"]
    status, body = upload(site, fits_file(sim.image, sim.header), noPlot="0")
    assert status == 200, body
    for link in (body["image_link"], body["cutout_link"]):
        path = "/" + link.split("/", 3)[3]
        code, headers, png = request(site, "GET", path)
        assert code == 200 and png.startswith(b"\x89PNG"), (link, code)
    assert body["cutout_link"].endswith(f"/plots/{body['upload_id']}-cutout.png")


def test_a_frame_with_the_headers_date_only(site, fields):
    sim, _ = fields["bright"]
    status, body = upload(site, fits_file(sim.image, sim.header))
    assert status == 200, body
    assert body["mjd"] == pytest.approx(start_mid_mjd(sim), abs=1e-6)
    assert body["from_header"]["mjd"].startswith("MJD-OBS")
    assert abs(body["mag"] - sim.truth["transient"]["mag"]) < 0.05


def test_a_faint_target_is_answered_with_a_limit(site, fields):
    sim, _ = fields["faint"]
    status, body = upload(site, fits_file(sim.image, sim.header), ivorn=FAINT)
    assert status == 200, body
    assert body["detected"] is False and body["mag"] is None
    assert body["limit_mag"] is not None
    assert body["photometry"]["method"] == "forced_aperture"
    assert body["photometry"]["snr"] is None or body["photometry"]["snr"] < body["photometry"]["snr_limit"]


def _lying_header(sim) -> bytes:
    data = bytearray(fits_file(sim.image, sim.header))
    at = data.index(b"NAXIS1  =")
    data[at : at + 30] = b"NAXIS1  = %20d" % 10**9
    return bytes(data)


def _bomb(sim) -> bytes:
    """A .fits.gz of a few hundred KB that inflates to a 12000 x 12000 float32 frame (576 MB, over 200 MB)."""
    header = fits.PrimaryHDU(np.zeros((1, 1), np.float32), sim.header).header.copy()
    header["NAXIS1"], header["NAXIS2"] = 12000, 12000
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)  # a gzip stream, written without holding 576 MB
    parts = [squeeze.compress(header.tostring().encode())]
    zeros = bytes(16 * 1024 * 1024)
    for _ in range(12000 * 12000 * 4 // len(zeros)):
        parts.append(squeeze.compress(zeros))
    parts.append(squeeze.flush())
    return b"".join(parts)


@pytest.mark.parametrize(
    "name,status,code",
    [
        ("all_nan", 400, "bad_image"),
        ("all_zero", 400, "bad_image"),
        # pure noise: sep finds a few noise peaks at 3 sigma (11 here), none of them a star
        ("no_stars", 400, "no_stars"),
        ("truncated", 400, "bad_fits"),
        ("lying_naxis1", 400, "bad_fits"),
        ("gzip_bomb", 413, "image_too_large"),
    ],
)
def test_bad_frames_are_refused_with_their_4xx_and_nothing_stored(site, fields, name, status, code):
    sim, _ = fields["bright"]
    make = {
        "all_nan": lambda: fits_file(np.full_like(sim.image, np.nan), sim.header),
        "all_zero": lambda: fits_file(np.zeros_like(sim.image), sim.header),
        "no_stars": lambda: fits_file(np.random.default_rng(5).normal(500, 5, sim.image.shape), sim.header),
        "truncated": lambda: fits_file(sim.image, sim.header)[:100_000],
        "lying_naxis1": lambda: _lying_header(sim),
        "gzip_bomb": lambda: _bomb(sim),
    }
    before = datapoints(site)
    got, body = upload(site, make[name](), dryRun="0")
    assert (got, body["error"]) == (status, code), body
    assert datapoints(site) == before
