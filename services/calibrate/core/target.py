"""The transient: its calibrated magnitude, or the frame's limiting magnitude.

The limiting magnitude answers the question a non-detection asks: how
bright could the target have been and still be missing from *this*
catalogue? So it is measured as the frame's detection completeness
(:func:`completeness_limit_inst`): the reference stars of the deepest
fitted survey inside the frame's footprint are given their predicted
instrumental magnitudes through that survey's fit, and the magnitude at
which ``FitSettings.limit_completeness`` (half) of them have a source in
the catalogue is the limit. Only when no reference survey reaches deeper
than the frame does the limit fall back to the 5-sigma point of the
submitted photometry's own magnitude-error relation
(:func:`frame_limit_inst`).

Why not the 5-sigma point of MAGERR_AUTO, scaled or not. In the simulated
fields (``bench accuracy``) that point is 0.4 mag brighter than the ideal
PSF-weighted 5-sigma limit, where only 3 % of the stars are in the
catalogue (half of them are 0.48 mag brighter than it); rescaling MAGERR_AUTO by the
calibrators' chi^2 (the errors are 10-20 % low at the faint end) moves
the MAG_AUTO 5-sigma point by ~0.15 mag but answers a different question
(how well a source there is *measured*), and the ratio cannot be measured
at all when the calibrators are 3 mag brighter than the limit (APASS). The
catalogue the observer sent decides detection, whatever photometry could
have been done on the image.
"""

from __future__ import annotations

import math

import numpy as np

from shared.arrays import SourceTable
from services.calibrate.core.fitting import MAD_TO_SIGMA, FitResult, fast_median
from services.calibrate.core.matching import ARCSEC_PER_RAD, angular_separation_arcsec
from services.calibrate.core.results import TargetMeasurement
from services.calibrate.core.settings import FitSettings

#: magnitude error of a detection at signal-to-noise 1: 2.5 / ln(10)
MAGERR_AT_SNR1 = 2.5 / math.log(10.0)

#: |logistic slope|, 1/mag, beyond which the Newton iteration of
#: :func:`completeness_limit_inst` has run away: a fall-off width under
#: 1e-6 mag, 10,000 times narrower than the narrowest accepted (0.01 mag).
#: There the weights sit at their floor and the steps are 1e7-1e9: the
#: iteration wanders without converging (the stars are separable, or the
#: first steps overshot) and the answer is None after all 50 iterations, so
#: it is given at once (about 1.4 ms saved per survey on a 2,000-source frame).
_RUNAWAY_SLOPE = 1e6


def nearest_source(
    sources: SourceTable, candidates: np.ndarray, ra: float, dec: float, radius_arcsec: float
) -> tuple[int | None, float | None]:
    """Index of the nearest source among ``candidates`` within the radius.

    Parameters
    ----------
    sources : SourceTable
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


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares straight line ``y = slope x + intercept`` (closed form, as ``np.polyfit(x, y, 1)``)."""
    xm = float(x.mean())
    ym = float(y.mean())
    dx = x - xm
    sxx = float(np.dot(dx, dx))
    if not sxx > 0:
        return 0.0, ym
    slope = float(np.dot(dx, y - ym)) / sxx
    return slope, ym - slope * xm


