"""Plate solving with astrometry.net: a frame without a celestial WCS gets one.

The sources are detected here with ``sep`` (background, extraction) and handed to
``solve-field`` as an xylist, so astrometry.net never reads the image: that is
faster than its own ``image2xy`` and the same on every frame. The search is held to
the alert's neighbourhood (frames are pointed at the transient) and, when known, to
the pixel scale. Every failure raises :class:`FrameNotSolved` with a reason that
says what to do. Pure of service concerns: arrays in, an ``astropy.wcs.WCS`` out.

Units: pixels (FITS, 1-based, in the xylist and the WCS), degrees (sky positions,
radius), arcsec/pixel (scale), arcmin (field and index sizes in the reasons), seconds.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import sep
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from shared.logging import get_logger

log = get_logger(__name__)

#: solve-field's configuration (Debian's): its ``add_path`` lines say where the index files are
ASTROMETRY_CONFIG = Path("/etc/astrometry.cfg")
DEFAULT_INDEX_DIR = Path("/usr/share/astrometry")

#: the brightest sources handed to the solver: enough for dense fields, few enough to stay fast
MAX_SOURCES = 400
#: below this many usable sources a solution is hopeless (a quad is 4 stars; verification wants more)
MIN_SOURCES = 10
#: detection threshold (x background RMS) and minimum area (px): stars, not noise or hot pixels
DETECT_SIGMA = 5.0
MIN_AREA_PX = 5
#: with a pixel-scale hint, the solver searches this factor either side of it
SCALE_TOLERANCE = 1.15
#: without a hint: from fine-sampled large telescopes to wide-field lenses
WIDE_SCALE_ARCSEC = (0.1, 20.0)
#: wall-clock grace beyond ``timeout_s`` for solve-field's own start-up and output before it is killed
KILL_GRACE_S = 5.0

FIX_HINT = (
    "plate-solve the frame yourself (e.g. on nova.astrometry.net) and upload it with its WCS, or send a catalogue"
)


class FrameNotSolved(Exception):
    """The frame could not be plate-solved; ``reason`` says why and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IndexScale:
    """One installed index file and the quad diameters (arcmin) it serves."""

    path: Path
    low_arcmin: float
    high_arcmin: float


def index_dirs(config: Path = ASTROMETRY_CONFIG) -> list[Path]:
    """The directories solve-field reads index files from (its config's ``add_path``)."""
    dirs = []
    if config.is_file():
        for line in config.read_text().splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "add_path":
                dirs.append(Path(words[1]))
    return dirs or [DEFAULT_INDEX_DIR]


@lru_cache(maxsize=4)
def installed_indexes(dirs: tuple[Path, ...] | None = None) -> tuple[IndexScale, ...]:
    """Every index file found, with its scale range, smallest first (headers only are read)."""
    found = []
    for directory in dirs if dirs is not None else tuple(index_dirs()):
        for path in sorted(directory.glob("index-*.fits")):
            try:
                header = fits.getheader(path, 0)
                low, high = float(header["SCALE_L"]), float(header["SCALE_U"])
            except (OSError, KeyError, ValueError):
                continue
            found.append(IndexScale(path, math.degrees(low) * 60.0, math.degrees(high) * 60.0))
    return tuple(sorted(found, key=lambda i: i.low_arcmin))


