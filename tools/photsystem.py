"""A toy but self-consistent photometric system for simulated fields.

Every star is described by two numbers: its true Johnson ``V`` magnitude and
its true ``B-V`` colour (both in mag). Every band of every reference survey in
:mod:`shared.contracts.surveys` is a fixed, smooth, mildly non-linear function of
``(V, B-V)``. The coefficients are rounded versions of published
transformations, which is all that matters here: the simulated sky must be
*consistent*, not exact.

* APASS B, V: Johnson by definition; APASS g', r', i' and SDSS g, r, i from
  Jester et al. (2005, AJ 130, 873), with an empirical main-sequence
  ``R-I(B-V)`` and ``U-B(B-V)`` relation;
* SDSS z and u: ``i-z`` from ``r-i``; ``u-g = 1.28 (U-B) + 1.13`` (Jester);
* PS1 from SDSS with Tonry et al. (2012, ApJ 750, 99) linear terms in ``g-r``;
* Gaia DR3: ``G-V`` polynomial in ``B-V`` (Gaia DR3 documentation,
  Riello et al. 2021, table C.2) and ``BP-RP`` as a quadratic in ``B-V``;
* GaiaSP (Gaia XP synthetic photometry, standardised): the *true* standard
  bands, Johnson-Cousins ``U B V R I`` and SDSS ``u g r i z``. ``V-R``
  (Cousins) is a main-sequence relation in ``B-V`` (:func:`v_minus_r_cousins`,
  close to the dwarf sequence of Bessell 1990 / Pecaut & Mamajek 2013),
  ``R-I`` is :func:`r_minus_i_johnson`, ``U = B + (U-B)``; ``ugriz`` are the
  SDSS ones. So GaiaSP ``B V`` are APASS's and GaiaSP ``g r i`` differ from
  APASS ``g' r' i'`` by constants only.

The instrument bands "R" and "I" were built on APASS r', i' before the toy
system had Cousins R and I; they stay so (committed fields depend on them),
and the Cousins relations were chosen so that the instrument R and I are
close to true Cousins R and I: with GaiaSP they calibrate with colour terms
-0.09 (in V-R) and -0.02 (in R-I) instead of +0.14 and +0.25.

*Instrument bands* (:data:`INSTRUMENT_BANDS`) model a CCD filter: each is one
survey band plus a linear colour term in that band's colour (the colour pair
:class:`shared.contracts.surveys.Band` names). The survey band it is built from is the
"true best filter" a calibration should pick. Convention, used throughout::

    m_ref = m_sys + colour_term * colour

where ``m_ref`` is the survey magnitude, ``colour`` the survey colour (e.g.
APASS ``B-V``) and ``m_sys`` the magnitude in the instrument's own system
(all in mag). An image's instrumental magnitude is ``m_sys - zeropoint``.

The clear band ("CV", unfiltered). A filtered CCD realises a standard
passband, so its truth is that band. An unfiltered CCD realises none: its
response (atmosphere x optics x QE, for a thinned back-illuminated chip
roughly 350-1000 nm, peak ~600 nm) is as close to Gaia G (itself the
response of thinned back-illuminated CCDs, 330-1050 nm) as to a broad R:
unfiltered photometry has long been reduced to R (KAIT: Riess et al. 1999,
AJ 118, 2675; MASTER's "W ~ 0.2B + 0.8R", Lipunov et al. 2010; AAVSO's
"CR" convention) and, since Gaia, to G. Here it is G + 0.10 (BP-RP), which
the toy system puts within a 0.02 mag colour curvature of Sloan r. Both
are right answers, and which one a calibration should use depends on the
field, so the truth for a non-standard band is the *set* of survey bands
that calibrate it to within :data:`CLEAR_TOLERANCE` for a target of
typical colour (:func:`transfer_systematic`, :func:`acceptable_bands`):
{APASS r', SDSS r, PS1 r, Gaia G} for CV (19-33 mmag; the next, APASS V,
104 mmag).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from shared.contracts.surveys import get_survey

#: (survey, band) -> magnitude array
Magnitudes = dict[tuple[str, str], np.ndarray]

#: B-V range over which the transformations are meant to hold (mag)
COLOUR_RANGE = (0.2, 1.6)
#: B-V range of the simulated transients (tools.simfield.make_transient), mag
TARGET_COLOUR_RANGE = (0.2, 1.0)
#: a survey band calibrates a non-standard (clear) instrument band acceptably
#: if the systematic error it leaves a target of typical colour is at most this, mag
CLEAR_TOLERANCE = 0.05
#: a GaiaSP band identifies a filtered band right if it calibrates it no worse
#: than the band the filter is built from, give or take this (mag)
SAME_BAND_SLACK = 0.001
#: surveys whose bands are far broader than a filter's: never a filtered band's right identification
BROAD_SURVEYS = frozenset({"GAIA"})


def r_minus_i_johnson(bv: np.ndarray) -> np.ndarray:
    """Cousins ``R-I`` of a main-sequence star of colour ``B-V`` (mag)."""
    return -0.03 + 0.45 * bv + 0.12 * bv**2


def u_minus_b_johnson(bv: np.ndarray) -> np.ndarray:
    """Johnson ``U-B`` of a main-sequence star (Balmer-jump shaped; mag)."""
    return -0.05 - 0.30 * bv + 1.45 * bv**2 - 0.45 * bv**3


def v_minus_r_cousins(bv: np.ndarray) -> np.ndarray:
    """Cousins ``V-R`` of a main-sequence star of colour ``B-V`` (mag)."""
    return -0.02 + 0.56 * bv + 0.03 * bv**2


def sdss_magnitudes(v: np.ndarray, bv: np.ndarray) -> dict[str, np.ndarray]:
    """SDSS ``u g r i z`` (AB-ish, mag) from Johnson ``V`` and ``B-V``."""
    g = v + 0.60 * bv - 0.12
    r = v - 0.42 * bv + 0.11
    r_i = r_minus_i_johnson(bv) - 0.21
    i = r - r_i
    z = i - (-0.02 + 0.60 * r_i + 0.08 * r_i**2)
    u = g + 1.28 * u_minus_b_johnson(bv) + 1.13
    return {"u": u, "g": g, "r": r, "i": i, "z": z}


def apass_magnitudes(v: np.ndarray, bv: np.ndarray) -> dict[str, np.ndarray]:
    """APASS ``B V g' r' i'`` (mag); its Sloan bands sit ~0.01 off SDSS."""
    sdss = sdss_magnitudes(v, bv)
    return {
        "B": v + bv,
        "V": v + 0.0 * bv,
        "g'": sdss["g"] + 0.010,
        "r'": sdss["r"] - 0.005,
        "i'": sdss["i"] + 0.008,
    }


