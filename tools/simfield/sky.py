"""The simulated sky: star and galaxy counts, sky types, and the surveys' published reference extracts."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from shared.contracts.surveys import get_survey
from tools.photsystem import draw_colours, draw_reddened_colours, survey_magnitudes
from tools.simfield.image import Camera

#: simplified SDSS footprint: the northern sky plus the equatorial stripes
SDSS_DEC_MIN = -5.0


#: stars are drawn from this V range (mag); fainter ones are below any limit
V_RANGE = (7.0, 23.5)


#: log10 slope of the cumulative star counts N(<V)
COUNT_SLOPE = 0.25


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
    "APASS": SurveySpec(
        "V",
        (7.0, 17.0),
        {"B": 17.8, "V": 17.3, "g'": 17.6, "r'": 17.2, "i'": 16.8},
        floor=0.02,
        astrometry=0.15,
        missing=0.05,
    ),
    "PS1": SurveySpec(
        "r",
        (11.5, 22.3),
        {"g": 22.6, "r": 22.4, "i": 22.2, "z": 21.5, "y": 20.6},
        floor=0.01,
        astrometry=0.03,
        saturation=13.5,
    ),
    "GAIA": SurveySpec(
        "G", (5.0, 20.8), {"G": 22.8, "BP": 20.6, "RP": 20.1}, floor=0.0005, astrometry=0.002, decimals=4, missing=0.02
    ),
    "SDSS": SurveySpec(
        "r",
        (13.0, 22.5),
        {"u": 22.0, "g": 22.8, "r": 22.5, "i": 21.9, "z": 20.6},
        floor=0.015,
        astrometry=0.08,
        saturation=14.0,
    ),
    # Gaia XP synthetic photometry (GSPC): stars with Gaia G < 17.65, all sky;
    # a band only where its flux S/N > 30 (error < 0.036 mag), which empties
    # U and u for most faint or red stars
    "GaiaSP": SurveySpec(
        "G",
        (5.0, 17.65),
        {"U": 17.6, "B": 19.6, "V": 20.2, "R": 20.6, "I": 20.4, "u": 18.0, "g": 20.0, "r": 20.5, "i": 20.3, "z": 19.6},
        floor=0.006,
        astrometry=0.002,
        decimals=4,
        missing=0.0,
        select_survey="GAIA",
        max_err=0.0362,
    ),
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
        SkyType(
            "sparse",
            "high Galactic latitude: latitude-law density, DR3-like Gaia BP/RP gaps, blends",
            blend_arcsec=REAL_BLENDS,
            gaia_bp_rp_missing=True,
            stamp_margin=3.0,
        ),
        SkyType(
            "dense",
            "Galactic plane: 50k-200k stars/deg^2 to V 21, reddened, crowded, blended",
            density=(50_000.0, 200_000.0),
            count_slope=0.30,
            reddening=(0.3, 1.0),
            blend_arcsec=REAL_BLENDS,
            gaia_bp_rp_missing=True,
            crowding_depth_loss=0.8,
            stamp_margin=3.0,
            transient_clear_arcsec=4.0,
            sextractor_args=("-DEBLEND_MINCONT", "0.001"),
        ),
    )
}


def get_sky_type(name: str | SkyType) -> SkyType:
    if isinstance(name, SkyType):
        return name
    try:
        return SKY_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown sky type {name!r}; known: {', '.join(SKY_TYPES)}") from None


def stellar_density(ra: float, dec: float) -> float:
    """Stars per deg^2 brighter than V=17 (crude galactic-latitude law)."""
    b = SkyCoord(ra, dec, unit="deg").galactic.b.deg
    return max(400.0, 180.0 / max(np.sin(np.radians(abs(b))), 0.15) ** 1.5)


def draw_magnitudes(rng: np.random.Generator, n17: float, area: float, slope: float = COUNT_SLOPE) -> np.ndarray:
    """V magnitudes from cumulative counts ``N(<V) = n17 10^(a (V-17))``, ``a`` = ``slope``."""
    lo, hi = (10 ** (slope * (v - 17.0)) for v in V_RANGE)
    n = rng.poisson(n17 * area * (hi - lo))
    return 17.0 + np.log10(lo + rng.random(n) * (hi - lo)) / slope


def n17_for_density(density: float, slope: float) -> float:
    """``n17`` (stars/deg^2 with V < 17) giving ``density`` stars/deg^2 brighter than :data:`DENSITY_DEPTH_V`."""
    return density / 10 ** (slope * (DENSITY_DEPTH_V - 17.0))


def draw_stars(rng, wcs: WCS, camera: Camera, radius: float, n17: float, sky: SkyType | None = None) -> pd.DataFrame:
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
    return pd.DataFrame(
        {
            "kind": "galaxy",
            "ra": ra,
            "dec": dec,
            "x_image": x,
            "y_image": y,
            "V": rng.uniform(15.5, 19.0, n),
            "BV": rng.uniform(0.6, 1.1, n),
            "r_eff": rng.uniform(1.5, 4.0, n) / camera.pixel_scale,
            "axis_ratio": rng.uniform(0.35, 1.0, n),
            "pa": rng.uniform(0, 180, n),
        }
    )


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
    step = 10.0**-spec.decimals
    return np.where(empty, np.nan, mag), np.where(empty, np.nan, np.maximum(quoted, step))


def reference_extract(
    rng,
    stars: pd.DataFrame,
    survey: str,
    *,
    mags=None,
    spec: SurveySpec | None = None,
    keep: np.ndarray | None = None,
    return_index: bool = False,
):
    """The survey's VizieR-style extract of ``stars`` (columns from shared.contracts.surveys).

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
    chosen = (sel_mag >= spec.mag_range[0]) & (sel_mag <= spec.mag_range[1]) & covers(survey, stars.dec.to_numpy())
    if keep is not None:
        chosen &= keep
    idx = np.flatnonzero(chosen)
    dec = stars.dec.to_numpy()[idx]
    jitter = rng.normal(0.0, spec.astrometry / 3600.0, (2, idx.size))
    out = {
        s.ra_column: np.round(stars.ra.to_numpy()[idx] + jitter[0] / np.cos(np.radians(dec)), 7),
        s.dec_column: np.round(dec + jitter[1], 7),
    }
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
            mags = {
                k: (-2.5 * np.log10(10 ** (-0.4 * m) * (1.0 + xp_excess)) if k[0] == "GaiaSP" else m)
                for k, m in mags.items()
            }
            keep = (xp_excess <= sky.gaiasp_max_blend) & (True if keep is None else keep)
        if survey == "GAIA" and sky.gaia_bp_rp_missing:
            # DR3 quotes BP/RP mags to G ~21 (noisy); which ones are absent is gaia_missing_bp_rp's part
            spec = replace(spec, depth={**spec.depth, **GAIA_XP_DEPTH})
        if survey in ("PS1", "SDSS") and sky.crowding_depth_loss:
            loss = sky.crowding_depth_loss
            spec = replace(
                spec,
                mag_range=(spec.mag_range[0], spec.mag_range[1] - loss),
                depth={b: d - loss for b, d in spec.depth.items()},
            )
        df, idx = reference_extract(rng, stars, survey, mags=mags, spec=spec, keep=keep, return_index=True)
        if survey == "GAIA" and sky.gaia_bp_rp_missing and len(df):
            lack = gaia_missing_bp_rp(rng, true[("GAIA", "G")][idx], xp_excess[idx])
            s = get_survey("GAIA")
            for b in ("BP", "RP"):
                band = s.band(b)
                df.loc[lack, [band.column, band.error_column]] = np.nan
        out[survey] = df
    return out


def n17_density(n17: float, slope: float = COUNT_SLOPE) -> float:
    """Stars/deg^2 brighter than :data:`DENSITY_DEPTH_V` for a given ``n17``."""
    return n17 * 10 ** (slope * (DENSITY_DEPTH_V - 17.0))