@dataclass(frozen=True)
class DetectedSources:
    """Sources for the solver: FITS pixel positions (1-based) and fluxes (ADU), brightest first."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    n_detected: int


def detect_sources(data: np.ndarray, max_sources: int = MAX_SOURCES) -> DetectedSources:
    """Background, extraction and the brightest ``max_sources`` clean detections.

    Saturated stars are kept: at the depth of the Tycho-2 index files (V < 12) the index
    stars saturate on most frames of a 0.5 m telescope, and a clipped star's centroid is
    still good to a fraction of a pixel. Sources cut by the frame's edge, and single hot
    pixels (below ``MIN_AREA_PX``), are left out.
    """
    image = np.ascontiguousarray(data, dtype=np.float64)
    finite = np.isfinite(image)
    if not finite.any():
        raise FrameNotSolved("too few stars detected: every pixel is NaN or infinite; " + FIX_HINT)
    mask = ~finite
    if mask.any():
        image = np.where(finite, image, 0.0)
    if float(np.ptp(image[finite])) == 0.0:
        raise FrameNotSolved(
            f"too few stars detected: every pixel has the same value ({image[finite][0]:g}), "
            "the frame is blank; check the exposure, or " + FIX_HINT
        )
    background = sep.Background(image, mask=mask if mask.any() else None)
    rms = float(background.globalrms)
    if not np.isfinite(rms) or rms <= 0.0:
        raise FrameNotSolved("too few stars detected: the background has no noise (a synthetic frame?); " + FIX_HINT)
    subtracted = image - background.back()
    # a crowded 4k frame overflows sep's default pixel stack
    sep.set_extract_pixstack(max(300_000, image.size // 10))
    try:
        objects = sep.extract(
            subtracted,
            DETECT_SIGMA,
            err=rms,
            mask=mask if mask.any() else None,
            minarea=MIN_AREA_PX,
            deblend_cont=0.005,
        )
    except Exception as exc:  # sep raises a bare Exception for its internal limits
        raise FrameNotSolved(f"source detection failed ({exc}); " + FIX_HINT) from exc
    clean = (objects["flag"] & sep.OBJ_TRUNC) == 0
    clean &= np.isfinite(objects["x"]) & np.isfinite(objects["y"]) & (objects["flux"] > 0)
    kept = objects[clean]
    order = np.argsort(kept["flux"])[::-1][:max_sources]
    kept = kept[order]
    return DetectedSources(
        x=np.asarray(kept["x"], dtype=np.float64) + 1.0,  # sep is 0-based; xylists are FITS 1-based
        y=np.asarray(kept["y"], dtype=np.float64) + 1.0,
        flux=np.asarray(kept["flux"], dtype=np.float64),
        n_detected=len(objects),
    )


def write_xylist(path: Path, sources: DetectedSources, width: int, height: int) -> None:
    """The FITS table solve-field reads: X, Y (1-based px), FLUX (ADU), brightest first."""
    columns = [
        fits.Column(name="X", format="D", array=sources.x),
        fits.Column(name="Y", format="D", array=sources.y),
        fits.Column(name="FLUX", format="D", array=sources.flux),
    ]
    table = fits.BinTableHDU.from_columns(columns)
    table.header["IMAGEW"] = width
    table.header["IMAGEH"] = height
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path, overwrite=True)


def scale_range(pixel_scale_hint_arcsec: float | None) -> tuple[float, float]:
    """The pixel scales (arcsec/px) searched: around the hint, or a wide range without one."""
    if pixel_scale_hint_arcsec is None:
        return WIDE_SCALE_ARCSEC
    if not (pixel_scale_hint_arcsec > 0 and math.isfinite(pixel_scale_hint_arcsec)):
        raise ValueError(f"pixel_scale_hint_arcsec must be a positive number, not {pixel_scale_hint_arcsec}")
    return pixel_scale_hint_arcsec / SCALE_TOLERANCE, pixel_scale_hint_arcsec * SCALE_TOLERANCE


def check_index_scale(
    width: int, height: int, pixel_scale: float | None, scale_high: float, indexes: tuple[IndexScale, ...]
) -> None:
    """Refuse, before spending the time limit, a frame smaller than every installed index serves.

    astrometry.net matches quads of stars whose diameter is at most the field's diagonal;
    an index whose smallest quad is larger than that (at the largest scale searched,
    ``scale_high`` arcsec/px) cannot match anything. Without a pixel scale (``pixel_scale``
    None) only the presence of index files is checked.
    """
    if not indexes:
        raise FrameNotSolved(
            "no astrometry.net index files are installed (apt-get install astrometry-data-tycho2); " + FIX_HINT
        )
    if pixel_scale is None:
        return
    diagonal_high = math.hypot(width, height) * scale_high / 60.0
    smallest = indexes[0]
    if diagonal_high < smallest.low_arcmin:
        width_arcmin, height_arcmin = width * pixel_scale / 60.0, height * pixel_scale / 60.0
        diagonal = math.hypot(width_arcmin, height_arcmin)
        raise FrameNotSolved(
            f"no index covers the field's scale: the frame is {width_arcmin:.1f}′ × {height_arcmin:.1f}′ "
            f"(diagonal {diagonal:.1f}′ at {pixel_scale:g}″/px), smaller than the smallest quads of the installed "
            f"index files ({smallest.low_arcmin:.0f}′, {smallest.path.name}): the Tycho-2 index files serve frames "
            f"from about {smallest.low_arcmin:.0f}′ across. Install finer index files (astrometry.net's 4200/5200 "
            "series, built from 2MASS/Gaia) for small frames, or " + FIX_HINT
        )


def solve_frame(
    data: np.ndarray,
    *,
    ra_hint: float,
    dec_hint: float,
    radius_hint_deg: float = 1.0,
    pixel_scale_hint_arcsec: float | None = None,
    timeout_s: float = 60.0,
) -> WCS:
    """Plate-solve a 2-D image near (``ra_hint``, ``dec_hint``) deg; the celestial WCS (TAN-SIP).

    ``radius_hint_deg``: how far (deg) from the hint the frame's centre may be;
    ``pixel_scale_hint_arcsec``: the expected scale (arcsec/px, searched within ±15 %),
    a wide range without it; ``timeout_s``: the solver's CPU limit, and (plus a few
    seconds of grace) the wall-clock limit at which it is killed.
    Raises :class:`FrameNotSolved` with the reason and what to do.
    """
    started = time.perf_counter()
    if data.ndim != 2:
        raise FrameNotSolved(f"not a 2-D image (shape {data.shape}); send one image plane")
    height, width = data.shape
    executable = shutil.which("solve-field")
    if executable is None:
        raise FrameNotSolved(
            "astrometry.net is not installed on the server (solve-field not found: apt-get install "
            "astrometry.net astrometry-data-tycho2); " + FIX_HINT
        )
    scale_low, scale_high = scale_range(pixel_scale_hint_arcsec)
    indexes = installed_indexes()
    check_index_scale(width, height, pixel_scale_hint_arcsec, scale_high, indexes)
    sources = detect_sources(data)
    if len(sources.x) < MIN_SOURCES:
        raise FrameNotSolved(
            f"too few stars detected: {len(sources.x)} clean sources above {DETECT_SIGMA:g}σ "
            f"(at least {MIN_SOURCES} are needed); the frame may be blank, clouded out, badly out of "
            "focus or too short; check the exposure, or " + FIX_HINT
        )
    detected_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="photcal-solve-") as tmp:
        workdir = Path(tmp)
        xylist = workdir / "frame.xy"
        write_xylist(xylist, sources, width, height)
        command = [
            executable,
            str(xylist),
            "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX",
            "--width", str(width), "--height", str(height),
            "--ra", f"{ra_hint:.6f}", "--dec", f"{dec_hint:.6f}", "--radius", f"{radius_hint_deg:.4f}",
            "--scale-units", "arcsecperpix", "--scale-low", f"{scale_low:.5f}", "--scale-high", f"{scale_high:.5f}",
            "--cpulimit", str(max(1, math.ceil(timeout_s))),
            "--crpix-center", "--tweak-order", "2",
            "--no-plots", "--overwrite", "--no-remove-lines",
            "--dir", str(workdir),
            "--new-fits", "none", "--index-xyls", "none", "--rdls", "none", "--corr", "none", "--match", "none",
            "--temp-axy",
        ]  # fmt: skip
        output = run_with_deadline(command, workdir, timeout_s + KILL_GRACE_S, timeout_s)
        wcs_path = workdir / "frame.wcs"
        solve_s = time.perf_counter() - started - detected_s
        if not (workdir / "frame.solved").exists() or not wcs_path.exists():
            reason = not_solved_reason(output, width, height, scale_low, scale_high, indexes, solve_s, timeout_s)
            reason += f" (hint: RA {ra_hint:.5f}, Dec {dec_hint:+.5f}, radius {radius_hint_deg:g}°)"
            log.warning("frame_not_solved", reason=reason, n_sources=len(sources.x), solve_s=round(solve_s, 2))
            raise FrameNotSolved(reason)
        with warnings.catch_warnings():
            # the .wcs file is a header without an image (NAXIS = 0): astropy says so, harmlessly
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(fits.getheader(wcs_path))
    log.info(
        "frame_solved",
        width=width,
        height=height,
        n_detected=sources.n_detected,
        n_sources=len(sources.x),
        detect_s=round(detected_s, 3),
        solve_s=round(solve_s, 3),
        scale_arcsec=round(float(np.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix)))) * 3600.0, 4),
    )
    return wcs


def run_with_deadline(command: list[str], cwd: Path, wall_s: float, timeout_s: float) -> str:
    """Run solve-field in its own process group; kill the whole group at the wall-clock limit."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=wall_s)
    except subprocess.TimeoutExpired:
        # solve-field forks astrometry-engine: the group goes, not just the parent
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise FrameNotSolved(
            f"plate solving timed out: killed after {wall_s:.0f} s (limit {timeout_s:g} s); give a pixel-scale "
            "hint or a closer position, or " + FIX_HINT
        ) from None
    return output or ""


def not_solved_reason(
    output: str,
    width: int,
    height: int,
    scale_low: float,
    scale_high: float,
    indexes: tuple[IndexScale, ...],
    solve_s: float,
    timeout_s: float,
) -> str:
    """Why solve-field stopped without a solution, from what it printed and the frame's size."""
    if "time limit" in output.lower() or solve_s >= timeout_s:
        return (
            f"plate solving timed out: no solution within the {timeout_s:g} s limit; give a pixel-scale hint "
            "or a closer position, or " + FIX_HINT
        )
    diagonal_high = math.hypot(width, height) * scale_high / 60.0
    if indexes and diagonal_high < 1.5 * indexes[0].low_arcmin:
        return (
            f"no solution near the hint: the frame (diagonal at most {diagonal_high:.1f}′) is barely larger "
            f"than the smallest quads of the installed index files ({indexes[0].low_arcmin:.0f}′), so few "
            "index stars fit in it; install finer index files for small frames, or " + FIX_HINT
        )
    return (
        f"no solution near the hint at {scale_low:.3g}–{scale_high:.3g} arcsec/px: check that the frame is "
        "pointed at the alert and the pixel scale, or " + FIX_HINT
    )
