"""Fit every candidate survey/band and choose the best one.

Criterion
---------
Each candidate with a fit gets a score, in magnitudes: the error its
calibration would give a transient of unknown colour, apart from the
transient's own photometric error (the same budget as
:func:`target.measure_target`)::

    score = sqrt(err(ZP + CT c0)**2 + s_int**2 + (CT**2 + var(CT)) * sc**2)

``err(ZP + CT c0)`` is the fit's error at the assumed colour ``c0`` (the
median colour of the stars used; about ``scatter / sqrt(N)``), ``s_int`` the
intrinsic scatter of the relation beyond the stars' stated errors (how well
the band's linear relation describes the observer's filter), and the last
term the error of the colour correction for a transient whose colour
scatters about ``c0`` like the calibrators' colours do (robust spread ``sc``
in that band's own colour index, so that colour terms in narrow and wide
colour indices are compared fairly). The band most like the observer's
filter needs the smallest colour correction and gives the tightest
relation, so it has the lowest score.

Not the raw residual scatter: it is dominated by the photometric noise of
the faintest calibrators, so it penalises a deeper reference survey for
being deep, while the transient's error does not depend on it.

Which band the frame is in. The score measures precision, and a band with
many stars gets a small ``err(ZP + CT c0)`` and an intrinsic scatter at its
floor (faint stars' noise hides it) whatever the band. That must not decide
the photometric system: the frame's band is the one its colour term says
it is closest to. The colour *mismatch* of a band is ``|CT| sc`` (the
colour correction over the field's colours, mag) with standard error
``err(CT) sc``. Observers' filters realise standard passbands
(Johnson-Cousins, Sloan); Gaia's G, BP and RP are broad bands no filter
realises (``Band.broad``), and they are deep, so they have by far the most
stars. A broad band with the lowest score is chosen only if its mismatch
is smaller than the best-scoring standard band's by more than
``FitSettings.broad_band_sigma`` combined standard errors; otherwise that
standard band is chosen (a southern i' frame with APASS and Gaia only:
APASS i', mismatch 0.014 +- 0.015 mag, not Gaia RP, 0.033 +- 0.002 mag,
whose 10 times more stars gave it the lower score). A clear frame against
APASS B, V only still goes to Gaia G: V's mismatch is several times G's.
Bands whose colour term was assumed (stars without colours, below) have
no measured mismatch and never displace a broad band this way. Among the
standard bands the same holds: a band of another nominal passband whose
mismatch is smaller than the lowest-scoring band's by more than
``FitSettings.closer_band_sigma`` combined standard errors is the frame's
band (a Cousins R frame in the reddened Galactic plane, first scored in
Sloan r, mismatch 0.056 +- 0.003 mag against Cousins R's 0.037): the
target's colour is unknown, and the closer band's answer depends least on
it (bench/README.md, realistic skies). The same nominal band in two surveys
competes the same way when their colour terms differ beyond
``FitSettings.twin_ct_sigma`` (a northern z frame: PS1 z, CT -0.03, not
GaiaSP z, CT -0.13, whose few bright stars gave it the lower score); when
they agree, the score and the twin rule below decide.

The observer's filters. The observatory's registered filters
(:func:`shared.bands.filter_constraint`) restrict the choice to their
bands (the criterion above applies among them); if none of them can be
fitted, to the near bands (Sloan r for a Cousins R filter and so on); if
none of those either, the frame is refused rather than calibrated in
another system. A forced band group (``GaiaSP/any``, ``APASS/B,V``,
:func:`shared.bands.parse_force_filter`) is the same choice among its
bands only; a forced band is fitted alone, with the same fit the automatic
choice makes for it. The chosen candidate's note says when filters
decided.

Stars without colours. A band with fewer than ``min_stars`` calibrators
that have a colour, but enough with a magnitude, is fitted for the zero
point alone over all of them, the colour term assumed 0 +-
``FitSettings.assumed_colour_term_err``, so its score and the target's
error carry ``assumed_colour_term_err * sc`` for the unknown colour (``sc``
from the stars' colours where enough have one, else
``FitSettings.assumed_colour_spread``). Such a band loses to any band with
a fitted colour term of similar precision. A zero-point-only fit of stars
with colours (too few of them, or too narrow a colour range, for a colour
term) carries the same prior on its colour term, with the spread of their
colours: five stars with no fitted colour term are not a perfect match.

The same band in two surveys. APASS g'r'i', SDSS gri and PS1 griz are
realisations of the same Sloan bands; when the lowest-scoring candidate has
such a twin with the same nominal band and colour index (``g'`` is ``g``,
``g'-r'`` is ``g-r``) and a colour term that agrees within
``FitSettings.twin_ct_sigma`` combined standard errors, the data cannot tell
the two apart (their scores then differ only by the surveys' depth and
noise). The survey first in :data:`SURVEY_PREFERENCE` is then chosen: the
all-sky one first, so that an observer's light curve stays in one
photometric system from field to field, whatever else covers the field.
GaiaSP (Gaia XP synthetic B V and SDSS-standard g r i z) twins APASS and
PS1/SDSS; it comes after them and before SDSS, so that loading it does not
move light curves already on APASS or PS1 to other zero points when the
data cannot tell the bands apart. Its Cousins R, I and U have no twin and
win on their score (see bench/README.md, accuracy).
Remaining ties go to more stars.

Crowded frames. The choice is made on the fits over all calibrators, as
in a sparse frame; in a crowded frame (:mod:`calibrators`, :mod:`crowding`)
each band is also fitted over its isolated, well-measured calibrators
(``BandCandidate.isolated``) and that fit, when it has
``FitSettings.isolation_min_stars``, is the chosen band's final
calibration. (Choosing on the isolated fits moves dense R frames to Gaia G:
their few bright, isolated, reddened stars give G the smaller colour term,
and the answer is no longer in the observer's system.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from numba import njit

from services.calibrate.core import crowding
from services.calibrate.core.calibrators import bright_end_cut, star_usable
from services.calibrate.core.fitting import FitResult, InsufficientData, fit_zeropoint
from services.calibrate.core.inputs import ReferenceStars, SourceColumns
from services.calibrate.core.matching import MatchResult, SourceGrid
from services.calibrate.core.results import CandidateSummary
from services.calibrate.core.settings import FitSettings
from shared.contracts.surveys import Band, Survey, get_survey
from shared.jit import JIT, kernel_array

#: order in which statistically tied candidates are preferred (see module docstring)
SURVEY_PREFERENCE = ("APASS", "GAIA", "PS1", "GaiaSP", "SDSS")


def candidate_score(fit: FitResult, settings: FitSettings) -> float:
    """Band-choice score of a fit, mag (lower is better); see the module docstring."""
    cal = fit.calibration_err(fit.median_colour)
    col = fit.unknown_colour_err(settings.transient_colour_scale * fit.colour_spread)
    return math.sqrt(cal * cal + fit.intrinsic_scatter**2 + col * col)


@dataclass
class BandCandidate:
    """One survey/band tried: its calibrators, its fit (if any) and score."""

    survey: str
    band: str
    colour: str
    nmatched: int = 0
    ncalibrators: int = 0
    nbright: int = 0
    fit: FitResult | None = None
    score: float | None = None
    note: str | None = None
    #: matched stars passing the quality cuts whatever their colour (>= ncalibrators, which need a colour)
    nquality: int = 0
    #: the fit is a zero point only over stars mostly without a colour; the colour term is assumed
    colour_term_assumed: bool = False
    #: a Gaia broad band (G, BP, RP), see the module docstring
    broad: bool = False
    #: per calibrator (quality-selected, bright-cut ones included)
    source_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ref_mag: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ref_err: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inst_mag: np.ndarray = field(default_factory=lambda: np.zeros(0))
    inst_err: np.ndarray = field(default_factory=lambda: np.zeros(0))
    colour_values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bright: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: in a crowded frame, the same band fitted over its isolated calibrators only (the final fit
    #: when this band is chosen; the choice is made on the fits of all calibrators), else None
    isolated: BandCandidate | None = None

    def summary(self, chosen: bool = False) -> CandidateSummary:
        f = self.fit
        return CandidateSummary(
            survey=self.survey,
            filter=self.band,
            colour=self.colour,
            zeropoint=None if f is None else f.zeropoint,
            zeropoint_err=None if f is None else f.zeropoint_err,
            colour_term=None if f is None else f.colour_term,
            scatter=None if f is None else f.scatter,
            npoints=0 if f is None else f.npoints,
            nmatched=self.nmatched,
            outlier_fraction=None if f is None else f.outlier_fraction,
            score=self.score,
            chosen=chosen,
            note=self.note,
            colour_term_assumed=self.colour_term_assumed,
        )


@dataclass
class _SurveyMatch:
    """Per survey, computed once for all its bands: the usable sources matched to one of its stars."""

    m_idx: np.ndarray  # source index of each usable matched source (ascending)
    m_ref: np.ndarray  # its reference star
    m_cal: np.ndarray  # bool: also passes the source quality cuts and is not ambiguous
    src_mag: np.ndarray
    src_err: np.ndarray
    #: bool: m_cal and isolated in the frame and in the survey (crowding.py); None: no isolation cut
    m_iso: np.ndarray | None = None


def _band_array(stars: ReferenceStars, *names: str) -> np.ndarray | None:
    for name in names:
        if name in stars.mags:
            return np.asarray(stars.mags[name], dtype=float)
    return None


def _err_array(stars: ReferenceStars, *names: str) -> np.ndarray | None:
    for name in names:
        if name in stars.errs:
            return np.asarray(stars.errs[name], dtype=float)
    return None


def _named_band_array(stars: ReferenceStars, survey: Survey, name: str) -> np.ndarray | None:
    """Magnitudes of the survey's band ``name``, keyed by band name or VizieR column."""
    columns = [b.column for b in survey.bands if b.name == name]
    return _band_array(stars, name, *columns)


