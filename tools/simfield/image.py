"""The CCD: camera, observing conditions, WCS, PSF stamps, the rendered and exposed image and its header."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from scipy.signal import fftconvolve

from tools.photsystem import InstrumentBand, survey_magnitudes


@dataclass(frozen=True)
class Camera:
    """Detector and optics; units: px, arcsec/px, e-/ADU, e-, ADU."""

    width: int = 1024
    height: int = 1024
    pixel_scale: float = 1.25
    gain: float = 1.6
    read_noise: float = 8.0
    bias: float = 300.0
    saturation: float = 50000.0  # ADU at which pixels clip (bias included)
    psf_beta: float = 3.5

    @property
    def saturate_keyword(self) -> float:
        """Header SATURATE (ADU): just below the clip level, as observatories
        quote it, so SExtractor flags every clipped pixel (FLAGS 4)."""
        return 0.98 * self.saturation


@dataclass(frozen=True)
class Observation:
    """Conditions of one exposure, drawn per field."""

    exptime: float  # s
    mjd: float
    fwhm: float  # arcsec
    rotation: float  # deg, position angle of the detector's +y axis
    zp_1e: float  # magnitude (m_sys) giving 1 e-/s, extinction included
    sky_mag: float  # mag/arcsec^2 in m_sys
    airmass: float


def make_wcs(ra: float, dec: float, camera: Camera, rotation: float) -> WCS:
    """A TAN WCS centred on (ra, dec) deg, north up and east left at rotation 0."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(camera.width + 1) / 2, (camera.height + 1) / 2]
    scale = camera.pixel_scale / 3600.0
    c, s = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    wcs.wcs.cd = scale * np.array([[-c, s], [s, c]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    return wcs


def extract_radius(camera: Camera) -> float:
    """Reference-extract cone radius (deg): 10% beyond the image corners."""
    half_diagonal = 0.5 * np.hypot(camera.width, camera.height) * camera.pixel_scale
    return 1.1 * half_diagonal / 3600.0


def zeropoint(obs: Observation, camera: Camera) -> float:
    """``m_sys - m_inst`` for ``m_inst = -2.5 log10(ADU)`` (mag)."""
    return obs.zp_1e + 2.5 * np.log10(obs.exptime) - 2.5 * np.log10(camera.gain)


def add_photometry(objects: pd.DataFrame, band: InstrumentBand, zp: float) -> pd.DataFrame:
    """Add ``m_ref``, ``colour``, ``m_sys``, ``m_inst`` and ``flux`` (ADU)."""
    mags = survey_magnitudes(objects.V.to_numpy(), objects.BV.to_numpy())
    out = objects.assign(m_ref=band.reference(mags), colour=band.colour(mags), m_sys=band.system_magnitude(mags))
    out["m_inst"] = out.m_sys - zp
    out["flux"] = 10 ** (-0.4 * out.m_inst)
    return out


def limiting_magnitude(camera: Camera, obs: Observation) -> float:
    """5-sigma point-source limit (m_sys) for PSF-weighted photometry.

    Uses the noise-equivalent area ``1 / sum(psf^2)`` of the rendered PSF and
    sky + read noise, with the source's own shot noise.
    """
    psf = moffat_stamp(0.0, 0.0, obs.fwhm / camera.pixel_scale, camera.psf_beta, 15)
    nea = 1.0 / np.sum(psf**2)
    background = sky_electrons(camera, obs) + camera.read_noise**2
    flux = (25.0 + np.sqrt(625.0 + 100.0 * nea * background)) / 2.0  # e-
    return obs.zp_1e + 2.5 * np.log10(obs.exptime) - 2.5 * np.log10(flux)


def sky_electrons(camera: Camera, obs: Observation) -> float:
    """Sky level per pixel (e-)."""
    return obs.exptime * camera.pixel_scale**2 * 10 ** (-0.4 * (obs.sky_mag - obs.zp_1e))


def moffat_stamp(dx: float, dy: float, fwhm: float, beta: float, half: int, oversample: int = 3) -> np.ndarray:
    """A unit-sum Moffat PSF on a (2 half + 1)^2 stamp, centre offset (dx, dy) px.

    Pixels are integrated by ``oversample``^2 sub-pixel sampling.
    """
    alpha = fwhm / (2.0 * np.sqrt(2 ** (1.0 / beta) - 1.0))
    n = 2 * half + 1
    sub = (np.arange(n * oversample) + 0.5) / oversample - half - 0.5
    xx, yy = np.meshgrid(sub - dx, sub - dy)
    fine = (1.0 + (xx**2 + yy**2) / alpha**2) ** (-beta)
    stamp = fine.reshape(n, oversample, n, oversample).sum(axis=(1, 3))
    return stamp / stamp.sum()


def galaxy_stamp(row, fwhm: float, beta: float, half: int = 25) -> np.ndarray:
    """A unit-sum exponential disc (effective radius ``r_eff`` px) seen through the PSF."""
    n = 2 * half + 1
    yy, xx = np.mgrid[0:n, 0:n] - half
    xx = xx - subpixel(row.x_image)
    yy = yy - subpixel(row.y_image)
    theta = np.radians(row.pa)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    w = (-xx * np.sin(theta) + yy * np.cos(theta)) / row.axis_ratio
    disc = np.exp(-1.678 * np.hypot(u, w) / row.r_eff)
    img = fftconvolve(disc, moffat_stamp(0.0, 0.0, fwhm, beta, 10), mode="same")
    return np.clip(img, 0, None) / img.sum()


def subpixel(x: float) -> float:
    """Offset (px, in [-0.5, 0.5)) of FITS coordinate ``x`` from its pixel's centre."""
    return x - np.floor(x - 0.5) - 1.0


def add_stamp(image: np.ndarray, stamp: np.ndarray, x: float, y: float) -> None:
    """Add ``stamp`` centred on FITS pixel (x, y), clipped at the edges."""
    half = stamp.shape[0] // 2
    cx, cy = int(np.floor(x - 0.5)), int(np.floor(y - 0.5))  # 0-based pixel holding (x, y)
    x0, y0 = cx - half, cy - half
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1 = min(x0 + stamp.shape[1], image.shape[1])
    iy1 = min(y0 + stamp.shape[0], image.shape[0])
    if ix1 > ix0 and iy1 > iy0:
        image[iy0:iy1, ix0:ix1] += stamp[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]


def render_points(objects: pd.DataFrame, camera: Camera, fwhm: float, beta: float) -> tuple[np.ndarray, float]:
    """Point sources summed into one image (cloud-in-cell), convolved with the PSF once.

    The cheap way to render tens of thousands of faint stars: each star's
    flux is shared among the four pixels around its position (which keeps
    its total and its centroid exact) on a canvas padded by the PSF's
    half-size, so stars just outside the frame spill in. Returns the image
    (ADU) and the PSF's peak fraction (a centred star's brightest pixel / flux).
    """
    half = 15
    psf = moffat_stamp(0.0, 0.0, fwhm, beta, half)
    pad = half + 1
    canvas = np.zeros((camera.height + 2 * pad, camera.width + 2 * pad))
    px = objects.x_image.to_numpy() - 1.0 + pad  # 0-based canvas coordinates of the centre
    py = objects.y_image.to_numpy() - 1.0 + pad
    ix, iy = np.floor(px).astype(int), np.floor(py).astype(int)
    fx, fy = px - ix, py - iy
    flux = objects.flux.to_numpy()
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        x, y = ix + dx, iy + dy
        ok = (x >= 0) & (x < canvas.shape[1]) & (y >= 0) & (y < canvas.shape[0])
        np.add.at(canvas, (y[ok], x[ok]), (flux * w)[ok])
    image = fftconvolve(canvas, psf, mode="same")[pad:-pad, pad:-pad]
    return np.clip(image, 0.0, None), float(psf.max())


def render_objects(
    objects: pd.DataFrame, camera: Camera, obs: Observation, cheap_fainter_than: float | None = None
) -> np.ndarray:
    """Noise-free source image (ADU above sky); adds ``peak`` (ADU) to objects.

    With ``cheap_fainter_than`` (m_sys), stars fainter than it are rendered
    by :func:`render_points`; everything else is a stamp.
    """
    image = np.zeros((camera.height, camera.width))
    fwhm = obs.fwhm / camera.pixel_scale
    peaks = np.zeros(len(objects))
    stamped = np.ones(len(objects), bool)
    if cheap_fainter_than is not None:
        cheap = ((objects.kind == "star") & (objects.m_sys > cheap_fainter_than)).to_numpy()
        if cheap.any():
            points, peak_fraction = render_points(objects[cheap], camera, fwhm, camera.psf_beta)
            image += points
            peaks[cheap] = objects.flux.to_numpy()[cheap] * peak_fraction
            stamped = ~cheap
    # the numbers as float arrays: a row's attributes are typed as any pandas scalar
    x_image, y_image = objects.x_image.to_numpy(dtype=float), objects.y_image.to_numpy(dtype=float)
    flux = objects.flux.to_numpy(dtype=float)
    for i, row in enumerate(objects.itertuples()):
        if not stamped[i]:
            continue
        if row.kind == "galaxy":
            stamp = galaxy_stamp(row, fwhm, camera.psf_beta)
        else:
            half = 30 if flux[i] > 1e6 else 15
            stamp = moffat_stamp(subpixel(x_image[i]), subpixel(y_image[i]), fwhm, camera.psf_beta, half)
        stamp = stamp * flux[i]
        peaks[i] = stamp.max()
        add_stamp(image, stamp, x_image[i], y_image[i])
    objects["peak"] = peaks
    return image


def expose(rng, signal_adu: np.ndarray, camera: Camera, obs: Observation, n_hot: int = 12) -> np.ndarray:
    """Sky + Poisson + read noise, bias, hot pixels, saturation; float32 ADU."""
    electrons = signal_adu * camera.gain + sky_electrons(camera, obs)
    counts = rng.poisson(electrons).astype(float) + rng.normal(0.0, camera.read_noise, electrons.shape)
    adu = counts / camera.gain + camera.bias
    hot_y = rng.integers(0, camera.height, n_hot)
    hot_x = rng.integers(0, camera.width, n_hot)
    adu[hot_y, hot_x] += rng.uniform(3000, 40000, n_hot)
    return np.minimum(adu, camera.saturation).astype(np.float32)


def image_header(wcs: WCS, camera: Camera, obs: Observation, band: InstrumentBand, name: str) -> fits.Header:
    """A plausible CCD header: WCS, exposure, detector keys (no truth)."""
    header = wcs.to_header()
    t = Time(obs.mjd, format="mjd")
    for key, value, comment in (
        ("OBJECT", name, "target"),
        ("TELESCOP", "photcal-sim 0.5m", "simulated telescope"),
        ("INSTRUME", "simcam", "simulated CCD"),
        ("FILTER", band.name, band.description),
        ("EXPTIME", obs.exptime, "[s] exposure time"),
        ("DATE-OBS", t.isot, "start of exposure (UTC)"),
        ("MJD-OBS", obs.mjd, "start of exposure (MJD, UTC)"),
        ("AIRMASS", round(obs.airmass, 3), ""),
        ("GAIN", camera.gain, "[e-/ADU]"),
        ("RDNOISE", camera.read_noise, "[e-] read noise"),
        ("SATURATE", camera.saturate_keyword, "[ADU] saturation level"),
        ("BUNIT", "adu", ""),
    ):
        header[key] = (value, comment)
    return header


def saturation_magnitude(camera: Camera, obs: Observation) -> float:
    """Brightest m_sys whose centred peak pixel stays below saturation."""
    peak_fraction = moffat_stamp(0.0, 0.0, obs.fwhm / camera.pixel_scale, camera.psf_beta, 15).max()
    headroom = camera.saturation - camera.bias - sky_electrons(camera, obs) / camera.gain  # ADU
    return zeropoint(obs, camera) - 2.5 * np.log10(headroom / peak_fraction)