def ps1_magnitudes(v: np.ndarray, bv: np.ndarray) -> dict[str, np.ndarray]:
    """Pan-STARRS1 ``g r i z y`` (mag) via Tonry et al. (2012) from SDSS."""
    s = sdss_magnitudes(v, bv)
    x = s["g"] - s["r"]
    return {
        "g": s["g"] - 0.012 - 0.139 * x,
        "r": s["r"] + 0.000 - 0.007 * x,
        "i": s["i"] + 0.004 - 0.014 * x,
        "z": s["z"] - 0.013 + 0.039 * x,
        "y": s["z"] + 0.031 - 0.106 * x,
    }


def gaia_magnitudes(v: np.ndarray, bv: np.ndarray) -> dict[str, np.ndarray]:
    """Gaia DR3 ``G BP RP`` (Vega, mag) from Johnson ``V`` and ``B-V``."""
    g = v - 0.02704 + 0.01424 * bv - 0.2156 * bv**2 + 0.01426 * bv**3
    bp_rp = 0.06 + 1.15 * bv + 0.05 * bv**2
    bp = g + 0.40 * bp_rp + 0.02 * bp_rp**2 - 0.02
    return {"G": g, "BP": bp, "RP": bp - bp_rp}


def gaiasp_magnitudes(v: np.ndarray, bv: np.ndarray) -> dict[str, np.ndarray]:
    """GaiaSP Johnson-Cousins ``U B V R I`` (Vega) and SDSS ``u g r i z`` (mag).

    The standardised XP synthetic photometry: the true standard magnitudes.
    """
    b = v + bv
    r = v - v_minus_r_cousins(bv)
    out = {"U": b + u_minus_b_johnson(bv), "B": b, "V": v + 0.0 * bv, "R": r, "I": r - r_minus_i_johnson(bv)}
    out.update(sdss_magnitudes(v, bv))
    return out