def _named_err_array(stars: ReferenceStars, survey: Survey, name: str) -> np.ndarray | None:
    """Errors of the survey's band ``name``, keyed by band name or VizieR column."""
    cols = [(b.column, b.error_column) for b in survey.bands if b.name == name]
    return _err_array(stars, name, *[x for pair in cols for x in pair])


def band_has_data(stars: ReferenceStars, band: Band) -> bool:
    """True if the survey's stars have at least one finite magnitude in this band."""
    mags = _band_array(stars, band.name, band.column)
    return mags is not None and bool(np.isfinite(mags).any())


def _errors_or_zero(errors: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n) if errors is None else kernel_array(errors)


class Calibrators(NamedTuple):
    """What :func:`_select_calibrators` returns, by name (built from its tuple outside the compiled code).

    One entry per calibrator: the source's index, the star's magnitude and error (mag), its
    colour (mag), the colour's noise variance and its covariance with the magnitude (mag**2),
    and the source's instrumental magnitude and error (mag).
    """

    source_index: np.ndarray
    ref_mag: np.ndarray
    ref_err: np.ndarray
    colour: np.ndarray
    colour_var: np.ndarray
    colour_cov: np.ndarray
    inst_mag: np.ndarray
    inst_err: np.ndarray


@njit(**JIT)
def _select_calibrators(
    m_idx,
    m_ref,
    m_cal,
    mags,
    errs,
    blue,
    red,
    blue_err,
    red_err,
    src_mag,
    src_err,
    mag_bright,
    mag_faint,
    max_ref_err,
    sign,
):  # pragma: no cover - compiled
    """One band's calibrators among a survey's matched sources, in one pass.

    Kept: a source that may calibrate (``m_cal``) whose star passes
    :func:`calibrators.star_usable` in this band. Returns per calibrator
    the source index, the star's magnitude, error and colour, the colour's
    noise variance (its bands' errors squared, NaN as 0, as
    ``np.nan_to_num``) and covariance with the magnitude (``sign *
    error**2``), and the source's magnitude and error.
    """
    keep = np.empty(m_idx.shape[0], dtype=np.int64)
    k = 0
    for i in range(m_idx.shape[0]):
        j = m_ref[i]
        if m_cal[i] and star_usable(mags[j], errs[j], blue[j] - red[j], mag_bright, mag_faint, max_ref_err):
            keep[k] = i
            k += 1
    idx = np.empty(k, dtype=np.int64)
    ref_mag, ref_err, colour, colour_var, colour_cov, inst, inst_err = (
        np.empty(k),
        np.empty(k),
        np.empty(k),
        np.empty(k),
        np.empty(k),
        np.empty(k),
        np.empty(k),
    )
    big = np.finfo(np.float64).max
    for t in range(k):
        i = keep[t]
        j = m_ref[i]
        idx[t] = m_idx[i]
        ref_mag[t], ref_err[t], colour[t] = mags[j], errs[j], blue[j] - red[j]
        eb2, er2 = blue_err[j] ** 2, red_err[j] ** 2
        eb2 = 0.0 if math.isnan(eb2) else min(eb2, big)
        er2 = 0.0 if math.isnan(er2) else min(er2, big)
        colour_var[t] = eb2 + er2
        colour_cov[t] = sign * errs[j] ** 2
        inst[t], inst_err[t] = src_mag[idx[t]], src_err[idx[t]]
    return idx, ref_mag, ref_err, colour, colour_var, colour_cov, inst, inst_err


