"""An uploaded frame's target: the forced aperture at the alert, calibrated (services/calibrate/core),
and the frame's own WCS checked (``wrong_wcs``); the frame's bytes read as uploaded (services/photometry)."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from astropy.io import fits

from services.calibrate.answer import calibration_answer
from services.calibrate.core import calibrate_frame
from services.calibrate.core.api import wcs_matches_nothing
from services.calibrate.core.inputs import ForcedAperture
from services.photometry.fitsframe import header_wcs, pixel_scale_hint, read_frame, solve_radius_deg
from shared.arrays import SourceTable
from shared.contracts.messages import UploadedImage
from shared.errors import BadInput, CalibrationFailed
from shared.frames import FrameHeader
from tests.frames import fits_bytes, without_wcs
from tools.datasets import make_field


@pytest.fixture(scope="module")
def field():
    return make_field(np.random.default_rng(81), target_v=16.0, target_bv=0.6)


def _forced(inst_mag, inst_err=0.02, inst_limit=-5.0, snr=50.0):
    return ForcedAperture(inst_mag=inst_mag, inst_mag_err=inst_err, inst_limit=inst_limit, snr=snr, snr_limit=5.0)


def test_a_detected_forced_target_is_its_instrumental_magnitude_through_the_fit(field):
    # the transient's instrumental magnitude as the frame measures it: m_ref = m_inst + zp + ct * colour
    inst = 16.0 - field.zp - field.ct * 0.6
    cal = calibrate_frame(
        field.sources, field.references, field.target_ra, field.target_dec, 2.0, forced_target=_forced(inst)
    )
    target = cal.target
    assert target.detected and target.photometry == "forced_aperture"
    assert target.assumed_colour is not None and target.mag is not None
    shift = cal.zeropoint + cal.colour_term * target.assumed_colour
    assert target.mag == pytest.approx(inst + shift, abs=1e-9)
    assert target.mag == pytest.approx(16.0, abs=0.05)
    # its error is the aperture's and the calibration's together: never below either
    assert cal.zeropoint_err is not None and target.mag_err is not None
    assert target.mag_err >= 0.02 and target.mag_err >= cal.zeropoint_err * 0.5
    assert target.mag_err < 0.1
    assert (target.ra, target.dec) == (field.target_ra, field.target_dec)
    answer = calibration_answer(cal, 2.0, upload_id="u", ivorn="ivo://x")
    assert "forced aperture at the alert position (S/N 50.0, limit at S/N 5)" in answer.message
    assert answer.detected is True and answer.limit_method == "forced_aperture"


def test_a_forced_target_below_the_snr_limit_is_the_limit_at_that_position(field):
    cal = calibrate_frame(
        field.sources,
        field.references,
        field.target_ra,
        field.target_dec,
        2.0,
        forced_target=_forced(None, None, inst_limit=-3.2, snr=1.3),
    )
    target = cal.target
    assert not target.detected and target.mag is None and target.assumed_colour is not None
    assert target.limit_mag == pytest.approx(-3.2 + cal.zeropoint + cal.colour_term * target.assumed_colour)
    assert target.limit_method == "forced_aperture"
    answer = calibration_answer(cal, 2.0, upload_id="u", ivorn="ivo://x")
    assert answer.mag is None and answer.limit_mag == pytest.approx(target.limit_mag, abs=1e-4)
    assert answer.message.startswith("not detected:") and "limit at S/N 5" in answer.message


def test_the_forced_target_replaces_the_nearest_source(field):
    """A source sits at the alert (the transient, 16 mag); a forced measurement 1 mag fainter wins."""
    plain = calibrate_frame(field.sources, field.references, field.target_ra, field.target_dec, 2.0)
    assert plain.target.detected and plain.target.photometry != "forced_aperture"
    assert plain.target.inst_mag is not None and plain.target.mag is not None
    inst = plain.target.inst_mag + 1.0
    forced = calibrate_frame(
        field.sources, field.references, field.target_ra, field.target_dec, 2.0, forced_target=_forced(inst)
    )
    assert forced.target.mag == pytest.approx(plain.target.mag + 1.0, abs=0.02)


@pytest.mark.parametrize("offset_arcsec", [1800.0, 30.0])
def test_a_frame_wcs_that_puts_its_stars_away_from_the_references_is_wrong_wcs(field, offset_arcsec):
    src = SourceTable.from_columns(
        np.asarray(field.sources.ra) + offset_arcsec / 3600.0,
        field.sources.dec,
        field.sources.mag,
        field.sources.mag_err,
    )
    ra = field.target_ra + offset_arcsec / 3600.0
    with pytest.raises(CalibrationFailed) as raised:
        calibrate_frame(src, field.references, ra, field.target_dec, 2.0, forced_target=_forced(-8.0), check_wcs=True)
    assert raised.value.code == "wrong_wcs" and raised.value.http_status == 400
    assert "re-solve it (or send it without WCS and the server will solve it)" in raised.value.message
    # a catalogue (no frame WCS to blame) keeps its own answers
    with pytest.raises(CalibrationFailed) as raised:
        calibrate_frame(src, field.references, ra, field.target_dec, 2.0)
    assert raised.value.code in {"no_stars_matched", "too_few_stars"}


def test_a_right_wcs_is_not_called_wrong(field):
    cal = calibrate_frame(
        field.sources, field.references, field.target_ra, field.target_dec, 2.0, forced_target=_forced(-8.0),
        check_wcs=True,
    )  # fmt: skip
    assert cal.nmatched > 20


def test_the_wrong_wcs_threshold():
    assert wcs_matches_nothing(0, 10) and wcs_matches_nothing(4, 1000)
    assert not wcs_matches_nothing(5, 1000)  # five stars are no coincidence
    assert not wcs_matches_nothing(3, 40)  # a sparse frame: 7.5 % matched


def _image(raw: bytes, hdu: int = 0, compression: str = "none") -> UploadedImage:
    return UploadedImage(
        object_name="u.fits",
        compression=compression,  # type: ignore[arg-type]
        hdu=hdu,
        size_bytes=len(raw),
        decompressed_bytes=len(raw) if compression != "gzip" else len(gzip.decompress(raw)),
        header=FrameHeader(),
    )


def _frame(width=64, height=48):
    rng = np.random.default_rng(3)
    header = fits.Header()
    for key, value in {
        "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 150.0, "CRVAL2": 30.0,
        "CRPIX1": width / 2, "CRPIX2": height / 2, "CD1_1": -1.25 / 3600, "CD1_2": 0.0,
        "CD2_1": 0.0, "CD2_2": 1.25 / 3600,
    }.items():  # fmt: skip
        header[key] = value
    return rng.normal(100, 5, (height, width)).astype(np.float32), header


@pytest.mark.parametrize("compression", ["none", "gzip", "tile"])
def test_a_frame_reads_the_same_plain_gzipped_or_tile_compressed(compression):
    pixels, header = _frame()
    raw, hdu = fits_bytes(pixels, header, compression)
    data, read_header = read_frame(raw, _image(raw, hdu, compression), max_pixels=10_000)
    assert data.shape == (48, 64)
    assert np.allclose(data, pixels, atol=0.5 if compression == "tile" else 0)  # .fz quantises floats
    wcs = header_wcs(read_header)
    assert wcs is not None
    assert header_wcs(without_wcs(read_header)) is None


def test_a_truncated_frame_a_cube_and_a_frame_over_the_pixel_limit_are_bad_images():
    pixels, header = _frame()
    raw, _ = fits_bytes(pixels, header)
    for bad, limit, says in (
        (raw[: len(raw) // 2], 10_000, "is the file complete"),
        (raw, 1_000, "at most 1,000 pixels"),
    ):
        with pytest.raises(BadInput) as raised:
            read_frame(bad, _image(raw), max_pixels=limit)
        assert raised.value.code == "bad_image" and says in raised.value.message
    cube = io.BytesIO()
    fits.PrimaryHDU(np.zeros((2, 8, 8), np.float32)).writeto(cube)
    with pytest.raises(BadInput) as raised:
        read_frame(cube.getvalue(), _image(cube.getvalue()), max_pixels=10_000)
    assert raised.value.code == "bad_image" and "not a 2-D image" in raised.value.message


def test_a_gzipped_frame_inflating_beyond_what_the_gateway_counted_is_refused():
    pixels, header = _frame()
    raw, _ = fits_bytes(pixels, header, "gzip")
    image = _image(raw, 0, "gzip").model_copy(update={"decompressed_bytes": 2880})
    with pytest.raises(BadInput) as raised:
        read_frame(raw, image, max_pixels=10_000)
    assert raised.value.code == "bad_image" and "inflates to more than" in raised.value.message


def test_the_solve_hint_radius_follows_the_frames_size():
    header = fits.Header({"PIXSCALE": 1.25})
    assert pixel_scale_hint(header) == 1.25
    assert pixel_scale_hint(fits.Header({"PIXSCALE": "junk"})) is None
    # 1440 px at 1.25"/px: 0.35 deg half-diagonal, with a quarter's margin
    assert solve_radius_deg(1440, 1440, 1.25, 1.0) == pytest.approx(0.442, abs=0.01)
    assert solve_radius_deg(1440, 1440, None, 1.0) == 1.0
