"""Photometry of simulated CCD frames against the simulator's truth (tools/simfield)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from services.photometry.imaging.extract import FLAG_SATURATED
from services.photometry.imaging.frame import NoStars, UnusableFrame, photometer_frame
from services.photometry.imaging.wcscheck import matched_fraction
from shared.frames import frame_header
from tests.frames import photometer_field
from tools.datasets import simulate_field

_photometer = photometer_field


@pytest.fixture(scope="module")
def bright_field():
    field = simulate_field(1, 150.0, 30.0, "V", name="north_V", sextract=False, keep_image=True)
    return field, _photometer(field)


@pytest.fixture(scope="module")
def faint_field():
    field = simulate_field(7, 200.0, 40.0, "V", faint=True, sextract=False, keep_image=True)
    return field, _photometer(field)


def _matched_truth(field, phot):
    """(our instrumental mag, its error, flags, truth row) for sources within 1 px of a simulated object."""
    objects = field.objects
    tree = cKDTree(np.column_stack([objects.x_image - 1.0, objects.y_image - 1.0]))  # FITS 1-based -> 0-based
    distance, index = tree.query(np.column_stack([phot.x, phot.y]))
    near = distance < 1.0
    rows = objects.iloc[np.asarray(index)[near]]
    return phot.sources.mag[near], phot.sources.mag_err[near], phot.sources.flags[near], rows


def test_bright_stars_have_one_common_offset_from_the_truth_and_small_scatter(bright_field):
    field, phot = bright_field
    mag, err, flags, rows = _matched_truth(field, phot)
    bright = (err < 0.02) & (flags == 0) & (rows.kind.to_numpy() == "star")
    assert bright.sum() >= 20
    residual = mag[bright] - rows.m_inst.to_numpy()[bright]
    offset = np.median(residual)
    # the aperture holds the same fraction of every star's light: a constant, absorbed by the zero point
    assert 0.0 < offset < 0.4
    assert 1.4826 * np.median(np.abs(residual - offset)) < 0.02


def test_the_frames_fwhm_is_the_simulated_seeing(bright_field, faint_field):
    for field, phot in (bright_field, faint_field):
        seeing_px = field.truth["fwhm_arcsec"] / field.truth["field"]["pixel_scale_arcsec"]
        assert phot.fwhm_px == pytest.approx(seeing_px, rel=0.10)
        assert phot.n_fwhm_stars >= 5
        assert phot.fwhm_px <= phot.aperture.radius <= 1.5 * phot.fwhm_px


def test_saturated_stars_are_flagged_and_unsaturated_ones_are_not(bright_field):
    field, phot = bright_field
    _, _, flags, rows = _matched_truth(field, phot)
    saturated = rows.saturated.to_numpy(dtype=bool)
    assert saturated.sum() >= 3
    assert np.all(flags[saturated] & FLAG_SATURATED)
    assert not np.any(flags[~saturated] & FLAG_SATURATED)


def test_forced_photometry_of_a_detected_transient_agrees_with_its_truth(bright_field):
    field, phot = bright_field
    mag, err, flags, rows = _matched_truth(field, phot)
    bright = (err < 0.02) & (flags == 0)
    offset = np.median(mag[bright] - rows.m_inst.to_numpy()[bright])
    forced = phot.forced
    assert forced is not None and forced.detected and forced.snr > forced.snr_limit
    assert abs(forced.inst_mag - offset - field.truth["transient"]["m_inst"]) < 3 * forced.inst_mag_err


def test_a_transient_below_the_detection_limit_gives_a_limit_brighter_than_it(faint_field):
    field, phot = faint_field
    mag, err, flags, rows = _matched_truth(field, phot)
    bright = (err < 0.02) & (flags == 0)
    offset = np.median(mag[bright] - rows.m_inst.to_numpy()[bright])
    forced = phot.forced
    assert forced is not None and not forced.detected and forced.snr < forced.snr_limit
    t = field.truth
    limit_sys = forced.inst_limit - offset + t["zeropoint"]  # in the simulator's system magnitudes
    # an aperture's 5-sigma limit: shallower than the ideal PSF-weighted one, by well under a magnitude,
    # and brighter than the transient that was not seen
    assert t["limit_mag_5sigma"] - 0.8 < limit_sys < t["limit_mag_5sigma"] + 0.1
    assert limit_sys < t["transient"]["m_sys"]


def test_the_sources_positions_come_from_the_wcs(bright_field):
    field, phot = bright_field
    stars = field.references["GAIA"]
    ref_ra, ref_dec = stars.RA_ICRS.to_numpy(), stars.DE_ICRS.to_numpy()
    fraction, n = matched_fraction(phot.sources.ra, phot.sources.dec, phot.sources.mag, ref_ra, ref_dec, 2.0)
    assert n == 100 and fraction > 0.7
    # a WCS 36 arcsec off puts the stars nowhere near their catalogue positions
    shifted, _ = matched_fraction(phot.sources.ra + 0.01, phot.sources.dec, phot.sources.mag, ref_ra, ref_dec, 2.0)
    assert shifted < 0.1


@pytest.mark.parametrize(
    ("pixels", "words"),
    [(np.full((64, 64), np.nan, np.float32), "NaN"), (np.zeros((64, 64), np.float32), "blank")],
)
def test_blank_frames_are_refused_with_the_reason(bright_field, pixels, words):
    field, _ = bright_field
    with pytest.raises(UnusableFrame, match=words):
        photometer_frame(pixels, frame_header(field.header), WCS(field.header), 150.0, 30.0)


def test_noise_with_hot_pixels_is_no_stars_and_the_same_noise_with_stars_is_measured(bright_field):
    field, _ = bright_field
    rng = np.random.default_rng(11)
    noise = rng.normal(500.0, 5.0, field.image.shape).astype(np.float32)
    # hot pixels and cosmic-ray hits: single pixels hundreds of sigma high
    ys, xs = rng.integers(0, noise.shape[0], 40), rng.integers(0, noise.shape[1], 40)
    noise[ys, xs] += 5000.0
    with pytest.raises(NoStars, match="no star in the frame"):
        photometer_frame(noise, frame_header(field.header), WCS(field.header), 150.0, 30.0)
    phot = photometer_frame(field.image, frame_header(field.header), WCS(field.header), 150.0, 30.0)
    assert phot.n_detected > 50


def test_a_neighbour_in_the_background_annulus_is_not_taken_for_sky():
    """The annulus leaves out the detected objects' pixels: a bright star 8 px away (inside a 5.9-9.8 px
    annulus) made the plain mean's flux too faint; with its pixels masked the flux is the star's."""
    import numpy as np

    from services.photometry.imaging.aperture import aperture_for, measure
    from services.photometry.imaging.extract import detect

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:128, 0:128]
    fwhm = 2.35
    sigma = fwhm / 2.3548

    def star(x0: float, y0: float, flux: float) -> np.ndarray:
        return flux / (2 * np.pi * sigma**2) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))

    target_flux = 5000.0
    image = star(64.0, 64.0, target_flux) + star(72.0, 64.0, 200_000.0) + rng.normal(0, 5.0, (128, 128))
    data = image.astype(np.float32)
    rms = np.full_like(data, 5.0)
    aperture = aperture_for(fwhm)
    found = detect(data, data, rms, saturate=None)
    assert found.objects_mask is not None and found.objects_mask[64, 72]
    x, y = np.array([64.0]), np.array([64.0])
    plain = measure(data, x, y, aperture, rms, None).flux[0]
    masked = measure(data, x, y, aperture, rms, None, found.objects_mask).flux[0]
    in_aperture = target_flux * (1 - np.exp(-(aperture.radius**2) / (2 * sigma**2)))
    assert plain < 0.8 * in_aperture  # the neighbour's wings taken for sky
    assert abs(masked - in_aperture) < 0.05 * in_aperture


def test_a_crowded_frame_that_fills_seps_pixel_stack_is_extracted_again_with_more_room(bright_field, monkeypatch):
    from services.photometry.imaging import extract

    field, phot = bright_field
    monkeypatch.setattr(extract, "PIXSTACK_START", 20)  # full at once: sep refuses, detect grows it
    again = photometer_frame(field.image, frame_header(field.header), WCS(field.header), 150.0, 30.0)
    assert again.n_detected == phot.n_detected
    assert np.array_equal(again.sources.mag, phot.sources.mag, equal_nan=True)
