"""Issue 18, frames uploaded instead of catalogues: ``python -m bench images`` (``make bench BENCH=images``).

On frames simulated with truth by :mod:`tools.simfield` (:func:`frame_specs`: sparse and dense Galactic
plane, north and south of Dec -30, bands V, r', i', 1k x 1k and 2k x 2k, every fifth target too faint to
detect; written to ``bench/out/images/frames/``):

1. **Extractor choice** (:func:`extractor_bench`, the first :data:`N_EXTRACTOR_FRAMES` frames, half 1k
   half 2k): sep (our ``photometer_frame``: background, detection, FWHM, aperture at 1.25 FWHM and its
   annulus), the ``source-extractor`` binary on the FITS (MAG_APER, the same aperture) and photutils
   (Background2D, detect_sources, aperture_photometry with the same aperture and annulus): wall time
   per frame (median of ``BENCH_IMAGES_ROUNDS``), completeness against the true stars (within 1.5 px)
   1 mag above the 5-sigma limit and in the last magnitude before it, and the robust scatter of aperture
   mag - true m_inst for bright isolated unsaturated stars after the median offset; a sentence says what
   the figures support.
2. **Image-path accuracy** (:func:`accuracy_bench`, ``BENCH_IMAGES_FRAMES`` = 32 frames):
   ``photometer_frame`` -> ``calibrate_frame`` on its sources, told the band -> the target as the forced
   aperture (zero point and colour term at the calibrators' median colour applied to ``forced.inst_mag``,
   or to ``forced.inst_limit`` below S/N 5), beside (a) the frame's source-extractor catalogue through the
   parser and ``calibrate_frame`` (the catalogue path: nearest source within matchDist) and (b) STDPipe's
   ``get_objects_sep`` + ``photometry.match`` on the image, told the band (as bench_accuracy runs it).
   Truth: the target's true magnitude in that band. Median / p95 |error|, fraction within 1 sigma, on
   every target each path measured and on the targets all three measured; for the faint targets, the
   forced limit against the true 5-sigma limit of that aperture (:func:`true_aperture_limit`).
3. **Speed** (:func:`speed_bench`, ``BENCH_IMAGES_SIZES`` = 2048,4096): on one sparse frame per size,
   our ``photometer_frame`` + ``calibrate_frame`` beside STDPipe's extraction + calibration, p50 of
   ROUNDS and the peak traced memory, plate solving excluded.
4. **Plate solving** (:func:`solve_bench`; ``BENCH_IMAGES_SOLVE=0`` skips it): frames whose bright stars
   are the real Tycho-2 stars of the installed astrometry.net index files (:func:`simulate_sky_frame`),
   the WCS stripped; ``solve_frame``'s wall time and the solved WCS's error.

Figures are printed with issue 18's targets beside them and written to ``bench/out/images/results.json``.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from tools.photsystem import draw_colours, get_instrument_band
from tools.simfield.field import build_objects, draw_observation
from tools.simfield.image import (
    Camera,
    Observation,
    add_photometry,
    expose,
    extract_radius,
    image_header,
    limiting_magnitude,
    make_wcs,
    render_objects,
    sky_electrons,
    zeropoint,
)

#: Tycho-2 is complete to about V = 11.5 and reaches 12.5: the simulator's stars brighter than this go
TYCHO_DEPTH_V = 12.5


def index_stars(ra: float, dec: float, radius_deg: float) -> pd.DataFrame:
    """The Tycho-2 stars (RA, Dec deg; V_T mag) of the densest installed index file within the cone.

    Read with astrometry.net's ``query-starkd``; the finest-scale index (tycho2-07) keeps
    nearly all of Tycho-2's 2.5 million stars.
    """
    from services.photometry.imaging.astrometry import installed_indexes

    indexes = installed_indexes()
    query = shutil.which("query-starkd")
    if not indexes or query is None:
        raise FileNotFoundError("astrometry.net and its Tycho-2 index files are not installed (tools/system-deps.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stars.fits"
        subprocess.run(
            [query, "-r", f"{ra}", "-d", f"{dec}", "-R", f"{radius_deg}", "-T", "-o", str(out), str(indexes[0].path)],
            check=True,
            capture_output=True,
        )
        table = Table.read(out)
    return pd.DataFrame(
        {
            "ra": np.asarray(table["RA"], "<f8"),
            "dec": np.asarray(table["DEC"], "<f8"),
            "V": np.asarray(table["MAG_VT"], "<f8"),
        }
    )


@dataclass
class SkyFrame:
    """A simulated frame: ``image`` (float32 ADU, no WCS in ``header``), the true ``wcs``, and
    ``objects`` (truth: x_image/y_image FITS px, m_sys, m_inst, saturated, tycho)."""

    image: np.ndarray
    header: fits.Header
    wcs: WCS
    objects: pd.DataFrame
    camera: Camera
    obs: Observation

    @property
    def limit(self) -> float:
        """5-sigma limit (m_sys)."""
        return limiting_magnitude(self.camera, self.obs)

    @property
    def fwhm_px(self) -> float:
        return self.obs.fwhm / self.camera.pixel_scale


def simulate_sky_frame(
    seed: int,
    ra: float,
    dec: float,
    *,
    width: int = 1024,
    height: int = 1024,
    pixel_scale: float = 1.25,
    rotation: float | None = None,
    band: str = "V",
    n17: float | None = None,
) -> SkyFrame:
    """A frame centred on (ra, dec) deg, ``rotation`` deg (the simulator's draw when None),
    ``pixel_scale`` arcsec/px; ``n17`` (stars/deg^2 with V < 17) sets a density, the
    simulator's latitude law when None. Its bright stars are the real Tycho-2 stars."""
    rng = np.random.default_rng(seed)
    instrument = get_instrument_band(band)
    camera = Camera(width=width, height=height, pixel_scale=pixel_scale)
    obs = draw_observation(rng, instrument)
    if rotation is not None:
        obs = replace(obs, rotation=rotation)
    wcs = make_wcs(ra, dec, camera, obs.rotation)
    _, objects = build_objects(rng, wcs, camera, obs, instrument, ra, dec, False, None, min_saturated=0, n17=n17)
    objects = objects[~((objects.kind == "star") & (objects.V < TYCHO_DEPTH_V))].assign(tycho=False)
    real = index_stars(ra, dec, extract_radius(camera))
    x, y = wcs.all_world2pix(real.ra.to_numpy(), real.dec.to_numpy(), 1)
    inside = (x > -20) & (x < width + 20) & (y > -20) & (y < height + 20)
    real = real[inside].assign(kind="star", x_image=x[inside], y_image=y[inside], tycho=True)
    real["BV"] = draw_colours(rng, len(real))
    real = add_photometry(real, instrument, zeropoint(obs, camera))
    objects = pd.concat([objects, real], ignore_index=True)
    # the many faint stars of a dense or large frame rendered as points, the rest as stamps
    signal = render_objects(objects, camera, obs, limiting_magnitude(camera, obs) - 3.0)
    image = expose(rng, signal, camera, obs)
    objects["saturated"] = objects.peak + camera.bias + sky_electrons(camera, obs) / camera.gain >= camera.saturation
    header = image_header(wcs, camera, obs, instrument, f"sky_{seed}")
    for key in list(wcs.to_header()):
        header.remove(key, ignore_missing=True, remove_all=True)
    return SkyFrame(image, header, wcs, objects, camera, obs)


def wcs_error_arcsec(solved: WCS, frame: SkyFrame) -> dict[str, float]:
    """How far (arcsec) the solved WCS puts the frame's true star positions from the truth:
    the median over the stars inside the frame, and the worst of the centre and four corners."""
    w, h = frame.camera.width, frame.camera.height
    stars = frame.objects[
        (frame.objects.kind == "star")
        & frame.objects.x_image.between(0.5, w + 0.5)
        & frame.objects.y_image.between(0.5, h + 0.5)
    ]
    median = float(np.median(_separation(solved, frame.wcs, stars.x_image.to_numpy(), stars.y_image.to_numpy())))
    px = np.array([(w + 1) / 2, 1.0, w, 1.0, w])
    py = np.array([(h + 1) / 2, 1.0, 1.0, h, h])
    points = _separation(solved, frame.wcs, px, py)
    return {"median": median, "centre": float(points[0]), "corners": float(points[1:].max())}


def _separation(a: WCS, b: WCS, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from astropy.coordinates import SkyCoord

    ra1, dec1 = a.all_pix2world(x, y, 1)
    ra2, dec2 = b.all_pix2world(x, y, 1)
    return SkyCoord(ra1, dec1, unit="deg").separation(SkyCoord(ra2, dec2, unit="deg")).arcsec


# --------------------------------------------------------------------------
# frames with truth for the extractor choice and the image-path accuracy
# --------------------------------------------------------------------------

ROUNDS = int(os.environ.get("BENCH_IMAGES_ROUNDS", "3"))
#: frames of the accuracy bench (issue 18: at least 30)
N_FRAMES = int(os.environ.get("BENCH_IMAGES_FRAMES", "32"))
#: frames of the extractor comparison (the first of each sky type at 1k and at 2k)
N_EXTRACTOR_FRAMES = int(os.environ.get("BENCH_IMAGES_EXTRACTOR_FRAMES", "8"))
#: frame sizes (px a side) of the speed bench
SPEED_SIZES = tuple(int(v) for v in os.environ.get("BENCH_IMAGES_SIZES", "2048,4096").split(",") if v.strip())
#: plate-solve timing (needs astrometry.net and its index files); BENCH_IMAGES_SOLVE=0 skips it
SOLVE = os.environ.get("BENCH_IMAGES_SOLVE", "1") != "0"
OUT = Path(__file__).parent / "out" / "images"
MATCH_DIST = 2.0  # arcsec, as the catalogue path is run
#: the instrument bands of the frames, in turn (i' among them)
BANDS = ("V", "r", "i")
FAINT_EVERY = 5
#: issue 18's targets
TARGET_LIMIT_MAG = 0.3
TARGET_SPEEDUP = 3.0
TARGET_4K_SECONDS = 2.0


@dataclass
class TruthFrame:
    """A simulated frame on disk (``folder``: image.fits, sex_fits1.fits, ref_*.csv, truth.json) and in memory."""

    name: str
    folder: Path
    truth: dict
    objects: pd.DataFrame
    image: np.ndarray
    header: fits.Header
    sky: str
    size: int

    @property
    def fwhm_px(self) -> float:
        return float(self.truth["fwhm_arcsec"] / self.truth["field"]["pixel_scale_arcsec"])


def frame_specs(n: int) -> list[dict]:
    """``n`` frames: sparse/dense x north/south in turn, bands V, r', i' in turn, every
    :data:`FAINT_EVERY`-th target too faint to detect; every fourth group of four is 2k x 2k
    (1.0 arcsec/px), the others 1k x 1k (0.8-1.6 arcsec/px)."""
    from tools.simfield.image import Camera
    from tools.simfield.suite import SUITE_SKIES, sky_position

    rng = np.random.default_rng(1800)
    specs = []
    for i in range(n):
        sky, hemisphere = SUITE_SKIES[i % len(SUITE_SKIES)]
        band = BANDS[(i // len(SUITE_SKIES)) % len(BANDS)]
        ra, dec = sky_position(rng, sky, hemisphere)
        big = (i // len(SUITE_SKIES)) % 4 == 3
        scale = 1.0 if big else round(float(rng.uniform(0.8, 1.6)), 3)
        size = 2048 if big else 1024
        faint = i % FAINT_EVERY == FAINT_EVERY - 1
        name = f"img{i:02d}_{sky}_{hemisphere}_{band}_{size}{'_faint' if faint else ''}"
        specs.append(
            dict(
                seed=1800 + i,
                ra=ra,
                dec=dec,
                instrument_band=band,
                faint=faint,
                name=name,
                sky=sky,
                camera=Camera(width=size, height=size, pixel_scale=scale),
            )
        )
    return specs


def simulate_frames(specs: list[dict], out: Path = OUT / "frames") -> list[TruthFrame]:
    """Render the frames (image, its source-extractor catalogue, references, truth) into ``out``."""
    from tools import simfield as sf

    frames = []
    started = time.perf_counter()
    for spec in specs:
        folder = out / spec["name"]
        f = sf.simulate_field(**spec, out=folder, formats=("sex_fits1.fits",))
        assert f.image is not None
        frames.append(
            TruthFrame(spec["name"], folder, f.truth, f.objects, f.image, f.header, spec["sky"], spec["camera"].width)
        )
    print(f"simulated {len(frames)} frame(s) into {out} in {time.perf_counter() - started:.0f} s", flush=True)
    return frames


# --------------------------------------------------------------------------
# extractors: sep (ours), the source-extractor binary, photutils
# --------------------------------------------------------------------------


@dataclass
class Extracted:
    """Detections of one extractor: FITS (1-based) pixel positions and fixed-aperture magnitudes."""

    x: np.ndarray
    y: np.ndarray
    mag: np.ndarray
    seconds: float


def extract_sep(frame: TruthFrame) -> Extracted:
    """Ours: photometer_frame (background, detection, FWHM, aperture at 1.25 FWHM, annulus)."""
    from services.photometry.imaging.frame import photometer_frame
    from shared.frames import frame_header

    a = frame.truth["alert"]
    info = frame_header(frame.header, frame.image.shape)
    started = time.perf_counter()
    phot = photometer_frame(frame.image, info, WCS(frame.header), a["ra"], a["dec"])
    seconds = time.perf_counter() - started
    return Extracted(phot.x + 1.0, phot.y + 1.0, np.asarray(phot.sources.mag, float), seconds)


def extract_sextractor(frame: TruthFrame) -> Extracted:
    """The ``source-extractor`` binary on the FITS, MAG_APER in a fixed aperture of 2.5 FWHM diameter
    (the same 1.25 FWHM radius as ours), with the simulator's configuration for the sky type."""
    from tools.simfield.sextractor import BIG_FRAME_MEMORY, run_sextractor
    from tools.simfield.sky import get_sky_type

    extra = BIG_FRAME_MEMORY + get_sky_type(frame.sky).sextractor_args
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = run_sextractor(
            (frame.folder / "image.fits").resolve(),
            Path(tmp),
            frame.truth["fwhm_arcsec"],
            2.5 * frame.fwhm_px,
            extra,
            {"sex_fits1.fits"},
        )
        cat = fits.getdata(paths["sex_fits1.fits"], 1)
        seconds = time.perf_counter() - started
    return Extracted(
        np.asarray(cat["X_IMAGE"], float),
        np.asarray(cat["Y_IMAGE"], float),
        np.asarray(cat["MAG_APER"], float),
        seconds,
    )


def extract_photutils(frame: TruthFrame) -> Extracted:
    """photutils: Background2D (64 px mesh), detect_sources on the image smoothed by a Gaussian of the
    frame's FWHM at 3 sigma (5 px), centroids from SourceCatalog, aperture_photometry at 1.25 FWHM
    radius with the annulus's mean subtracted (3-5 FWHM)."""
    from astropy.convolution import convolve
    from photutils.aperture import (
        CircularAnnulus,
        CircularAperture,
        aperture_photometry,
    )
    from photutils.background import Background2D
    from photutils.segmentation import (
        SourceCatalog,
        detect_sources,
        make_2dgaussian_kernel,
    )

    fwhm = frame.fwhm_px
    started = time.perf_counter()
    image = frame.image.astype(float)
    bkg = Background2D(image, 64, filter_size=(3, 3))
    data_sub = image - bkg.background
    kernel = make_2dgaussian_kernel(fwhm, size=2 * int(2 * fwhm) + 1)
    smoothed = convolve(data_sub, kernel)
    segments = detect_sources(smoothed, 3.0 * bkg.background_rms, 5)
    if segments is None:
        return Extracted(np.array([]), np.array([]), np.array([]), time.perf_counter() - started)
    catalogue = SourceCatalog(data_sub, segments, convolved_data=smoothed)
    xy = np.column_stack([np.asarray(catalogue.x_centroid, float), np.asarray(catalogue.y_centroid, float)])
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    aperture = CircularAperture(xy, r=1.25 * fwhm)
    annulus = CircularAnnulus(xy, r_in=3.0 * fwhm, r_out=5.0 * fwhm)
    table = aperture_photometry(data_sub, [aperture, annulus])
    sky_per_px = np.asarray(table["aperture_sum_1"], float) / annulus.area
    flux = np.asarray(table["aperture_sum_0"], float) - sky_per_px * aperture.area
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = np.where(flux > 0, -2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)
    seconds = time.perf_counter() - started
    return Extracted(xy[:, 0] + 1.0, xy[:, 1] + 1.0, mag, seconds)


def _nearest(x: np.ndarray, y: np.ndarray, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (px) and index of the nearest of (px, py) to each (x, y)."""
    from scipy.spatial import cKDTree

    if len(px) == 0:
        return np.full(len(x), np.inf), np.zeros(len(x), int)
    d, j = cKDTree(np.column_stack([px, py])).query(np.column_stack([x, y]))
    return np.asarray(d), np.asarray(j)


def score_extraction(frame: TruthFrame, found: Extracted) -> dict[str, float]:
    """Completeness (true stars detected within 1.5 px) 1 mag above the 5-sigma limit and in the last
    magnitude before it; and the robust scatter (mmag) of aperture mag - true m_inst of bright
    (4+ mag above the limit) unsaturated isolated stars (no star brighter than 2.5 mag fainter within
    3 FWHM), after the median offset (the aperture correction) is removed."""
    o = frame.objects
    w = h = frame.size
    limit = float(frame.truth["limit_mag_5sigma"])
    stars = o[(o.kind == "star") & ~o.saturated & o.x_image.between(3, w - 2) & o.y_image.between(3, h - 2)]
    d, j = _nearest(stars.x_image.to_numpy(), stars.y_image.to_numpy(), found.x, found.y)
    m = stars.m_sys.to_numpy()
    hit = d < 1.5
    bright_bin = m < limit - 1.0
    faint_bin = (m >= limit - 1.0) & (m < limit)
    # isolation: the nearest star that is not itself, among those that could disturb the aperture
    bright = (m < limit - 4.0) & hit
    everyone = o[o.kind != "galaxy"]
    isolated = np.zeros(len(stars), bool)
    if bright.any():
        from scipy.spatial import cKDTree

        tree = cKDTree(np.column_stack([everyone.x_image.to_numpy(), everyone.y_image.to_numpy()]))
        em = everyone.m_sys.to_numpy()
        xs, ys = stars.x_image.to_numpy(), stars.y_image.to_numpy()
        for i in np.flatnonzero(bright):
            near = tree.query_ball_point((xs[i], ys[i]), 3.0 * frame.fwhm_px)
            isolated[i] = sum(1 for k in near if em[k] < m[i] + 2.5) == 1
    sel = isolated & np.isfinite(found.mag[j] if len(found.mag) else np.zeros(len(stars)))
    scatter = math.nan
    if sel.sum() >= 5:
        delta = found.mag[j[sel]] - stars.m_inst.to_numpy()[sel]
        delta = delta - np.median(delta)
        scatter = 1000.0 * 1.4826 * float(np.median(np.abs(delta)))
    return {
        "seconds": found.seconds,
        "complete_bright": float(hit[bright_bin].mean()) if bright_bin.any() else math.nan,
        "complete_last_mag": float(hit[faint_bin].mean()) if faint_bin.any() else math.nan,
        "scatter_mmag": scatter,
        "n_isolated": int(sel.sum()),
        "n_detected": len(found.x),
    }


def extractor_bench(frames: list[TruthFrame]) -> dict:
    """The extractor table: per sky type and size, each extractor's median time and its figures."""
    extractors: dict[str, Any] = {"sep (ours)": extract_sep}
    skipped: dict[str, str] = {}
    if shutil.which("source-extractor") or shutil.which("sex"):
        extractors["source-extractor"] = extract_sextractor
    else:
        skipped["source-extractor"] = "the binary is not installed (tools/system-deps.sh)"
    try:
        import photutils  # noqa: F401

        extractors["photutils"] = extract_photutils
    except ImportError:
        skipped["photutils"] = "not installed"
    for name, why in skipped.items():
        print(f"  {name}: skipped, {why}")
    rows: list[dict] = []
    for frame in frames:
        for name, run in extractors.items():
            times, figures = [], {}
            for _ in range(max(1, ROUNDS)):
                found = run(frame)
                times.append(found.seconds)
                figures = score_extraction(frame, found)
            figures["seconds"] = statistics.median(times)
            rows.append({"frame": frame.name, "sky": frame.sky, "size": frame.size, "extractor": name, **figures})
    table = pd.DataFrame(rows)
    print(
        "\nextractor | frames | s/frame 1k | s/frame 2k | complete (<lim-1) | complete (last mag) | "
        "bright isolated scatter mmag"
    )
    summary = {}
    for name in extractors:
        t = table[table.extractor == name]
        s1 = t[t["size"] == 1024].seconds.median()
        s2 = t[t["size"] == 2048].seconds.median()
        summary[name] = {
            "seconds_1k": float(s1),
            "seconds_2k": float(s2),
            "complete_bright": float(t.complete_bright.median()),
            "complete_last_mag": float(t.complete_last_mag.median()),
            "scatter_mmag": float(t.scatter_mmag.median()),
        }
        print(
            f"{name} | {len(t)} | {s1:.3f} | {s2:.3f} | {t.complete_bright.median():.3f} | "
            f"{t.complete_last_mag.median():.3f} | {t.scatter_mmag.median():.1f}"
        )
    print("per sky type (median of the frames):")
    print("sky | extractor | s/frame | complete (<lim-1) | complete (last mag) | scatter mmag")
    for key, t in table.groupby(["sky", "extractor"], sort=True):
        sky, name = cast(tuple[str, str], key)
        print(
            f"{sky} | {name} | {t.seconds.median():.3f} | {t.complete_bright.median():.3f} | "
            f"{t.complete_last_mag.median():.3f} | {t.scatter_mmag.median():.1f}"
        )
    print(choice_sentence(summary))
    return {"rows": rows, "summary": summary, "skipped": skipped}


def choice_sentence(summary: dict[str, dict[str, float]]) -> str:
    """What the figures support, said from the figures (not assumed)."""
    if "sep (ours)" not in summary or len(summary) < 2:
        return "choice: only sep was measured"
    ours = summary["sep (ours)"]
    parts = []
    for name, s in summary.items():
        if name == "sep (ours)":
            continue
        speed = s["seconds_1k"] / ours["seconds_1k"] if ours["seconds_1k"] > 0 else math.nan
        parts.append(
            f"{name} takes {speed:.1f}x sep's time, completeness in the last magnitude "
            f"{s['complete_last_mag']:.2f} vs {ours['complete_last_mag']:.2f}, "
            f"scatter {s['scatter_mmag']:.1f} vs {ours['scatter_mmag']:.1f} mmag"
        )
    faster = all(ours["seconds_1k"] <= s["seconds_1k"] for s in summary.values())
    as_good = all(
        ours["scatter_mmag"] <= s["scatter_mmag"] * 1.2 + 1.0
        and ours["complete_last_mag"] >= s["complete_last_mag"] - 0.05
        for s in summary.values()
    )
    verdict = (
        "the figures support sep (in-process, fastest, as complete and as precise)"
        if faster and as_good
        else "the figures do NOT clearly support sep: see the columns"
    )
    return "choice: " + verdict + "; " + "; ".join(parts)


# --------------------------------------------------------------------------
# image-path accuracy: forced aperture at the alert vs the catalogue path vs STDPipe on the image
# --------------------------------------------------------------------------


def _forced_band(truth: dict) -> tuple[str, str]:
    return truth["best"]["survey"], truth["best"]["band"]


def point_source_loss(truth: dict, radius_px: float, annulus: tuple[float, float]) -> float:
    """How much fainter (mag) the forced aperture measures a point source than its total: the simulator's
    Moffat PSF (the frame's FWHM and beta) summed in the aperture, less the annulus's mean (its wings)
    over the aperture's area. Oversampled 5 x 5 per pixel."""
    from tools.simfield.image import moffat_stamp

    fwhm = truth["fwhm_arcsec"] / truth["field"]["pixel_scale_arcsec"]
    half = int(math.ceil(annulus[1])) + 2
    psf = moffat_stamp(0.0, 0.0, fwhm, truth["camera"]["psf_beta"], half, oversample=5)
    sub = 5
    fine = np.kron(psf, np.ones((sub, sub))) / sub**2
    coords = (np.arange(fine.shape[0]) + 0.5) / sub - (half + 0.5)
    r = np.hypot(*np.meshgrid(coords, coords))
    inside = fine[r <= radius_px].sum()
    ring = (r >= annulus[0]) & (r <= annulus[1])
    wing_per_px = fine[ring].sum() / (ring.sum() / sub**2)
    measured = inside - wing_per_px * math.pi * radius_px**2
    return -2.5 * math.log10(measured)


def true_aperture_limit(truth: dict, radius_px: float, annulus: tuple[float, float], assumed_colour: float) -> float:
    """The true 5-sigma limit of the forced aperture (mag, in the reference band of a star of the
    assumed colour): the total magnitude of a point source whose aperture flux is 5 times the
    simulator's sky and read noise over the aperture (with the annulus mean's error), through the
    true zero point and colour term. Confusion noise of unresolved stars is not in it."""
    cam = truth["camera"]
    scale = truth["field"]["pixel_scale_arcsec"]
    sky_e = truth["exptime"] * scale**2 * 10 ** (-0.4 * (truth["sky_mag_arcsec2"] - truth["zp_1e_per_s"]))
    area = math.pi * radius_px**2
    annulus_area = math.pi * (annulus[1] ** 2 - annulus[0] ** 2)
    sigma_adu = math.sqrt(area * (1.0 + area / annulus_area) * (sky_e + cam["read_noise"] ** 2)) / cam["gain"]
    colour_term = truth.get("colour_term") or 0.0
    inst_limit = -2.5 * math.log10(5.0 * sigma_adu) - point_source_loss(truth, radius_px, annulus)
    return inst_limit + truth["zeropoint"] + colour_term * assumed_colour


#: empty apertures: at most this many, between these distances from the target (in FWHM)
EMPTY_APERTURES = 1500
EMPTY_RANGE_FWHM = (4.0, 60.0)


def empty_aperture_limit(
    frame: TruthFrame, radius_px: float, annulus: tuple[float, float], assumed_colour: float
) -> tuple[float, int]:
    """(limit mag, apertures used): the true 5-sigma limit at the target from the *measured* scatter of the
    forced aperture (same radius, same masked annulus) placed on empty sky around it.

    The "empty aperture" depth of deep-field photometry: the noise is what the frame has there - sky,
    read noise and the unresolved stars' confusion alike - measured as the spread of
    the background-subtracted fluxes of apertures that touch no detected object's pixel (3-sigma clipped
    standard deviation); not our error
    formula. Converted as :func:`true_aperture_limit` converts its analytic noise (true zero point and
    colour term, the PSF's loss outside the aperture)."""
    from services.photometry.imaging.aperture import Aperture, measure
    from services.photometry.imaging.background import measure_background
    from services.photometry.imaging.extract import detect
    from services.photometry.imaging.frame import _clean
    from shared.frames import frame_header

    info = frame_header(frame.header, frame.image.shape)
    pixels, mask = _clean(frame.image)
    sky = measure_background(pixels, mask=mask)
    data_sub = pixels - sky.level
    rms = np.where(sky.rms > 0, sky.rms, sky.global_rms).astype(np.float32)
    found = detect(data_sub, pixels, rms, saturate=info.saturate)
    assert found.objects_mask is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tx, ty = (
            float(v[0])
            for v in WCS(frame.header).all_world2pix([frame.truth["alert"]["ra"]], [frame.truth["alert"]["dec"]], 0)
        )
    fwhm = frame.truth["fwhm_arcsec"] / frame.truth["field"]["pixel_scale_arcsec"]
    step = 2.5 * radius_px  # apertures apart (their annuli may overlap: a little correlation, many more apertures)
    grid = np.arange(-EMPTY_RANGE_FWHM[1] * fwhm, EMPTY_RANGE_FWHM[1] * fwhm + step, step)
    gx, gy = (a.ravel() for a in np.meshgrid(tx + grid, ty + grid))
    distance = np.hypot(gx - tx, gy - ty)
    height, width = data_sub.shape
    edge = annulus[1] + 1
    keep = (distance >= EMPTY_RANGE_FWHM[0] * fwhm) & (gx > edge) & (gx < width - edge) & (gy > edge)
    keep &= gy < height - edge
    gx, gy, distance = gx[keep], gy[keep], distance[keep]
    r = int(math.ceil(radius_px)) + 1
    offsets = [
        (dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if dx * dx + dy * dy <= (radius_px + 1) ** 2
    ]
    empty = np.array(
        [
            not any(found.objects_mask[int(round(y)) + dy, int(round(x)) + dx] for dy, dx in offsets)
            for x, y in zip(gx, gy)
        ],
        dtype=bool,
    )
    order = np.argsort(distance[empty])[:EMPTY_APERTURES]
    xs, ys = gx[empty][order], gy[empty][order]
    aperture = Aperture(radius=radius_px, annulus_in=annulus[0], annulus_out=annulus[1])
    flux = measure(data_sub, xs, ys, aperture, rms, info.gain, found.objects_mask).flux
    flux = flux[np.isfinite(flux)]
    if len(flux) < 20:
        return math.nan, len(flux)
    from astropy.stats import sigma_clipped_stats

    # a clipped standard deviation: as robust to an aperture on an undetected star's core as the MAD, with
    # 1/1.65 of its variance (the truth's own noise: ~2 % in sigma, 0.02 mag, with 1,500 apertures)
    sigma_adu = float(sigma_clipped_stats(flux, sigma=3.0, maxiters=10)[2])
    colour_term = frame.truth.get("colour_term") or 0.0
    inst_limit = -2.5 * math.log10(5.0 * sigma_adu) - point_source_loss(frame.truth, radius_px, annulus)
    return inst_limit + frame.truth["zeropoint"] + colour_term * assumed_colour, len(flux)


def run_image_path(frame: TruthFrame, refs) -> Any:
    """photometer_frame -> calibrate_frame on its sources (told the band) -> the forced aperture at the alert."""
    from bench.bench_accuracy import Outcome
    from services.calibrate.core import calibrate_frame
    from services.photometry.imaging.frame import UnusableFrame, photometer_frame
    from shared.errors import CalibrationFailed
    from shared.frames import frame_header

    a = frame.truth["alert"]
    out = Outcome()
    started = time.perf_counter()
    try:
        phot = photometer_frame(
            frame.image, frame_header(frame.header, frame.image.shape), WCS(frame.header), a["ra"], a["dec"]
        )
        cal = calibrate_frame(phot.sources, refs, a["ra"], a["dec"], MATCH_DIST, force_filter=_forced_band(frame.truth))
    except (CalibrationFailed, UnusableFrame) as exc:
        out.seconds = time.perf_counter() - started
        out.error = getattr(exc, "code", None) or str(exc)
        return out
    out.seconds = time.perf_counter() - started
    out.ok = True
    out.survey, out.band = cal.survey, cal.band
    colour = cal.assumed_colour
    shift = cal.zeropoint + cal.colour_term * colour
    out.assumed_colour = colour
    forced = phot.forced
    if forced is None:
        out.error = "target_off_frame"
        return out
    if forced.inst_mag is not None and forced.inst_mag_err is not None:
        out.detected = True
        out.mag = forced.inst_mag + shift
        out.mag_err = math.hypot(forced.inst_mag_err, cal.zeropoint_err)
        out.inst_mag, out.inst_err = forced.inst_mag, forced.inst_mag_err
    else:
        out.detected = False
    if forced.inst_limit is not None:
        out.limit = forced.inst_limit + shift
        out.limit_method = f"forced S/N {forced.snr_limit:g}"
    annulus = (phot.aperture.annulus_in, phot.aperture.annulus_out)
    out.extra = {  # type: ignore[attr-defined]
        "true_limit": true_aperture_limit(frame.truth, phot.aperture.radius, annulus, colour),
        "timings_ms": phot.timings_ms,
    }
    if not frame.truth["transient"]["detectable"]:
        measured, n_empty = empty_aperture_limit(frame, phot.aperture.radius, annulus, colour)
        out.extra.update(empty_limit=measured, n_empty=n_empty)  # type: ignore[attr-defined]
    return out


def stdpipe_objects(image: np.ndarray, header: fits.Header, wcs: WCS, gain: float) -> Any:
    """STDPipe's extraction: get_objects_sep, FWHM measured, aperture 1.25 FWHM radius and annulus 3-5 FWHM
    (the same as ours), 3 sigma, as a SourceTable for its photometry.match."""
    from stdpipe import photometry

    from shared.arrays import SourceTable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = photometry.get_objects_sep(
            image.astype(np.float64),
            header=header,
            wcs=wcs,
            thresh=3.0,
            aper=1.25,
            bkgann=(3.0, 5.0),
            fwhm=True,
            gain=gain,
            edge=2,
            verbose=False,
        )
    good = np.isfinite(np.asarray(obj["mag"], float))
    return SourceTable.from_columns(
        ra=np.asarray(obj["ra"], float)[good],
        dec=np.asarray(obj["dec"], float)[good],
        mag=np.asarray(obj["mag"], float)[good],
        mag_err=np.asarray(obj["magerr"], float)[good],
        flags=np.asarray(obj["flags"], int)[good],
    )


def run_stdpipe_image(frame: TruthFrame, refs) -> Any:
    """STDPipe's own pipeline on the image: get_objects_sep, then photometry.match told the band
    (as bench_accuracy runs it on catalogues; the target is the nearest source within matchDist)."""
    from bench.bench_accuracy import Outcome, run_stdpipe

    started = time.perf_counter()
    try:
        table = stdpipe_objects(frame.image, frame.header, WCS(frame.header), float(frame.truth["camera"]["gain"]))
    except Exception as exc:  # a third-party pipeline's failure is a figure, not a crash of the bench
        out = Outcome(error=f"get_objects_sep: {exc}")
        out.seconds = time.perf_counter() - started
        return out
    extraction = time.perf_counter() - started
    out = run_stdpipe(table, refs, frame.truth)
    out.seconds += extraction
    return out


def run_catalogue_path(frame: TruthFrame, refs) -> Any:
    """The same frame's source-extractor catalogue (MAG_AUTO) through the parser and calibrate_frame, told the band."""
    from bench.bench_accuracy import run_ours
    from services.ingest.parsing import parse_catalogue

    parsed = parse_catalogue((frame.folder / "sex_fits1.fits").read_bytes(), "sex_fits1.fits")
    return run_ours(parsed.table, refs, frame.truth, force=_forced_band(frame.truth))


def accuracy_bench(frames: list[TruthFrame]) -> dict:
    """Image path vs catalogue path vs STDPipe on the image, against the target's true magnitude."""
    from tools import fieldio

    results = []
    for frame in frames:
        refs = fieldio.load_references(frame.folder)
        results.append(
            {
                "frame": frame,
                "image": run_image_path(frame, refs),
                "catalogue": run_catalogue_path(frame, refs),
                "stdpipe": run_stdpipe_image(frame, refs),
            }
        )
    print(f"\nimage-path accuracy over {len(frames)} frames (truth: the target's magnitude in the band told)")
    print("frame | true mag | image path | catalogue path | STDPipe on the image")

    def shown(o: Any) -> str:
        if not o.ok:
            return f"failed ({o.error})"
        if o.detected:
            return f"{o.mag:.3f}+-{o.mag_err:.3f}"
        return f">{o.limit:.2f}" if o.limit is not None else "not detected"

    for r in results:
        t = r["frame"].truth["transient"]
        cells = " | ".join(shown(r[k]) for k in ("image", "catalogue", "stdpipe"))
        print(f"{r['frame'].name} | {t['mag']:.3f} | {cells}")
    summary: dict[str, Any] = {}
    print("\npath | detected targets scored | median |err| mmag | p95 |err| mmag | within 1 sigma | failed")
    for key, label in (
        ("image", "image path (forced)"),
        ("catalogue", "catalogue path"),
        ("stdpipe", "STDPipe on the image"),
    ):
        errs, sig = [], []
        failed = sum(1 for r in results if not r[key].ok)
        for r in results:
            o, t = r[key], r["frame"].truth["transient"]
            if o.ok and o.detected and t["detectable"] and o.mag is not None:
                errs.append(o.mag - t["mag"])
                sig.append(o.mag_err or math.nan)
        e = np.abs(np.array(errs))
        s = np.array(sig)
        figures = {
            "n": len(e),
            "median_mmag": 1000.0 * float(np.median(e)) if len(e) else math.nan,
            "p95_mmag": 1000.0 * float(np.percentile(e, 95)) if len(e) else math.nan,
            "within1": float(np.mean(e <= s)) if len(e) else math.nan,
            "failed": failed,
        }
        summary[key] = figures
        print(
            f"{label} | {figures['n']} | {figures['median_mmag']:.1f} | {figures['p95_mmag']:.1f} | "
            f"{figures['within1']:.2f} | {failed}"
        )
    # the same targets for all: those every path measured (a path that detects more is not penalised)
    common = [
        r
        for r in results
        if r["frame"].truth["transient"]["detectable"]
        and all(r[k].ok and r[k].detected and r[k].mag is not None for k in ("image", "catalogue", "stdpipe"))
    ]
    print(f"on the {len(common)} targets all three measured: median / p95 |err| mmag, within 1 sigma")
    for key in ("image", "catalogue", "stdpipe"):
        e = np.abs(np.array([r[key].mag - r["frame"].truth["transient"]["mag"] for r in common]))
        s1 = np.array([r[key].mag_err or math.nan for r in common])
        fig = {
            "n": len(e),
            "median_mmag": 1000.0 * float(np.median(e)) if len(e) else math.nan,
            "p95_mmag": 1000.0 * float(np.percentile(e, 95)) if len(e) else math.nan,
            "within1": float(np.mean(e <= s1)) if len(e) else math.nan,
        }
        summary[f"{key}_common"] = fig
        print(f"  {key} | {fig['median_mmag']:.1f} | {fig['p95_mmag']:.1f} | {fig['within1']:.2f}")
    ok = summary["image_common"]["median_mmag"] <= summary["catalogue_common"]["median_mmag"]
    verdict = "PASS" if ok else "FAIL"
    print(f"target: the image path at least as accurate as the catalogue path (median, common targets): {verdict}")
    print("\nfaint targets (too faint to detect): the forced limit at the position vs its truth")
    print(
        "frame | true mag | image limit | true limit, sky + read noise | limit - it | true limit, empty apertures "
        "(n) | limit - it | catalogue path's frame limit"
    )
    diffs, empty_diffs = [], []
    for r in results:
        o, t = r["image"], r["frame"].truth["transient"]
        if t["detectable"]:
            continue
        extra = getattr(o, "extra", {})
        true_limit = extra.get("true_limit", math.nan)
        empty_limit, n_empty = extra.get("empty_limit", math.nan), extra.get("n_empty", 0)
        lim = o.limit if o.ok and o.limit is not None else math.nan
        if o.ok and o.detected:
            lim_text = f"detected {o.mag:.2f}"
        else:
            lim_text = f"{lim:.2f}"
            diffs.append(lim - true_limit)
            empty_diffs.append(lim - empty_limit)
        c = r["catalogue"]
        print(
            f"{r['frame'].name} | {t['mag']:.2f} | {lim_text} | {true_limit:.2f} | {lim - true_limit:+.2f} | "
            f"{empty_limit:.2f} ({n_empty}) | {lim - empty_limit:+.2f} | "
            f"{c.limit if c.ok and c.limit is not None else math.nan:.2f}"
        )
    summary["limits"] = {}
    for label, values in (("sky + read noise", diffs), ("empty apertures", empty_diffs)):
        d = np.abs(np.array(values))
        worst = float(d.max()) if len(d) else math.nan
        print(
            f"limits against the truth from {label}: {len(d)} | median |limit - truth| "
            f"{float(np.median(d)) if len(d) else math.nan:.2f} mag | worst {worst:.2f} | "
            f"target <= {TARGET_LIMIT_MAG} mag: {'PASS' if len(d) and worst <= TARGET_LIMIT_MAG else 'FAIL'}"
        )
        summary["limits"][label] = {"n": len(d), "worst_mag": worst, "diffs": [float(v) for v in values]}
    summary["frames"] = [
        {
            "frame": r["frame"].name,
            "truth": r["frame"].truth["transient"],
            **{
                k: {f: getattr(r[k], f) for f in ("ok", "error", "detected", "mag", "mag_err", "limit", "seconds")}
                for k in ("image", "catalogue", "stdpipe")
            },
        }
        for r in results
    ]
    return summary


# --------------------------------------------------------------------------
# speed: 2k x 2k and 4k x 4k, ours vs STDPipe's extraction + calibration, time and peak memory
# --------------------------------------------------------------------------


def _peak_mib(run: Any) -> float:
    """Peak Python-traced memory (MiB) of one call (numpy's buffers are traced; sep's C buffers are not)."""
    import tracemalloc

    tracemalloc.start()
    try:
        run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def speed_of_frame(size: int) -> dict[str, Any]:
    """One sparse ``size`` x ``size`` frame: our photometer_frame + calibrate_frame beside STDPipe's
    get_objects_sep + photometry.match on the same frame, median of ROUNDS wall times (plate solving
    excluded: the WCS is given), and the peak memory of one more run of each."""
    from bench.bench_accuracy import run_stdpipe
    from services.calibrate.core import calibrate_frame
    from services.photometry.imaging.frame import photometer_frame
    from shared.frames import frame_header
    from tools import fieldio
    from tools import simfield as sf
    from tools.simfield.image import Camera

    folder = OUT / f"speed_{size}"
    camera = Camera(width=size, height=size, pixel_scale=0.6 if size > 2048 else 1.0)
    f = sf.simulate_field(
        4100 + size, 150.0, 30.0, "r", name=f"speed_{size}", sky="sparse", camera=camera, out=folder, sextract=False
    )
    assert f.image is not None
    image, header, truth = f.image, f.header, f.truth
    refs = fieldio.load_references(folder)
    a = truth["alert"]
    wcs = WCS(header)
    info = frame_header(header, image.shape)
    steps: dict[str, float] = {}

    def ours() -> int:
        phot = photometer_frame(image, info, wcs, a["ra"], a["dec"])
        started = time.perf_counter()
        calibrate_frame(phot.sources, refs, a["ra"], a["dec"], MATCH_DIST, force_filter=_forced_band(truth))
        steps.update(phot.timings_ms, calibrate=round(1000 * (time.perf_counter() - started), 2))
        return phot.n_detected

    def theirs() -> None:
        table = stdpipe_objects(image, header, wcs, float(truth["camera"]["gain"]))
        run_stdpipe(table, refs, truth)

    t_ours, t_theirs, n = [], [], 0
    for _ in range(max(1, ROUNDS)):
        started = time.perf_counter()
        n = ours()
        t_ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs()
        t_theirs.append(time.perf_counter() - started)
    last_steps = dict(steps)
    m_ours, m_theirs = _peak_mib(ours), _peak_mib(theirs)
    p_ours, p_theirs = statistics.median(t_ours), statistics.median(t_theirs)
    return {
        "sources": n,
        "ours_s": p_ours,
        "stdpipe_s": p_theirs,
        "ratio": p_theirs / p_ours,
        "ours_peak_mib": m_ours,
        "stdpipe_peak_mib": m_theirs,
        "ours_steps_ms": last_steps,
    }


def speed_bench(sizes: tuple[int, ...] = SPEED_SIZES) -> dict:
    """:func:`speed_of_frame` per size, printed with the targets."""
    results = {}
    print(
        "\nspeed, plate solving excluded | px | sources | ours s (p50) | STDPipe s (p50) | STDPipe/ours | "
        "ours peak MiB | STDPipe peak MiB | ours per step ms"
    )
    for size in sizes:
        r = speed_of_frame(size)
        results[size] = r
        print(
            f"frame | {size} | {r['sources']} | {r['ours_s']:.2f} | {r['stdpipe_s']:.2f} | {r['ratio']:.2f}x | "
            f"{r['ours_peak_mib']:.0f} | {r['stdpipe_peak_mib']:.0f} | {r['ours_steps_ms']}",
            flush=True,
        )
    ratios = [r["ratio"] for r in results.values()]
    fast = bool(ratios) and min(ratios) >= TARGET_SPEEDUP
    print(f"target: >= {TARGET_SPEEDUP:g}x faster than STDPipe: {'PASS' if fast else 'FAIL'}")
    if 4096 in results:
        s = results[4096]["ours_s"]
        print(f"target: 4k x 4k <= {TARGET_4K_SECONDS:g} s: {s:.2f} s {'PASS' if s <= TARGET_4K_SECONDS else 'FAIL'}")
    print("(peak memory: tracemalloc, numpy's buffers; sep's and SExtractor's C buffers are not counted)")
    return {str(k): v for k, v in results.items()}


# --------------------------------------------------------------------------
# plate solving
# --------------------------------------------------------------------------


def solve_bench() -> list[dict]:
    """solve_frame on frames whose bright stars are the real Tycho-2 ones: solve time and WCS error."""
    from services.photometry.imaging.astrometry import installed_indexes, solve_frame

    if not installed_indexes() or shutil.which("solve-field") is None:
        print("\nplate solving: skipped, astrometry.net or its index files are not installed (tools/system-deps.sh)")
        return []
    rows = []
    print("\nplate solving | px | arcsec/px | solve s | median err arcsec | worst corner arcsec")
    for seed, ra, dec, pixels, scale, rotation in (
        (11, 150.0, 20.0, 1440, 1.25, 1.5),
        (13, 210.0, -40.0, 1440, 2.5, 35.0),
        (15, 100.0, 5.0, 2048, 1.0, 0.0),
    ):
        frame = simulate_sky_frame(seed, ra, dec, width=pixels, height=pixels, pixel_scale=scale, rotation=rotation)
        times, error = [], {}
        for _ in range(max(1, ROUNDS)):
            started = time.perf_counter()
            wcs = solve_frame(frame.image, ra_hint=ra, dec_hint=dec, pixel_scale_hint_arcsec=scale)
            times.append(time.perf_counter() - started)
            error = wcs_error_arcsec(wcs, frame)
        print(
            f"{ra:.0f},{dec:+.0f} | {pixels} | {scale} | {statistics.median(times):.2f} | "
            f"{error['median']:.3f} | {error['corners']:.3f}"
        )
        rows.append({"ra": ra, "dec": dec, "px": pixels, "scale": scale, "seconds": statistics.median(times), **error})
    return rows


def main() -> None:
    """Extractor choice, image-path accuracy, speed and plate solving; figures to bench/out/images/results.json."""
    import json

    OUT.mkdir(parents=True, exist_ok=True)
    frames = simulate_frames(frame_specs(N_FRAMES))
    chosen = [f for f in frames if f.size == 1024][: max(0, N_EXTRACTOR_FRAMES // 2)]
    chosen += [f for f in frames if f.size == 2048][: max(0, N_EXTRACTOR_FRAMES - len(chosen))]
    results: dict[str, Any] = {"rounds": ROUNDS, "frames": N_FRAMES}
    results["extractors"] = extractor_bench(chosen)
    results["accuracy"] = accuracy_bench(frames)
    results["speed"] = speed_bench()
    results["solve"] = solve_bench() if SOLVE else []
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(f"\nwritten {OUT / 'results.json'}")
