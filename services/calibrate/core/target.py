"""The transient: its calibrated magnitude, or, when it is not in the catalogue, the frame's limit.

The target is the nearest usable source to the alert position
(:func:`nearest_source`); :func:`measure_target` calibrates it through the
chosen fit, or answers the limit (:mod:`limits`). Where the frame is and
whether the alert lies in it: :mod:`footprint`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from services.calibrate.core.aperture import ApertureCorrection, wants_aperture
from services.calibrate.core.crowding import target_blend
from services.calibrate.core.fitting import FitResult
from services.calibrate.core.inputs import ForcedAperture, NearbyDetection, ReferenceStars, SourceColumns
from services.calibrate.core.limits import frame_limit_inst
from services.calibrate.core.results import TargetMeasurement
from services.calibrate.core.settings import FitSettings
from shared.sky import angular_separation_arcsec

#: the sources' MAG_APER, its error (mag) and the frame's aperture correction
ApertureInput = tuple[np.ndarray, np.ndarray, ApertureCorrection]


def nearest_source(
    sources: SourceColumns, candidates: np.ndarray, ra: float, dec: float, radius_arcsec: float
) -> tuple[int | None, float | None]:
    """Index of the nearest source among ``candidates`` within the radius.

    Parameters
    ----------
    sources : SourceColumns
    candidates : numpy.ndarray of bool
        Sources eligible (usable magnitude, finite position).
    ra, dec : float
        Alert position, deg.
    radius_arcsec : float
        Match radius, arcsec.

    Returns
    -------
    (int or None, float or None)
        Source index and separation in arcsec, or (None, None).
    """
    idx = np.flatnonzero(candidates)
    if idx.size == 0:
        return None, None
    ra_s = np.asarray(sources.ra, dtype=float)[idx]
    dec_s = np.asarray(sources.dec, dtype=float)[idx]
    # cheap box first: |ddec| <= radius
    r_deg = radius_arcsec / 3600.0
    near = np.abs(dec_s - dec) <= r_deg
    if not near.any():
        return None, None
    idx, ra_s, dec_s = idx[near], ra_s[near], dec_s[near]
    sep = angular_separation_arcsec(ra_s, dec_s, ra, dec)
    j = int(np.argmin(sep))
    if not sep[j] <= radius_arcsec:
        return None, None
    return int(idx[j]), float(sep[j])


@dataclass(frozen=True)
class TargetColour:
    """A colour known for the target, in the chosen band's colour index (e.g. APASS B-V).

    ``value`` and its 1-sigma ``err`` in mag; ``source`` says where it comes from, for the answer
    (``"its APASS counterpart at 0.12 arcsec"``), ``caveat`` what using it takes for granted.
    """

    value: float
    err: float
    source: str
    caveat: str = "taken as unchanged by the event"


def counterpart_colour(
    stars: ReferenceStars | None,
    survey: str,
    colour_bands: tuple[str, str],
    ra: float,
    dec: float,
    settings: FitSettings,
) -> TargetColour | None:
    """The catalogue colour of the target's counterpart in the chosen survey, if it has one.

    A Gaia alert is often a known source brightening (a microlensing event keeps its source's
    colour; a young star or a cataclysmic variable is in the catalogues in quiescence): the star
    of ``stars`` nearest the alert position (``ra``, ``dec``, deg) within
    ``settings.counterpart_radius_arcsec`` is its counterpart, unless another star is as close
    (ambiguous: None). Its colour ``colour_bands[0] - colour_bands[1]`` (both magnitudes finite)
    is returned with the catalogue errors and ``settings.counterpart_colour_err`` (what the event
    may change the colour by) in quadrature, mag. None: no counterpart, or no colour.
    """
    radius = settings.counterpart_radius_arcsec
    if stars is None or len(stars) == 0 or not radius > 0:
        return None
    s_ra = np.asarray(stars.ra, dtype=float)
    s_dec = np.asarray(stars.dec, dtype=float)
    near = np.flatnonzero(np.abs(s_dec - dec) <= radius / 3600.0)
    if near.size == 0:
        return None
    sep = angular_separation_arcsec(s_ra[near], s_dec[near], ra, dec)
    inside = near[sep <= radius]
    if inside.size != 1:
        return None
    k = int(inside[0])
    blue, red = colour_bands
    mags, errs = stars.mags, stars.errs
    if blue not in mags or red not in mags:
        return None
    m_b, m_r = float(mags[blue][k]), float(mags[red][k])
    if not (math.isfinite(m_b) and math.isfinite(m_r)):
        return None
    e_b = float(errs[blue][k]) if blue in errs else math.nan
    e_r = float(errs[red][k]) if red in errs else math.nan
    cat_err = math.hypot(e_b if math.isfinite(e_b) else 0.0, e_r if math.isfinite(e_r) else 0.0)
    d = float(angular_separation_arcsec(s_ra[k : k + 1], s_dec[k : k + 1], ra, dec)[0])
    return TargetColour(
        value=m_b - m_r,
        err=math.hypot(cat_err, settings.counterpart_colour_err),
        source=f"its {stars.survey} counterpart at {d:.2f} arcsec",
    )


def light_curve_colour(
    nearby: Sequence[NearbyDetection],
    survey: str,
    colour_bands: tuple[str, str],
    band: str,
    target: TargetMeasurement,
    fit: FitResult,
    settings: FitSettings,
) -> TargetColour | None:
    """The target's colour from the alert's own detections near in time, in the chosen survey.

    An observer who takes B and V the same night (or two observers of one alert) measures the
    transient's colour: with this frame in ``band`` of ``survey`` and the colour index
    ``colour_bands = (blue, red)`` (e.g. APASS B-V), the nearest detection within
    ``settings.lightcurve_colour_window_days`` in each colour band that this frame is not gives it.
    When this frame is one of the two, its own magnitude depends on the colour through the colour
    term, ``m = m_inst + ZP + CT c``, so the colour is solved for (``target.inst_mag``, mag):

        this frame blue:  c = (m_inst + ZP - m_red) / (1 - CT)
        this frame red:   c = (m_blue - m_inst - ZP) / (1 + CT)
        neither:          c = m_blue - m_red

    Its 1-sigma error (mag): the detections' errors, this frame's instrumental error and its zero
    point's at that colour, over ``|1 -+ CT|``, and ``settings.lightcurve_colour_drift`` (mag/day)
    times the longest time between the frames, in quadrature. None: no such detections, the target
    not detected, or no colour term fitted (a colour would change nothing).
    """
    window = settings.lightcurve_colour_window_days
    if not nearby or not window > 0 or not target.detected or target.inst_mag is None or not fit.fit_colour_term:
        return None
    blue, red = colour_bands

    def nearest(wanted: str) -> NearbyDetection | None:
        found = [
            d
            for d in nearby
            if d.survey == survey
            and d.band == wanted
            and abs(d.dt_days) <= window
            and math.isfinite(d.mag)
            and math.isfinite(d.mag_err)
        ]
        return min(found, key=lambda d: abs(d.dt_days)) if found else None

    used: list[NearbyDetection] = []
    zp, ct = fit.zeropoint, fit.colour_term
    inst_err = target.inst_mag_err if target.inst_mag_err is not None else math.nan
    if band in (blue, red):
        other = nearest(red if band == blue else blue)
        if other is None:
            return None
        used.append(other)
        if band == blue:
            denominator = 1.0 - ct
            value = (target.inst_mag + zp - other.mag) / denominator
        else:
            denominator = 1.0 + ct
            value = (other.mag - target.inst_mag - zp) / denominator
        own = math.hypot(inst_err if math.isfinite(inst_err) else 0.0, fit.calibration_err(value))
        err = math.hypot(own, other.mag_err) / abs(denominator)
    else:
        pair = nearest(blue), nearest(red)
        if pair[0] is None or pair[1] is None:
            return None
        used.extend(pair)  # type: ignore[arg-type]
        value = pair[0].mag - pair[1].mag
        err = math.hypot(pair[0].mag_err, pair[1].mag_err)
    if not math.isfinite(value):
        return None
    dt = max(abs(d.dt_days) for d in used)
    err = math.hypot(err, settings.lightcurve_colour_drift * dt)
    what = " and ".join(f"{d.survey} {d.band} {d.label} ({d.dt_days * 24:+.1f} h)" for d in used)
    return TargetColour(
        value=value,
        err=err,
        source=f"from its own light curve: {what}",
        caveat=f"its colour taken to change by at most {settings.lightcurve_colour_drift:g} mag a day",
    )


def calibrated_error(
    fit: FitResult, inst_err: float, colour: float, settings: FitSettings, colour_err: float | None = None
) -> float:
    """The target's error, mag: its instrumental error, the fit's at ``colour``, the relation's intrinsic
    scatter and the cost of its colour's uncertainty (see :func:`measure_target`), in quadrature.

    ``colour_err`` (mag): the 1-sigma error of a known target colour; None, the colour is unknown and
    scatters like the calibrators' (``transient_colour_scale`` times their spread)."""
    spread = settings.transient_colour_scale * fit.colour_spread if colour_err is None else colour_err
    col_err = fit.unknown_colour_err(spread)
    return math.sqrt(inst_err**2 + fit.calibration_err(colour) ** 2 + fit.intrinsic_scatter**2 + col_err**2)