_SURVEY_MODELS = {
    "APASS": apass_magnitudes,
    "PS1": ps1_magnitudes,
    "GAIA": gaia_magnitudes,
    "SDSS": sdss_magnitudes,
    "GaiaSP": gaiasp_magnitudes,
}


def survey_magnitudes(v, bv) -> Magnitudes:
    """Every band of every survey for stars of true ``V`` and ``B-V`` (mag).

    Returns ``{(survey, band): array}`` keyed by the names in
    :mod:`shared.contracts.surveys` (e.g. ``("APASS", "g'")``, ``("GAIA", "BP")``).
    """
    v = np.asarray(v, dtype=float)
    bv = np.asarray(bv, dtype=float)
    out: Magnitudes = {}
    for survey, model in _SURVEY_MODELS.items():
        for band, mag in model(v, bv).items():
            out[(survey, band)] = mag
    return out


def survey_colour(mags: Magnitudes, survey: str, band: str) -> np.ndarray:
    """The colour (mag) :mod:`shared.contracts.surveys` pairs with ``survey``/``band``."""
    blue, red = get_survey(survey).band(band).colour
    return mags[(survey, blue)] - mags[(survey, red)]


@dataclass(frozen=True)
class InstrumentBand:
    """A CCD filter: a survey band plus a linear colour term.

    ``zp_1e`` is the magnitude giving 1 e-/s at the detector and ``sky_mag``
    the dark-sky surface brightness (mag/arcsec^2), both typical of a 0.5 m
    telescope; the simulator perturbs them per field.
    """

    name: str
    description: str
    survey: str
    band: str
    colour_term: float
    zp_1e: float
    sky_mag: float
    #: a standard passband (a filter); False for the unfiltered clear band
    standard: bool = True
    #: the survey band that is the truth where ``survey`` has no data (the
    #: z' filter south of PS1's Dec -30: GaiaSP z, see :func:`best_available`)
    fallback: tuple[str, str] | None = None

    @property
    def colour_name(self) -> str:
        return get_survey(self.survey).band(self.band).colour_name

    def reference(self, mags: Magnitudes) -> np.ndarray:
        """The true-best survey magnitude ``m_ref`` (mag)."""
        return mags[(self.survey, self.band)]

    def colour(self, mags: Magnitudes) -> np.ndarray:
        return survey_colour(mags, self.survey, self.band)

    def system_magnitude(self, mags: Magnitudes) -> np.ndarray:
        """``m_sys = m_ref - colour_term * colour`` (mag)."""
        return self.reference(mags) - self.colour_term * self.colour(mags)


INSTRUMENT_BANDS: dict[str, InstrumentBand] = {
    b.name: b
    for b in (
        InstrumentBand("B", "Johnson B on a CCD", "APASS", "B", -0.08, 21.6, 22.0),
        InstrumentBand("V", "Johnson V on a CCD", "APASS", "V", 0.04, 22.0, 21.0),
        InstrumentBand("R", "Cousins R on a CCD", "APASS", "r'", 0.14, 22.2, 20.6),
        InstrumentBand("I", "Cousins I on a CCD", "APASS", "i'", 0.25, 21.6, 19.6),
        InstrumentBand("g", "Sloan g'", "APASS", "g'", -0.06, 22.3, 21.8),
        InstrumentBand("r", "Sloan r'", "APASS", "r'", 0.03, 22.3, 20.9),
        InstrumentBand("i", "Sloan i'", "APASS", "i'", 0.05, 22.0, 20.2),
        InstrumentBand("z", "Sloan z'", "PS1", "z", -0.05, 21.2, 19.3, fallback=("GaiaSP", "z")),
        InstrumentBand("CV", "clear, unfiltered", "GAIA", "G", 0.10, 23.0, 20.6, standard=False),
    )
}


