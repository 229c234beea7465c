"""The suites of varied fields: the committed-style suite and the realistic development/evaluation sets."""

from __future__ import annotations

import numpy as np
from astropy.coordinates import SkyCoord

from tools.photsystem import INSTRUMENT_BANDS, get_instrument_band
from tools.simfield.image import Camera
from tools.simfield.sextractor import CATALOGUES
from tools.simfield.sky import covers

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
        if dec < -32 if hemisphere == "south" else -25 < dec < 80:
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
        specs.append(
            dict(
                seed=base + i,
                ra=ra,
                dec=dec,
                instrument_band=band,
                faint=faint,
                name=name,
                sky=sky,
                camera=camera,
                formats=(fmt,),
            )
        )
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
        specs.append(
            dict(
                seed=seed * 1000 + i,
                ra=round(ra, 5),
                dec=round(dec, 5),
                instrument_band=band.name,
                faint=faint,
                name=label,
            )
        )
    return specs