def _fit_with_bright_cut(
    cand: BandCandidate,
    ref_mag,
    ref_err,
    inst,
    inst_err,
    colour,
    settings: FitSettings,
    colour_var=None,
    colour_cov=None,
) -> FitResult:
    """A first robust fit, the bright-end cut (:func:`calibrators.bright_end_cut`), the final fit without it."""
    fit = fit_zeropoint(
        ref_mag, ref_err, inst, inst_err, colour, settings, colour_var=colour_var, colour_cov=colour_cov
    )
    bright = bright_end_cut(inst, fit.residuals, fit.sigma, settings)
    if bright.any() and (~bright).sum() >= settings.min_stars:
        keep = ~bright

        def part(a):
            return None if a is None else a[keep]

        fit = fit_zeropoint(
            ref_mag[keep],
            ref_err[keep],
            inst[keep],
            inst_err[keep],
            part(colour),
            settings,
            colour_var=part(colour_var),
            colour_cov=part(colour_cov),
        )
        cand.bright = bright
        cand.nbright = int(bright.sum())
    return fit


def _assume_colour_term(fit: FitResult, known_colours: np.ndarray, settings: FitSettings) -> FitResult:
    """A zero-point-only fit over stars without colours, with what the unknown colour costs.

    The colour term is taken as 0 +- ``settings.assumed_colour_term_err``
    and the transient's colour to scatter like the field stars' colours
    (their robust spread where at least ``min_stars`` stars of the fit have
    one, else ``settings.assumed_colour_spread``); :meth:`FitResult.unknown_colour_err`
    then adds ``assumed_colour_term_err * spread`` to the score and the
    target's error.
    """
    known = known_colours[np.isfinite(known_colours)]
    spread = settings.assumed_colour_spread
    if len(known) >= settings.min_stars:
        spread = max(float(1.482602218505602 * np.median(np.abs(known - np.median(known)))), 0.05)
    cov = fit.covariance.copy()
    cov[1, 1] = settings.assumed_colour_term_err**2
    return replace(fit, covariance=cov, colour_spread=spread)