def get_instrument_band(name: str) -> InstrumentBand:
    try:
        return INSTRUMENT_BANDS[name]
    except KeyError:
        raise KeyError(f"unknown instrument band {name!r}; known: {', '.join(INSTRUMENT_BANDS)}") from None


def _colour_samples(reddening: tuple[float, float] | None, n_stars: int) -> tuple[np.ndarray, np.ndarray]:
    """``B-V`` (mag) of a field's stars and of its transients, unreddened or behind ``E(B-V)`` in ``reddening``.

    The stars as the simulator draws them (:func:`draw_colours`, or
    :func:`draw_reddened_colours` for a Galactic-plane sky; fixed seed);
    the targets' intrinsic ``B-V`` uniform in :data:`TARGET_COLOUR_RANGE`
    plus a reddening uniform in ``reddening``, as
    :func:`tools.simfield.field.make_transient` draws them.
    """
    rng = np.random.default_rng(0)
    bv_t = np.linspace(*TARGET_COLOUR_RANGE, 81)
    if reddening is None:
        return draw_colours(rng, n_stars), bv_t
    dust = np.linspace(reddening[0], reddening[1], 21)
    bv_t = np.minimum((bv_t[:, None] + dust[None, :]).ravel(), REDDENED_COLOUR_RANGE[1])
    return draw_reddened_colours(rng, n_stars, reddening), bv_t


@functools.lru_cache(maxsize=4096)
def transfer_systematic(
    band: InstrumentBand,
    survey: str,
    name: str,
    n_stars: int = 20000,
    reddening: tuple[float, float] | None = None,
) -> float:
    """Systematic error (mag, rms) of calibrating ``band`` with survey band ``name``.

    The ideal calibration (infinitely many stars, no noise) fits
    ``m_ref - m_sys = ZP + CT * colour`` over field stars in that survey
    band's own colour; a target of unknown colour is calibrated at the
    stars' median colour. The rms over targets (:func:`_colour_samples`) of
    (calibrated - true magnitude in that band) is returned: the colour term
    times the target's colour offset plus what a straight line in colour
    cannot describe. ``reddening``: the ``E(B-V)`` range (mag) of the
    field's sky, for stars and targets seen through the Galactic plane's
    dust (None: high latitude), where the same filter may be calibrated
    best by another band than at high latitude.
    """
    bv_s, bv_t = _colour_samples(reddening, n_stars)
    ms = survey_magnitudes(np.zeros_like(bv_s), bv_s)
    mt = survey_magnitudes(np.zeros_like(bv_t), bv_t)
    c_s = survey_colour(ms, survey, name)
    design = np.column_stack([np.ones_like(c_s), c_s])
    zp, ct = np.linalg.lstsq(design, ms[(survey, name)] - band.system_magnitude(ms), rcond=None)[0]
    err = band.system_magnitude(mt) + zp + ct * np.median(c_s) - mt[(survey, name)]
    return float(np.sqrt(np.mean(err**2)))


def best_available(band: InstrumentBand, surveys=None) -> tuple[str, str]:
    """The survey band that is the truth for ``band`` where only ``surveys`` have data.

    The band it is built from when its survey is there (default: every
    survey); else its :attr:`InstrumentBand.fallback`. The one fallback
    today: a z' frame south of Dec -30 (no PS1, no SDSS) is calibrated
    against GaiaSP z (the SDSS z standardised from Gaia XP spectra; 15 mmag
    systematic for a target of typical colour, :func:`transfer_systematic`,
    against 38 mmag for GaiaSP Cousins I and 114 for Gaia RP). APASS has
    no z, and Gaia RP is a far broader band.
    """
    if surveys is None or band.survey in surveys or band.fallback is None:
        return band.survey, band.band
    return band.fallback


