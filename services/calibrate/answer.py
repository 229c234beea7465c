"""A frame's calibration as the observer is answered: written once.

The calibration core returns plain numbers (:class:`FrameCalibration`); the
live upload (:mod:`services.calibrate.pipeline`) and the batch re-fit
(:mod:`photcal_cli.batch.recalibrate`) both answer with the same fields,
rounded the same way, so they are turned into the wire model here and
nowhere else. Pure: no I/O.

Rounding: every float of the answer to :data:`ANSWER_DIGITS` decimals
(1e-4 mag is far below any calibration error); a value that is missing,
NaN or infinite becomes None (JSON has no infinity, and an infinite
magnitude or error is no measurement).
"""

from __future__ import annotations

import math
from typing import Any

from services.calibrate.core.results import CandidateSummary, FrameCalibration
from shared.contracts.messages import CalibrationResult, CandidateFit

#: decimals kept of every magnitude, zero point, colour term and scatter in an answer
ANSWER_DIGITS = 4

#: what the limit_method of a non-detection is called in the answer's message
LIMIT_WORDS = {
    "completeness": "50% completeness",
    "mag_err": "5 sigma",
    "forced_aperture": "forced aperture at the alert position",
    None: "limit",
}


def rounded(value: Any, digits: int = ANSWER_DIGITS) -> float | None:
    """``value`` as a float rounded to ``digits``; None if missing, not a number, NaN or +-inf."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return round(number, digits) if math.isfinite(number) else None


def candidate_fit(candidate: CandidateSummary) -> CandidateFit:
    """One survey/band tried, as the answer lists it (its numbers rounded)."""
    return CandidateFit(
        survey=candidate.survey,
        filter=candidate.filter,
        colour=candidate.colour,
        zeropoint=rounded(candidate.zeropoint),
        zeropoint_err=rounded(candidate.zeropoint_err),
        colour_term=rounded(candidate.colour_term),
        scatter=rounded(candidate.scatter),
        npoints=int(candidate.npoints),
        nmatched=int(candidate.nmatched),
        outlier_fraction=rounded(candidate.outlier_fraction),
        score=rounded(candidate.score),
        chosen=candidate.chosen,
        note=candidate.note,
        colour_term_assumed=candidate.colour_term_assumed,
    )


def answer_message(cal: FrameCalibration, match_dist_arcsec: float) -> str:
    """The one line the observer reads first: the magnitude, the limit, or why there is neither."""
    target = cal.target
    # measured on the frame by the server: the note says how ("forced aperture at the alert position (S/N ...)")
    forced = target.photometry == "forced_aperture" and target.note
    if target.detected:
        # a target without an instrumental error (MAGERR missing) has no error: say so, not crash on None
        error = "(error unknown)" if target.mag_err is None else f"+/- {target.mag_err:.3f}"
        how = f"; {target.note}" if forced else ""
        return f"{cal.survey}/{cal.band} = {target.mag:.3f} {error}{how}"
    if target.limit_mag is not None and forced:
        return f"not detected: {cal.survey}/{cal.band} fainter than {target.limit_mag:.2f}; {target.note}"
    if target.limit_mag is not None:
        limit_kind = LIMIT_WORDS[target.limit_method]
        return f"not detected: {cal.survey}/{cal.band} fainter than {target.limit_mag:.2f} ({limit_kind})"
    return f"not detected within {match_dist_arcsec:g} arcsec; no limit could be estimated"


def calibration_answer(
    cal: FrameCalibration, match_dist_arcsec: float, *, upload_id: str, ivorn: str, **upload: Any
) -> CalibrationResult:
    """The ``status="ok"`` answer to an upload calibrated as ``cal``.

    ``match_dist_arcsec`` is the upload's match radius (named in the message
    of a non-detection without a limit); ``upload_id``, ``ivorn`` and the
    other ``upload`` fields (alert_name, mjd, comment, ...) are copied as
    they are. The target's magnitude, error and position are given only
    for a detection: never a made-up magnitude.
    """
    target = cal.target
    detected = bool(target.detected)
    return CalibrationResult(
        status="ok",
        message=answer_message(cal, match_dist_arcsec),
        upload_id=upload_id,
        ivorn=ivorn,
        survey=cal.survey,
        filter=cal.band,
        mag=rounded(target.mag) if detected else None,
        mag_err=rounded(target.mag_err) if detected else None,
        ra=target.ra if detected else None,
        dec=target.dec if detected else None,
        limit_mag=rounded(target.limit_mag),
        limit_method=target.limit_method,
        detected=detected,
        zeropoint=rounded(cal.zeropoint),
        zeropoint_err=rounded(cal.zeropoint_err),
        colour_term=rounded(cal.colour_term),
        colour_term_err=rounded(cal.colour_term_err),
        colour=cal.colour,
        npoints=int(cal.npoints),
        nmatched=int(cal.nmatched),
        outlier_fraction=rounded(cal.outlier_fraction),
        scatter=rounded(cal.scatter),
        candidates=[candidate_fit(c) for c in cal.candidates],
        warnings=list(cal.warnings),
        colour_term_assumed=cal.colour_term_assumed,
        assumed_colour=rounded(target.assumed_colour) if detected else rounded(cal.assumed_colour),
        colour_source=target.colour_source if detected else None,
        **upload,
    )