def fit_band(
    survey: Survey,
    band: Band,
    stars: ReferenceStars,
    match: MatchResult,
    src_usable: np.ndarray,
    src_good: np.ndarray,
    sources: SourceColumns,
    settings: FitSettings,
    pre: _SurveyMatch | None = None,
) -> BandCandidate:
    """Select calibrators for one band of a matched survey and fit them.

    Calibrators: usable sources matched to a reference star (nearest within
    the radius, not ambiguous), passing :func:`calibrators.source_quality`
    (``src_good``) and :func:`calibrators.reference_quality`. A first
    robust fit finds the bright-end non-linearity
    (:func:`calibrators.bright_end_cut`); the final fit is made without it.
    """
    cand = BandCandidate(survey=survey.name, band=band.name, colour=band.colour_name, broad=band.broad)
    mags = _band_array(stars, band.name, band.column)
    if mags is None or not np.isfinite(mags).any():
        cand.note = f"no {survey.name} {band.name} magnitudes in this field"
        return cand
    errs = _err_array(stars, band.name, band.column, band.error_column)
    if errs is None:
        errs = np.full(len(mags), np.nan)
    blue = _named_band_array(stars, survey, band.colour[0])
    red = _named_band_array(stars, survey, band.colour[1])
    blue_err = _named_err_array(stars, survey, band.colour[0])
    red_err = _named_err_array(stars, survey, band.colour[1])

    if pre is None:
        ref_i = match.ref_index
        m_idx = np.flatnonzero(src_usable & (ref_i >= 0))
        pre = _SurveyMatch(
            m_idx=m_idx,
            m_ref=ref_i[m_idx],
            m_cal=(src_good & ~match.ambiguous)[m_idx],
            src_mag=kernel_array(sources.mag),
            src_err=kernel_array(sources.mag_err),
        )
    # usable sources matched to a star with a magnitude in this band
    cand.nmatched = int(np.count_nonzero(np.isfinite(mags[pre.m_ref])))
    no_colour_column = blue is None or red is None
    if no_colour_column:
        # no colour at all: the stars' magnitudes may still give a zero point (see _assume_colour_term)
        blue = red = np.full(len(mags), np.nan)
    assert blue is not None and red is not None  # both columns, or both NaN just above

    sign = 1.0 if band.name == band.colour[0] else (-1.0 if band.name == band.colour[1] else 0.0)

    def select(mask) -> Calibrators:
        return Calibrators(
            *_select_calibrators(
                pre.m_idx,
                pre.m_ref,
                mask,
                kernel_array(mags),
                kernel_array(errs),
                kernel_array(blue),
                kernel_array(red),
                _errors_or_zero(blue_err, len(mags)),
                _errors_or_zero(red_err, len(mags)),
                pre.src_mag,
                pre.src_err,
                float(survey.mag_bright),
                float(survey.mag_faint),
                float(settings.max_ref_err),
                # covariance of the band's noise with the colour's: + if it is the colour's blue band, - if the red
                sign,
            )
        )

    m_cal = pre.m_cal
    idx, ref_mag, ref_err, colour, colour_var, colour_cov, inst, inst_err = select(m_cal)
    cand.ncalibrators = cand.nquality = len(idx)
    cand.source_index, cand.ref_mag, cand.ref_err = idx, ref_mag, ref_err
    cand.inst_mag, cand.inst_err, cand.colour_values = inst, inst_err, colour
    cand.bright = np.zeros(len(idx), dtype=bool)
    assumed = False
    if len(idx) < settings.min_stars:
        # too few stars with a colour: the same selection without the colour (stars with a magnitude only)
        no_colour = np.zeros(len(mags))
        magnitude_only = Calibrators(
            *_select_calibrators(
                pre.m_idx,
                pre.m_ref,
                m_cal,
                kernel_array(mags),
                kernel_array(errs),
                no_colour,
                no_colour,
                no_colour,
                no_colour,
                pre.src_mag,
                pre.src_err,
                float(survey.mag_bright),
                float(survey.mag_faint),
                float(settings.max_ref_err),
                0.0,
            )
        )
        q_idx, q_ref, q_err = magnitude_only.source_index, magnitude_only.ref_mag, magnitude_only.ref_err
        q_inst, q_inst_err = magnitude_only.inst_mag, magnitude_only.inst_err
        cand.nquality = len(q_idx)
        if len(q_idx) < settings.min_stars:
            cand.note = f"{len(q_idx)} usable calibration stars of {cand.nmatched} matched (need {settings.min_stars})"
            return cand
        # the colours of these stars where known (for the spread the transient's colour may have)
        q_star = pre.m_ref[np.searchsorted(pre.m_idx, q_idx)]  # m_idx is ascending
        q_colour = blue[q_star] - red[q_star]
        cand.ncalibrators = len(q_idx)
        cand.source_index, cand.ref_mag, cand.ref_err = q_idx, q_ref, q_err
        cand.inst_mag, cand.inst_err = q_inst, q_inst_err
        cand.colour_values = np.zeros(len(q_idx))  # the colour the fit assumes for every star
        cand.bright = np.zeros(len(q_idx), dtype=bool)
        assumed = True
    try:
        if assumed:
            fit = _fit_with_bright_cut(cand, cand.ref_mag, cand.ref_err, cand.inst_mag, cand.inst_err, None, settings)
            fit = _assume_colour_term(fit, q_colour, settings)
        else:
            fit = _fit_with_bright_cut(
                cand, ref_mag, ref_err, inst, inst_err, colour, settings, colour_var=colour_var, colour_cov=colour_cov
            )
            if not fit.fit_colour_term:
                # too few stars (or too narrow colours) to fit the colour term: it is not known to be 0,
                # so it carries the same prior as an assumed one (else 5 stars look like a perfect match)
                cov = fit.covariance.copy()
                cov[1, 1] = settings.assumed_colour_term_err**2
                fit = replace(fit, covariance=cov)
    except (InsufficientData, FloatingPointError, ValueError) as exc:  # pragma: no cover - defensive
        cand.note = f"fit failed: {exc}"
        return cand
    if not (math.isfinite(fit.zeropoint) and math.isfinite(fit.zeropoint_err)):
        cand.note = "fit failed: non-finite zero point"
        return cand
    cand.fit = fit
    cand.colour_term_assumed = assumed
    cand.score = candidate_score(fit, settings)
    notes = []
    if assumed:
        with_colour = "no" if no_colour_column else f"only {len(idx)} of {cand.nquality}"
        notes.append(
            f"{with_colour} stars with a {band.colour_name} colour: zero point only, colour term assumed "
            f"0 +- {settings.assumed_colour_term_err:g}"
        )
    elif not fit.fit_colour_term:
        notes.append("zero point only (colour spread or star count too small for a colour term)")
    if cand.nbright:
        notes.append(f"{cand.nbright} bright stars cut (non-linear)")
    cand.note = "; ".join(notes) or None
    if pre.m_iso is not None:
        # a crowded frame: the same band over its isolated calibrators, for the final fit if it is chosen
        iso = fit_band(
            survey,
            band,
            stars,
            match,
            src_usable,
            src_good,
            sources,
            settings,
            pre=replace(pre, m_cal=pre.m_iso, m_iso=None),
        )
        if iso.fit is not None and iso.ncalibrators >= settings.isolation_min_stars:
            n_left_out = int(np.count_nonzero(pre.m_cal & ~pre.m_iso & np.isfinite(mags[pre.m_ref])))
            iso.note = _add_note(
                iso.note,
                f"crowded field: {n_left_out} blended or faint stars left out "
                "(neighbours within the survey's resolution or the seeing)",
            )
            cand.isolated = iso
    return cand


