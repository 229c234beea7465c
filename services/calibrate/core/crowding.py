"""Crowding: which calibrators and which target have their photometry contaminated by a neighbour.

In a crowded (Galactic-plane) frame two kinds of blend bias a calibrator's
zero point, and neither is caught by the positional match:

* **in the reference catalogue**: a survey that cannot resolve two stars
  publishes them as one, at the brighter star's position, with the summed
  flux (APASS over ~8", PS1 over ~1", Gaia's XP spectra over ~2",
  :attr:`shared.contracts.surveys.Survey.resolution_arcsec`). The observer's frame
  resolves them, so the catalogue magnitude is too bright. The neighbours a
  survey merged are not in that survey, but they are in the deepest, best
  resolved one (Gaia G, 0.4"): the light of the Gaia stars within the
  survey's resolution, other than the star's own counterpart, over the
  counterpart's light, is the survey's blend;
* **in the frame**: the observer's source takes light from stars closer than
  the seeing that SExtractor did not (or only partly) deblend, so its
  instrumental magnitude is too bright. The light of the Gaia stars and of
  the frame's own other sources within ``FitSettings.isolation_frame_arcsec``
  over the calibrator's is that contamination, and SExtractor's FLAGS bits
  1 (neighbours bias the photometry) and 2 (deblended) say the same.

All functions are pure: arrays in (positions in deg, magnitudes in mag),
arrays out. Fluxes are relative, ``10**(-0.4 mag)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal, overload

import numpy as np
from numba import njit

from services.calibrate.core.inputs import ReferenceStars, SourceColumns
from services.calibrate.core.settings import FitSettings
from shared.contracts.surveys import GAIA, Survey
from shared.jit import JIT, kernel_array
from shared.sky import tangent_arcsec


@njit(**JIT)
def _contamination(qx, qy, q_flux, cx, cy, c_flux, radius, self_radius, q_self):  # pragma: no cover - compiled
    """Per query point: (light of the catalogue points within ``radius`` but its counterpart) / counterpart's,
    and the counterpart's flux (0 if none).

    The counterpart is the brightest catalogue point within ``self_radius``
    (or catalogue row ``q_self[i]`` when it is >= 0); without one, the query's
    own flux ``q_flux`` is the reference. NaN positions or fluxes count as
    absent. A grid on the tangent plane, the catalogue sorted by cell (counting sort).
    """
    n_q = qx.shape[0]
    out = np.zeros(n_q)
    own_flux = np.zeros(n_q)
    n_c = cx.shape[0]
    if n_c == 0 or n_q == 0 or not radius > 0:
        return out, own_flux
    xmin, ymin, xmax, ymax = np.inf, np.inf, -np.inf, -np.inf
    for k in range(n_c):
        if math.isfinite(cx[k]) and math.isfinite(cy[k]):
            xmin, xmax = min(xmin, cx[k]), max(xmax, cx[k])
            ymin, ymax = min(ymin, cy[k]), max(ymax, cy[k])
    if not math.isfinite(xmin):
        return out, own_flux
    # cells at least ``radius`` wide (a 3 x 3 block holds every neighbour), at most ~200 a side
    cell = max(radius, max(xmax - xmin, ymax - ymin) / 200.0)
    nx = int((xmax - xmin) / cell) + 1
    ny = int((ymax - ymin) / cell) + 1
    n_cells = nx * ny
    key = np.full(n_c, n_cells, dtype=np.int64)  # invalid rows: one extra cell, never visited
    count = np.zeros(n_cells + 2, dtype=np.int64)
    for k in range(n_c):
        if math.isfinite(cx[k]) and math.isfinite(cy[k]) and math.isfinite(c_flux[k]):
            key[k] = int((cy[k] - ymin) / cell) * nx + int((cx[k] - xmin) / cell)
        count[key[k] + 1] += 1
    start = np.cumsum(count)
    order = np.empty(n_c, dtype=np.int64)
    fill = start[:-1].copy()
    for k in range(n_c):
        order[fill[key[k]]] = k
        fill[key[k]] += 1
    r2 = radius * radius
    s2 = self_radius * self_radius
    for i in range(n_q):
        if not (math.isfinite(qx[i]) and math.isfinite(qy[i])):
            continue
        ix = int(math.floor((qx[i] - xmin) / cell))
        iy = int(math.floor((qy[i] - ymin) / cell))
        total = 0.0
        own = -1.0
        for gy in range(max(iy - 1, 0), min(iy + 2, ny)):
            for gx in range(max(ix - 1, 0), min(ix + 2, nx)):
                c = gy * nx + gx
                for t in range(start[c], start[c + 1]):
                    k = order[t]
                    dx = cx[k] - qx[i]
                    dy = cy[k] - qy[i]
                    d2 = dx * dx + dy * dy
                    if d2 > r2:
                        continue
                    total += c_flux[k]
                    if q_self[i] >= 0:
                        if k == q_self[i]:
                            own = c_flux[k]
                    elif d2 <= s2 and c_flux[k] > own:
                        own = c_flux[k]
        if own > 0:
            out[i] = (total - own) / own
            own_flux[i] = own
        elif q_flux[i] > 0:
            out[i] = total / q_flux[i]
    return out, own_flux


@overload
def contamination(
    ra: np.ndarray,
    dec: np.ndarray,
    mag: np.ndarray | None,
    cat_ra: np.ndarray,
    cat_dec: np.ndarray,
    cat_mag: np.ndarray,
    radius_arcsec: float,
    self_arcsec: float = ...,
    self_index: np.ndarray | None = ...,
    centre: tuple[float, float] | None = ...,
    counterpart_flux: Literal[False] = ...,
) -> np.ndarray: ...
@overload
def contamination(
    ra: np.ndarray,
    dec: np.ndarray,
    mag: np.ndarray | None,
    cat_ra: np.ndarray,
    cat_dec: np.ndarray,
    cat_mag: np.ndarray,
    radius_arcsec: float,
    self_arcsec: float = ...,
    self_index: np.ndarray | None = ...,
    centre: tuple[float, float] | None = ...,
    *,
    counterpart_flux: Literal[True],
) -> tuple[np.ndarray, np.ndarray]: ...
def contamination(
    ra: np.ndarray,
    dec: np.ndarray,
    mag: np.ndarray | None,
    cat_ra: np.ndarray,
    cat_dec: np.ndarray,
    cat_mag: np.ndarray,
    radius_arcsec: float,
    self_arcsec: float = 1.0,
    self_index: np.ndarray | None = None,
    centre: tuple[float, float] | None = None,
    counterpart_flux: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Fractional light of neighbours within ``radius_arcsec`` of each position, dimensionless.

    Parameters
    ----------
    ra, dec : numpy.ndarray
        The stars to test, deg.
    mag : numpy.ndarray or None
        Their magnitudes, mag: the reference light when no counterpart is
        found in the catalogue (None: then such a star counts as isolated).
    cat_ra, cat_dec, cat_mag : numpy.ndarray
        The catalogue whose stars may contaminate (deg, deg, mag); rows with
        a NaN magnitude are ignored.
    radius_arcsec : float
        Neighbours closer than this contaminate, arcsec.
    self_arcsec : float
        The brightest catalogue star within this distance is the star's own
        counterpart, not a neighbour, arcsec; default 1.
    self_index : numpy.ndarray of int, optional
        Instead: the counterpart's catalogue row per star (-1: by distance),
        e.g. a source's own row when the catalogue is the frame itself.
    centre : (ra, dec), optional
        Tangent point of the projection, deg; default the median position.
    counterpart_flux : bool
        Also return the counterpart's flux, ``10**(-0.4 mag)`` (0 if none).

    Returns
    -------
    numpy.ndarray
        Per star, the summed flux of the other catalogue stars within the
        radius over its counterpart's flux (0 if none; a neighbour 2.5 mag
        fainter gives 0.1, i.e. 0.1 mag too bright).
    """
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    n = len(ra)
    if n == 0 or len(cat_ra) == 0 or not (np.isfinite(ra) & np.isfinite(dec)).any():
        return (np.zeros(n), np.zeros(n)) if counterpart_flux else np.zeros(n)
    if centre is None:
        ok = np.isfinite(ra) & np.isfinite(dec)
        centre = (float(np.median(ra[ok])), float(np.median(dec[ok])))
    qx, qy = tangent_arcsec(ra, dec, *centre)
    cx, cy = tangent_arcsec(cat_ra, cat_dec, *centre)
    with np.errstate(over="ignore", invalid="ignore"):
        c_flux = 10.0 ** (-0.4 * np.asarray(cat_mag, dtype=float))
        q_flux = np.zeros(n) if mag is None else np.nan_to_num(10.0 ** (-0.4 * np.asarray(mag, dtype=float)))
    selfs = np.full(n, -1, dtype=np.int64) if self_index is None else np.asarray(self_index, dtype=np.int64)
    ratio, own = _contamination(
        kernel_array(qx),
        kernel_array(qy),
        kernel_array(q_flux),
        kernel_array(cx),
        kernel_array(cy),
        kernel_array(c_flux),
        float(radius_arcsec),
        float(self_arcsec),
        kernel_array(selfs, dtype=np.int64),
    )
    return (ratio, own) if counterpart_flux else ratio


