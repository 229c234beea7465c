"""Synthetic CCD fields with known truth, to prove the calibration accuracy.

One call of :func:`simulate_field` draws a star field around (ra, dec), renders
a CCD image of it through one of the instrument bands of
:mod:`tools.photsystem`, runs the real ``source-extractor`` on it (four
catalogue formats) and writes VizieR-style reference extracts plus a
``truth.json``. Everything is reproducible from the seed.

Conventions (all magnitudes in mag, fluxes in ADU unless said otherwise):

* ``m_ref`` - magnitude in the instrument band's *true best* survey band;
* ``colour`` - that survey band's colour (e.g. APASS ``B-V``);
* ``m_sys = m_ref - colour_term * colour`` - the instrument's own system;
* ``m_inst = m_sys - zeropoint = -2.5 log10(total flux in ADU)`` - what
  SExtractor reports as ``MAG_AUTO`` with ``MAG_ZEROPOINT 0`` (up to the Kron
  aperture's flux loss, a few hundredths).

Hence the calibration a server should recover is
``m_ref = m_inst + zeropoint + colour_term * colour``.

Pixel coordinates written out (``x_image``, ``y_image``) follow the FITS /
SExtractor convention: the centre of the first pixel is (1, 1).

CLI::

    python -m tools.simfield --out DIR --seed N --ra R --dec D --band V
    python -m tools.simfield --suite N --out DIR
    python -m tools.simfield --suite-kind dev --out DIR   # or eval: the realistic sets
    python -m tools.simfield --out DIR --seed N --ra R --dec D --band i --sky dense --width 1500 --pixel-scale 0.8

Sky types (:data:`SKY_TYPES`): ``legacy`` (the default, the committed
fields), ``sparse`` (high latitude) and ``dense`` (Galactic plane, 50k-200k
stars/deg^2 to V 21), the realistic ones with blended reference photometry
and DR3-like Gaia BP/RP gaps.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from scipy.signal import fftconvolve
from scipy.spatial import cKDTree

from shared.surveys import get_survey
from tools.photsystem import (
    INSTRUMENT_BANDS,
    InstrumentBand,
    best_available,
    draw_colours,
    draw_reddened_colours,
    get_instrument_band,
    ideal_transfer,
    survey_magnitudes,
)

SEXTRACTOR_DIR = Path(__file__).with_name("sextractor")
SCHEMA = "photcal.simfield.truth/1"
#: SExtractor products: name -> (CATALOG_TYPE, parameter file)
CATALOGUES = {
    "sex_ascii_head.cat": ("ASCII_HEAD", "default.param"),
    "sex_cpcs.cat": ("ASCII_HEAD", "cpcs.param"),
    "sex_fits1.fits": ("FITS_1.0", "default.param"),
    "sex_ldac.fits": ("FITS_LDAC", "default.param"),
}
#: simplified SDSS footprint: the northern sky plus the equatorial stripes
SDSS_DEC_MIN = -5.0
#: stars are drawn from this V range (mag); fainter ones are below any limit
V_RANGE = (7.0, 23.5)
#: log10 slope of the cumulative star counts N(<V)
COUNT_SLOPE = 0.25


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


@dataclass(frozen=True)
class SurveySpec:
    """How a survey's VizieR extract is made from the true magnitudes.

    Rows are stars with ``select`` band in ``mag_range``; a band is empty
    beyond its 5-sigma depth ``depth`` + 0.3 mag or with probability
    ``missing``. Errors: ``hypot(floor, 0.217 * 10**(0.4 (m - depth)))``.
    Bands brighter than ``saturation`` get a positive (fainter) bias, as
    saturated PS1/SDSS photometry does.
    """

    select: str
    mag_range: tuple[float, float]
    depth: dict[str, float]
    floor: float
    astrometry: float  # arcsec, 1-sigma per axis
    decimals: int = 3
    missing: float = 0.03
    saturation: float | None = None
    #: the survey whose ``select`` band picks the rows (default: this one)
    select_survey: str | None = None
    #: a band is empty where its error exceeds this (mag); None: the depth rule
    max_err: float | None = None


SURVEY_SPECS = {
    "APASS": SurveySpec("V", (7.0, 17.0), {"B": 17.8, "V": 17.3, "g'": 17.6, "r'": 17.2, "i'": 16.8},
                        floor=0.02, astrometry=0.15, missing=0.05),
    "PS1": SurveySpec("r", (11.5, 22.3), {"g": 22.6, "r": 22.4, "i": 22.2, "z": 21.5, "y": 20.6},
                      floor=0.01, astrometry=0.03, saturation=13.5),
    "GAIA": SurveySpec("G", (5.0, 20.8), {"G": 22.8, "BP": 20.6, "RP": 20.1},
                       floor=0.0005, astrometry=0.002, decimals=4, missing=0.02),
    "SDSS": SurveySpec("r", (13.0, 22.5), {"u": 22.0, "g": 22.8, "r": 22.5, "i": 21.9, "z": 20.6},
                       floor=0.015, astrometry=0.08, saturation=14.0),
    # Gaia XP synthetic photometry (GSPC): stars with Gaia G < 17.65, all sky;
    # a band only where its flux S/N > 30 (error < 0.036 mag), which empties
    # U and u for most faint or red stars
    "GaiaSP": SurveySpec("G", (5.0, 17.65), {"U": 17.6, "B": 19.6, "V": 20.2, "R": 20.6, "I": 20.4,
                                              "u": 18.0, "g": 20.0, "r": 20.5, "i": 20.3, "z": 19.6},
                         floor=0.006, astrometry=0.002, decimals=4, missing=0.0, select_survey="GAIA",
                         max_err=0.0362),
}
#: the surveys of the fields committed before GaiaSP existed (tests/data/fields)
LEGACY_SURVEYS = ("APASS", "PS1", "GAIA", "SDSS")

#: bumped whenever the realistic sky types draw differently (cached fields made before are stale)
REALISM_VERSION = 3
#: a sky type's density is quoted as stars per deg^2 brighter than this V
#: (about Gaia's G 20.7 depth: how Galactic-plane densities are usually mapped)
DENSITY_DEPTH_V = 21.0


@dataclass(frozen=True)
class SkyType:
    """What kind of sky a field shows: density, colours, and how real catalogues see it.

    ``legacy`` is the simulator as it was (the committed fields): the
    :func:`stellar_density` latitude law, high-latitude colours, every star a
    stamp, no blending in the reference extracts, Gaia BP/RP missing at
    random (2 %). The realistic types add:

    * ``density``: stars per deg^2 brighter than :data:`DENSITY_DEPTH_V`,
      drawn log-uniform in the range per field (``None``: the latitude law),
      with cumulative counts of log slope ``count_slope``;
    * ``reddening``: an ``E(B-V)`` range (mag) added to disc colours
      (:func:`tools.photsystem.draw_reddened_colours`);
    * ``blend_arcsec``: per survey, neighbours closer than this are one
      source in its photometry (fluxes summed in every band): APASS's
      2.6"/px apertures, PS1/SDSS PSF photometry at ~1" seeing, Gaia's
      G window; ``BP``/``RP`` (and GaiaSP, made from the same XP spectra)
      are measured in 3.5" x 2.1" windows;
    * Gaia extracts where 10-30 % of stars lack BP/RP, more for faint and
      crowded ones (:func:`gaia_missing_bp_rp`), as in DR3; GaiaSP drops stars
      whose XP fluxes are blended by more than ``gaiasp_max_blend`` (the GSPC's
      excess-factor cut);
    * ``crowding_depth_loss``: PS1 and SDSS lose this much depth (mag) to
      confusion;
    * faint stars rendered cheaply (:func:`render_objects`, ``stamp_margin``),
      and a transient that need only be clear of brighter stars within
      ``transient_clear_arcsec`` (a plane field has no empty 10").
    """

    name: str
    description: str
    density: tuple[float, float] | None = None
    count_slope: float = COUNT_SLOPE
    reddening: tuple[float, float] | None = None
    blend_arcsec: dict[str, float] | None = None
    gaia_bp_rp_missing: bool = False
    gaiasp_max_blend: float = 0.02
    crowding_depth_loss: float = 0.0
    #: stars fainter than the 5-sigma limit minus this (m_sys) go into one
    #: point-source image convolved with the PSF once; None: every star a stamp
    stamp_margin: float | None = None
    transient_clear_arcsec: float = 10.0
    #: extra source-extractor arguments: a crowded-field set-up deblends finer (at the default
    #: DEBLEND_MINCONT 0.005 a bright star's blend swallows a transient 1 % of its flux)
    sextractor_args: tuple[str, ...] = ()

    @property
    def legacy(self) -> bool:
        return self.name == "legacy"


#: Gaia BP/RP 5-sigma-like depths (mag) with :func:`gaia_missing_bp_rp` deciding the gaps
GAIA_XP_DEPTH = {"BP": 21.6, "RP": 21.0}
REAL_BLENDS = {"APASS": 8.0, "PS1": 1.0, "SDSS": 1.2, "GAIA": 0.4, "GAIA_XP": 1.75}
SKY_TYPES: dict[str, SkyType] = {
    t.name: t
    for t in (
        SkyType("legacy", "the simulator's first sky (committed fields): latitude law, no catalogue realism"),
        SkyType("sparse", "high Galactic latitude: latitude-law density, DR3-like Gaia BP/RP gaps, blends",
                blend_arcsec=REAL_BLENDS, gaia_bp_rp_missing=True, stamp_margin=3.0),
        SkyType("dense", "Galactic plane: 50k-200k stars/deg^2 to V 21, reddened, crowded, blended",
                density=(50_000.0, 200_000.0), count_slope=0.30, reddening=(0.3, 1.0),
                blend_arcsec=REAL_BLENDS, gaia_bp_rp_missing=True, crowding_depth_loss=0.8,
                stamp_margin=3.0, transient_clear_arcsec=4.0, sextractor_args=("-DEBLEND_MINCONT", "0.001")),
    )
}


def get_sky_type(name: str | SkyType) -> SkyType:
    if isinstance(name, SkyType):
        return name
    try:
        return SKY_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown sky type {name!r}; known: {', '.join(SKY_TYPES)}") from None


@dataclass
class SimulatedField:
    """What :func:`simulate_field` returns.

    ``objects``: one row per rendered object (kind ``star``, ``galaxy`` or
    ``transient``) with its truth; ``references``: survey name -> VizieR-style
    extract (NaN = empty); ``image``: float32 ADU array (``None`` unless
    kept); ``files``: what was written, name -> path.
    """

    name: str
    truth: dict
    objects: pd.DataFrame
    references: dict[str, pd.DataFrame]
    header: fits.Header
    image: np.ndarray | None = None
    files: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------
# sky
# --------------------------------------------------------------------------


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


def stellar_density(ra: float, dec: float) -> float:
    """Stars per deg^2 brighter than V=17 (crude galactic-latitude law)."""
    b = SkyCoord(ra, dec, unit="deg").galactic.b.deg
    return max(400.0, 180.0 / max(np.sin(np.radians(abs(b))), 0.15) ** 1.5)


def extract_radius(camera: Camera) -> float:
    """Reference-extract cone radius (deg): 10% beyond the image corners."""
    half_diagonal = 0.5 * np.hypot(camera.width, camera.height) * camera.pixel_scale
    return 1.1 * half_diagonal / 3600.0


def draw_magnitudes(rng: np.random.Generator, n17: float, area: float, slope: float = COUNT_SLOPE) -> np.ndarray:
    """V magnitudes from cumulative counts ``N(<V) = n17 10^(a (V-17))``, ``a`` = ``slope``."""
    lo, hi = (10 ** (slope * (v - 17.0)) for v in V_RANGE)
    n = rng.poisson(n17 * area * (hi - lo))
    return 17.0 + np.log10(lo + rng.random(n) * (hi - lo)) / slope


def n17_for_density(density: float, slope: float) -> float:
    """``n17`` (stars/deg^2 with V < 17) giving ``density`` stars/deg^2 brighter than :data:`DENSITY_DEPTH_V`."""
    return density / 10 ** (slope * (DENSITY_DEPTH_V - 17.0))


def draw_stars(rng, wcs: WCS, camera: Camera, radius: float, n17: float,
               sky: SkyType | None = None) -> pd.DataFrame:
    """Stars uniform on the tangent plane within ``radius`` deg of the centre."""
    slope = COUNT_SLOPE if sky is None else sky.count_slope
    v = draw_magnitudes(rng, n17, np.pi * radius**2, slope)
    r_px = radius * 3600.0 / camera.pixel_scale * np.sqrt(rng.random(v.size))
    phi = rng.uniform(0, 2 * np.pi, v.size)
    x = wcs.wcs.crpix[0] + r_px * np.cos(phi)
    y = wcs.wcs.crpix[1] + r_px * np.sin(phi)
    ra, dec = wcs.all_pix2world(x, y, 1)
    if sky is not None and sky.reddening is not None:
        bv = draw_reddened_colours(rng, v.size, sky.reddening)
    else:
        bv = draw_colours(rng, v.size)
    return pd.DataFrame({"kind": "star", "ra": ra, "dec": dec, "x_image": x, "y_image": y, "V": v, "BV": bv})


def draw_galaxies(rng, wcs: WCS, camera: Camera, n: int) -> pd.DataFrame:
    """A few exponential discs inside the image (V, B-V like red-ish galaxies)."""
    x = rng.uniform(40, camera.width - 40, n)
    y = rng.uniform(40, camera.height - 40, n)
    ra, dec = wcs.all_pix2world(x, y, 1)
    return pd.DataFrame({"kind": "galaxy", "ra": ra, "dec": dec, "x_image": x, "y_image": y,
                         "V": rng.uniform(15.5, 19.0, n), "BV": rng.uniform(0.6, 1.1, n),
                         "r_eff": rng.uniform(1.5, 4.0, n) / camera.pixel_scale,
                         "axis_ratio": rng.uniform(0.35, 1.0, n), "pa": rng.uniform(0, 180, n)})


def place_transient(rng, objects: pd.DataFrame, camera: Camera, m_sys: np.ndarray,
                    clear_arcsec: float = 10.0, brighter_than: float = 21.0) -> tuple[float, float]:
    """Pixel position (FITS) in the central half of the image, clear of
    anything brighter than ``m_sys < brighter_than`` within ``clear_arcsec``."""
    bright = objects[m_sys < brighter_than]
    clear = clear_arcsec / camera.pixel_scale
    for _ in range(1000):
        x = rng.uniform(0.25, 0.75) * camera.width
        y = rng.uniform(0.25, 0.75) * camera.height
        if np.all(np.hypot(bright.x_image - x, bright.y_image - y) > clear):
            return x, y
    raise RuntimeError("no clear position for the transient")


# --------------------------------------------------------------------------
# photometry
# --------------------------------------------------------------------------


def zeropoint(obs: Observation, camera: Camera) -> float:
    """``m_sys - m_inst`` for ``m_inst = -2.5 log10(ADU)`` (mag)."""
    return obs.zp_1e + 2.5 * np.log10(obs.exptime) - 2.5 * np.log10(camera.gain)


def add_photometry(objects: pd.DataFrame, band: InstrumentBand, zp: float) -> pd.DataFrame:
    """Add ``m_ref``, ``colour``, ``m_sys``, ``m_inst`` and ``flux`` (ADU)."""
    mags = survey_magnitudes(objects.V.to_numpy(), objects.BV.to_numpy())
    out = objects.assign(m_ref=band.reference(mags), colour=band.colour(mags),
                         m_sys=band.system_magnitude(mags))
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


# --------------------------------------------------------------------------
# image
# --------------------------------------------------------------------------


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
        image[iy0:iy1, ix0:ix1] += stamp[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]


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


def render_objects(objects: pd.DataFrame, camera: Camera, obs: Observation,
                   cheap_fainter_than: float | None = None) -> np.ndarray:
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
    for i, row in enumerate(objects.itertuples()):
        if not stamped[i]:
            continue
        if row.kind == "galaxy":
            stamp = galaxy_stamp(row, fwhm, camera.psf_beta)
        else:
            half = 30 if row.flux > 1e6 else 15
            stamp = moffat_stamp(subpixel(row.x_image), subpixel(row.y_image), fwhm, camera.psf_beta, half)
        stamp = stamp * row.flux
        peaks[i] = stamp.max()
        add_stamp(image, stamp, row.x_image, row.y_image)
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


# --------------------------------------------------------------------------
# reference catalogues
# --------------------------------------------------------------------------


def covers(survey: str, dec: np.ndarray) -> np.ndarray:
    """Which declinations (deg) the survey observed."""
    dec = np.asarray(dec)
    if survey == "SDSS":
        return dec >= SDSS_DEC_MIN
    s = get_survey(survey)
    return (dec >= s.dec_min) & (dec <= s.dec_max)


def published_band(rng, true: np.ndarray, depth: float, spec: SurveySpec) -> tuple[np.ndarray, np.ndarray]:
    """Noisy magnitude and its quoted error for one band (NaN = empty)."""
    sigma = np.hypot(spec.floor, 0.217 * 10 ** (0.4 * (true - depth)))
    mag = true + rng.normal(0.0, sigma)
    if spec.saturation is not None:
        over = np.clip(spec.saturation - true, 0.0, None)
        mag += 0.15 * over + rng.normal(0.0, 0.05, true.size) * over
    quoted = sigma * np.exp(rng.normal(0.0, 0.1, true.size))
    too_faint = (true > depth + 0.3) if spec.max_err is None else (sigma > spec.max_err)
    empty = too_faint | (rng.random(true.size) < spec.missing)
    step = 10.0 ** -spec.decimals
    return np.where(empty, np.nan, mag), np.where(empty, np.nan, np.maximum(quoted, step))


def reference_extract(rng, stars: pd.DataFrame, survey: str, *, mags=None, spec: SurveySpec | None = None,
                      keep: np.ndarray | None = None, return_index: bool = False):
    """The survey's VizieR-style extract of ``stars`` (columns from shared.surveys).

    ``mags`` overrides the true magnitudes (the blended ones a survey
    measures, :func:`blended_magnitudes`), ``spec`` the survey's
    :data:`SURVEY_SPECS` entry, ``keep`` (bool per star) drops stars the
    survey does not publish. With ``return_index``, also the star index of
    each row.
    """
    s = get_survey(survey)
    spec = spec or SURVEY_SPECS[survey]
    if mags is None:
        mags = survey_magnitudes(stars.V.to_numpy(), stars.BV.to_numpy())
    sel_mag = mags[(spec.select_survey or survey, spec.select)]
    chosen = (sel_mag >= spec.mag_range[0]) & (sel_mag <= spec.mag_range[1]) & covers(survey, stars.dec)
    if keep is not None:
        chosen &= keep
    idx = np.flatnonzero(chosen)
    dec = stars.dec.to_numpy()[idx]
    jitter = rng.normal(0.0, spec.astrometry / 3600.0, (2, idx.size))
    out = {s.ra_column: np.round(stars.ra.to_numpy()[idx] + jitter[0] / np.cos(np.radians(dec)), 7),
           s.dec_column: np.round(dec + jitter[1], 7)}
    for band in s.bands:
        mag, err = published_band(rng, mags[(survey, band.name)][idx], spec.depth[band.name], spec)
        out[band.column] = np.round(mag, spec.decimals)
        out[band.error_column] = np.round(err, spec.decimals)
    if return_index:
        return pd.DataFrame(out), idx
    return pd.DataFrame(out)


def blend_pairs(stars: pd.DataFrame, pixel_scale: float, radius_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j), i != j, of stars closer than ``radius_arcsec`` (tangent-plane pixels)."""
    xy = np.column_stack([stars.x_image.to_numpy(), stars.y_image.to_numpy()]) * pixel_scale
    tree = cKDTree(xy)
    pairs = tree.query_pairs(radius_arcsec, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    return np.concatenate([pairs[:, 0], pairs[:, 1]]), np.concatenate([pairs[:, 1], pairs[:, 0]])


def blended_magnitudes(mags, pairs: tuple[np.ndarray, np.ndarray], survey: str, bands=None) -> dict:
    """``mags`` with ``survey``'s bands (or only ``bands``) measured through blends:
    each star's flux plus that of every neighbour in ``pairs`` (mag)."""
    i, j = pairs
    out = dict(mags)
    for key, m in mags.items():
        if key[0] != survey or (bands is not None and key[1] not in bands) or len(i) == 0:
            continue
        flux = 10 ** (-0.4 * m)
        total = flux + np.bincount(i, weights=flux[j], minlength=flux.size)
        out[key] = -2.5 * np.log10(total)
    return out


def brightest_of_blends(mag: np.ndarray, pairs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Which stars (bool) are the brightest (``mag``) of their blend: a survey
    publishes a blend once, at its brightest star, with the summed flux."""
    i, j = pairs
    fainter = np.bincount(i, weights=(mag[j] < mag[i]).astype(float), minlength=mag.size)
    return fainter == 0


def gaia_missing_bp_rp(rng, g: np.ndarray, xp_excess: np.ndarray) -> np.ndarray:
    """Which Gaia rows lack BP and RP (bool), as in DR3.

    DR3 has no BP/RP for ~19 % of its sources: most beyond G ~20 (too few
    photons in the XP windows) and wherever another source falls in the
    3.5" x 2.1" window (crowding). Here: 2 % at random, a logistic rise
    centred on G 20.7, and half the fractional flux neighbours add to
    the window (``xp_excess``, ratio), up to 90 %.
    """
    p = 0.02 + 0.9 / (1.0 + np.exp(-(g - 20.7) / 0.25)) + np.clip(xp_excess / 2.0, 0.0, 0.9)
    return rng.random(g.size) < np.clip(p, 0.0, 0.98)


def realistic_extracts(rng, stars: pd.DataFrame, sky: SkyType, pixel_scale: float) -> dict[str, pd.DataFrame]:
    """Every survey's extract as real catalogues see a field of this sky type.

    Magnitudes are blended over :attr:`SkyType.blend_arcsec`; PS1 and SDSS
    lose :attr:`SkyType.crowding_depth_loss` of depth; Gaia lacks BP/RP
    (:func:`gaia_missing_bp_rp`); GaiaSP leaves out stars whose XP windows
    are blended by more than :attr:`SkyType.gaiasp_max_blend`.
    """
    true = survey_magnitudes(stars.V.to_numpy(), stars.BV.to_numpy())
    blends = sky.blend_arcsec or {}
    pairs_by_radius: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def pairs(radius: float):
        if radius not in pairs_by_radius:
            pairs_by_radius[radius] = blend_pairs(stars, pixel_scale, radius)
        return pairs_by_radius[radius]

    xp_excess = np.zeros(len(stars))
    xp_mags = true
    if "GAIA_XP" in blends:
        xp_mags = blended_magnitudes(true, pairs(blends["GAIA_XP"]), "GAIA", bands=("BP", "RP"))
        xp_excess = 10 ** (0.4 * (true[("GAIA", "RP")] - xp_mags[("GAIA", "RP")])) - 1.0
    out = {}
    for survey, spec in SURVEY_SPECS.items():
        mags = true
        keep = None
        if survey in blends:
            group = pairs(blends[survey])
            mags = blended_magnitudes(true, group, survey)
            keep = brightest_of_blends(true[(spec.select_survey or survey, spec.select)], group)
        if survey == "GAIA" and "GAIA_XP" in blends:
            mags = {**mags, ("GAIA", "BP"): xp_mags[("GAIA", "BP")], ("GAIA", "RP"): xp_mags[("GAIA", "RP")]}
        if survey == "GaiaSP" and "GAIA_XP" in blends:
            # the synthetic photometry comes from the blended XP spectra; the GSPC cut keeps the mildly blended
            mags = {k: (-2.5 * np.log10(10 ** (-0.4 * m) * (1.0 + xp_excess)) if k[0] == "GaiaSP" else m)
                    for k, m in mags.items()}
            keep = (xp_excess <= sky.gaiasp_max_blend) & (True if keep is None else keep)
        if survey == "GAIA" and sky.gaia_bp_rp_missing:
            # DR3 quotes BP/RP mags to G ~21 (noisy); which ones are absent is gaia_missing_bp_rp's part
            spec = replace(spec, depth={**spec.depth, **GAIA_XP_DEPTH})
        if survey in ("PS1", "SDSS") and sky.crowding_depth_loss:
            loss = sky.crowding_depth_loss
            spec = replace(spec, mag_range=(spec.mag_range[0], spec.mag_range[1] - loss),
                           depth={b: d - loss for b, d in spec.depth.items()})
        df, idx = reference_extract(rng, stars, survey, mags=mags, spec=spec, keep=keep, return_index=True)
        if survey == "GAIA" and sky.gaia_bp_rp_missing and len(df):
            lack = gaia_missing_bp_rp(rng, true[("GAIA", "G")][idx], xp_excess[idx])
            s = get_survey("GAIA")
            for b in ("BP", "RP"):
                band = s.band(b)
                df.loc[lack, [band.column, band.error_column]] = np.nan
        out[survey] = df
    return out


# --------------------------------------------------------------------------
# SExtractor
# --------------------------------------------------------------------------


#: SExtractor memory for crowded or large frames (the defaults overflow: "object stack full")
BIG_FRAME_MEMORY = ("-MEMORY_OBJSTACK", "60000", "-MEMORY_PIXSTACK", "6000000", "-MEMORY_BUFSIZE", "4096")


def run_sextractor(image: Path, out_dir: Path, seeing: float, aperture_px: float,
                   extra_args: tuple[str, ...] = (), formats=None) -> dict[str, Path]:
    """Run ``source-extractor`` once per catalogue format of :data:`CATALOGUES`
    (or of ``formats``, names from it).

    ``seeing`` is the FWHM in arcsec, ``aperture_px`` the MAG_APER diameter;
    ``extra_args`` are appended to the command line.
    """
    exe = shutil.which("source-extractor") or shutil.which("sex")
    if exe is None:
        raise FileNotFoundError("source-extractor is not installed")
    paths = {}
    for name, (cat_type, params) in CATALOGUES.items():
        if formats is not None and name not in formats:
            continue
        path = out_dir / name
        cmd = [exe, str(image), "-c", str(SEXTRACTOR_DIR / "default.sex"),
               "-CATALOG_NAME", str(path), "-CATALOG_TYPE", cat_type,
               "-PARAMETERS_NAME", str(SEXTRACTOR_DIR / params),
               "-FILTER_NAME", str(SEXTRACTOR_DIR / "default.conv"),
               "-STARNNW_NAME", str(SEXTRACTOR_DIR / "default.nnw"),
               "-SEEING_FWHM", f"{seeing:.3f}", "-PHOT_APERTURES", f"{aperture_px:.2f}", *extra_args]
        subprocess.run(cmd, check=True, capture_output=True, cwd=out_dir)
        paths[name] = path
    return paths


def sextractor_version() -> str | None:
    exe = shutil.which("source-extractor") or shutil.which("sex")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).strip()


def measure_catalogue(path: Path, objects: pd.DataFrame, truth: dict, pixel_scale: float) -> dict:
    """Compare a FITS_1.0 SExtractor catalogue with the truth (diagnostics only).

    Reports the median and MAD of ``MAG_AUTO - m_inst`` for unsaturated
    stars 4+ mag above the limit, and whether the transient was found
    within 1.5 arcsec.
    """
    cat = fits.getdata(path, 1)
    x, y, mag = (np.asarray(cat[c]) for c in ("X_IMAGE", "Y_IMAGE", "MAG_AUTO"))
    stars = objects[(objects.kind == "star") & ~objects.saturated
                    & (objects.m_sys < truth["limit_mag_5sigma"] - 4.0)]
    d, j = nearest(stars.x_image.to_numpy(), stars.y_image.to_numpy(), x, y)
    ok = (d < 1.0) & (np.asarray(cat["FLAGS"])[j] == 0)
    offset = mag[j][ok] - stars.m_inst.to_numpy()[ok]
    t = truth["transient"]
    dt, jt = nearest(np.array([t["x_image"]]), np.array([t["y_image"]]), x, y)
    found = bool(dt[0] * pixel_scale < 1.5)
    median = float(np.median(offset)) if offset.size else np.nan
    mad = float(np.median(np.abs(offset - median))) if offset.size else np.nan
    return {"n_sources": int(len(cat)), "n_bright_stars": int(ok.sum()),
            "mag_auto_minus_m_inst_median": round_or_none(median),
            "mag_auto_minus_m_inst_mad": round_or_none(mad),
            "transient_detected": found,
            "transient_mag_auto": round_or_none(float(mag[jt[0]]) if found else np.nan)}


def round_or_none(value: float, decimals: int = 4) -> float | None:
    return None if not np.isfinite(value) else round(value, decimals)


def nearest(x0: np.ndarray, y0: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (x0, y0), distance to and index of the nearest (x, y) (px)."""
    if len(x) == 0:
        return np.full(len(x0), np.inf), np.zeros(len(x0), dtype=int)
    d = np.hypot(x0[:, None] - x[None, :], y0[:, None] - y[None, :])
    j = np.argmin(d, axis=1)
    return d[np.arange(len(x0)), j], j


# --------------------------------------------------------------------------
# the field
# --------------------------------------------------------------------------


def draw_observation(rng, band: InstrumentBand) -> Observation:
    """Random but plausible conditions for one exposure in ``band``."""
    airmass = rng.uniform(1.0, 1.8)
    return Observation(exptime=float(rng.choice([30.0, 60.0, 120.0, 180.0])),
                       mjd=round(float(rng.uniform(60000.0, 61000.0)), 5),
                       fwhm=float(rng.uniform(1.8, 3.0)), rotation=float(rng.uniform(-3.0, 3.0)),
                       zp_1e=float(band.zp_1e - 0.15 * (airmass - 1.0) + rng.normal(0.0, 0.1)),
                       sky_mag=float(band.sky_mag + rng.normal(0.0, 0.3)), airmass=float(airmass))


def make_transient(rng, band: InstrumentBand, limit: float, faint: bool, mag: float | None,
                   reddening: float = 0.0) -> pd.DataFrame:
    """The transient's photometric truth: its B-V, and V such that ``m_ref = mag``.

    Without ``mag``: 1.3-2 mag below the 5-sigma limit if ``faint``, else
    1-4 mag above it. ``reddening`` (E(B-V), mag) is added to its intrinsic
    0.2-1.0: a transient in the plane shines through the field stars' dust.
    """
    if mag is None:
        mag = limit + rng.uniform(1.3, 2.0) if faint else limit - rng.uniform(1.0, 4.0)
    bv = np.array([min(rng.uniform(0.2, 1.0) + reddening, 2.0)])
    v = mag - band.reference(survey_magnitudes(0.0, bv))  # m_ref is V + f(B-V)
    return pd.DataFrame({"kind": "transient", "V": v, "BV": bv})


def saturation_magnitude(camera: Camera, obs: Observation) -> float:
    """Brightest m_sys whose centred peak pixel stays below saturation."""
    peak_fraction = moffat_stamp(0.0, 0.0, obs.fwhm / camera.pixel_scale, camera.psf_beta, 15).max()
    headroom = camera.saturation - camera.bias - sky_electrons(camera, obs) / camera.gain  # ADU
    return zeropoint(obs, camera) - 2.5 * np.log10(headroom / peak_fraction)


def saturated_stars(rng, wcs, camera, obs, band, stars: pd.DataFrame, minimum: int) -> pd.DataFrame:
    """Extra bright stars in the image so that at least ``minimum`` saturate.

    They are ordinary stars (in the reference extracts too), 0.3-2.5 mag
    brighter than :func:`saturation_magnitude`.
    """
    m_sat = saturation_magnitude(camera, obs)
    inside = (stars.x_image.between(0.5, camera.width + 0.5) & stars.y_image.between(0.5, camera.height + 0.5))
    n = max(0, minimum - int((inside & (stars.m_sys < m_sat)).sum()))
    bv = draw_colours(rng, n)
    v = m_sat - rng.uniform(0.3, 2.5, n) - band.system_magnitude(survey_magnitudes(np.zeros(n), bv))
    x, y = rng.uniform(20, camera.width - 20, n), rng.uniform(20, camera.height - 20, n)
    ra, dec = wcs.all_pix2world(x, y, 1)
    return pd.DataFrame({"kind": "star", "ra": ra, "dec": dec, "x_image": x, "y_image": y, "V": v, "BV": bv})


def build_objects(rng, wcs, camera, obs, band, ra, dec, faint, transient_mag, min_saturated=3,
                  sky: SkyType | None = None, n17: float | None = None):
    """Stars over the extract cone (at least ``min_saturated`` saturated in
    the image), galaxies and the transient, with photometry.

    ``n17`` (stars/deg^2 with V < 17) defaults to :func:`stellar_density`."""
    sky = sky or SKY_TYPES["legacy"]
    zp = zeropoint(obs, camera)
    radius = extract_radius(camera)
    n17 = stellar_density(ra, dec) if n17 is None else n17
    stars = add_photometry(draw_stars(rng, wcs, camera, radius, n17, None if sky.legacy else sky), band, zp)
    extra = add_photometry(saturated_stars(rng, wcs, camera, obs, band, stars, min_saturated), band, zp)
    stars = pd.concat([stars, extra], ignore_index=True)
    galaxies = add_photometry(draw_galaxies(rng, wcs, camera, int(rng.integers(5, 11))), band, zp)
    limit = limiting_magnitude(camera, obs)
    reddening = 0.0 if sky.reddening is None else float(rng.uniform(*sky.reddening))
    transient = add_photometry(make_transient(rng, band, limit, faint, transient_mag, reddening), band, zp)
    in_image = stars[(stars.x_image > -20) & (stars.x_image < camera.width + 20)
                     & (stars.y_image > -20) & (stars.y_image < camera.height + 20)]
    scene = pd.concat([in_image, galaxies], ignore_index=True)
    if sky.legacy:
        x, y = place_transient(rng, scene, camera, scene.m_sys.to_numpy())
    else:
        # a plane field has no empty 10": clear only of stars brighter than the transient itself
        x, y = place_transient(rng, scene, camera, scene.m_sys.to_numpy(), sky.transient_clear_arcsec,
                               min(21.0, float(transient.m_sys.iloc[0])))
    t_ra, t_dec = wcs.all_pix2world([x], [y], 1)
    transient = transient.assign(x_image=x, y_image=y, ra=t_ra, dec=t_dec)
    return stars, pd.concat([scene, transient], ignore_index=True)


def build_truth(name, seed, ra, dec, band, camera, obs, objects, surveys) -> dict:
    """The ``truth.json`` content (see tests/data/fields/README.md)."""
    t = objects[objects.kind == "transient"].iloc[0]
    limit = limiting_magnitude(camera, obs)
    return {
        "schema": SCHEMA, "name": name, "seed": seed,
        "field": {"ra": ra, "dec": dec, "radius_deg": round(extract_radius(camera), 6),
                  "width_px": camera.width, "height_px": camera.height,
                  "pixel_scale_arcsec": camera.pixel_scale, "rotation_deg": round(obs.rotation, 4)},
        "alert": {"ra": round(float(t.ra), 7), "dec": round(float(t.dec), 7)},
        "instrument_band": band.name, "instrument_band_description": band.description,
        "best": {"survey": band.survey, "band": band.band, "colour": band.colour_name},
        "model": "m_ref = m_inst + zeropoint + colour_term * colour; m_inst = -2.5 log10(ADU)",
        "zeropoint": round(zeropoint(obs, camera), 5), "colour_term": band.colour_term,
        "transient": {"ra": round(float(t.ra), 7), "dec": round(float(t.dec), 7),
                      "x_image": round(float(t.x_image), 3), "y_image": round(float(t.y_image), 3),
                      "mag": round(float(t.m_ref), 4), "colour": round(float(t.colour), 4),
                      "m_sys": round(float(t.m_sys), 4), "m_inst": round(float(t.m_inst), 4),
                      "detectable": bool(t.m_sys < limit)},
        "limit_mag_5sigma": round(limit, 3),
        "exptime": obs.exptime, "mjd": obs.mjd, "date_obs": Time(obs.mjd, format="mjd").isot,
        "fwhm_arcsec": round(obs.fwhm, 3), "airmass": round(obs.airmass, 3),
        "sky_mag_arcsec2": round(obs.sky_mag, 3), "zp_1e_per_s": round(obs.zp_1e, 4),
        "camera": asdict(camera),
        "surveys": surveys,
        "counts": {k: int(v) for k, v in objects.kind.value_counts().items()},
        "sextractor_mag_zeropoint": 0.0,
    }


def simulate_field(seed: int, ra: float, dec: float, instrument_band: str, *, name: str | None = None,
                   faint: bool = False, transient_mag: float | None = None, camera: Camera = Camera(),
                   out: str | Path | None = None, keep_image: bool = True, sextract: bool = True,
                   surveys: tuple[str, ...] | list[str] | None = None, sky: str | SkyType = "legacy",
                   density: float | None = None, formats: tuple[str, ...] | list[str] | None = None
                   ) -> SimulatedField:
    """Simulate one field around (ra, dec) deg observed in ``instrument_band``.

    ``faint`` puts the transient below the 5-sigma limit; ``transient_mag``
    (m_ref, mag) overrides it. ``surveys`` limits the reference extracts
    written (default: every survey of :data:`SURVEY_SPECS`); all are drawn
    in a fixed order whatever is kept, so a field made with
    :data:`LEGACY_SURVEYS` is the one made before GaiaSP existed. With ``out``, writes the image (if
    ``keep_image``), the SExtractor catalogues (if ``sextract``), the reference
    extracts ``ref_<SURVEY>.csv``, ``objects.csv`` and ``truth.json`` there.

    ``formats`` limits the SExtractor catalogues written (names of
    :data:`CATALOGUES`; ``sex_fits1.fits`` is always made, the diagnostics
    read it). ``sky`` is a :data:`SKY_TYPES` name (``legacy``, the default, is the
    simulator of the committed fields, unchanged); ``density`` (stars/deg^2
    brighter than :data:`DENSITY_DEPTH_V`) overrides the sky type's density.
    A band whose survey does not cover the field (z' south of Dec -30) is
    simulated with its :func:`tools.photsystem.best_available` fallback as
    the truth (``truth.best.fallback``); the legacy sky refuses it, as before.
    """
    sky = get_sky_type(sky)
    band = get_instrument_band(instrument_band)
    if not covers(band.survey, np.array([dec]))[0] and (sky.legacy or band.fallback is None):
        raise ValueError(f"band {band.name} is built on {band.survey}, which does not cover dec {dec}")
    rng = np.random.default_rng(seed)
    name = name or f"sim_{seed}_{band.name}"
    obs = draw_observation(rng, band)
    wcs = make_wcs(ra, dec, camera, obs.rotation)
    n17 = None
    if density is None and sky.density is not None:
        density = float(np.exp(rng.uniform(*np.log(sky.density))))
    if density is not None:
        n17 = n17_for_density(density, sky.count_slope)
    stars, objects = build_objects(rng, wcs, camera, obs, band, ra, dec, faint, transient_mag, sky=sky, n17=n17)
    cheap = None if sky.stamp_margin is None else limiting_magnitude(camera, obs) - sky.stamp_margin
    image = expose(rng, render_objects(objects, camera, obs, cheap), camera, obs)
    objects["saturated"] = objects.peak + camera.bias + sky_electrons(camera, obs) / camera.gain >= camera.saturation
    wanted = list(SURVEY_SPECS) if surveys is None else [get_survey(s).name for s in surveys]
    if sky.legacy:
        references = {s: reference_extract(rng, stars, s) for s in SURVEY_SPECS}
    else:
        references = realistic_extracts(rng, stars, sky, camera.pixel_scale)
    references = {s: df for s, df in references.items() if len(df) and s in wanted}
    truth = build_truth(name, seed, ra, dec, band, camera, obs, objects, list(references))
    truth["generator"] = {"module": "tools.simfield", "seed": seed, "ra": ra, "dec": dec,
                          "instrument_band": band.name, "faint": faint, "transient_mag": transient_mag,
                          "surveys": wanted,
                          "command": cli_command(name, seed, ra, dec, band.name, faint, transient_mag,
                                                 None if surveys is None else wanted)}
    if not sky.legacy:
        add_sky_truth(truth, sky, stars, objects, references, band, density if density is not None else n17_density(
            stellar_density(ra, dec)), camera)
    result = SimulatedField(name, truth, objects, references, image_header(wcs, camera, obs, band, name), image)
    if out is not None:
        write_field(result, Path(out), keep_image=keep_image, sextract=sextract,
                    formats=None if formats is None else {"sex_fits1.fits", *formats})
    if not keep_image:
        result.image = None
    return result


def n17_density(n17: float, slope: float = COUNT_SLOPE) -> float:
    """Stars/deg^2 brighter than :data:`DENSITY_DEPTH_V` for a given ``n17``."""
    return n17 * 10 ** (slope * (DENSITY_DEPTH_V - 17.0))


def add_sky_truth(truth: dict, sky: SkyType, stars: pd.DataFrame, objects: pd.DataFrame, references: dict,
                  band: InstrumentBand, density: float, camera: Camera) -> None:
    """What the realistic sky types add to ``truth.json``: the sky, and the best band where
    the band's own survey is absent (its fallback, with the ideal zero point and colour term)."""
    area = np.pi * truth["field"]["radius_deg"] ** 2
    gaia = references.get("GAIA")
    lack = float((gaia.BPmag.isna() | gaia.RPmag.isna()).mean()) if gaia is not None and len(gaia) else None
    truth["sky"] = {"type": sky.name, "description": sky.description,
                    "density_per_deg2_v21": round(density, 1),
                    "realised_per_deg2_v21": round(float((stars.V < DENSITY_DEPTH_V).sum() / area), 1),
                    "count_slope": sky.count_slope, "reddening_ebv": sky.reddening,
                    "gaia_bp_rp_missing_fraction": None if lack is None else round(lack, 4),
                    "frame_arcmin": [round(camera.width * camera.pixel_scale / 60.0, 2),
                                     round(camera.height * camera.pixel_scale / 60.0, 2)]}
    g = truth["generator"]
    g["sky"] = sky.name
    g["realism_version"] = REALISM_VERSION
    g["camera"] = {"width": camera.width, "height": camera.height, "pixel_scale": camera.pixel_scale}
    g["command"] += (f" --sky {sky.name} --width {camera.width} --height {camera.height}"
                     f" --pixel-scale {camera.pixel_scale}")
    best = best_available(band, list(references))
    if best != (band.survey, band.band):
        zp_offset, ct = ideal_transfer(band, *best)
        truth["best"] = {"survey": best[0], "band": best[1],
                         "colour": get_survey(best[0]).band(best[1]).colour_name,
                         "fallback": f"{band.survey} {band.band} has no data here"}
        truth["zeropoint"] = round(truth["zeropoint"] + zp_offset, 5)
        truth["colour_term"] = round(ct, 5)
        truth["model"] += "; zeropoint and colour_term here: the ideal fit against the fallback band"
        t = objects[objects.kind == "transient"].iloc[0]
        mags = survey_magnitudes(np.array([t.V]), np.array([t.BV]))
        blue, red = get_survey(best[0]).band(best[1]).colour
        truth["transient"]["mag"] = round(float(mags[best][0]), 4)
        truth["transient"]["colour"] = round(float(mags[(best[0], blue)][0] - mags[(best[0], red)][0]), 4)


def cli_command(name, seed, ra, dec, band, faint, transient_mag, surveys=None) -> str:
    """The command line that regenerates one field (output folder ``OUT``)."""
    cmd = f"python -m tools.simfield --out OUT --name {name} --seed {seed} --ra {ra} --dec {dec} --band {band}"
    if transient_mag is not None:
        cmd += f" --transient-mag {transient_mag}"
    elif faint:
        cmd += " --faint"
    if surveys is not None:
        cmd += f" --surveys {','.join(surveys)}"
    return cmd


def write_field(f: SimulatedField, out: Path, *, keep_image: bool = True, sextract: bool = True,
                formats=None) -> None:
    """Write a simulated field's files into ``out`` (see :func:`simulate_field`)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        image = (out if keep_image else Path(tmp)) / "image.fits"
        fits.PrimaryHDU(f.image, f.header).writeto(image, overwrite=True)
        if keep_image:
            f.files["image.fits"] = image
        if sextract:
            t = f.truth
            aperture = 2.0 * t["fwhm_arcsec"] / t["field"]["pixel_scale_arcsec"]
            extra = () if "sky" not in t else BIG_FRAME_MEMORY + get_sky_type(t["sky"]["type"]).sextractor_args
            f.files.update(run_sextractor(image.resolve(), out.resolve(), t["fwhm_arcsec"], aperture, extra,
                                          formats))
            f.truth["measured"] = measure_catalogue(out / "sex_fits1.fits", f.objects, t,
                                                    t["field"]["pixel_scale_arcsec"])
            f.truth["measured"]["sextractor_version"] = sextractor_version()
    for survey, df in f.references.items():
        f.files[f"ref_{survey}.csv"] = out / f"ref_{survey}.csv"
        df.to_csv(out / f"ref_{survey}.csv", index=False, na_rep="")
    write_objects(f.objects, out / "objects.csv", f.truth["limit_mag_5sigma"])
    f.files["objects.csv"] = out / "objects.csv"
    f.truth["files"] = sorted(f.files)
    (out / "truth.json").write_text(json.dumps(f.truth, indent=2) + "\n")


def write_objects(objects: pd.DataFrame, path: Path, limit: float) -> None:
    """The per-object truth table, rounded to what matters.

    Stars fainter than ``limit`` + 2 mag (m_sys) are left out: they are only
    background texture, and the file stays small.
    """
    objects = objects[(objects.kind != "star") | (objects.m_sys < limit + 2.0)]
    cols = ["kind", "ra", "dec", "x_image", "y_image", "V", "BV", "m_ref", "colour", "m_sys", "m_inst",
            "flux", "peak", "saturated"]
    table = objects[cols].copy()
    table.insert(0, "id", np.arange(1, len(table) + 1))
    rounding = {"ra": 7, "dec": 7, "x_image": 3, "y_image": 3, "flux": 2, "peak": 2}
    table = table.round({c: rounding.get(c, 4) for c in cols[5:] + ["ra", "dec", "x_image", "y_image"]})
    table.to_csv(path, index=False)


# --------------------------------------------------------------------------
# suite and CLI
# --------------------------------------------------------------------------


#: the realistic field sets: kind -> (base seed, number of fields). The
#: development set is for tuning the calibration; the evaluation set is never
#: tuned on (different seeds, so different skies and conditions)
#: realistic sets: (first seed, fields); "eval2" is a second, larger evaluation set (never tuned on either)
SUITE_KINDS = {"dev": (7100, 48), "eval": (9300, 48), "eval2": (11500, 96)}
#: the sky types of a realistic set, as (sky type, hemisphere)
SUITE_SKIES = (("sparse", "north"), ("sparse", "south"), ("dense", "north"), ("dense", "south"))
#: frame sizes (arcmin across) of a realistic set; dense fields stop at
#: DENSE_MAX_ARCMIN (a 60' plane frame is ~2 million stars to render and
#: ~250k PS1 rows; 30' already holds 40k-150k stars in the image)
FRAME_ARCMIN = (10.0, 60.0)
DENSE_MAX_ARCMIN = 30.0


def sky_position(rng, sky: str, hemisphere: str) -> tuple[float, float]:
    """A field centre (ra, dec deg): |b| > 25 for sparse, |b| < 4 for dense
    (the plane, where Gaia's alerts are); north/south of Dec -30."""
    for _ in range(10000):
        if sky == "dense":
            c = SkyCoord(l=rng.uniform(0, 360), b=rng.uniform(-4, 4), unit="deg", frame="galactic").icrs
            ra, dec = float(c.ra.deg), float(c.dec.deg)
        else:
            ra = float(rng.uniform(0, 360))
            dec = float(rng.uniform(-80, -32) if hemisphere == "south" else rng.uniform(-25, 75))
            if abs(SkyCoord(ra, dec, unit="deg").galactic.b.deg) <= 25:
                continue
        if (dec < -32 if hemisphere == "south" else -25 < dec < 80):
            return round(ra, 5), round(dec, 5)
    raise RuntimeError(f"no {sky} {hemisphere} position")


def frame_camera(rng, sky: str) -> Camera:
    """A detector of 10'-60' across (dense: to :data:`DENSE_MAX_ARCMIN`), 700-2000 px,
    0.5-2.0 arcsec/px; square or 3:2."""
    hi = DENSE_MAX_ARCMIN if sky == "dense" else FRAME_ARCMIN[1]
    size = float(np.exp(rng.uniform(np.log(FRAME_ARCMIN[0]), np.log(hi))))
    scale = float(np.clip(size * 60.0 / rng.uniform(700, 2000), 0.5, 2.0))
    width = int(round(size * 60.0 / scale))
    height = width if rng.random() < 0.5 else int(round(width * 2 / 3))
    return Camera(width=width, height=height, pixel_scale=round(scale, 4))


def realistic_suite_specs(kind: str, n: int | None = None, faint_every: int = 5) -> list[dict]:
    """The development or evaluation set: ``n`` (default :data:`SUITE_KINDS`) fields.

    Field ``i`` has sky type and hemisphere ``SUITE_SKIES[i % 4]`` and band
    ``INSTRUMENT_BANDS[(i // 4) % 9]``, so 36 fields hold every band in every
    sky type; frames of :func:`frame_camera`; every ``faint_every``-th target
    too faint to detect. A z' field south of Dec -30 has no PS1: its truth
    is GaiaSP z (:func:`tools.photsystem.best_available`).
    """
    base, default_n = SUITE_KINDS[kind]
    rng = np.random.default_rng(base)
    bands = list(INSTRUMENT_BANDS)
    specs = []
    for i in range(default_n if n is None else n):
        sky, hemisphere = SUITE_SKIES[i % len(SUITE_SKIES)]
        band = bands[(i // len(SUITE_SKIES)) % len(bands)]
        ra, dec = sky_position(rng, sky, hemisphere)
        camera = frame_camera(rng, sky)
        faint = i % faint_every == faint_every - 1
        name = f"{kind}{i:02d}_{sky}_{hemisphere}_{band}{'_faint' if faint else ''}"
        # two SExtractor runs, not four (half the time of a dense field): the FITS_1.0 table and
        # one more format in turn, the bench parses that one; turning with i // 4 too, so that
        # every sky type gets every format
        fmt = list(CATALOGUES)[(i + i // len(SUITE_SKIES)) % len(CATALOGUES)]
        specs.append(dict(seed=base + i, ra=ra, dec=dec, instrument_band=band, faint=faint, name=name,
                          sky=sky, camera=camera, formats=(fmt,)))
    return specs


def suite_specs(n: int | None = None, seed: int = 0, faint_every: int = 3, *, kind: str | None = None) -> list[dict]:
    """``n`` varied fields: alternating north/south of Dec -30, every band in
    turn (PS1-built bands only in the north), every ``faint_every``-th target
    too faint (the last of each group: field ``i`` with
    ``i % faint_every == faint_every - 1``).

    With ``kind`` (``"dev"``, ``"eval"`` or ``"eval2"``): the realistic development or
    an evaluation set instead (:func:`realistic_suite_specs`; ``seed`` unused).
    """
    if kind is not None:
        return realistic_suite_specs(kind, n) if faint_every == 3 else realistic_suite_specs(kind, n, faint_every)
    if n is None:
        raise TypeError("suite_specs needs n (or kind)")
    rng = np.random.default_rng(seed)
    bands = list(INSTRUMENT_BANDS)
    specs = []
    for i in range(n):
        band = get_instrument_band(bands[i % len(bands)])
        south = i % 2 == 1 and covers(band.survey, np.array([-60.0]))[0]
        while True:
            ra = float(rng.uniform(0, 360))
            dec = float(rng.uniform(-80, -32) if south else rng.uniform(-25, 75))
            if abs(SkyCoord(ra, dec, unit="deg").galactic.b.deg) > 25:
                break
        faint = i % faint_every == faint_every - 1
        label = f"{i:02d}_{band.name}_{'south' if south else 'north'}{'_faint' if faint else ''}"
        specs.append(dict(seed=seed * 1000 + i, ra=round(ra, 5), dec=round(dec, 5),
                          instrument_band=band.name, faint=faint, name=label))
    return specs


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.simfield", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (one field, or the suite's parent)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ra", type=float, default=150.0, help="field centre RA (deg)")
    p.add_argument("--dec", type=float, default=30.0, help="field centre Dec (deg)")
    p.add_argument("--band", default="V", choices=sorted(INSTRUMENT_BANDS), help="instrument band")
    p.add_argument("--name", help="field name (default sim_<seed>_<band>)")
    p.add_argument("--faint", action="store_true", help="transient below the detection limit")
    p.add_argument("--transient-mag", type=float, help="transient m_ref (mag), overrides --faint")
    p.add_argument("--no-image", action="store_true", help="do not keep image.fits")
    p.add_argument("--no-sextractor", action="store_true", help="do not run source-extractor")
    p.add_argument("--suite", type=int, metavar="N", help="write N varied fields under --out")
    p.add_argument("--suite-kind", choices=sorted(SUITE_KINDS),
                   help="write the realistic development or evaluation set under --out (--suite N: its first N)")
    p.add_argument("--sky", default="legacy", choices=sorted(SKY_TYPES), help="sky type (default legacy)")
    p.add_argument("--density", type=float, help="stars/deg^2 brighter than V 21 (default: the sky type's)")
    p.add_argument("--width", type=int, default=Camera.width, help="frame width (px)")
    p.add_argument("--height", type=int, default=Camera.height, help="frame height (px)")
    p.add_argument("--pixel-scale", type=float, default=Camera.pixel_scale, help="arcsec/px")
    p.add_argument("--surveys", type=lambda v: [x for x in v.split(",") if x],
                   help=f"comma-separated reference extracts to write (default all: {','.join(SURVEY_SPECS)})")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    common = dict(keep_image=not a.no_image, sextract=not a.no_sextractor, surveys=a.surveys)
    if a.suite_kind:
        for spec in realistic_suite_specs(a.suite_kind, a.suite):
            f = simulate_field(**spec, out=a.out / spec["name"], **common)
            print(f"{spec['name']}: {summary(f.truth)}")
        return 0
    if a.suite:
        for spec in suite_specs(a.suite, a.seed):
            f = simulate_field(**spec, out=a.out / spec["name"], **common)
            print(f"{spec['name']}: {summary(f.truth)}")
        return 0
    camera = Camera(width=a.width, height=a.height, pixel_scale=a.pixel_scale)
    f = simulate_field(a.seed, a.ra, a.dec, a.band, name=a.name, faint=a.faint,
                       transient_mag=a.transient_mag, out=a.out, sky=a.sky, density=a.density, camera=camera,
                       **common)
    print(f"{f.name}: {summary(f.truth)}")
    return 0


def summary(truth: dict) -> str:
    t = truth["transient"]
    best = truth["best"]
    return (f"{truth['instrument_band']} -> {best['survey']} {best['band']}, zp {truth['zeropoint']:.3f}, "
            f"ct {truth['colour_term']:+.3f}, transient {t['mag']:.2f} (limit {truth['limit_mag_5sigma']:.2f}, "
            f"{'detectable' if t['detectable'] else 'too faint'}), surveys {','.join(truth['surveys'])}")


if __name__ == "__main__":
    sys.exit(main())