@dataclass
class Evaluation:
    """What :func:`evaluate_candidates` found."""

    #: one per survey/band tried, in survey then band order
    candidates: list[BandCandidate]
    #: usable sources matched to a reference star of any survey tried
    n_matched_any: int
    #: per survey matched, per star: a usable source lies within the radius
    #: (:attr:`MatchResult.ref_detected`, for the completeness limit)
    detected: dict[str, np.ndarray]
    #: time spent building the grid and matching, s
    match_seconds: float
    #: per source, the light of its neighbours in the frame over its own (:func:`crowding.frame_blend`)
    neighbour_light: np.ndarray | None = None
    #: the frame is crowded: isolated calibrators make the chosen band's final fit (``BandCandidate.isolated``)
    crowded: bool = False


def evaluate_candidates(
    sources: SourceColumns,
    references: Mapping[str, ReferenceStars],
    radius_arcsec: float,
    src_usable: np.ndarray,
    src_good: np.ndarray,
    settings: FitSettings,
    only: tuple[str, str] | Collection[tuple[str, str]] | None = None,
) -> Evaluation:
    """Match each survey once and fit each of its bands.

    Parameters
    ----------
    sources : SourceColumns
    references : dict of str to ReferenceStars
        Reference stars by survey name.
    radius_arcsec : float
        Match radius, arcsec.
    src_usable, src_good : numpy.ndarray of bool
        Sources with a usable magnitude / passing the calibrator quality cuts.
    settings : FitSettings
    only : (survey, band) or a collection of them, optional
        Canonical names: fit these bands only (a forced band or band group).

    Returns
    -------
    Evaluation
    """
    if only is not None and len(only) == 2 and all(isinstance(x, str) for x in only):
        only = [only]  # type: ignore[list-item]  # one (survey, band): a pair of names, not a list of pairs
    wanted = None if only is None else {tuple(x) for x in only}
    candidates: list[BandCandidate] = []
    matched_any = np.zeros(len(sources), dtype=bool)
    started = time.perf_counter()
    # one grid of the sources for every survey; source columns once for every band
    grid = SourceGrid(sources.ra, sources.dec, radius_arcsec, flagged=src_usable)
    match_seconds = time.perf_counter() - started
    detected: dict[str, np.ndarray] = {}
    src_mag = kernel_array(sources.mag)
    src_err = kernel_array(sources.mag_err)
    src_cal = src_usable & src_good
    gaia = crowding.gaia_stars(references)
    frame_isolated, crowded, neighbour_light = _frame_isolated(sources, src_usable, src_cal, gaia, settings)
    for key, stars in references.items():
        try:
            survey = get_survey(stars.survey or key)
        except KeyError:
            try:
                survey = get_survey(key)
            except KeyError:
                candidates.append(
                    BandCandidate(survey=stars.survey or key, band="", colour="", note="unknown survey, skipped")
                )
                continue
        if wanted is not None and not any(sv == survey.name for sv, _ in wanted):
            continue
        if len(stars) == 0:
            continue
        bands = [b for b in survey.bands if wanted is None or (survey.name, b.name) in wanted]
        started = time.perf_counter()
        match = grid.match(stars.ra, stars.dec)
        match_seconds += time.perf_counter() - started
        detected[survey.name] = match.ref_detected
        has_ref = match.ref_index >= 0
        matched_any |= has_ref
        # the sources matched to a star of this survey, once for all its bands
        m_idx = np.flatnonzero(src_usable & has_ref)
        pre = _SurveyMatch(
            m_idx=m_idx,
            m_ref=match.ref_index[m_idx],
            m_cal=(src_cal & ~match.ambiguous)[m_idx],
            src_mag=src_mag,
            src_err=src_err,
        )
        if crowded:
            ref_isolated = crowding.reference_blend(survey, stars, gaia) <= settings.isolation_max_blend
            bright = np.asarray(sources.mag_err, dtype=float)[m_idx] <= settings.crowded_max_inst_err
            pre.m_iso = pre.m_cal & frame_isolated[m_idx] & ref_isolated[pre.m_ref] & bright
        for band in bands:
            candidates.append(fit_band(survey, band, stars, match, src_usable, src_good, sources, settings, pre=pre))
    return Evaluation(
        candidates, int((matched_any & src_usable).sum()), detected, match_seconds, neighbour_light, crowded
    )