def usable_colour(fit: FitResult, known: TargetColour | None, settings: FitSettings) -> TargetColour | None:
    """``known`` if the fit can use it: a fitted colour term, and the colour among the calibrators'.

    A straight colour term is trusted over the calibrators' colours only: a counterpart farther than
    ``settings.counterpart_max_spreads`` robust spreads from their median colour (or with no colour
    term fitted) is not used.
    """
    if known is None or not fit.fit_colour_term or not math.isfinite(known.value):
        return None
    if abs(known.value - fit.median_colour) > settings.counterpart_max_spreads * fit.colour_spread:
        return None
    return known


class ColourChoice(NamedTuple):
    """The colour a target is calibrated at (mag), the spread its error is costed with (mag; None: the
    calibrators' own), the known colour's source (None: their median) and the answer's note."""

    colour: float
    cost_spread: float | None
    source: str | None
    note: str | None


def choose_colour(fit: FitResult, known: TargetColour | None, settings: FitSettings) -> ColourChoice:
    """At which colour to calibrate the target, and what its colour costs.

    Its counterpart's colour when :func:`usable_colour` accepts it (cost: that colour's error).
    A counterpart too far from the calibrators' colours for the colour term to be trusted there is
    not used, but its colour says how far the target is from their median: the target is calibrated
    at the median and the cost is at least that offset, not the calibrators' spread alone. Without a
    counterpart: the median and the spread (``transient_colour_scale`` times theirs). A known colour
    whose error is not below both that spread and its offset from the median is not used at all.
    """
    c0 = fit.median_colour
    if known is not None and not known.err < max(
        settings.transient_colour_scale * fit.colour_spread, abs(known.value - c0)
    ):
        # less certain than both the calibrators' spread and its own offset from their median: it says
        # nothing the median does not (a colour from a frame calibrated in a band far from its filter)
        known = None
    use = usable_colour(fit, known, settings)
    if use is not None:
        note = (
            f"the target's colour {use.value:.3f} +- {use.err:.3f} mag is {use.source} "
            f"({use.caveat}), not the calibrators' median"
        )
        return ColourChoice(use.value, use.err, use.source, note)
    if known is not None and fit.fit_colour_term and math.isfinite(known.value):
        offset = abs(known.value - c0)
        note = (
            f"the colour of {known.source}, {known.value:.3f} mag, is beyond the calibrators' "
            f"({c0:.3f} +- {fit.colour_spread:.3f}): the target is calibrated at their median colour "
            f"and its error counts the {offset:.3f} mag offset"
        )
        return ColourChoice(c0, max(settings.transient_colour_scale * fit.colour_spread, offset), None, note)
    return ColourChoice(c0, None, None, None)


