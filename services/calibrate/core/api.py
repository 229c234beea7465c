"""One call that calibrates a frame: :func:`calibrate_frame`.

Error codes (``shared.errors.CalibrationFailed.code``), stable:

``no_usable_sources``
    No source has a finite magnitude (all NaN / 99).
``field_not_covered``
    No reference star of any survey in this field.
``no_stars_matched``
    Reference stars exist but none of the sources lies within the match
    radius of one (astrometry / WCS, or the radius).
``too_few_stars``
    Sources matched, but no survey/band has ``min_stars`` usable
    calibration stars after the quality cuts.
``bad_astrometry``
    The best fit is no relation at all (robust scatter above
    ``FitSettings.max_scatter``) and only a small fraction of the sources
    matched a reference star (below ``FitSettings.min_match_fraction``):
    the matches are chance coincidences of a wrong WCS.
``poor_fit``
    The best fit's robust scatter is above ``FitSettings.max_scatter``
    although many sources matched (wrong magnitude column, blended or
    corrupted photometry): no honest magnitude can come out of it.
``wrong_wcs``
    (an uploaded frame with its header's WCS, ``check_wcs``) almost none of
    its sources lands on a reference star (:func:`wcs_matches_nothing`), or
    under 5 % do and too few calibrators are left, or the matches show no
    photometric relation: the WCS is wrong.
``target_outside_frame``
    The alert position is outside the frame's footprint (the convex hull
    of its usable sources, plus ``FitSettings.target_margin_arcsec``): the
    image is of another part of the sky (wrong EventID or image); checked
    before any fit, so no limit is ever given for it.

A failure after the sources matched reference stars (``too_few_stars``,
``bad_astrometry``, ``poor_fit``, ``wrong_wcs``, and ``target_outside_frame``
when the frame's stars can still be fitted) is raised as
:class:`results.CalibrationRefused`, the same code and message with the best
failing candidate's stars and fit (:class:`results.FailedCalibration`), so
that the service can plot what was refused. The failures before any match
(``no_usable_sources``, ``field_not_covered``, ``no_stars_matched``) have none.

A forced survey/band that is unknown or has no data in the field raises
``shared.errors.BadInput`` with code ``force_filter_unavailable``.

When the observatory's registered filters constrain the choice and none of
their bands can be fitted (another band could), ``too_few_stars`` says so
and how to ask for another band (forceFilter).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from services.calibrate.core import crowding
from services.calibrate.core.aperture import aperture_columns, aperture_correction
from services.calibrate.core.calibrators import source_quality, usable_mags
from services.calibrate.core.choice import (
    BandCandidate,
    band_has_data,
    choose_best,
    evaluate_candidates,
)
from services.calibrate.core.footprint import require_target_in_frame
from services.calibrate.core.inputs import ForcedAperture, NearbyDetection, ReferenceStars, SourceColumns
from services.calibrate.core.limits import reference_completeness_inst
from services.calibrate.core.results import (
    CalibrationRefused,
    FailedCalibration,
    FrameCalibration,
    PlotData,
    TargetMeasurement,
)
from services.calibrate.core.settings import FitSettings
from services.calibrate.core.target import (
    ApertureInput,
    TargetColour,
    counterpart_colour,
    light_curve_colour,
    measure_forced_target,
    measure_target,
    nearest_source,
)
from shared.bands import (
    FilterConstraint,
    ForcedBand,
    filter_constraint,
    parse_force_filter,
)
from shared.contracts.errors import ErrorCode
from shared.contracts.surveys import get_survey
from shared.errors import BadInput, CalibrationFailed


def _stars_of(survey_name: str, references: Mapping[str, ReferenceStars]) -> ReferenceStars | None:
    for key, s in references.items():
        if (s.survey or key).lower() == survey_name.lower() or key.lower() == survey_name.lower():
            return s
    return None


def _resolve_forced(
    force_filter: ForcedBand | tuple[str, str] | str, references: Mapping[str, ReferenceStars]
) -> ForcedBand:
    """The forced band or band group, keeping the bands with data here; BadInput if none can be used."""
    forced = parse_force_filter(force_filter)
    assert forced is not None
    available = ", ".join(k for k, s in references.items() if len(s)) or "none"
    usable: list[tuple[str, str]] = []
    for survey_name, band_name in forced.bands:
        stars = _stars_of(survey_name, references)
        if stars is None or len(stars) == 0:
            if forced.exact is not None:
                raise BadInput(
                    # what is wrong first: CPCS clients are shown the start of it (shared.http_errors.cpcs_error_body)
                    f"no {survey_name} stars in this field (forceFilter {forced.text}; surveys here: {available})",
                    code=ErrorCode.FORCE_FILTER_UNAVAILABLE,
                )
            continue
        if band_has_data(stars, get_survey(survey_name).band(band_name)):
            usable.append((survey_name, band_name))
        elif forced.exact is not None:
            raise BadInput(
                f"no {survey_name} {band_name} magnitudes in this field (forceFilter {forced.text}); "
                "choose another band or leave forceFilter empty",
                code=ErrorCode.FORCE_FILTER_UNAVAILABLE,
            )
    if not usable:
        raise BadInput(
            f"no stars of forceFilter {forced.text} in this field (surveys here: {available}); "
            "choose another band or leave forceFilter empty",
            code=ErrorCode.FORCE_FILTER_UNAVAILABLE,
        )
    return replace(forced, bands=usable)


def _too_few_message(
    candidates: list[BandCandidate],
    settings: FitSettings,
    n_flagged: int,
    n_matched: int,
    n_usable: int,
    radius: float,
) -> str:
    """What is short: sources matched, stars with a magnitude in a band, stars passing the quality cuts."""
    tried = [c for c in candidates if c.band]
    best = max(tried, key=lambda c: (c.ncalibrators, c.nquality, c.nmatched), default=None)
    need = settings.min_stars
    if best is None:
        return f"no survey/band could be tried; at least {need} calibration stars are needed"
    if n_matched < 0.05 * n_usable:
        return (
            f"too few calibration stars: only {n_matched} of your {n_usable} sources matched a reference "
            f"star within {radius:g} arcsec (at most {best.ncalibrators} usable, {best.survey} {best.band}; "
            f"at least {need} are needed): check the astrometric solution (WCS) of your image "
            "or try a larger matchDist"
        )
    most_matched = max(tried, key=lambda c: c.nmatched)
    if most_matched.nmatched < need:
        return (
            f"too few calibration stars: {n_matched} of your {n_usable} sources matched a reference star, "
            f"at most {most_matched.nmatched} with a magnitude in one band ({most_matched.survey} "
            f"{most_matched.band}); at least {need} are needed. Try a larger matchDist, a longer exposure "
            "or a larger field of view"
        )
    msg = (
        f"too few calibration stars: at most {best.nquality} of the matched stars pass the quality cuts "
        f"({best.survey} {best.band}: {best.nmatched} matched; cuts: survey magnitude "
        f"range, catalogue error <= {settings.max_ref_err:g} mag, SExtractor FLAGS, unambiguous match); "
        f"at least {need} are needed. Try a larger matchDist, a longer exposure, or check that bright "
        "stars are not saturated"
    )
    if n_flagged:
        msg += f" ({n_flagged} sources are flagged saturated/truncated)"
    return msg


#: an uploaded frame's WCS is wrong when fewer than this fraction of its usable sources ...
WRONG_WCS_MAX_FRACTION = 0.05
#: ... and fewer than this many sources land on a reference star (chance coincidences)
WRONG_WCS_MAX_MATCHED = 5

#: the target's notes that are also the answer's warnings: its blend, and where its colour came from
WARNING_NOTES = ("the target is blended", "the target's colour", "the colour of")

WRONG_WCS_MESSAGE = (
    "the frame's WCS puts its stars away from the reference stars ({detail}): re-solve it "
    "(or send it without WCS and the server will solve it)"
)


def wcs_matches_nothing(n_matched: int, n_usable: int) -> bool:
    """Whether a frame's WCS put almost none of its sources on a reference star.

    A right WCS matches most of a frame's bright stars; a faint frame over a shallow survey
    still matches tens. Below 5 % of the usable sources *and* fewer than 5 stars, the matches
    are chance coincidences: the frame is elsewhere than its WCS says.
    """
    return n_matched < WRONG_WCS_MAX_MATCHED and n_matched < WRONG_WCS_MAX_FRACTION * max(n_usable, 1)


def _wrong_wcs(n_matched: int, n_usable: int, radius: float) -> CalibrationFailed:
    detail = f"{n_matched} of its {n_usable} sources within {radius:g} arcsec of one"
    return CalibrationFailed(WRONG_WCS_MESSAGE.format(detail=detail), code=ErrorCode.WRONG_WCS)


def _sanity_check(
    best: BandCandidate, n_matched: int, n_usable: int, radius: float, s: FitSettings, check_wcs: bool = False
) -> None:
    """Refuse a "calibration" that is no relation at all (see ``bad_astrometry``, ``poor_fit``)."""
    fit = best.fit
    assert fit is not None
    if fit.scatter <= s.max_scatter:
        return
    frac = n_matched / max(n_usable, 1)
    if frac < s.min_match_fraction:
        if check_wcs:
            raise _wrong_wcs(n_matched, n_usable, radius)
        raise CalibrationFailed(
            f"no photometric relation with the reference stars (scatter {fit.scatter:.2f} mag; "
            f"{n_matched} of {n_usable} sources matched within {radius:g} arcsec, by chance): "
            "check the astrometric solution (WCS) of your image",
            code=ErrorCode.BAD_ASTROMETRY,
        )
    raise CalibrationFailed(
        f"calibration too poor to trust ({best.survey} {best.band} scatter {fit.scatter:.2f} mag over "
        f"{fit.npoints} stars, at most {s.max_scatter:g}): check that the magnitudes are this image's "
        "MAG_AUTO and its WCS, or try a smaller matchDist",
        code=ErrorCode.POOR_FIT,
    )


def calibrate_frame(
    sources: SourceColumns,
    references: Mapping[str, ReferenceStars],
    target_ra: float,
    target_dec: float,
    match_radius_arcsec: float,
    force_filter: ForcedBand | tuple[str, str] | str | None = None,
    settings: FitSettings | None = None,
    observatory_filters: list[str] | None = None,
    forced_target: ForcedAperture | None = None,
    check_wcs: bool = False,
    nearby: Sequence[NearbyDetection] = (),
) -> FrameCalibration:
    """Calibrate a frame's photometry and measure the transient.

    Parameters
    ----------
    sources : SourceColumns
        The observer's sources: ra, dec (deg), instrumental mag and error
        (mag), SExtractor FLAGS.
    references : dict of str to ReferenceStars
        Reference stars in the field, by survey name (``"APASS"``, ...).
    target_ra, target_dec : float
        Alert position, deg.
    match_radius_arcsec : float
        Radius for matching sources to reference stars and the target to
        the alert position, arcsec.
    force_filter : ForcedBand, (survey, band) or forceFilter text, optional
        Calibrate against this survey/band only, skipping the choice
        (case-insensitive, e.g. ``("APASS", "V")``), or choose within a band
        group (``GaiaSP/any``, ``APASS/B,V``; :func:`shared.bands.parse_force_filter`).
    settings : FitSettings, optional
        Defaults if None.
    observatory_filters : list of str, optional
        The observatory's registered filters (``V``, ``r'``, ``Ic``...): the
        choice is made among their bands (:func:`shared.bands.filter_constraint`;
        a clear or unknown name does not constrain). A forced band overrides them.
    forced_target : ForcedAperture, optional
        An uploaded frame's aperture at the alert's position, measured by the
        server: the target is that measurement, not the nearest source
        (:func:`target.measure_forced_target`); the frame itself said the
        alert is on it, so the footprint check is not made.
    check_wcs : bool
        The sources' positions come from an uploaded frame's own WCS: when
        almost none matches a reference star (:func:`wcs_matches_nothing`),
        or the matches show no relation, the answer is ``wrong_wcs``.
    nearby : sequence of NearbyDetection, optional
        The alert's other calibrated detections near this frame in time: in
        the chosen survey's other colour band they give the target's colour
        (:func:`target.light_curve_colour`), before its counterpart's.

    Returns
    -------
    FrameCalibration

    Raises
    ------
    shared.errors.CalibrationFailed
        ``no_usable_sources``, ``field_not_covered``, ``no_stars_matched``,
        ``too_few_stars``, ``bad_astrometry``, ``poor_fit`` or
        ``target_outside_frame`` (see the module docstring).
    shared.errors.BadInput
        Non-positive radius or non-finite target position (``bad_input``);
        forced survey/band unknown or without data
        (``force_filter_unavailable``).

    Notes
    -----
    Every band of every survey with stars is fitted
    (:func:`choice.evaluate_candidates`, one positional match per survey)
    and the lowest :func:`choice.candidate_score` wins.
    """
    s = settings or FitSettings()
    if not (math.isfinite(match_radius_arcsec) and match_radius_arcsec > 0):
        raise BadInput(f"match radius must be a positive number of arcsec, got {match_radius_arcsec}")
    if not (math.isfinite(target_ra) and math.isfinite(target_dec) and -90.0 <= target_dec <= 90.0):
        raise BadInput(f"target position ({target_ra}, {target_dec}) is not a valid RA/Dec in degrees")

    n_sources = len(sources)
    ra = np.asarray(sources.ra, dtype=float)
    dec = np.asarray(sources.dec, dtype=float)
    usable = usable_mags(sources.mag) & np.isfinite(ra) & np.isfinite(dec)
    n_usable = int(usable.sum())
    if n_usable == 0:
        raise CalibrationFailed(
            f"none of your {n_sources} sources has a usable magnitude and position (all NaN or 99): "
            "check the magnitude column of your catalogue",
            code=ErrorCode.NO_USABLE_SOURCES,
        )
    if forced_target is None:
        try:
            require_target_in_frame(sources, usable, target_ra, target_dec, s.target_margin_arcsec)
        except CalibrationFailed as outside:
            # the refusal stands; the fit the frame's own stars give is only for its plot
            shown, tried = _best_effort(sources, references, match_radius_arcsec, force_filter, s, observatory_filters)
            raise _refused(outside, shown, tried) from None
    if sum(len(st) for st in references.values()) == 0:
        raise CalibrationFailed(
            f"no reference stars from any survey cover this field (RA {target_ra:.5f}, Dec {target_dec:.5f}): "
            "check the target coordinates; this field cannot be calibrated with the available surveys",
            code=ErrorCode.FIELD_NOT_COVERED,
        )
    forced = parse_force_filter(force_filter)
    if forced is not None:
        forced = _resolve_forced(forced, references)
    constraint = filter_constraint(observatory_filters) if forced is None else None

    good = source_quality(sources, s)
    # the target is variable by definition: never one of its own calibrators (a known source
    # brightening matches its catalogue counterpart and, unclipped, would pull the zero point; on an
    # uploaded frame it is among the frame's own sources too)
    j_target, _ = nearest_source(sources, usable, target_ra, target_dec, match_radius_arcsec)
    if j_target is not None and good[j_target]:
        good = good.copy()
        good[j_target] = False
    started = time.perf_counter()
    only = None if forced is None else forced.bands
    evaluation = evaluate_candidates(sources, references, match_radius_arcsec, usable, good, s, only=only)
    candidates, n_matched_any = evaluation.candidates, evaluation.n_matched_any
    fitted = time.perf_counter()
    if check_wcs and wcs_matches_nothing(n_matched_any, n_usable):
        raise _refused(
            _wrong_wcs(n_matched_any, n_usable, match_radius_arcsec), _most_calibrators(candidates), candidates
        )
    if n_matched_any == 0:
        raise CalibrationFailed(
            f"none of your {n_usable} sources matched a reference star within {match_radius_arcsec:g} arcsec: "
            "check the astrometric solution (WCS) of your image or try a larger matchDist",
            code=ErrorCode.NO_STARS_MATCHED,
        )
    try:
        best = _choose(candidates, s, constraint)
    except CalibrationFailed as exc:  # none of the observatory's bands can be fitted
        raise _refused(exc, _most_calibrators(candidates), candidates) from None
    if best is None and check_wcs and n_matched_any < WRONG_WCS_MAX_FRACTION * n_usable:
        # too few calibrators because too few sources matched at all: the frame's WCS, not the field
        raise _refused(
            _wrong_wcs(n_matched_any, n_usable, match_radius_arcsec), _most_calibrators(candidates), candidates
        )
    if best is None:
        n_flagged = int((usable & ((np.asarray(sources.flags).astype(np.int64) & s.reject_flags) != 0)).sum())
        too_few = CalibrationFailed(
            _too_few_message(candidates, s, n_flagged, n_matched_any, n_usable, match_radius_arcsec),
            code=ErrorCode.TOO_FEW_STARS,
        )
        raise _refused(too_few, _most_calibrators(candidates), candidates)
    chosen = best
    if best.isolated is not None:
        # a crowded frame: the chosen band's final fit over its isolated calibrators (choice.fit_band)
        best = best.isolated
    fit = best.fit
    assert fit is not None
    assert best.score is not None  # fit_band scores every candidate it fits
    try:
        _sanity_check(best, n_matched_any, n_usable, match_radius_arcsec, s, check_wcs)
    except CalibrationFailed as exc:
        raise _refused(exc, best, candidates) from None
    warnings = []
    if best.colour_term_assumed:
        cost = fit.unknown_colour_err(s.transient_colour_scale * fit.colour_spread)
        warnings.append(
            f"too few {best.survey} stars with a {best.colour} colour to fit a colour term: zero point only "
            f"over {fit.npoints} stars, colour term assumed 0 +- {s.assumed_colour_term_err:g}; the error "
            f"includes {cost:.3f} mag for the unknown colour"
        )

    # limit from the frame's good sources (any error), target from any usable source
    flags = np.asarray(sources.flags).astype(np.int64, copy=False)
    limit_good = usable & ((flags & s.reject_flags) == 0)
    completeness = reference_completeness_inst(
        sources, usable, references, candidates, evaluation.detected, s.limit_completeness
    )
    aperture = _aperture_input(sources, good, evaluation.neighbour_light, s)
    known_colour = counterpart_colour(
        _stars_of(best.survey, references),
        best.survey,
        get_survey(best.survey).band(best.band).colour,
        target_ra,
        target_dec,
        s,
    )

    def measure(known: TargetColour | None) -> TargetMeasurement:
        if forced_target is not None:
            return measure_forced_target(forced_target, fit, target_ra, target_dec, s, known_colour=known)
        return measure_target(
            sources,
            usable,
            limit_good,
            fit,
            target_ra,
            target_dec,
            match_radius_arcsec,
            s,
            completeness_inst=completeness,
            neighbour_light=evaluation.neighbour_light,
            aperture=aperture,
            crowded=evaluation.crowded,
            known_colour=known,
        )

    target = measure(known_colour)
    # a colour measured the same night beats a counterpart's quiescent one: the target measured once
    # gives its instrumental magnitude, which that colour is solved with (light_curve_colour)
    colour_bands = get_survey(best.survey).band(best.band).colour
    measured_colour = light_curve_colour(nearby, best.survey, colour_bands, best.band, target, fit, s)
    if measured_colour is not None:
        target = measure(measured_colour)
    if target.detected and target.note:
        warnings.extend(n for n in target.note.split("; ") if n.startswith(WARNING_NOTES))
    target_colour = fit.median_colour if target.assumed_colour is None else target.assumed_colour
    if best is not chosen and chosen.fit is not None and target.mag_err is not None:
        # how far leaving the blended stars out moved the calibration: crowding the cut may not have
        # removed moves it as much again, so that shift is part of the error (at the target's colour)
        c0 = target_colour
        shift = abs((fit.zeropoint + fit.colour_term * c0) - (chosen.fit.zeropoint + chosen.fit.colour_term * c0))
        err = math.hypot(target.mag_err, s.crowding_shift_fraction * shift)
        # how far isolated sources measured as well as the target stray from the isolated calibration in
        # this frame, measured the same way as the target: in the aperture, when it was (aperture.py). Not
        # all calibrators: a blended star's residual is mostly the reference catalogue's own blend (APASS's
        # 2.6"-pixels merge the plane's stars), not the target's error, and the target's own blend is
        # counted by crowding.target_blend
        inst_mag, inst_err = best.inst_mag, best.inst_err
        if aperture is not None and target.photometry == "aperture":
            mag_aper, mag_aper_err, apc = aperture
            inst_mag = mag_aper[best.source_index] + apc.correction
            inst_err = mag_aper_err[best.source_index]
        empirical = crowding.empirical_error(
            best.ref_mag,
            inst_mag,
            inst_err,
            best.colour_values,
            fit.zeropoint,
            fit.colour_term,
            target.inst_mag_err,
            s,
        )
        if empirical is not None and empirical > err:
            warnings.append(
                f"crowded field: sources measured as well as the target scatter by {empirical:.3f} mag about the "
                "calibration (blends, background); the target's error is that"
            )
            err = empirical
        target = replace(target, mag_err=err)

    durations_ms = {
        "match": round(evaluation.match_seconds * 1000, 3),
        "fit": round((fitted - started - evaluation.match_seconds) * 1000, 3),
        "limit": round((time.perf_counter() - fitted) * 1000, 3),
    }
    # plot arrays over all calibrators (bright-cut ones included)
    n_cal = best.ncalibrators
    used = np.zeros(n_cal, dtype=bool)
    clipped = np.zeros(n_cal, dtype=bool)
    kept = ~best.bright
    used[kept] = fit.used
    clipped[kept] = fit.clipped
    residual = best.ref_mag - (best.inst_mag + fit.zeropoint + fit.colour_term * best.colour_values)
    plot = PlotData(
        ref_mag=best.ref_mag,
        ref_err=best.ref_err,
        inst_mag=best.inst_mag,
        inst_err=best.inst_err,
        colour=best.colour_values,
        residual=residual,
        used=used,
        clipped=clipped,
        bright=best.bright.copy(),
        target_inst_mag=target.inst_mag,
        target_inst_mag_err=target.inst_mag_err,
    )
    return FrameCalibration(
        survey=best.survey,
        band=best.band,
        colour=best.colour,
        zeropoint=fit.zeropoint,
        zeropoint_err=fit.zeropoint_err,
        colour_term=fit.colour_term,
        colour_term_err=fit.colour_term_err if fit.fit_colour_term else None,
        scatter=fit.scatter,
        intrinsic_scatter=fit.intrinsic_scatter,
        npoints=fit.npoints,
        nmatched=best.nmatched,
        ncalibrators=best.ncalibrators,
        nbright=best.nbright,
        outlier_fraction=fit.outlier_fraction,
        score=float(best.score),
        fit_colour_term=fit.fit_colour_term,
        assumed_colour=target_colour,
        n_sources=n_sources,
        n_usable=n_usable,
        target=target,
        plot=plot,
        candidates=[(best if c is chosen else c).summary(chosen=c is chosen) for c in candidates],
        forced=forced is not None and forced.exact is not None,
        durations_ms=durations_ms,
        warnings=warnings,
        colour_term_assumed=best.colour_term_assumed,
    )


def _aperture_input(
    sources: SourceColumns, good: np.ndarray, neighbour_light: np.ndarray | None, s: FitSettings
) -> ApertureInput | None:
    """The sources' fixed-aperture magnitudes and the frame's aperture correction, if the catalogue has them
    and enough isolated stars give the correction (:mod:`aperture`)."""
    columns = aperture_columns(sources)
    if columns is None:
        return None
    mag_aper, mag_aper_err = columns
    correction = aperture_correction(
        np.asarray(sources.mag, dtype=float),
        np.asarray(sources.mag_err, dtype=float),
        mag_aper,
        np.asarray(sources.flags),
        good,
        neighbour_light,
        s,
    )
    return None if correction is None else (mag_aper, mag_aper_err, correction)


def _choose(
    candidates: list[BandCandidate], s: FitSettings, constraint: FilterConstraint | None
) -> BandCandidate | None:
    """:func:`choice.choose_best`, among the bands of the observatory's filters when they constrain.

    A frame through one of them is never calibrated in another band: when
    none of their bands can be fitted here but another could, the upload is
    refused (``too_few_stars``) with a message saying how to ask for another band.
    """
    if constraint is None:
        return choose_best(candidates, s)
    why = f"your observatory's filters ({constraint.label})"
    best = choose_best(candidates, s, allowed=constraint.bands, near=constraint.near, why=why)
    if best is None:
        other = choose_best(candidates, s)
        if other is not None:
            raise CalibrationFailed(
                f"no band of your observatory's filters ({constraint.label}) can be calibrated in this field "
                f"(too few stars; {other.survey} {other.band} could): send forceFilter={other.survey}/any "
                "to calibrate in another band",
                code=ErrorCode.TOO_FEW_STARS,
            )
    return best


def _most_calibrators(candidates: list[BandCandidate]) -> BandCandidate | None:
    """The candidate closest to a calibration when none could be made: the most calibration stars (None when
    no source matched a star of any: nothing to plot)."""
    tried = [c for c in candidates if c.band and c.nmatched > 0]
    return max(tried, key=lambda c: (c.fit is not None, c.ncalibrators, c.nquality, c.nmatched), default=None)


def _failed_calibration(candidate: BandCandidate, candidates: list[BandCandidate]) -> FailedCalibration:
    """A candidate's stars and fit (if any) as the plot takes them (the same arrays as a success's)."""
    n_cal = len(candidate.ref_mag)
    used = np.zeros(n_cal, dtype=bool)
    clipped = np.zeros(n_cal, dtype=bool)
    fit = candidate.fit
    if fit is not None:
        kept = ~candidate.bright
        used[kept] = fit.used
        clipped[kept] = fit.clipped
        residual = candidate.ref_mag - (candidate.inst_mag + fit.zeropoint + fit.colour_term * candidate.colour_values)
    else:
        offset = candidate.ref_mag - candidate.inst_mag
        finite = np.isfinite(offset)
        residual = offset - (float(np.median(offset[finite])) if finite.any() else 0.0)
    plot = PlotData(
        ref_mag=candidate.ref_mag,
        ref_err=candidate.ref_err,
        inst_mag=candidate.inst_mag,
        inst_err=candidate.inst_err,
        colour=candidate.colour_values,
        residual=residual,
        used=used,
        clipped=clipped,
        bright=np.asarray(candidate.bright, dtype=bool).copy(),
    )
    return FailedCalibration(
        survey=candidate.survey,
        band=candidate.band,
        colour=candidate.colour,
        npoints=0 if fit is None else fit.npoints,
        nmatched=candidate.nmatched,
        ncalibrators=candidate.ncalibrators,
        plot=plot,
        zeropoint=None if fit is None else fit.zeropoint,
        zeropoint_err=None if fit is None else fit.zeropoint_err,
        colour_term=0.0 if fit is None else fit.colour_term,
        colour_term_err=fit.colour_term_err if fit is not None and fit.fit_colour_term else None,
        scatter=None if fit is None else fit.scatter,
        fit_colour_term=fit is not None and fit.fit_colour_term,
        candidates=[c.summary() for c in candidates],
    )


def _refused(
    exc: CalibrationFailed, candidate: BandCandidate | None, candidates: list[BandCandidate]
) -> CalibrationFailed:
    """``exc`` with the candidate to plot (:class:`CalibrationRefused`); as it is without one (no star matched).

    A candidate whose matched stars all failed the quality cuts has no star to show: its plot is the reason."""
    if candidate is None:
        return exc
    return CalibrationRefused(exc.message, code=exc.code, best=_failed_calibration(candidate, candidates))


def _best_effort(
    sources: SourceColumns,
    references: Mapping[str, ReferenceStars],
    match_radius_arcsec: float,
    force_filter: ForcedBand | tuple[str, str] | str | None,
    s: FitSettings,
    observatory_filters: list[str] | None,
) -> tuple[BandCandidate | None, list[BandCandidate]]:
    """The candidate a frame refused before its fit would have been calibrated in (for the plot of a
    ``target_outside_frame``): the choice's band, else the one with the most stars; (None, []) if none."""
    try:
        usable = usable_mags(sources.mag) & np.isfinite(np.asarray(sources.ra, dtype=float))
        usable &= np.isfinite(np.asarray(sources.dec, dtype=float))
        forced = parse_force_filter(force_filter)
        if forced is not None:
            forced = _resolve_forced(forced, references)
        constraint = filter_constraint(observatory_filters) if forced is None else None
        only = None if forced is None else forced.bands
        good = source_quality(sources, s)
        evaluation = evaluate_candidates(sources, references, match_radius_arcsec, usable, good, s, only=only)
        if evaluation.n_matched_any == 0:
            return None, []
        candidates = evaluation.candidates
        try:
            best = _choose(candidates, s, constraint)
        except CalibrationFailed:
            best = None
    except Exception:
        return None, []
    if best is not None and best.isolated is not None:
        best = best.isolated
    return (best if best is not None else _most_calibrators(candidates)), candidates