def _frame_isolated(
    sources: SourceColumns, usable: np.ndarray, good: np.ndarray, gaia, settings: FitSettings
) -> tuple[np.ndarray, bool, np.ndarray]:
    """Per source: no blend flag and no neighbour sharing its light in the frame (:mod:`crowding`);
    whether the frame is crowded: more than ``settings.crowded_fraction`` of its good sources
    measured to ``crowded_max_inst_err`` or better are not isolated, or more than
    ``settings.crowded_gaia_per_arcmin2`` Gaia stars per arcmin2 lie in it; and the neighbours' light."""
    flags = np.asarray(sources.flags).astype(np.int64, copy=False)
    blend = crowding.frame_blend(sources, usable, gaia, settings.isolation_frame_arcsec)
    isolated = ((flags & settings.blend_flags) == 0) & (blend <= settings.isolation_max_blend)
    with np.errstate(invalid="ignore"):
        measured = good & (np.asarray(sources.mag_err, dtype=float) <= settings.crowded_max_inst_err)
    n = int(measured.sum())
    crowded = n > 0 and float(np.count_nonzero(measured & ~isolated)) / n > settings.crowded_fraction
    if not crowded and gaia is not None:
        crowded = crowding.gaia_density(sources, usable, gaia) > settings.crowded_gaia_per_arcmin2
    return isolated, crowded, blend