def representative_mag(stars: ReferenceStars, survey: Survey) -> np.ndarray | None:
    """The survey's band with the most magnitudes in this cone (mag), or None if it has none."""
    best, n_best = None, 0
    for band in survey.bands:
        for key in (band.name, band.column):
            if key in stars.mags:
                m = np.asarray(stars.mags[key], dtype=float)
                n = int(np.isfinite(m).sum())
                if n > n_best:
                    best, n_best = m, n
                break
    return best


def gaia_stars(references: Mapping[str, ReferenceStars]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Gaia's positions and G magnitudes (deg, deg, mag) among the references, or None."""
    for key, stars in references.items():
        if (stars.survey or key).upper() == GAIA.name and len(stars):
            g = (
                representative_mag(stars, GAIA)
                if "G" not in stars.mags and "Gmag" not in stars.mags
                else (np.asarray(stars.mags.get("G", stars.mags.get("Gmag")), dtype=float))
            )
            if g is None:
                return None
            return np.asarray(stars.ra, dtype=float), np.asarray(stars.dec, dtype=float), g
    return None


def frame_blend(
    sources: SourceColumns,
    usable: np.ndarray,
    gaia: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    radius_arcsec: float,
) -> np.ndarray:
    """Per source, the neighbours' light within ``radius_arcsec`` over its own, dimensionless.

    The larger of two estimates: the frame's other usable sources (each
    source's own MAG_AUTO as its light), and Gaia's stars (those SExtractor
    did not separate), against the brightest Gaia star within 1 arcsec as
    the source's own, or, for a source that is not in Gaia (a transient),
    its MAG_AUTO put on Gaia's scale by the median G - MAG_AUTO of the
    sources that are. Unusable sources get 0.
    """
    n = len(sources)
    out = np.zeros(n)
    idx = np.flatnonzero(usable)
    if idx.size == 0:
        return out
    ra = np.asarray(sources.ra, dtype=float)[idx]
    dec = np.asarray(sources.dec, dtype=float)[idx]
    mag = np.asarray(sources.mag, dtype=float)[idx]
    centre = (float(np.median(ra)), float(np.median(dec)))
    own = contamination(ra, dec, mag, ra, dec, mag, radius_arcsec, self_index=np.arange(idx.size), centre=centre)
    if gaia is not None:
        g_ratio, g_own = contamination(ra, dec, None, *gaia, radius_arcsec, centre=centre, counterpart_flux=True)
        in_gaia = g_own > 0
        if in_gaia.any() and not in_gaia.all():
            # the sources not in Gaia: their light on Gaia's scale
            offset = float(np.median(-2.5 * np.log10(g_own[in_gaia]) - mag[in_gaia]))
            g_ratio = contamination(ra, dec, mag + offset, *gaia, radius_arcsec, centre=centre)
        own = np.maximum(own, g_ratio)
    out[idx] = own
    return out


def reference_blend(
    survey: Survey,
    stars: ReferenceStars,
    gaia: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    centre: tuple[float, float] | None = None,
) -> np.ndarray:
    """Per reference star of ``survey``, the light it may have merged, over its own, dimensionless.

    Gaia's stars within ``survey.resolution_arcsec`` other than the star's
    counterpart (the brightest within 1 arcsec), and the survey's own other
    stars there; the larger of the two. Gaia itself is not tested against
    itself (it is the resolution the test relies on).
    """
    n = len(stars)
    if n == 0:
        return np.zeros(0)
    ra = np.asarray(stars.ra, dtype=float)
    dec = np.asarray(stars.dec, dtype=float)
    mag = representative_mag(stars, survey)
    res = float(survey.resolution_arcsec)
    out = np.zeros(n)
    if mag is not None:
        out = contamination(ra, dec, mag, ra, dec, mag, res, self_index=np.arange(n), centre=centre)
    if gaia is not None and survey.name != GAIA.name:
        out = np.maximum(out, contamination(ra, dec, mag, *gaia, res, self_arcsec=min(1.0, res), centre=centre))
    return out


def target_blend(
    flags: int | None, neighbour_light: float, settings: FitSettings, aperture: bool = False
) -> tuple[float, str | None]:
    """What a blend at the target adds to its error (mag), and the warning that says so (None: no blend).

    The target is blended when SExtractor flags it (``settings.blend_flags``)
    or when the light of its neighbours within ``isolation_frame_arcsec``
    (frame sources and Gaia stars, :func:`frame_blend`), over its own, exceeds
    ``isolation_max_blend``. How much of that light is in its MAG_AUTO is
    unknown (deblending takes part of it away), so the error adds
    ``target_blend_err_fraction * 2.5 log10(1 + light)`` (the rms of a bias
    uniform between none and all of it) and, when flagged, at
    least ``target_blend_min_err`` (blended targets of the crowded dev fields
    come back 0.2-0.5 mag too bright), in quadrature; a target measured in a
    small fixed aperture (``aperture``, :mod:`aperture`) takes less of their
    light, so at least ``target_blend_min_err_aperture``.
    """
    flagged = flags is not None and bool(int(flags) & settings.blend_flags)
    light = float(neighbour_light) if math.isfinite(neighbour_light) else 0.0
    if not flagged and light <= settings.isolation_max_blend:
        return 0.0, None
    extra = settings.target_blend_err_fraction * 2.5 * math.log10(1.0 + max(light, 0.0))
    if flagged:
        extra = max(extra, settings.target_blend_min_err_aperture if aperture else settings.target_blend_min_err)
    why = f"SExtractor FLAGS {int(flags)}" if flagged and flags is not None else "close neighbours"
    msg = (
        f"the target is blended ({why}, neighbours within {settings.isolation_frame_arcsec:g} arcsec add "
        f"{100 * light:.0f} % of its light): its magnitude may be too bright and its error includes {extra:.2f} mag "
        "for the blend"
    )
    return extra, msg


def empirical_error(
    ref_mag: np.ndarray,
    inst_mag: np.ndarray,
    inst_err: np.ndarray,
    colour: np.ndarray,
    zeropoint: float,
    colour_term: float,
    target_inst_err: float | None,
    settings: FitSettings,
) -> float | None:
    """How far a source measured as well as the target strays from the calibration in this frame, mag.

    In a crowded frame a source's MAG_AUTO error does not include the
    neighbours and the background of unresolved stars, which make faint
    sources too faint (or too bright) by much more than it. The isolated
    calibrators of the chosen band (the final fit's; a blended star's
    residual is mostly the reference catalogue's own blend, and the target's
    blend is :func:`target_blend`'s) with an
    instrumental error within a factor 2 of the target's show it:
    ``sqrt(median**2 + (1.4826 MAD)**2)`` of their residuals about the
    calibration (``ref - (inst + zeropoint + colour_term * colour)``). None
    with fewer than ``settings.isolation_min_stars`` such stars or no
    target error.
    """
    if target_inst_err is None or not math.isfinite(target_inst_err) or target_inst_err <= 0:
        return None
    inst_err = np.asarray(inst_err, dtype=float)
    with np.errstate(invalid="ignore"):
        near = (inst_err >= 0.5 * target_inst_err) & (inst_err <= 2.0 * target_inst_err)
    resid = (
        np.asarray(ref_mag, dtype=float)
        - (np.asarray(inst_mag, dtype=float) + zeropoint + colour_term * np.asarray(colour, dtype=float))
    )[near]
    resid = resid[np.isfinite(resid)]
    if len(resid) < settings.isolation_min_stars:
        return None
    med = float(np.median(resid))
    mad = 1.482602218505602 * float(np.median(np.abs(resid - med)))
    return math.hypot(med, mad)


def gaia_density(
    sources: SourceColumns,
    usable: np.ndarray,
    gaia: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> float:
    """Gaia stars per square arcmin inside the box the frame's usable sources span (0 with fewer than 2).

    The box is taken on the tangent plane at the sources' median position.
    How crowded the sky of a frame is, independent of how well SExtractor
    deblended it: Galactic-plane frames have tens of Gaia stars per arcmin2,
    high latitudes 1-2 (``FitSettings.crowded_gaia_per_arcmin2``).
    """
    ra = np.asarray(sources.ra, dtype=float)[usable]
    dec = np.asarray(sources.dec, dtype=float)[usable]
    if ra.size < 2:
        return 0.0
    x, y = tangent_arcsec(ra, dec, float(np.median(ra)), float(np.median(dec)))
    gx, gy = tangent_arcsec(
        np.asarray(gaia[0], dtype=float), np.asarray(gaia[1], dtype=float), float(np.median(ra)), float(np.median(dec))
    )
    area = float(x.max() - x.min()) * float(y.max() - y.min()) / 3600.0
    if not area > 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        inside = (gx >= x.min()) & (gx <= x.max()) & (gy >= y.min()) & (gy <= y.max())
    return float(np.count_nonzero(inside)) / area
