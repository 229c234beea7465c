"""The photometry service against real NATS and the MongoDB-protocol server: a frame in, the answer out.

The gateway's part (accepting the file) is not exercised here: each test puts a simulated
frame in the object store and publishes its ``UploadRequested`` on ``photcal.frame.v1``
as the gateway does, then reads the answer on ``photcal.calibrated.v1``, and checks it
against the simulator's truth.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import time
import urllib.request
import uuid

import nats
import numpy as np
import pymongo
import pytest

from bench.bench_images import simulate_sky_frame
from shared.contracts.messages import CalibrationResult, UploadedImage, UploadRequested
from shared.contracts.subjects import OBJECT_BUCKET_UPLOADS, SUBJECT_CALIBRATED, SUBJECT_FRAME, SUBJECT_UPLOAD
from shared.frames import frame_header
from tests.frames import fits_bytes
from tests.integration.conftest import wait_until
from tools.datasets import simulate_field
from tools.devstack import standalone_stack, stop_all

IVORN = "ivo://gaia/alerts#SimFrameV"


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    out = tmp_path_factory.mktemp("frame_field")
    sim = simulate_field(1, 150.0, 30.0, "V", name="frame_V", out=out, keep_image=True, sextract=False)
    return sim, out


@pytest.fixture(scope="module")
def stack(field, tmp_path_factory):
    sim, out = field
    # a killed worker's frame comes back in seconds, not a minute
    stack, servers = standalone_stack(
        tmp=tmp_path_factory.mktemp("photometry_stack"), PHOTCAL_PHOTOMETRY_ACK_WAIT="6", PHOTCAL_LOG_LEVEL="INFO"
    )
    try:
        stack.load_field(out)
        t = sim.truth["alert"]
        stack.cli("alert", "add", "--ivorn", IVORN, "--ra", str(t["ra"]), "--dec", str(t["dec"]), "--name", "SimFrameV")
        stack.start()
        yield stack
    finally:
        stop_all(stack, servers)


def frame_upload(
    image_px: np.ndarray, header, raw: bytes, hdu: int, compression: str, ra: float, dec: float, **fields
) -> UploadRequested:
    """The gateway's message for this frame (its header read as the gateway reads it)."""
    upload_id = uuid.uuid4().hex
    info = frame_header(header, image_px.shape)
    suffix = {"none": ".fits", "gzip": ".fits.gz", "tile": ".fits.fz"}[compression]
    image = UploadedImage(
        object_name=f"{upload_id}{suffix}",
        compression=compression,  # type: ignore[arg-type]
        hdu=hdu,
        size_bytes=len(raw),
        decompressed_bytes=len(gzip.decompress(raw)) if compression == "gzip" else len(raw),
        header=info,
    )
    return UploadRequested(
        upload_id=upload_id,
        ivorn=IVORN,
        alert_name="SimFrameV",
        alert_ra=ra,
        alert_dec=dec,
        observatory_id="obs-test",
        observatory_name="Test Observatory",
        mjd=info.mjd or 60000.0,
        exptime=info.exptime,
        n_sources=0,
        image=image,
        filename=image.object_name,
        **fields,
    )


