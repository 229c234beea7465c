"""Tunable parameters of the calibration, in one frozen dataclass.

Every number the fit, the selection of calibrators and the choice of the
best survey/band depend on lives here, with its unit, so that a run can be
reproduced from its settings alone.
"""

from __future__ import annotations

from dataclasses import dataclass

#: SExtractor FLAGS bits that make a source unusable as a calibrator:
#: 4 saturated, 8 truncated at the image edge, 16 aperture data incomplete
#: or corrupted, 32 isophotal data incomplete or corrupted, 64 memory
#: overflow during deblending, 128 memory overflow during extraction.
#: Bits 1 (bright neighbours / bad pixels) and 2 (deblended) are common and
#: mostly harmless in a sparse frame, so they are kept there; in a crowded one
#: they are part of the isolation cut (:data:`DEFAULT_BLEND_FLAGS`).
DEFAULT_REJECT_FLAGS = 4 | 8 | 16 | 32 | 64 | 128
#: SExtractor FLAGS bits that make a calibrator not isolated (:mod:`crowding`):
#: 1 neighbours or bad pixels bias the photometry, 2 deblended from a blend.
DEFAULT_BLEND_FLAGS = 1 | 2


@dataclass(frozen=True)
class FitSettings:
    """Parameters of the zero-point / colour-term fit and of the band choice.

    Attributes
    ----------
    clip_sigma : float
        Stars whose residual exceeds ``clip_sigma`` times their total error
        (instrumental, reference and intrinsic scatter in quadrature) are
        clipped; dimensionless. Default 2.5. (Clipping as hard as 1.5 sigma
        with a re-centred fit inflates the zero-point variance of clean data
        by ~2.1x the unclipped value; 2.5 costs ~10 %. Either is corrected
        for in the reported error.)
    max_reject_fraction : float
        At most this fraction of the stars given to the fit is clipped
        (the least deviant are kept); default 0.5.
    min_stars : int
        Fewer calibration stars than this and a survey/band is not fitted;
        default 5.
    max_iterations : int
        Maximum clip-and-refit iterations; default 10.
    scatter_floor : float
        Smallest intrinsic scatter added in quadrature to every star's
        error, mag; default 0.01 (flat-field and aperture systematics).
    max_ref_err : float
        Reference stars with a larger catalogue error are not used, mag;
        default 0.3.
    max_inst_err : float
        Sources with a larger instrumental error are not used as calibrators,
        mag; default 0.5.
    reject_flags : int
        SExtractor FLAGS bits that disqualify a calibrator; default
        ``4|8|16|32|64|128`` (saturated, truncated, corrupted, overflow).
    min_colour_spread : float
        If the robust spread (1.4826 MAD) of the calibrators' colours is
        below this, mag, only the zero point is fitted (colour term fixed
        at 0); default 0.1.
    min_stars_colour_term : int
        Fewer calibrators than this and only the zero point is fitted;
        default 8.
    bright_window : int
        Number of consecutive stars (sorted by instrumental magnitude) whose
        median residual is tested at the bright end; default 7.
    bright_trend_sigma : float
        A bright-end window whose median residual lies more than this many
        standard errors of a median below zero is non-linear / saturated;
        default 3.0.
    bright_trend_min : float
        ... and more than this many magnitudes below zero; default 0.03 mag.
    bright_max_fraction : float
        The bright-end cut never removes more than this fraction of the
        calibrators; default 0.3.
    transient_colour_scale : float
        The transient's unknown colour is taken to scatter about the assumed
        (median calibrator) colour like the calibrators' colours do, times
        this factor; it turns a colour term into the magnitude error it
        causes, in the band-choice score and in the target's error.
        Default 1.
    twin_ct_sigma : float
        The same nominal band in two surveys (APASS g' and SDSS g) counts
        as one band when their colour terms agree within this many combined
        standard errors; the preferred survey is then chosen
        (:data:`choice.SURVEY_PREFERENCE`). Default 3.
    broad_band_sigma : float
        A Gaia broad band (G, BP, RP) wins over the best standard band only
        if its colour mismatch is smaller by more than this many combined
        standard errors (:mod:`choice`); default 2.
    closer_band_sigma : float
        A standard band of another nominal passband (Cousins R for a frame
        first scored in Sloan r) replaces the lowest-scoring one when its
        colour mismatch is smaller by more than this many combined standard
        errors: the frame is in that passband, and its answer depends least
        on the target's unknown colour (:mod:`choice`); default 2.
    assumed_colour_term_err : float
        When too few calibrators have a colour, the zero point is fitted
        alone and the colour term taken as 0 with this 1-sigma error,
        mag/mag; default 0.1.
    assumed_colour_spread : float
        ... and the transient's colour to scatter by this much about the
        stars' (when too few of them have a colour to measure it), mag;
        default 0.4.
    limit_completeness : float
        The frame's limiting magnitude is where this fraction of the
        reference stars in the footprint are detected; default 0.5.
    limit_nsigma : float
        Significance of the fallback limiting magnitude (from the
        magnitude-error relation, when no reference survey is deeper than
        the frame); default 5.
    max_scatter : float
        A best fit whose robust scatter exceeds this, mag, is refused
        (``bad_astrometry`` / ``poor_fit``): a real frame against a real
        survey scatters by a few hundredths to ~0.2 mag; chance matches
        of a wrong WCS by the width of the magnitude distribution
        (~1 mag). Default 0.5.
    min_match_fraction : float
        Below this fraction of usable sources matched, a refused fit is
        blamed on the astrometry (``bad_astrometry``); default 0.1.
    target_margin_arcsec : float
        The alert position may lie this far outside the frame's footprint
        (the convex hull of its usable sources), arcsec, or as far as the
        typical distance between neighbouring sources when that is larger:
        the image goes on beyond its outermost source. Farther out the
        frame is refused (``target_outside_frame``), never answered with a
        limit. Default 60.
    isolation_max_blend : float
        A calibrator is isolated (:mod:`crowding`) when the light of its
        neighbours, over its own, is at most this in the reference survey
        (Gaia stars within the survey's ``resolution_arcsec``) and in the
        frame (Gaia stars and frame sources within ``isolation_frame_arcsec``);
        dimensionless, default 0.05 (a 5 % blend is 0.05 mag; one neighbour
        3.25 mag fainter).
    isolation_frame_arcsec : float
        Neighbours closer than this share a source's light in the frame
        (about the seeing FWHM, 1.5-3 arcsec, plus the deblending's reach),
        arcsec; default 3.
    blend_flags : int
        SExtractor FLAGS bits that make a calibrator not isolated; default
        ``1|2`` (:data:`DEFAULT_BLEND_FLAGS`).
    isolation_min_stars : int
        The isolation cut applies to a band only when at least this many of
        its calibrators are isolated (a sparse frame keeps them all
        anyway); otherwise every calibrator is used, as without it; default 20.
    crowded_fraction : float
        A frame is crowded when more than this fraction of its good sources
        measured to ``crowded_max_inst_err`` are not isolated in the frame;
        only then do the isolation cuts apply (a sparse frame, a few per cent
        of blends, is calibrated as without them); default 0.15.
    crowded_max_inst_err : float
        In a crowded frame the calibrators are also limited to instrumental
        errors up to this, mag: SExtractor's background under a faint star
        there includes the unresolved stars' light, so its MAG_AUTO is too
        faint, by ~0.01 mag at an error of 0.01 and ~0.2 mag at 0.1 (dev
        set); default 0.02.
    crowded_gaia_per_arcmin2 : float
        A frame is also crowded when more Gaia stars than this per square
        arcmin lie in the box its sources span, whatever its blend fraction:
        in a Galactic-plane field (tens of Gaia stars per arcmin2) the
        light of stars too faint or too close to be sources, unresolved in
        the frame and in the surveys, biases the calibrators without any one
        of them being flagged, and some such frames have only 10-11 %
        flagged blends, no more than sparse ones (up to 12 %); high-latitude
        fields have 1-2 per arcmin2 (legacy and sparse bench fields at most
        1.75, the dense ones at least 17.6); default 10 (36,000 per deg2).
    crowding_shift_fraction : float
        In a crowded frame the target's error adds, in quadrature, this
        fraction of the shift between the calibrations over all and over the
        isolated calibrators (at the assumed colour): the crowding the cut
        leaves may bias it as much again; default 1.
    target_blend_err_fraction : float
        A target flagged blended or with neighbours within
        ``isolation_frame_arcsec`` carries the unknown share of its light
        that is theirs: its error adds, in quadrature, this fraction of
        ``2.5 log10(1 + light)`` (their light over the target's,
        :func:`crowding.target_blend`); default 1/sqrt(3) = 0.577: the share
        of that light inside the target's measurement is unknown, uniform
        between none and all, and this is the rms of such a bias (1 made the
        dense fields' errors too large: 83 % of their targets within 1 sigma).
    target_blend_min_err : float
        ... and at least this when SExtractor flags it blended, mag; default 0.3
        (blended targets of crowded frames come back 0.2-0.5 mag too bright).
    target_blend_min_err_aperture : float
        ... and at least this when the target is measured in the catalogue's
        fixed aperture (:mod:`aperture`), mag; default 0.1 (the flagged
        targets of the dense development fields measured so: 8-90 mag
        thousandths too bright, one 0.23).
    counterpart_radius_arcsec : float
        A star of the chosen survey this close to the alert position is the
        target's counterpart (a Gaia alert on a known source: a microlensing
        source, a young star, a cataclysmic variable), arcsec, and its
        catalogue colour is the target's (:func:`target.counterpart_colour`);
        a second star as close makes it ambiguous and none is used. Gaia's
        positions are good to ~0.1 arcsec, a frame's to ~0.2; default 0.5.
        0 turns it off.
    counterpart_colour_err : float
        The counterpart's colour is its quiescent one: the event may change
        it (a microlensing event does not, unless the source is blended; an
        outburst turns a star bluer), so its error adds this in quadrature,
        mag; default 0.15.
    counterpart_max_spreads : float
        ... and it is used only within this many robust spreads of the
        calibrators' median colour: a straight colour term is not trusted
        far beyond the stars it was fitted over; dimensionless, default 1.5
        (chosen on the development set: 1, 1.5, 2, 3 gave a 95th percentile
        of 43, 33, 42, 42 mmag with every target given its counterpart).
    lightcurve_colour_window_days : float
        The alert's own detections in the chosen survey's other colour band
        within this many days of the frame give the target's colour
        (:func:`target.light_curve_colour`: an observer's B and V frames of one
        night), in preference to a counterpart's quiescent colour, days;
        default 0.5 (one night). 0 turns it off.
    lightcurve_colour_drift : float
        How fast a transient's colour may change between the two frames, mag
        per day: the colour's error adds this times the time between them;
        default 0.1 (a supernova's colour moves by ~0.02-0.05 mag a day, an
        outburst's rise faster).
    """

    clip_sigma: float = 2.5
    max_reject_fraction: float = 0.5
    min_stars: int = 5
    max_iterations: int = 10
    scatter_floor: float = 0.01
    max_ref_err: float = 0.3
    max_inst_err: float = 0.5
    reject_flags: int = DEFAULT_REJECT_FLAGS
    min_colour_spread: float = 0.1
    min_stars_colour_term: int = 8
    bright_window: int = 7
    bright_trend_sigma: float = 3.0
    bright_trend_min: float = 0.03
    bright_max_fraction: float = 0.3
    transient_colour_scale: float = 1.0
    twin_ct_sigma: float = 3.0
    broad_band_sigma: float = 2.0
    closer_band_sigma: float = 2.0
    assumed_colour_term_err: float = 0.1
    assumed_colour_spread: float = 0.4
    limit_completeness: float = 0.5
    limit_nsigma: float = 5.0
    max_scatter: float = 0.5
    min_match_fraction: float = 0.1
    target_margin_arcsec: float = 60.0
    isolation_max_blend: float = 0.05
    isolation_frame_arcsec: float = 3.0
    blend_flags: int = DEFAULT_BLEND_FLAGS
    isolation_min_stars: int = 20
    crowded_fraction: float = 0.15
    crowded_max_inst_err: float = 0.02
    crowded_gaia_per_arcmin2: float = 10.0
    crowding_shift_fraction: float = 1.0
    target_blend_err_fraction: float = 0.577  # 1 / sqrt(3)
    target_blend_min_err: float = 0.3
    target_blend_min_err_aperture: float = 0.1
    counterpart_radius_arcsec: float = 0.5
    counterpart_colour_err: float = 0.15
    counterpart_max_spreads: float = 1.5
    lightcurve_colour_window_days: float = 0.5
    lightcurve_colour_drift: float = 0.1

    def __post_init__(self) -> None:
        if not self.clip_sigma > 0:
            raise ValueError("clip_sigma must be > 0")
        if not 0.0 <= self.max_reject_fraction < 1.0:
            raise ValueError("max_reject_fraction must be in [0, 1)")
        if self.min_stars < 2:
            raise ValueError("min_stars must be >= 2")
        if not self.target_margin_arcsec >= 0:
            raise ValueError("target_margin_arcsec must be >= 0")
        if self.bright_window < 3:
            raise ValueError("bright_window must be >= 3")
