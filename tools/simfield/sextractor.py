"""The real ``source-extractor`` run on a simulated image, and its catalogue matched to the truth."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

SEXTRACTOR_DIR = Path(__file__).parent.with_name("sextractor")  # tools/sextractor/, beside the package


#: SExtractor products: name -> (CATALOG_TYPE, parameter file)
CATALOGUES = {
    "sex_ascii_head.cat": ("ASCII_HEAD", "default.param"),
    "sex_cpcs.cat": ("ASCII_HEAD", "cpcs.param"),
    "sex_fits1.fits": ("FITS_1.0", "default.param"),
    "sex_ldac.fits": ("FITS_LDAC", "default.param"),
}


#: SExtractor memory for crowded or large frames (the defaults overflow: "object stack full")
BIG_FRAME_MEMORY = ("-MEMORY_OBJSTACK", "60000", "-MEMORY_PIXSTACK", "6000000", "-MEMORY_BUFSIZE", "4096")


def run_sextractor(
    image: Path, out_dir: Path, seeing: float, aperture_px: float, extra_args: tuple[str, ...] = (), formats=None
) -> dict[str, Path]:
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
        cmd = [
            exe,
            str(image),
            "-c",
            str(SEXTRACTOR_DIR / "default.sex"),
            "-CATALOG_NAME",
            str(path),
            "-CATALOG_TYPE",
            cat_type,
            "-PARAMETERS_NAME",
            str(SEXTRACTOR_DIR / params),
            "-FILTER_NAME",
            str(SEXTRACTOR_DIR / "default.conv"),
            "-STARNNW_NAME",
            str(SEXTRACTOR_DIR / "default.nnw"),
            "-SEEING_FWHM",
            f"{seeing:.3f}",
            "-PHOT_APERTURES",
            f"{aperture_px:.2f}",
            *extra_args,
        ]
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
    stars = objects[(objects.kind == "star") & ~objects.saturated & (objects.m_sys < truth["limit_mag_5sigma"] - 4.0)]
    d, j = nearest(stars.x_image.to_numpy(), stars.y_image.to_numpy(), x, y)
    ok = (d < 1.0) & (np.asarray(cat["FLAGS"])[j] == 0)
    offset = mag[j][ok] - stars.m_inst.to_numpy()[ok]
    t = truth["transient"]
    dt, jt = nearest(np.array([t["x_image"]]), np.array([t["y_image"]]), x, y)
    found = bool(dt[0] * pixel_scale < 1.5)
    median = float(np.median(offset)) if offset.size else np.nan
    mad = float(np.median(np.abs(offset - median))) if offset.size else np.nan
    return {
        "n_sources": int(len(cat)),
        "n_bright_stars": int(ok.sum()),
        "mag_auto_minus_m_inst_median": round_or_none(median),
        "mag_auto_minus_m_inst_mad": round_or_none(mad),
        "transient_detected": found,
        "transient_mag_auto": round_or_none(float(mag[jt[0]]) if found else np.nan),
    }


def round_or_none(value: float, decimals: int = 4) -> float | None:
    return None if not np.isfinite(value) else round(value, decimals)


def nearest(x0: np.ndarray, y0: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (x0, y0), distance to and index of the nearest (x, y) (px)."""
    if len(x) == 0:
        return np.full(len(x0), np.inf), np.zeros(len(x0), dtype=int)
    d = np.hypot(x0[:, None] - x[None, :], y0[:, None] - y[None, :])
    j = np.argmin(d, axis=1)
    return d[np.arange(len(x0)), j], j