async def _submit(url: str, upload: UploadRequested, raw: bytes | None, times: int, timeout: float, on_published=None):
    """Put the frame (unless None) and publish it ``times`` (as redeliveries would); the answer, and the
    hand-overs seen."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        answers: asyncio.Queue[CalibrationResult] = asyncio.Queue()
        handed: list[UploadRequested] = []

        async def on_result(msg):
            result = CalibrationResult.model_validate_json(msg.data)
            if result.upload_id == upload.upload_id:
                await answers.put(result)

        async def on_handover(msg):
            measured = UploadRequested.model_validate_json(msg.data)
            if measured.upload_id == upload.upload_id:
                handed.append(measured)

        await nc.subscribe(SUBJECT_CALIBRATED, cb=on_result)
        # a plain subscription sees what is published into the work queue without taking it from calibrate
        await nc.subscribe(SUBJECT_UPLOAD, cb=on_handover)
        try:
            store = await js.object_store(OBJECT_BUCKET_UPLOADS)
        except Exception:
            store = await js.create_object_store(OBJECT_BUCKET_UPLOADS)
        assert upload.image is not None
        if raw is not None:
            await store.put(upload.image.object_name, raw)
        for i in range(times):
            # each a different message id: JetStream stores both, as a frame redelivered to the worker
            msg_id = {"Nats-Msg-Id": f"f{i}-{upload.upload_id}"}
            await js.publish(SUBJECT_FRAME, upload.model_dump_json().encode(), headers=msg_id)
        if on_published is not None:
            await on_published()
        first = await asyncio.wait_for(answers.get(), timeout)
        await asyncio.sleep(2.0)  # room for a second answer, were there one
        more = answers.qsize()
        return first, more, handed
    finally:
        await nc.close()


def submit(stack, upload, raw, *, times: int = 1, timeout: float = 90.0, on_published=None):
    return asyncio.run(_submit(stack.env["PHOTCAL_NATS_URL"], upload, raw, times, timeout, on_published))


def truth_of(sim):
    return sim.truth["transient"], sim.truth["alert"]


@pytest.mark.parametrize("compression", ["none", "tile"])
def test_a_frame_with_its_wcs_gives_the_transients_magnitude_by_forced_photometry(stack, field, compression):
    sim, _ = field
    transient, alert = truth_of(sim)
    raw, hdu = fits_bytes(sim.image, sim.header, compression)
    upload = frame_upload(sim.image, sim.header, raw, hdu, compression, alert["ra"], alert["dec"], dry_run=True)
    result, more, handed = submit(stack, upload, raw)
    assert result.status == "ok", result.message
    assert (result.survey, result.filter) == (sim.truth["best"]["survey"], sim.truth["best"]["band"])
    assert result.detected is True
    assert abs(result.mag - transient["mag"]) < 0.05, (result.mag, transient["mag"])
    assert 0 < result.mag_err < 0.1
    assert "forced aperture at the alert position" in result.message and "limit at S/N 5" in result.message
    phot = result.photometry
    assert phot is not None and phot.method == "forced_aperture" and phot.wcs == "header"
    assert phot.snr is not None and phot.snr > phot.snr_limit == 5.0
    seeing_px = sim.truth["fwhm_arcsec"] / sim.truth["field"]["pixel_scale_arcsec"]
    assert phot.fwhm_px == pytest.approx(seeing_px, rel=0.15)
    # the aperture sits on the transient's pixel (FITS 1-based, as the simulator's truth)
    assert abs(phot.x - transient["x_image"]) < 0.5 and abs(phot.y - transient["y_image"]) < 0.5
    assert result.frame is not None and result.frame.exptime == sim.truth["exptime"]
    assert result.n_sources == handed[0].n_sources > 100
    assert more == 0


def test_a_frame_without_wcs_is_plate_solved_and_measured(stack):
    # the real sky's bright stars (Tycho-2), as astrometry.net's index files know them
    frame = simulate_sky_frame(11, 150.0, 20.0, width=1440, height=1440, pixel_scale=1.25, rotation=1.5)
    assert "CRVAL1" not in frame.header
    header = frame.header.copy()
    header["PIXSCALE"] = (1.25, "arcsec/px")
    ra, dec = frame.wcs.all_pix2world([0.37 * 1440], [0.62 * 1440], 1)
    raw, hdu = fits_bytes(frame.image, header, "gzip")
    upload = frame_upload(frame.image, header, raw, hdu, "gzip", float(ra[0]), float(dec[0]), dry_run=True)
    result, _, handed = submit(stack, upload, raw)
    assert result.error != "image_not_solved", result.message
    assert len(handed) == 1, (result.error, result.message)
    [measured] = handed
    assert measured.forced_target is not None and measured.forced_target.photometry.wcs == "solved"
    # the solved WCS puts the alert on the pixel the true one does
    x, y = frame.wcs.all_world2pix([ra[0]], [dec[0]], 1)
    at = measured.forced_target.photometry
    assert at.x is not None and at.y is not None
    assert abs(at.x - x[0]) < 1.0 and abs(at.y - y[0]) < 1.0
    # no reference catalogue of that sky is loaded here: the calibration says so, not the photometry
    assert result.error == "field_not_covered", result.message


def test_an_all_nan_frame_is_answered_bad_image(stack, field):
    sim, _ = field
    _, alert = truth_of(sim)
    raw, hdu = fits_bytes(np.full_like(sim.image, np.nan), sim.header)
    upload = frame_upload(sim.image, sim.header, raw, hdu, "none", alert["ra"], alert["dec"], dry_run=True)
    result, more, handed = submit(stack, upload, raw)
    assert (result.status, result.error, result.http_status) == ("error", "bad_image", 400)
    assert "NaN" in result.message
    assert handed == [] and more == 0


def test_an_alert_off_the_frame_is_answered_target_outside_frame(stack, field):
    sim, _ = field
    _, alert = truth_of(sim)
    raw, hdu = fits_bytes(sim.image, sim.header)
    upload = frame_upload(sim.image, sim.header, raw, hdu, "none", alert["ra"], alert["dec"] + 1.0, dry_run=True)
    result, _, handed = submit(stack, upload, raw)
    assert (result.status, result.error, result.http_status) == ("error", "target_outside_frame", 400)
    assert "not on the frame" in result.message
    assert handed == []


def test_a_frame_whose_wcs_is_elsewhere_is_answered_wrong_wcs(stack, field):
    sim, _ = field
    _, alert = truth_of(sim)
    header = sim.header.copy()
    # the frame's WCS 5 arcmin off, the alert moved with it so that it is still on the frame
    header["CRVAL2"] = header["CRVAL2"] + 5 / 60
    raw, hdu = fits_bytes(sim.image, header)
    upload = frame_upload(sim.image, header, raw, hdu, "none", alert["ra"], alert["dec"] + 5 / 60, dry_run=True)
    result, _, _ = submit(stack, upload, raw)
    assert (result.status, result.error, result.http_status) == ("error", "wrong_wcs", 400), result.message
    assert "re-solve it" in result.message


def _restarted(stack, pid: int) -> bool:
    try:
        return stack.service_pid("photometry") != pid
    except AssertionError:  # between the kill and the restart
        return False


def _datapoints(stack, upload_id: str) -> int:
    client: pymongo.MongoClient = pymongo.MongoClient(stack.env["PHOTCAL_MONGO_URL"], serverSelectionTimeoutMS=5000)
    try:
        return client[stack.env.get("PHOTCAL_MONGO_DB", "photcal")].datapoints.count_documents({"upload_id": upload_id})
    finally:
        client.close()


def _in_flight(stack) -> float:
    port = int(stack.env["PHOTCAL_HTTP_PORT"]) + 4
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("photcal_photometry_in_flight "):
                return float(line.split()[1])
    return 0.0


def test_a_worker_killed_mid_frame_and_a_frame_measured_twice_store_one_datapoint(stack, field):
    sim, _ = field
    _, alert = truth_of(sim)
    raw, hdu = fits_bytes(sim.image, sim.header)
    upload = frame_upload(sim.image, sim.header, raw, hdu, "none", alert["ra"], alert["dec"], dry_run=False)
    pid = stack.service_pid("photometry")

    async def kill_the_worker_mid_frame():
        # the frame fetched and being measured, not acked: killed there, it is redelivered after ack_wait
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(_in_flight, stack) < 1:
            assert time.monotonic() < deadline, "the photometry worker never took the frame"
            await asyncio.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    # published twice as well: both deliveries measured and handed over, calibrate sees one
    result, more, handed = submit(stack, upload, raw, times=2, timeout=120, on_published=kill_the_worker_mid_frame)
    assert result.status == "ok" and result.stored, result.message
    assert more == 0
    assert _restarted(stack, pid)
    assert _datapoints(stack, upload.upload_id) == 1
    # the killed worker's delivery came back after ack_wait and was measured again
    measured = wait_until(lambda: [r for r in redelivered_of(stack, upload.upload_id) if r["deliveries"] >= 2], 30)
    assert measured
    assert _datapoints(stack, upload.upload_id) == 1


def redelivered_of(stack, upload_id: str) -> list[dict]:
    """The photometry worker's log lines of this upload's measured frames."""
    lines = (line for line in stack.log().splitlines() if upload_id in line and '"frame_measured"' in line)
    return [json.loads(line) for line in lines]


def test_the_service_answers_health_and_metrics(stack):
    port = int(stack.env["PHOTCAL_HTTP_PORT"]) + 4
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
        assert response.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert "photcal_photometry_frames_total" in body and "photcal_photometry_extraction_seconds" in body


def test_a_frame_that_keeps_crashing_the_worker_is_dead_lettered_with_a_specific_answer(stack, field):
    """The frame's object is gone from the store (its bucket's 7 days passed, or a bug): retried
    max_deliver times, then dead-lettered and answered; the worker lives on."""
    sim, _ = field
    _, alert = truth_of(sim)
    raw, hdu = fits_bytes(sim.image, sim.header)
    upload = frame_upload(sim.image, sim.header, raw, hdu, "none", alert["ra"], alert["dec"], dry_run=True)
    assert upload.image is not None
    lost = upload.model_copy(update={"image": upload.image.model_copy(update={"object_name": "no-such-frame.fits"})})
    pid = stack.service_pid("photometry")
    result, more, handed = submit(stack, lost, None, timeout=60)
    assert (result.status, result.error, result.http_status) == ("error", "internal_error", 500)
    assert result.message == "the photometry of the frame failed on our side; the operators have been told"
    assert handed == [] and more == 0
    assert stack.service_pid("photometry") == pid
    assert f'"upload_id": "{lost.upload_id}"' in stack.log() and '"upload_dead_lettered"' in stack.log()