def measure_target(
    sources: SourceColumns,
    src_usable: np.ndarray,
    src_limit_good: np.ndarray,
    fit: FitResult,
    target_ra: float,
    target_dec: float,
    radius_arcsec: float,
    settings: FitSettings,
    reject_flags: int | None = None,
    completeness_inst: float | None = None,
    neighbour_light: np.ndarray | None = None,
    aperture: ApertureInput | None = None,
    crowded: bool = False,
    known_colour: TargetColour | None = None,
) -> TargetMeasurement:
    """Calibrate the transient, or give the frame's limit if it is not there.

    The target is the nearest source with a usable magnitude within
    ``radius_arcsec`` of the alert position. Its colour is unknown, so the
    median colour of the used calibration stars is assumed::

        mag = m_inst + ZP + CT * colour_assumed

    unless ``known_colour`` gives it (its counterpart's in the chosen survey,
    :func:`counterpart_colour`) and the fit can use it (:func:`usable_colour`):
    then that colour is the assumed one, the cost of the colour is its error
    ``sigma_c`` instead of the calibrators' spread (``(CT**2 + var(CT)) *
    sigma_c**2`` below), and the note says where the colour came from
    (``colour_source``). The limit stays at the calibrators' median colour.

    Its error adds in quadrature the source's own photometric error, the
    error of the calibration at the assumed colour (``ZP + CT * colour``
    from the fit covariance, about ``scatter / sqrt(N)``), the intrinsic
    scatter of the calibration relation (the scatter a single star shows
    beyond its stated errors), and the error of the colour correction for a
    target whose true colour is unknown (:meth:`FitResult.unknown_colour_err`:
    ``sqrt(CT**2 + var(CT))`` times the calibrators' colour spread)::

        mag_err = sqrt(e_inst**2 + err(ZP + CT c0)**2 + s_int**2
                       + (CT**2 + var(CT)) * spread**2)

    (The robust scatter of the residuals is not used: it also contains the
    calibrators' own photometric noise, which the target does not share.)

    With no source within the radius, ``detected`` is False, ``mag`` is
    None, and ``limit_mag`` is the frame's limit calibrated with the same ZP
    and CT at the assumed colour: ``completeness_inst`` (the instrumental
    magnitude at which half the reference stars are in the catalogue, see
    :func:`reference_completeness_inst`) when given, else the 5-sigma point
    of the catalogue's own magnitude-error relation
    (:func:`frame_limit_inst`); ``limit_method`` says which (see the module
    docstring for why). The limit is computed for detections too.

    A blended target (SExtractor blend FLAGS, or ``neighbour_light``, per
    source the neighbours' light over its own from :func:`crowding.frame_blend`,
    above ``isolation_max_blend``) has the blend's share of the error added
    in quadrature and a note saying so (:func:`crowding.target_blend`).

    In a crowded frame (``crowded``), or for a blended target, when the
    catalogue has a fixed aperture (``aperture``: the sources' ``MAG_APER``,
    its error and the frame's :class:`aperture.ApertureCorrection`), the
    target's instrumental magnitude is its aperture magnitude plus the
    correction (error: both in quadrature), ``photometry == "aperture"``
    (:mod:`aperture` says why).
    """
    colour = fit.median_colour
    cal_shift = fit.zeropoint + fit.colour_term * colour
    if completeness_inst is not None:
        inst_limit: float | None = completeness_inst
        method: str | None = "completeness"
    else:
        inst_limit = frame_limit_inst(sources.mag, sources.mag_err, src_limit_good, settings.limit_nsigma)
        method = None if inst_limit is None else "mag_err"
    limit = None if inst_limit is None else inst_limit + cal_shift
    j, sep = nearest_source(sources, src_usable, target_ra, target_dec, radius_arcsec)
    if j is None:
        return TargetMeasurement(
            detected=False,
            limit_mag=limit,
            inst_limit_mag=inst_limit,
            limit_method=method,
            assumed_colour=colour,
            note=None if limit is not None else "no source at the target and no limiting magnitude could be fitted",
        )
    inst = float(sources.mag[j])
    inst_err = float(sources.mag_err[j])
    flags = int(sources.flags[j])
    notes = []
    choice = choose_colour(fit, known_colour, settings)
    colour, colour_err, colour_source = choice.colour, choice.cost_spread, choice.source
    cal_shift = fit.zeropoint + fit.colour_term * colour
    if choice.note:
        notes.append(choice.note)
    if math.isfinite(inst_err) and inst_err >= 0:
        mag_err: float | None = calibrated_error(fit, inst_err, colour, settings, colour_err)
    else:
        mag_err = None
        notes.append("the target's instrumental error is missing")
    light = 0.0 if neighbour_light is None else float(neighbour_light[j])
    photometry, correction = "catalogue", None
    if aperture is not None and wants_aperture(crowded, flags, light, settings):
        mag_aper, mag_aper_err, apc = aperture
        if math.isfinite(mag_aper[j]) and math.isfinite(mag_aper_err[j]):
            photometry, correction = "aperture", apc.correction
            inst = float(mag_aper[j]) + apc.correction
            inst_err = math.hypot(float(mag_aper_err[j]), apc.error)
            why = "a crowded frame" if crowded else "a blended target"
            notes.append(
                f"{why}: the target is measured in the catalogue's first fixed aperture (MAG_APER), "
                f"{apc.correction:+.3f} +- {apc.error:.3f} mag aperture correction over {apc.n_stars} isolated stars"
            )
            if math.isfinite(inst_err):
                mag_err = calibrated_error(fit, inst_err, colour, settings, colour_err)
    blend_err, blend_msg = target_blend(flags, light, settings, aperture=photometry == "aperture")
    if blend_msg:
        notes.append(blend_msg)
        if mag_err is not None:
            mag_err = math.hypot(mag_err, blend_err)
    rf = settings.reject_flags if reject_flags is None else reject_flags
    if flags & rf:
        notes.append(f"the target has SExtractor FLAGS {flags} (saturated/truncated/corrupted?)")
    return TargetMeasurement(
        detected=True,
        mag=inst + cal_shift,
        mag_err=mag_err,
        ra=float(sources.ra[j]),
        dec=float(sources.dec[j]),
        inst_mag=inst,
        inst_mag_err=inst_err if math.isfinite(inst_err) else None,
        separation_arcsec=sep,
        limit_mag=limit,
        inst_limit_mag=inst_limit,
        limit_method=method,
        assumed_colour=colour,
        colour_err=colour_err if colour_source else None,
        colour_source=colour_source,
        flags=flags,
        note="; ".join(notes) or None,
        photometry=photometry,
        aperture_correction=correction,
    )


