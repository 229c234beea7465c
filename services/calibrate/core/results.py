"""What a frame's calibration returns: plain dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.errors import CalibrationFailed


@dataclass(frozen=True)
class CandidateSummary:
    """One survey/band tried, with its fit quality (the service turns it into its answer).

    ``zeropoint``, ``zeropoint_err``, ``scatter``, ``score`` in mag,
    ``colour_term`` in mag/mag; None where the band could not be fitted.
    ``filter`` is the band's name (``band`` elsewhere in the core; this
    is the answer's word for it).
    """

    survey: str
    filter: str
    colour: str
    zeropoint: float | None = None
    zeropoint_err: float | None = None
    colour_term: float | None = None
    scatter: float | None = None
    npoints: int = 0
    nmatched: int = 0
    outlier_fraction: float | None = None
    score: float | None = None
    chosen: bool = False
    note: str | None = None
    #: zero point only over stars without colours, colour term assumed 0
    colour_term_assumed: bool = False


@dataclass(frozen=True)
class TargetMeasurement:
    """The transient's calibrated magnitude, or the frame's limit.

    Attributes
    ----------
    detected : bool
        A usable source lies within the match radius of the alert position.
    mag, mag_err : float or None
        Calibrated magnitude and its 1-sigma error, mag (None if not
        detected: never a made-up magnitude).
    ra, dec : float or None
        Position of the source taken as the target, deg.
    inst_mag, inst_mag_err : float or None
        Its instrumental magnitude and error, mag.
    separation_arcsec : float or None
        Distance from the alert position, arcsec.
    limit_mag : float or None
        Calibrated limiting magnitude of the frame, mag: where half the
        reference stars are detected (``limit_method == "completeness"``),
        or, with no reference survey deeper than the frame, the 5-sigma
        point of the catalogue's magnitude-error relation (``"mag_err"``);
        on an uploaded frame, the forced aperture's S/N limit at the alert's
        position (``"forced_aperture"``);
        None if neither could be determined.
    inst_limit_mag : float or None
        The same limit in instrumental magnitudes.
    limit_method : str or None
        ``"completeness"`` or ``"mag_err"`` (see :mod:`limits`).
    assumed_colour : float or None
        Colour the target was calibrated at, mag: the median of the
        calibrators, or its counterpart's (``colour_source``).
    colour_err : float or None
        That colour's 1-sigma error when it is known (a counterpart's), mag;
        None when it is the calibrators' median (its cost is then their spread).
    colour_source : str or None
        Where a known colour came from (``"its APASS counterpart at 0.12
        arcsec"``); None: the calibrators' median colour was assumed.
    flags : int or None
        SExtractor FLAGS of the target source.
    note : str or None
        Caveats (e.g. the target is flagged saturated).
    photometry : str
        Which of the observer's measurements of the target was used:
        ``"catalogue"`` (the catalogue's magnitude column, e.g. MAG_AUTO) or
        ``"aperture"`` (its first fixed aperture plus the frame's aperture
        correction, in crowded frames: :mod:`aperture`), or ``"forced_aperture"``
        (an uploaded frame measured at the alert's position by the server,
        :func:`target.measure_forced_target`).
    aperture_correction : float or None
        That correction, mag (``"aperture"`` only).
    """

    detected: bool
    mag: float | None = None
    mag_err: float | None = None
    ra: float | None = None
    dec: float | None = None
    inst_mag: float | None = None
    inst_mag_err: float | None = None
    separation_arcsec: float | None = None
    limit_mag: float | None = None
    inst_limit_mag: float | None = None
    limit_method: str | None = None
    assumed_colour: float | None = None
    colour_err: float | None = None
    colour_source: str | None = None
    flags: int | None = None
    note: str | None = None
    photometry: str = "catalogue"
    aperture_correction: float | None = None


@dataclass(frozen=True)
class PlotData:
    """Arrays of the chosen fit, one entry per calibration star.

    Magnitudes in mag. ``used``: in the final fit; ``clipped``: rejected by
    sigma clipping; ``bright``: cut at the bright (non-linear) end before
    the final fit (neither used nor clipped). ``residual`` is
    ``ref_mag - (inst_mag + ZP + CT * colour)`` for every star.
    """

    ref_mag: np.ndarray
    ref_err: np.ndarray
    inst_mag: np.ndarray
    inst_err: np.ndarray
    colour: np.ndarray
    residual: np.ndarray
    used: np.ndarray
    clipped: np.ndarray
    bright: np.ndarray
    target_inst_mag: float | None = None
    target_inst_mag_err: float | None = None


@dataclass(frozen=True)
class FrameCalibration:
    """The calibration of one frame against the chosen survey/band.

    Attributes
    ----------
    survey, band, colour : str
        Chosen reference (e.g. ``"APASS"``, ``"V"``, ``"B-V"``).
    zeropoint, zeropoint_err : float
        ZP (at colour 0) and its 1-sigma error, mag.
    colour_term : float
        CT, mag/mag (0.0 if only the zero point was fitted).
    colour_term_err : float or None
        Its error; None if only the zero point was fitted.
    scatter : float
        Robust scatter (1.4826 MAD) of the used stars' residuals, mag.
    intrinsic_scatter : float
        Scatter beyond the stars' stated errors, mag.
    npoints : int
        Stars in the final fit.
    nmatched : int
        Usable sources matched to a reference star with a magnitude in this band.
    ncalibrators : int
        Matched stars that passed the quality cuts (given to the fit).
    nbright : int
        Calibrators cut at the bright, non-linear end.
    outlier_fraction : float
        Stars clipped / stars given to the final fit.
    score : float
        Band-choice score, mag (see :mod:`services.calibrate.core.choice`).
    fit_colour_term : bool
        False when the colour spread or star count allowed only a ZP fit.
    assumed_colour : float
        Colour the target was calibrated at, mag: the median of the used
        calibrators, or its counterpart's catalogue colour
        (``target.colour_source``).
    n_sources, n_usable : int
        Sources in the catalogue / with a usable magnitude.
    candidates : list of CandidateSummary
        Every survey/band tried, ``chosen=True`` on this one.
    target : TargetMeasurement
    plot : PlotData
    forced : bool
        The survey/band was forced by the user (no choice made).
    warnings : list of str
        What the user should know about this calibration (e.g. the colour
        term was assumed, not fitted).
    colour_term_assumed : bool
        The colour term is an assumed 0 (too few calibrators had a colour),
        not a fit; its cost is in the target's error.
    durations_ms : dict of str to float
        Time of each part, ms: ``match`` (the positional matches), ``fit``
        (calibrator selection, fits and choice), ``limit`` (the limiting
        magnitude and the target).
    """

    survey: str
    band: str
    colour: str
    zeropoint: float
    zeropoint_err: float
    colour_term: float
    colour_term_err: float | None
    scatter: float
    intrinsic_scatter: float
    npoints: int
    nmatched: int
    ncalibrators: int
    nbright: int
    outlier_fraction: float
    score: float
    fit_colour_term: bool
    assumed_colour: float
    n_sources: int
    n_usable: int
    target: TargetMeasurement
    plot: PlotData
    candidates: list[CandidateSummary] = field(default_factory=list)
    forced: bool = False
    durations_ms: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    colour_term_assumed: bool = False

    def plot_data_as_dict(self, digits: int = 4) -> dict[str, list]:
        """The chosen fit's per-star arrays as JSON-ready lists (NaN -> None), for storage."""
        p = self.plot
        out: dict[str, list] = {}
        for name in ("ref_mag", "ref_err", "inst_mag", "inst_err", "colour", "residual"):
            arr = np.asarray(getattr(p, name), dtype=float)
            out[name] = [None if not np.isfinite(v) else round(float(v), digits) for v in arr]
        for name in ("used", "clipped", "bright"):
            out[name] = [bool(v) for v in np.asarray(getattr(p, name))]
        return out


@dataclass(frozen=True)
class FailedCalibration:
    """The best candidate of a calibration refused after its sources matched reference stars, for its plot.

    Which one: the fitted candidate a sanity check refused (``poor_fit``,
    ``bad_astrometry``, ``wrong_wcs``), the band the choice would have made
    for a frame whose alert is outside it (``target_outside_frame``), or the
    band with the most calibration stars when none could be fitted
    (``too_few_stars``). ``zeropoint``, ``zeropoint_err``, ``scatter`` in mag,
    ``colour_term`` in mag/mag; None without a fit (then ``plot.used`` and
    ``plot.clipped`` are all False and ``plot.residual`` is about the median
    offset of the stars).
    """

    survey: str
    band: str
    colour: str
    npoints: int
    nmatched: int
    ncalibrators: int
    plot: PlotData
    zeropoint: float | None = None
    zeropoint_err: float | None = None
    colour_term: float = 0.0
    colour_term_err: float | None = None
    scatter: float | None = None
    fit_colour_term: bool = False
    candidates: list[CandidateSummary] = field(default_factory=list)

    @property
    def fitted(self) -> bool:
        return self.zeropoint is not None


class CalibrationRefused(CalibrationFailed):
    """A :class:`CalibrationFailed` raised after matching: it carries the best failing candidate
    (:class:`FailedCalibration`) so that the service can draw the plot of what was refused."""

    def __init__(self, message: str, *, code: str, best: FailedCalibration) -> None:
        super().__init__(message, code=code)
        self.best = best

    def __reduce__(self):
        # picklable (a Dask worker's exception crosses processes): its arguments are keyword-only
        return _refused, (self.message, str(self.code), self.best)


def _refused(message: str, code: str, best: FailedCalibration) -> CalibrationRefused:
    return CalibrationRefused(message, code=code, best=best)