def ideal_transfer(band: InstrumentBand, survey: str, name: str, n_stars: int = 20000) -> tuple[float, float]:
    """``(zp_offset, colour_term)`` of the ideal fit ``m_ref - m_sys = zp_offset + CT * colour``.

    ``m_ref`` in ``survey``/``name`` and its own colour, over field stars
    of :func:`draw_colours` (fixed seed): ``(0, band.colour_term)`` for the
    band's own survey band; the truth for a fallback band.
    """
    bv = draw_colours(np.random.default_rng(0), n_stars)
    ms = survey_magnitudes(np.zeros_like(bv), bv)
    c = survey_colour(ms, survey, name)
    design = np.column_stack([np.ones_like(c), c])
    zp, ct = np.linalg.lstsq(design, ms[(survey, name)] - band.system_magnitude(ms), rcond=None)[0]
    return float(zp), float(ct)


def acceptable_bands(
    band: InstrumentBand,
    surveys=None,
    tolerance: float = CLEAR_TOLERANCE,
    reddening: tuple[float, float] | None = None,
) -> list[tuple[str, str]]:
    """Survey bands that count as a right identification of ``band``.

    A standard (filtered) band: the band it is built from, plus any band of
    the same width (not Gaia's broad G, BP, RP) that calibrates it at least
    as well (:func:`transfer_systematic` no more than the own band's +
    :data:`SAME_BAND_SLACK`): GaiaSP's B, V are APASS's (the same Johnson
    passbands), its g, r, i differ from APASS g' r' i' by constants, Cousins
    R, I are what the "R" and "I" filters realise more closely than the
    APASS r', i' they were built on, and PS1 i describes an i' filter
    better than the APASS i' it is built from.
    The clear band: every band of ``surveys`` (default: all) whose
    :func:`transfer_systematic` is at most ``tolerance``, plus its own.
    Where the band's own survey is not among ``surveys``, its
    :func:`best_available` fallback stands in for "its own".
    ``reddening``: the field sky's ``E(B-V)`` range (mag; the field's truth
    ``sky.reddening_ebv``), so that the answer is the one for that sky's
    colours: behind the plane's dust a clear frame is calibrated to 36 mmag
    by Cousins R and to 95 by Sloan r (19 and 64 at high latitude).
    """
    key = None if reddening is None else (float(reddening[0]), float(reddening[1]))
    own = best_available(band, surveys)
    keys = [k for k in survey_magnitudes(np.zeros(1), np.zeros(1)) if surveys is None or k[0] in surveys]

    def systematic(k: tuple[str, str]) -> float:
        return transfer_systematic(band, *k, reddening=key)

    if band.standard:
        limit = systematic(own) + SAME_BAND_SLACK
        return [own] + [k for k in keys if k[0] not in BROAD_SURVEYS and k != own and systematic(k) <= limit]
    return [k for k in keys if k == own or systematic(k) <= tolerance]


#: B-V range of reddened Galactic-plane stars (:func:`draw_reddened_colours`);
#: the transformations are monotonic up to 2.0 (U-B turns over beyond 2.1)
REDDENED_COLOUR_RANGE = (0.2, 2.0)


def draw_reddened_colours(rng: np.random.Generator, n: int, reddening: tuple[float, float]) -> np.ndarray:
    """``B-V`` (mag) of ``n`` disc stars seen through dust, as in the Galactic plane.

    The intrinsic mixture of :func:`draw_colours` (with more giants at
    ``B-V`` ~1.1: the plane's distant stars are red clump and RGB)
    reddened by ``E(B-V)`` uniform in ``reddening`` (mag), clipped to
    :data:`REDDENED_COLOUR_RANGE`. The toy system treats a reddened star
    as a star of that colour (the transformations are colour laws).
    """
    giant = rng.random(n) < 0.3
    bv = np.where(giant, rng.normal(1.1, 0.12, n), draw_colours(rng, n))
    bv = bv + rng.uniform(reddening[0], reddening[1], n)
    return np.clip(bv, *REDDENED_COLOUR_RANGE)


def draw_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """``B-V`` (mag) of ``n`` high-latitude field stars.

    A mixture of turn-off/disc dwarfs (peak ~0.65) and M dwarfs (~1.4),
    clipped to :data:`COLOUR_RANGE`.
    """
    red = rng.random(n) < 0.3
    bv = np.where(red, rng.normal(1.35, 0.15, n), rng.normal(0.65, 0.18, n))
    return np.clip(bv, *COLOUR_RANGE)
