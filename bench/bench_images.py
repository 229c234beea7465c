"""Issue 18: which extractor for uploaded frames -- sep, photutils or the source-extractor binary --
by speed and accuracy against the simulator's truth; and the time astrometry.net takes to plate-solve.

Frames are simulated with tools/simfield's camera, PSF and noise (``simulate_sky_frame``), but
their bright stars are the real sky's: the Tycho-2 stars of the installed astrometry.net index
files at their true positions and V_T magnitudes, replacing the simulator's random stars brighter
than Tycho-2's depth, so that plate solving works on them as on a real frame. Fainter stars,
galaxies, sky, noise, hot pixels and saturation are the simulator's.

Per frame (sparse and dense, 1k x 1k and 2k x 2k; a 4k x 4k for speed only), each extractor runs
background + detection + fixed-aperture photometry (the same aperture diameter, 2 x FWHM):
1. wall time per frame (median of ``BENCH_IMAGES_ROUNDS``);
2. completeness: the fraction of the true stars detected within 1.5 px, per magnitude bin
   (m_sys, relative to the frame's 5-sigma limit);
3. the scatter (robust sigma, 1.4826 MAD) of aperture magnitude - true m_inst for bright
   unsaturated isolated stars, after removing the median offset (the aperture correction).
Then ``solve_frame`` on each frame (WCS stripped): its wall time and the solved WCS's error.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

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


def main() -> None:
    """Plate solving only so far: solve time and WCS error per simulated frame (extractor comparison to come)."""
    from services.photometry.imaging.astrometry import solve_frame

    print("frame | px | arcsec/px | solve s | median err arcsec | worst corner arcsec")
    for seed, ra, dec, pixels, scale, rotation in (
        (11, 150.0, 20.0, 1440, 1.25, 1.5),
        (13, 210.0, -40.0, 1440, 2.5, 35.0),
        (15, 100.0, 5.0, 2048, 1.0, 0.0),
    ):
        frame = simulate_sky_frame(seed, ra, dec, width=pixels, height=pixels, pixel_scale=scale, rotation=rotation)
        times, error = [], {}
        for _ in range(ROUNDS):
            started = time.perf_counter()
            wcs = solve_frame(frame.image, ra_hint=ra, dec_hint=dec, pixel_scale_hint_arcsec=scale)
            times.append(time.perf_counter() - started)
            error = wcs_error_arcsec(wcs, frame)
        print(
            f"{ra:.0f},{dec:+.0f} | {pixels} | {scale} | {statistics.median(times):.2f} | "
            f"{error['median']:.3f} | {error['corners']:.3f}"
        )


ROUNDS = int(os.environ.get("BENCH_IMAGES_ROUNDS", "3"))