def nominal_band(band: str) -> str:
    """A band's or colour's name without primes: APASS ``g'`` is the Sloan ``g``."""
    return band.replace("'", "")


def _fit(c: BandCandidate) -> FitResult:
    """``c.fit`` of a candidate that was fitted (every candidate these rules compare)."""
    assert c.fit is not None
    return c.fit


def _twins(a: BandCandidate, b: BandCandidate, settings: FitSettings) -> bool:
    """Same nominal band and colour in two surveys, colour terms equal within errors."""
    if a.survey == b.survey or nominal_band(a.band) != nominal_band(b.band):
        return False
    if nominal_band(a.colour) != nominal_band(b.colour):
        return False
    fa, fb = _fit(a), _fit(b)
    var = (fa.covariance[1, 1] if fa.fit_colour_term else 0.0) + (fb.covariance[1, 1] if fb.fit_colour_term else 0.0)
    return abs(fa.colour_term - fb.colour_term) <= settings.twin_ct_sigma * math.sqrt(max(var, 0.0))


def colour_mismatch(c: BandCandidate, settings: FitSettings) -> tuple[float, float]:
    """How far the band is from the frame's, by its colour term: ``|CT| * sc`` and its standard error, mag."""
    f = c.fit
    assert f is not None
    spread = settings.transient_colour_scale * f.colour_spread
    return abs(f.colour_term) * spread, math.sqrt(max(f.covariance[1, 1], 0.0)) * spread


def _broad_band_closer(broad: BandCandidate, standard: BandCandidate, s: FitSettings) -> bool:
    """The broad band's colour mismatch is significantly smaller than the standard band's."""
    mb, eb = colour_mismatch(broad, s)
    ms, es = colour_mismatch(standard, s)
    return ms - mb > s.broad_band_sigma * math.hypot(eb, es)


