"""Dense reference catalogues, simulated at catalogue level, for the dense-cone bench and tests.

Stars uniform in a cone with the V counts and colours of tools/simfield.py
(``N(<V) ~ 10^(0.25 (V - 17))`` over V 7-23.5, its B-V mixture), published
per survey by ``simfield.reference_extract`` (each survey's columns, depth,
errors, saturation and gaps as in SURVEY_SPECS). ``total`` is the number of
reference stars of all surveys together, as the catalogue service counts
them in a cone: a low-latitude 30' frame has 50,000-200,000.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tools.photsystem import draw_colours
from tools.simfield import COUNT_SLOPE, LEGACY_SURVEYS, V_RANGE, reference_extract


def _positions(rng, n: int, ra0: float, dec0: float, radius: float, avoid_half_width: float | None):
    """Uniform in the cone; outside the centred square of ``avoid_half_width`` deg if given."""
    x = np.empty(0)
    y = np.empty(0)
    while len(x) < n:
        r = radius * np.sqrt(rng.random(2 * n))
        phi = rng.uniform(0.0, 2 * np.pi, 2 * n)
        px, py = r * np.cos(phi), r * np.sin(phi)
        if avoid_half_width is not None:
            keep = (np.abs(px) > avoid_half_width) | (np.abs(py) > avoid_half_width)
            px, py = px[keep], py[keep]
        x, y = np.concatenate([x, px]), np.concatenate([y, py])
    x, y = x[:n], y[:n]
    dec = dec0 + y
    return (ra0 + x / np.cos(np.radians(dec))) % 360.0, dec


def _stars(rng, n: int, ra0: float, dec0: float, radius: float, avoid: float | None) -> pd.DataFrame:
    lo, hi = (10 ** (COUNT_SLOPE * (v - 17.0)) for v in V_RANGE)
    v = 17.0 + np.log10(lo + rng.random(n) * (hi - lo)) / COUNT_SLOPE
    ra, dec = _positions(rng, n, ra0, dec0, radius, avoid)
    return pd.DataFrame({"kind": "star", "ra": ra, "dec": dec, "V": v, "BV": draw_colours(rng, n)})


def dense_references(
    ra0: float,
    dec0: float,
    radius_deg: float,
    total: int,
    *,
    seed: int = 0,
    surveys: tuple[str, ...] = LEGACY_SURVEYS,
    avoid_half_width_deg: float | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """VizieR-style extracts (survey -> DataFrame) with about ``total`` stars of all surveys together,
    and the true stars they were drawn from (ra, dec, V, BV).

    ``avoid_half_width_deg``: leave the centred square of that half-width empty
    (the frame), so that the extra stars change nothing a frame there can match.
    """
    rng = np.random.default_rng(seed)
    pilot = _stars(rng, 20_000, ra0, dec0, radius_deg, avoid_half_width_deg)
    per_star = sum(len(reference_extract(rng, pilot, s)) for s in surveys) / len(pilot)
    stars = _stars(rng, int(round(total / max(per_star, 1e-9))), ra0, dec0, radius_deg, avoid_half_width_deg)
    return {s: reference_extract(rng, stars, s) for s in surveys}, stars


#: the simulated frame's photometry: m_inst = V - ZEROPOINT + COLOUR_TERM * (B-V) + noise
ZEROPOINT = 25.0
COLOUR_TERM = 0.05


def frame_catalogue(
    stars: pd.DataFrame,
    ra0: float,
    dec0: float,
    half_width_deg: float,
    limit_v: float,
    *,
    transient: tuple[float, float, float] | None = None,
    seed: int = 1,
) -> bytes:
    """A SExtractor ASCII_HEAD catalogue of the stars inside the frame (a square around the centre)
    down to ``limit_v``, errors growing to ~0.2 mag at the limit; plus ``transient`` (ra, dec, V)."""
    rng = np.random.default_rng(seed)
    x = ((stars.ra.to_numpy() - ra0 + 180.0) % 360.0 - 180.0) * np.cos(np.radians(stars.dec.to_numpy()))
    y = stars.dec.to_numpy() - dec0
    inside = (np.abs(x) < half_width_deg) & (np.abs(y) < half_width_deg) & (stars.V.to_numpy() < limit_v)
    ra, dec, v, bv = (stars[c].to_numpy()[inside] for c in ("ra", "dec", "V", "BV"))
    if transient is not None:
        ra, dec = np.append(ra, transient[0]), np.append(dec, transient[1])
        v, bv = np.append(v, transient[2]), np.append(bv, 0.6)
    err = 0.005 + 0.2 * 10 ** (0.4 * (v - limit_v))
    mag = v - ZEROPOINT + COLOUR_TERM * bv + rng.normal(0.0, err)
    # positions as a good WCS gives them: 0.2" scatter
    dec_m = dec + rng.normal(0.0, 0.2 / 3600, len(dec))
    ra_m = ra + rng.normal(0.0, 0.2 / 3600, len(ra)) / np.cos(np.radians(dec))
    header = "#   1 MAG_AUTO\n#   2 MAGERR_AUTO\n#   3 ALPHA_J2000\n#   4 DELTA_J2000\n#   5 FLAGS\n"
    rows = "\n".join(f"{m:9.4f} {e:7.4f} {a:12.7f} {d:12.7f}   0" for m, e, a, d in zip(mag, err, ra_m, dec_m))
    return (header + rows + "\n").encode()


def write_extracts(extracts: dict[str, pd.DataFrame], folder: Path, prefix: str = "dense") -> dict[str, Path]:
    """One CSV per survey, as `photcal catalog load` reads them."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for survey, df in extracts.items():
        path = folder / f"{prefix}_{survey}.csv"
        df.to_csv(path, index=False)
        out[survey] = path
    return out
