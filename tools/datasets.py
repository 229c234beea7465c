"""Synthetic data with known truth: one place for the tests, the benchmarks and the simulator's users.

Two levels, both reproducible from a seeded ``numpy.random.Generator``:

* :func:`make_field` - a frame as arrays (a :class:`~shared.arrays.SourceTable`
  and APASS-like :class:`~shared.contracts.messages.SurveyStars`), no image: stars with
  true Johnson V and B-V; the other APASS bands follow from fixed linear
  transformations. The instrument sees one of the bands with a known zero
  point and colour term; its noise is photon + background in flux, so the
  frame's 5-sigma limit is known exactly. Milliseconds per field: what the
  calibration core's unit tests and kernel benchmarks use.
* :func:`simulate_field` (from :mod:`tools.simfield`) - a CCD image rendered
  and measured by the real SExtractor, with its reference extracts and
  ``truth.json``: what the committed fields and the accuracy benchmark use.

Magnitudes in mag, fluxes in counts (instrumental mag of 1 count:
:data:`ZP_COUNTS`), positions in deg.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shared.arrays import SourceTable
from shared.contracts.messages import SurveyStars
from tools.simfield import SimulatedField, simulate_field, suite_specs

__all__ = [
    "ZP_COUNTS",
    "Field",
    "SimulatedField",
    "background_sigma_for_limit",
    "gaia_from_apass",
    "make_field",
    "observe",
    "simulate_field",
    "suite_specs",
    "true_bands",
    "true_colour",
]

ZP_COUNTS = 25.0  # instrumental mag of 1 count


def true_bands(v: np.ndarray, bv: np.ndarray) -> dict[str, np.ndarray]:
    """APASS-like bands from V and B-V (approximate Jester et al. 2005 relations)."""
    g = v + 0.60 * bv - 0.12
    r = v - 0.42 * bv + 0.11
    i = r - 0.91 * (0.3 * bv) - 0.20 + 0.02
    return {"V": v, "B": v + bv, "g'": g, "r'": r, "i'": i}


def true_colour(bands: dict[str, np.ndarray], band: str) -> np.ndarray:
    pairs = {"V": ("B", "V"), "B": ("B", "V"), "g'": ("g'", "r'"), "r'": ("g'", "r'"), "i'": ("r'", "i'")}
    a, b = pairs[band]
    return bands[a] - bands[b]


@dataclass
class Field:
    sources: SourceTable
    references: dict[str, SurveyStars]
    target_ra: float
    target_dec: float
    zp: float
    ct: float
    band: str
    inst_limit: float  # true instrumental 5-sigma limit, mag
    sigma_bkg: float
    target_true_mag: float | None
    target_true_inst: float | None
    truth_ref_index: np.ndarray  # per source, index of its reference star (-1: none)


def background_sigma_for_limit(inst_limit: float, nsigma: float = 5.0) -> float:
    """Background noise (counts) that puts the nsigma limit at inst_limit."""
    f = 10 ** (-0.4 * (inst_limit - ZP_COUNTS))
    return math.sqrt((f / nsigma) ** 2 - f)


def observe(rng: np.random.Generator, inst_true: np.ndarray, sigma_bkg: float, sat_counts: float | None = None):
    """Noisy instrumental mags/errors from true instrumental mags (photon + background noise)."""
    flux = 10 ** (-0.4 * (inst_true - ZP_COUNTS))
    if sat_counts is not None:
        # linear well below sat_counts, then the measured flux levels off at it
        flux = flux / (1.0 + (flux / sat_counts) ** 4) ** 0.25
    sig = np.sqrt(flux + sigma_bkg**2)
    fobs = flux + rng.normal(0.0, 1.0, len(flux)) * sig
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = np.where(fobs > 0, ZP_COUNTS - 2.5 * np.log10(np.where(fobs > 0, fobs, 1.0)), np.nan)
        err = np.where(fobs > 0, 1.0857 * np.sqrt(np.abs(fobs) + sigma_bkg**2) / fobs, np.nan)
    return mag, err, fobs / sig


def make_field(
    rng: np.random.Generator,
    *,
    n_stars: int = 600,
    band: str = "V",
    zp: float = 2.3,
    ct: float = 0.05,
    intrinsic: float = 0.02,
    inst_limit: float = 17.5,
    v_range: tuple[float, float] = (10.5, 19.5),
    ra0: float = 150.0,
    dec0: float = 20.0,
    half_size_deg: float = 0.12,
    pos_noise_arcsec: float = 0.2,
    n_outliers: int = 0,
    sat_counts: float | None = None,
    flag_brighter_than: float | None = None,
    target_v: float | None = 16.0,
    target_bv: float = 0.6,
    ref_err_scale: float = 1.0,
    detect_snr: float = 3.0,
) -> Field:
    """A synthetic frame and its APASS references with known truth.

    ``m_ref = m_inst + zp + ct * colour`` holds exactly (before noise) for
    the instrument's ``band``; instrumental mags are zero-pointed so that
    1 count is ``ZP_COUNTS``.
    """
    u = rng.uniform(0, 1, n_stars)
    # more faint stars than bright ones (log N ~ 0.3 m)
    lo, hi = v_range
    v = lo + np.log10(1 + u * (10 ** (0.3 * (hi - lo)) - 1)) / 0.3
    bv = np.clip(rng.normal(0.7, 0.35, n_stars), -0.2, 1.9)
    cosd = math.cos(math.radians(dec0))
    ra = ra0 + rng.uniform(-half_size_deg, half_size_deg, n_stars) / cosd
    dec = dec0 + rng.uniform(-half_size_deg, half_size_deg, n_stars)
    # keep the alert position clear of field stars (the target is the only source there)
    target_ra, target_dec = ra0 + 0.01 / cosd, dec0 - 0.015
    clear = np.hypot((ra - target_ra) * cosd, dec - target_dec) > 5.0 / 3600
    v, bv, ra, dec = v[clear], bv[clear], ra[clear], dec[clear]
    n_stars = len(v)
    bands = true_bands(v, bv)
    colour = true_colour(bands, band)
    inst_true = bands[band] - zp - ct * colour + rng.normal(0.0, intrinsic, n_stars)
    sigma_bkg = background_sigma_for_limit(inst_limit)

    # target: not in the reference catalogue
    target_inst = None
    target_true = None
    if target_v is not None:
        tb = true_bands(np.array([target_v]), np.array([target_bv]))
        target_true = float(tb[band][0])
        # the target shows the same intrinsic scatter about the relation as the stars
        target_inst = target_true - zp - ct * float(true_colour(tb, band)[0]) + rng.normal(0.0, intrinsic)

    all_inst = inst_true if target_inst is None else np.append(inst_true, target_inst)
    mag, err, snr = observe(rng, all_inst, sigma_bkg, sat_counts)
    n_all = len(all_inst)
    src_ra_true = ra if target_inst is None else np.append(ra, target_ra)
    src_dec_true = dec if target_inst is None else np.append(dec, target_dec)
    jitter = pos_noise_arcsec / 3600.0
    src_ra = src_ra_true + rng.normal(0, jitter, n_all) / cosd
    src_dec = src_dec_true + rng.normal(0, jitter, n_all)
    flags = np.zeros(n_all, dtype=np.int32)
    if flag_brighter_than is not None:
        flags[all_inst < flag_brighter_than] |= 4
    if n_outliers:
        cand = np.flatnonzero((inst_true < inst_limit - 2.5) & (inst_true > inst_limit - 7))
        bad = rng.choice(cand, size=min(n_outliers, len(cand)), replace=False)
        mag[bad] += rng.choice([-1, 1], len(bad)) * rng.uniform(0.3, 1.0, len(bad))
    detected = (snr > detect_snr) & np.isfinite(mag)
    keep = np.flatnonzero(detected)
    truth_ref_index = np.where(keep < n_stars, keep, -1)
    sources = SourceTable.from_columns(src_ra[keep], src_dec[keep], mag[keep], err[keep], flags[keep])

    # APASS reference: noise grows towards the faint end; NaN where APASS has nothing
    mags: dict[str, np.ndarray] = {}
    errs: dict[str, np.ndarray] = {}
    for name, true in bands.items():
        e = ref_err_scale * (0.015 + 0.04 * 10 ** (0.4 * (true - 16.0)))
        m = true + rng.normal(0, 1, n_stars) * e
        missing = true > 18.5
        mags[name] = np.where(missing, np.nan, m)
        errs[name] = np.where(missing, np.nan, e)
    refs = {"APASS": SurveyStars(survey="APASS", ra=ra, dec=dec, mags=mags, errs=errs)}
    return Field(
        sources=sources,
        references=refs,
        target_ra=target_ra,
        target_dec=target_dec,
        zp=zp,
        ct=ct,
        band=band,
        inst_limit=inst_limit,
        sigma_bkg=sigma_bkg,
        target_true_mag=target_true,
        target_true_inst=target_inst,
        truth_ref_index=truth_ref_index,
    )


def gaia_from_apass(rng: np.random.Generator, stars: SurveyStars) -> SurveyStars:
    """A Gaia-like survey for the same stars: G far from V (large colour term in BP-RP)."""
    v = np.asarray(stars.mags["V"])
    bv = np.asarray(stars.mags["B"]) - v
    bprp = 1.25 * bv + 0.05
    g = v - 0.05 - 0.45 * bprp
    bp = g + 0.35 * bprp + 0.05
    rp = bp - bprp
    mags, errs = {}, {}
    for name, m in (("G", g), ("BP", bp), ("RP", rp)):
        e = np.full(len(m), 0.003)
        mags[name] = m + rng.normal(0, 0.003, len(m))
        errs[name] = e
    return SurveyStars(survey="GAIA", ra=stars.ra, dec=stars.dec, mags=mags, errs=errs)