def _closest_standard(best: BandCandidate, fitted: list[BandCandidate], s: FitSettings) -> BandCandidate:
    """The standard passband the frame is in by its colour term: ``best``, or one significantly closer.

    The score weighs precision; which passband the frame is in is what its
    colour terms say (see the module docstring). A candidate of another
    nominal passband (Cousins R against Sloan r, Cousins I against Sloan i)
    whose colour mismatch is smaller than ``best``'s by more than
    ``FitSettings.closer_band_sigma`` combined standard errors is the frame's
    band (the one with the smallest mismatch, if several): its answer
    depends least on the target's colour, which is unknown. The same nominal
    band in two surveys competes the same way when their colour terms differ
    (not :func:`_twins`); twins are left to the score and the twin rule.
    """
    if best.broad or best.colour_term_assumed or not _fit(best).fit_colour_term:
        return best
    mb, eb = colour_mismatch(best, s)
    closer = []
    for c in fitted:
        if c.broad or c.colour_term_assumed or not _fit(c).fit_colour_term:
            continue
        if nominal_band(c.band) == nominal_band(best.band) and _twins(best, c, s):
            continue  # the same band in another survey, and the data cannot tell them apart
        mc, ec = colour_mismatch(c, s)
        if mb - mc > s.closer_band_sigma * math.hypot(eb, ec):
            closer.append((mc, c))
    if not closer:
        return best
    m_alt, alt = min(closer, key=lambda x: x[0])
    best.note = _add_note(
        best.note,
        f"not chosen: its colour term ({mb:.3f} +- {eb:.3f} mag over the field's colours) puts your filter "
        f"farther from it than from {alt.survey} {alt.band} ({m_alt:.3f})",
    )
    return alt


def _lowest(fitted: list[BandCandidate]) -> BandCandidate:
    return min(fitted, key=lambda c: (c.score, -_fit(c).npoints))


def choose_best(
    candidates: list[BandCandidate],
    settings: FitSettings | None = None,
    allowed: Collection[tuple[str, str]] | None = None,
    near: Collection[tuple[str, str]] | None = None,
    why: str | None = None,
) -> BandCandidate | None:
    """The fitted candidate with the lowest score, or its preferred twin; None if none was fitted.

    See the module docstring: the lowest score wins (ties: more stars),
    but a Gaia broad band only if its colour term makes it significantly
    closer to the frame than the best standard band; if the winner has
    twins (the same nominal band in another survey with a colour term
    equal within errors), the survey first in :data:`SURVEY_PREFERENCE`
    among them is chosen.

    ``allowed`` (the bands of the observatory's filters, canonical
    (survey, band) names) restricts the choice to them, then to ``near``
    if none of them was fitted; None if neither was. ``why`` (e.g. "your
    observatory's filters: i'") goes into the chosen candidate's note and
    the notes of the fitted candidates left out.
    """
    s = settings or FitSettings()
    fitted = [c for c in candidates if c.fit is not None and c.score is not None]
    if allowed is not None:
        pool = [c for c in fitted if (c.survey, c.band) in set(allowed)]
        if not pool and near:
            pool = [c for c in fitted if (c.survey, c.band) in set(near)]
        if why:
            for c in fitted:
                if c not in pool:
                    c.note = _add_note(c.note, f"not chosen: not a band of {why}")
        fitted = pool
    if not fitted:
        return None
    best = _lowest(fitted)
    if best.broad:
        standard = [c for c in fitted if not c.broad and not c.colour_term_assumed]
        if standard:
            alt = _lowest(standard)
            if not _broad_band_closer(best, alt, s):
                mb, eb = colour_mismatch(best, s)
                ms, es = colour_mismatch(alt, s)
                best.note = _add_note(
                    best.note,
                    f"not chosen: a broad band, its colour term ({mb:.3f} +- {eb:.3f} mag over the field's "
                    f"colours) does not make it closer to your filter than {alt.survey} {alt.band} "
                    f"({ms:.3f} +- {es:.3f})",
                )
                best = alt
    best = _closest_standard(best, fitted, s)
    twins = [best] + [c for c in fitted if _twins(best, c, s)]

    def rank(c: BandCandidate) -> tuple:
        pref = SURVEY_PREFERENCE.index(c.survey) if c.survey in SURVEY_PREFERENCE else len(SURVEY_PREFERENCE)
        return (pref, c.score, -_fit(c).npoints)

    chosen = min(twins, key=rank)
    if why:
        chosen.note = _add_note(chosen.note, f"chosen among the bands of {why}")
    return chosen


def _add_note(note: str | None, more: str) -> str:
    return more if not note else f"{note}; {more}"