def frame_limit_inst(
    mag: np.ndarray, mag_err: np.ndarray, good: np.ndarray, nsigma: float = 5.0
) -> float | None:
    """Instrumental ``nsigma`` limiting magnitude from the frame's own mag-error relation.

    ``log10(magerr)`` is fitted as a straight line in ``mag`` (robustly: two
    passes with 3-sigma clipping on 1.4826 MAD) over good sources with
    errors between 0.05 and 0.6 mag, i.e. around the limit's error (a
    wider 0.01-1.0 mag window if fewer than 10 sources there), and solved
    for ``magerr = 1.0857 / nsigma`` (0.217 mag at 5 sigma).

    Parameters
    ----------
    mag, mag_err : numpy.ndarray
        Instrumental magnitudes and errors, mag.
    good : numpy.ndarray of bool
        Sources to use (usable magnitude, no disqualifying flags).
    nsigma : float
        Significance of the limit.

    Returns
    -------
    float or None
        Instrumental limiting magnitude, mag; None when fewer than 10
        sources, a magnitude range under 0.5 mag, or a non-increasing
        relation make it impossible to determine honestly.
    """
    mag = np.asarray(mag, dtype=float)
    err = np.asarray(mag_err, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        base = good & np.isfinite(err) & (err > 0)
        for lo, hi in ((0.05, 0.6), (0.01, 1.0)):
            sel = base & (err >= lo) & (err <= hi)
            if sel.sum() >= 10:
                break
        else:
            return None
    x = mag[sel]
    y = np.log10(err[sel])
    if np.ptp(x) < 0.5:
        return None
    keep = np.ones(len(x), dtype=bool)
    for _ in range(2):
        if keep.sum() < 10:
            return None
        slope, icept = _line(x[keep], y[keep])
        res = y - (slope * x + icept)
        rk = res[keep]
        s = MAD_TO_SIGMA * fast_median(np.abs(rk - fast_median(rk)))
        if s <= 0:
            break
        keep = np.abs(res) <= 3.0 * s
    if not slope > 0.05:
        return None
    return float((math.log10(MAGERR_AT_SNR1 / nsigma) - icept) / slope)


def _tangent_arcsec(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic projection about (ra0, dec0), all in deg, to (xi, eta) in arcsec."""
    a = np.radians(np.asarray(ra, dtype=float) - ra0)
    d = np.radians(np.asarray(dec, dtype=float))
    d0 = math.radians(dec0)
    sin_d, cos_d, cos_a = np.sin(d), np.cos(d), np.cos(a)
    cosc = math.sin(d0) * sin_d + math.cos(d0) * cos_d * cos_a
    xi = cos_d * np.sin(a) / cosc
    eta = (math.cos(d0) * sin_d - math.sin(d0) * cos_d * cos_a) / cosc
    return xi * ARCSEC_PER_RAD, eta * ARCSEC_PER_RAD


def _hull_candidates(pts: np.ndarray) -> np.ndarray:
    """Indices of the points (rows of ``pts``, shape ``(N, 2)``) that can be vertices of their convex hull.

    The points extreme in x, y, x + y and y - x span an octagon inside the
    hull; those strictly inside it (by more than a relative 1e-9) cannot be
    hull vertices and are dropped (Akl-Toussaint), so that Qhull sees a few
    dozen points instead of thousands: the same hull, the same facets.
    """
    along = pts @ np.array([[1.0, 1.0, 0.0, -1.0], [0.0, 1.0, 1.0, 1.0]])  # x, x + y, y, y - x
    c = np.concatenate([along.argmin(axis=0), along.argmax(axis=0)])
    corner = pts[c]  # counter-clockwise
    edge = np.roll(corner, -1, axis=0) - corner
    real = (edge != 0).any(axis=1)
    corner, edge = corner[real], edge[real]
    # cross product of each edge with (point - edge start), > 0: left of (inside) the edge
    normal = np.column_stack([-edge[:, 1], edge[:, 0]])
    offset = np.einsum("ij,ij->i", normal, corner)
    tol = 1e-9 * np.abs(edge).sum(axis=1) * (np.ptp(corner[:, 0]) + np.ptp(corner[:, 1]))
    keep = (normal @ pts.T <= (offset + tol)[:, None]).any(axis=0)
    keep[c] = True
    return np.flatnonzero(keep)


def completeness_limit_inst(
    pred_inst: np.ndarray, detected: np.ndarray, fraction: float = 0.5, min_each: int = 15
) -> tuple[float | None, int]:
    """Instrumental magnitude at which ``fraction`` of the stars are detected.

    The detection probability is modelled as a logistic function of the
    (predicted) instrumental magnitude ``m``::

        p(m) = 1 / (1 + exp((m - m50) / w))

    fitted by maximum likelihood (logistic regression, Newton's method; given
    up when it runs away, see :data:`_RUNAWAY_SLOPE`) to the stars no brighter than
    2.5 mag above a first, binned estimate of ``m50`` (brighter ones carry
    no information on the fall-off; blends and saturated stars there only
    lower the plateau). The limit is ``m50 + w ln(1 / fraction - 1)``.

    Parameters
    ----------
    pred_inst : numpy.ndarray
        Predicted instrumental magnitudes of reference stars inside the
        frame's footprint, mag.
    detected : numpy.ndarray of bool
        Whether the catalogue has a source at each star's position.
    fraction : float
        Completeness of the limit (0.5: half the stars detected).
    min_each : int
        At least this many detected and this many undetected stars within
        0.75 mag of ``m50`` are needed, and at least this many undetected
        stars fainter than ``m50``: the reference stars must reach clearly
        beyond the frame's fall-off.

    Returns
    -------
    (float or None, int)
        The instrumental limit (None if the fall-off is not covered by the
        stars), and the number of stars within 0.5 mag of ``m50`` (how well
        the fall-off is sampled; 0 if None).
    """
    m = np.asarray(pred_inst, dtype=float)
    det = np.asarray(detected, dtype=bool)
    ok = np.isfinite(m)
    m, det = m[ok], det[ok]
    if det.sum() < min_each or (~det).sum() < min_each:
        return None, 0
    # first guess: faintest 0.25-mag bin (with >= 5 stars) still at least half detected
    lo = math.floor(float(m.min()) * 4.0) / 4.0
    which = ((m - lo) / 0.25).astype(np.int64)
    n_bin = np.bincount(which)
    n_det = np.bincount(which, weights=det.astype(float), minlength=len(n_bin))
    good_bins = np.flatnonzero((n_bin >= 5) & (n_det >= 0.5 * n_bin))
    if good_bins.size == 0:
        return None, 0
    guess = lo + 0.25 * (good_bins[-1] + 1)
    fit = m > guess - 2.5
    mf, df = m[fit] - guess, det[fit].astype(float)
    # logistic regression logit p = a + b (m - guess), by Newton's method (IRLS)
    coef = np.array([0.0, -1.0 / 0.15])
    design = np.column_stack([np.ones(len(mf)), mf])
    for _ in range(50):
        eta = np.clip(design @ coef, -30.0, 30.0)
        p = 1.0 / (1.0 + np.exp(-eta))
        wts = np.maximum(p * (1.0 - p), 1e-9)
        hess = design.T @ (design * wts[:, None])
        try:
            step = np.linalg.solve(hess, design.T @ (df - p))
        except np.linalg.LinAlgError:
            return None, 0
        coef = coef + step
        if np.max(np.abs(step)) < 1e-6:
            break
        if not abs(coef[1]) < _RUNAWAY_SLOPE:
            # Newton has run away (separable stars or overshoot): no fall-off resolved
            return None, 0
    else:
        return None, 0
    if not coef[1] < 0:
        return None, 0
    m50, w = guess - coef[0] / coef[1], -1.0 / coef[1]
    if not (math.isfinite(m50) and 0.01 <= w <= 1.0):
        return None, 0
    near = np.abs(m - m50) <= 0.75
    if det[near].sum() < min_each or (~det[near]).sum() < min_each or (~det[m > m50]).sum() < min_each:
        return None, 0
    return m50 + w * math.log(1.0 / fraction - 1.0), int((np.abs(m - m50) <= 0.5).sum())


def reference_completeness_inst(
    sources: SourceTable,
    src_usable: np.ndarray,
    references: dict,
    candidates: list,
    radius_arcsec: float,
    fraction: float = 0.5,
) -> float | None:
    """The frame's completeness limit (instrumental mag) from the reference surveys.

    For every survey with a fitted band (its lowest-score band), each of its
    stars inside the frame's footprint (the convex hull of the usable
    sources) with a magnitude in that band gets the instrumental magnitude
    the fit predicts, ``m_ref - ZP - CT * colour`` (the fit's median colour
    when the star has no colour), and counts as detected if a usable source
    lies within ``radius_arcsec``. :func:`completeness_limit_inst` turns
    that into a limit; the survey that samples the fall-off with the most
    stars gives the answer. None if no survey reaches beyond the frame's
    fall-off.

    Parameters
    ----------
    sources : SourceTable
    src_usable : numpy.ndarray of bool
    references : dict of str to SurveyStars
    candidates : list of choice.BandCandidate
        The fitted candidates of :func:`choice.evaluate_candidates`.
    radius_arcsec : float
        Match radius, arcsec.
    fraction : float
        Completeness of the limit.
    """
    from scipy.spatial import ConvexHull, QhullError, cKDTree

    from services.calibrate.core.choice import _named_band_array
    from shared.surveys import get_survey

    idx = np.flatnonzero(src_usable)
    if idx.size < 10:
        return None
    ra = np.asarray(sources.ra, dtype=float)[idx]
    dec = np.asarray(sources.dec, dtype=float)[idx]
    ra0, dec0 = fast_median(ra), fast_median(dec)
    sx, sy = _tangent_arcsec(ra, dec, ra0, dec0)
    pts = np.column_stack([sx, sy])
    try:
        # inside: normal . x + offset <= 0 for every facet
        facets = ConvexHull(pts[_hull_candidates(pts)]).equations
    except (QhullError, ValueError):
        return None
    # unbalanced, uncompacted: half the build time, the same nearest neighbours
    tree = cKDTree(pts, balanced_tree=False, compact_nodes=False)
    box = (sx.min(), sx.max(), sy.min(), sy.max())
    best_by_survey: dict[str, object] = {}
    for c in candidates:
        if c.fit is None or c.score is None:
            continue
        if c.survey not in best_by_survey or c.score < best_by_survey[c.survey].score:
            best_by_survey[c.survey] = c
    answer, answer_n = None, 0
    for name, cand in best_by_survey.items():
        stars = next((s for k, s in references.items() if (s.survey or k) == name or k == name), None)
        if stars is None or len(stars) == 0:
            continue
        survey = get_survey(name)
        band = survey.band(cand.band)
        mags = _named_band_array(stars, survey, band.name)
        if mags is None:
            continue
        blue = _named_band_array(stars, survey, band.colour[0])
        red = _named_band_array(stars, survey, band.colour[1])
        fit = cand.fit
        colour = np.full(len(mags), fit.median_colour) if blue is None or red is None else blue - red
        colour = np.where(np.isfinite(colour), colour, fit.median_colour)
        rx, ry = _tangent_arcsec(stars.ra, stars.dec, ra0, dec0)
        inside = (np.isfinite(mags) & (rx >= box[0]) & (rx <= box[1]) & (ry >= box[2]) & (ry <= box[3]))
        q = np.column_stack([rx[inside], ry[inside]])
        inside[inside] = (facets[:, :2] @ q.T + facets[:, 2:] <= 1e-6).all(axis=0)
        if inside.sum() < 30:
            continue
        q = np.column_stack([rx[inside], ry[inside]])
        dist, _ = tree.query(q, k=1, distance_upper_bound=radius_arcsec)
        detected = np.isfinite(dist)
        pred = mags[inside] - fit.zeropoint - fit.colour_term * colour[inside]
        lim, n = completeness_limit_inst(pred, detected, fraction)
        if lim is not None and n > answer_n:
            answer, answer_n = lim, n
    return answer


def measure_target(
    sources: SourceTable,
    src_usable: np.ndarray,
    src_limit_good: np.ndarray,
    fit: FitResult,
    target_ra: float,
    target_dec: float,
    radius_arcsec: float,
    settings: FitSettings,
    reject_flags: int | None = None,
    completeness_inst: float | None = None,
) -> TargetMeasurement:
    """Calibrate the transient, or give the frame's limit if it is not there.

    The target is the nearest source with a usable magnitude within
    ``radius_arcsec`` of the alert position. Its colour is unknown, so the
    median colour of the used calibration stars is assumed::

        mag = m_inst + ZP + CT * colour_assumed

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
    cal_err = fit.calibration_err(colour)
    notes = []
    if math.isfinite(inst_err) and inst_err >= 0:
        col_err = fit.unknown_colour_err(settings.transient_colour_scale * fit.colour_spread)
        mag_err: float | None = math.sqrt(inst_err**2 + cal_err**2 + fit.intrinsic_scatter**2 + col_err**2)
    else:
        mag_err = None
        notes.append("the target's instrumental error is missing")
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
        flags=flags,
        note="; ".join(notes) or None,
    )