def measure_forced_target(
    forced: ForcedAperture,
    fit: FitResult,
    target_ra: float,
    target_dec: float,
    settings: FitSettings,
    known_colour: TargetColour | None = None,
) -> TargetMeasurement:
    """The transient measured on the frame at the alert's position, calibrated through the chosen fit.

    As :func:`measure_target` for a source, at the calibrators' median colour (or at ``known_colour``
    when the fit can use it, as there)::

        mag = inst_mag + ZP + CT * colour_assumed
        mag_err = sqrt(inst_mag_err**2 + err(ZP + CT c0)**2 + s_int**2 + (CT**2 + var(CT)) * spread**2)

    Below the forced S/N limit it is no magnitude but the limit at that very position,
    ``inst_limit + ZP + CT * colour_assumed`` (``limit_method`` ``"forced_aperture"``).
    ``photometry`` is ``"forced_aperture"``; ``ra``, ``dec`` the alert's (deg).
    """
    colour = fit.median_colour
    cal_shift = fit.zeropoint + fit.colour_term * colour
    limit = forced.inst_limit + cal_shift
    how = f"forced aperture at the alert position (S/N {forced.snr:.1f}, limit at S/N {forced.snr_limit:g})"
    if forced.inst_mag is None:
        return TargetMeasurement(
            detected=False,
            limit_mag=limit,
            inst_limit_mag=forced.inst_limit,
            limit_method="forced_aperture",
            assumed_colour=colour,
            note=how,
            photometry="forced_aperture",
        )
    mag_err: float | None = None
    choice = choose_colour(fit, known_colour, settings)
    colour, colour_err = choice.colour, choice.cost_spread
    cal_shift = fit.zeropoint + fit.colour_term * colour
    if choice.note:
        how += "; " + choice.note
    inst_err = forced.inst_mag_err
    if inst_err is not None and math.isfinite(inst_err) and inst_err >= 0:
        mag_err = calibrated_error(fit, inst_err, colour, settings, colour_err)
    return TargetMeasurement(
        detected=True,
        mag=forced.inst_mag + cal_shift,
        mag_err=mag_err,
        ra=target_ra,
        dec=target_dec,
        inst_mag=forced.inst_mag,
        inst_mag_err=inst_err,
        separation_arcsec=0.0,
        limit_mag=limit,
        inst_limit_mag=forced.inst_limit,
        limit_method="forced_aperture",
        assumed_colour=colour,
        colour_err=colour_err if choice.source else None,
        colour_source=choice.source,
        note=how,
        photometry="forced_aperture",
    )
