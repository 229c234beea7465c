"""Where a realistic field's calibration-alone error comes from, by the simulator's truth (issue 15).

``python -c "from bench.error_budget import run; run('dev')"`` calibrates every field of a
realistic set (:func:`tools.simfield.suite_specs`) as ``bench accuracy`` does (no filters, the
band chosen) and splits each detected target's calibration-alone error
(:func:`bench.bench_accuracy.calibration_alone`, mag) into:

``colour``
    What the target's unknown colour costs: the true transformation of the frame's band to the
    chosen survey band, ``D(B-V) = m_survey - m_sys``, at a star of the assumed colour minus at the
    target's true colour (the colour term times the colour offset, plus the relation's curvature).
    No fit can remove it without the target's colour.
``zero point``
    The rest: ``ZP + CT c0`` at the assumed colour ``c0`` against the truth there. Refitting the
    final fit's own stars (same stars, weights ``1/(e_ref^2 + e_inst^2 + s_int^2)``) with their true
    reference and instrumental magnitudes splits it into ``relation`` (true magnitudes: a straight
    line over a curved relation, over those stars), ``reference`` (the catalogue's blends and noise,
    true instrumental magnitudes), ``crowding`` (the frame's MAG_AUTO of the calibrators: neighbours,
    noise; true reference magnitudes) and ``other`` (what the real fit's clipping and
    errors-in-variables do beyond that).
``target`` (``own``)
    Not part of the calibration-alone error: the target's own deviation from what an isolated star of
    its frame measures (photon noise, neighbours' light in its aperture), raw = total + own.
``known colour``
    The calibration-alone error had the target's true colour been used with the fitted colour term
    (what a colour from a counterpart in a catalogue could give at best).
``floor`` (:func:`colour_floor`)
    What the unknown colour costs the best single-frame calibrator there can be on the simulated
    skies: a perfect zero point, the true transformation at every colour, the simulator's own
    distribution of transient colours (the intrinsic range and the sky's reddening range), and of the
    bands the bench counts as right the one whose answer that distribution moves least. Its answer is
    the transformation averaged over the distribution; its error, that minus the transformation at
    the target's true colour. No calibrator without the target's colour can expect a lower 95th
    percentile than this (only a luckier one on a given set of targets).

A calibrator's truth is the brightest simulated star within 1 arcsec of its source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.bench_accuracy import MATCH_DIST, calibration_alone, ensure_fields, ideal_loss
from services.calibrate.core import calibrate_frame
from services.ingest.parsing import parse_catalogue
from shared.contracts.surveys import get_survey
from shared.errors import CalibrationFailed
from tools import fieldio
from tools import simfield as sf
from tools.photsystem import get_instrument_band, survey_colour, survey_magnitudes
from tools.simfield.field import TRANSIENT_INTRINSIC_BV, TRANSIENT_MAX_BV

OUT = Path(__file__).parent / "out"


@dataclass
class Budget:
    """One target's calibration-alone error and its parts, mag."""

    name: str
    band: str
    total: float
    colour: float
    zero_point: float
    relation: float
    reference: float
    crowding: float
    other: float
    known_colour: float
    colour_term: float
    assumed_colour: float
    true_colour: float
    reported_err: float
    npoints: int
    #: the target's photometry (``catalogue`` or ``aperture``) and, for the aperture, the calibration-alone
    #: error with the target's own deviation taken in that aperture (see :func:`aperture_consistent`)
    photometry: str = "catalogue"
    total_aperture: float = math.nan
    #: the target's own deviation from an isolated star of its frame (its photon noise, its neighbours'
    #: light, the aperture correction when measured so), mag: raw error = total + own
    own: float = math.nan
    #: :func:`colour_floor`: the best single-frame calibrator's error from the colour alone, mag, and its band
    floor: float = math.nan
    floor_band: str = ""


def _transfer(truth: dict, survey: str, band: str, bv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``m_survey - m_sys`` (mag) and the survey colour of stars of ``B-V`` ``bv`` (V cancels)."""
    inst = get_instrument_band(truth["instrument_band"])
    mags = survey_magnitudes(np.zeros_like(bv), bv)
    name = get_survey(survey).name
    bname = get_survey(survey).band(band).name
    return mags[(name, bname)] - inst.system_magnitude(mags), survey_colour(mags, name, bname)


def _bv_at_colour(truth: dict, survey: str, band: str, colour: float) -> float:
    """The ``B-V`` of a star whose survey colour is ``colour`` (the relations are monotonic to 2.0)."""
    grid = np.linspace(-0.5, 2.5, 3001)
    _, c = _transfer(truth, survey, band, grid)
    return float(np.interp(colour, c, grid))


def _wls_at(y: np.ndarray, c: np.ndarray, w: np.ndarray, c0: float, fit_ct: bool) -> float:
    """Weighted least squares ``y = ZP + CT c`` evaluated at ``c0`` (ZP only unless ``fit_ct``)."""
    sw = w.sum()
    ybar, cbar = (w * y).sum() / sw, (w * c).sum() / sw
    if not fit_ct:
        return float(ybar)
    ct = (w * (c - cbar) * (y - ybar)).sum() / (w * (c - cbar) ** 2).sum()
    return float(ybar + ct * (c0 - cbar))


def transient_colours(truth: dict, n: int = 201) -> np.ndarray:
    """``B-V`` quantiles (mag) of the simulator's transients on this field's sky, equally likely.

    Intrinsic uniform in :data:`TRANSIENT_INTRINSIC_BV` plus, in the plane, an ``E(B-V)`` uniform in
    the sky's range, clipped at :data:`TRANSIENT_MAX_BV` (:func:`tools.simfield.field.make_transient`).
    """
    q = (np.arange(n) + 0.5) / n
    bv = TRANSIENT_INTRINSIC_BV[0] + q * (TRANSIENT_INTRINSIC_BV[1] - TRANSIENT_INTRINSIC_BV[0])
    reddening = (truth.get("sky") or {}).get("reddening_ebv")
    if reddening:
        bv = (bv[:, None] + (reddening[0] + q * (reddening[1] - reddening[0]))[None, :]).ravel()
    return np.minimum(bv, TRANSIENT_MAX_BV)


def colour_floor(folder: Path) -> tuple[float, str]:
    """The best single-frame calibrator's error from the unknown colour alone (mag), and its band.

    See the module's ``floor``: among :func:`tools.fieldio.right_bands`, the band whose
    transformation varies least (rms) over :func:`transient_colours`; the answer is its mean there.
    """
    truth = fieldio.load_truth(folder)
    colours = transient_colours(truth)
    true_bv = np.array([float(fieldio.transient_row(folder).BV)])
    best: tuple[float, float, str] | None = None
    for survey, band in fieldio.right_bands(truth):
        d, _ = _transfer(truth, survey, band, colours)
        spread = float(np.std(d))
        if best is None or spread < best[0]:
            d_t, _ = _transfer(truth, survey, band, true_bv)
            best = (spread, float(np.mean(d) - d_t[0]), f"{survey}/{band}")
    assert best is not None, f"{folder.name}: no right band"
    return best[1], best[2]


def budget_of(folder: Path, fmt: str) -> Budget | None:
    """The error budget of one field's detected target (None: not detected, not detectable, failed)."""
    truth = fieldio.load_truth(folder)
    if not (truth["transient"]["detectable"] and truth["measured"]["transient_detected"]):
        return None
    table = parse_catalogue((folder / fmt).read_bytes(), fmt).table
    refs = fieldio.load_references(folder)
    a = truth["alert"]
    try:
        cal = calibrate_frame(table, refs, a["ra"], a["dec"], MATCH_DIST)
    except CalibrationFailed:
        return None
    t = cal.target
    if not t.detected or t.mag is None or t.inst_mag is None:
        return None
    survey, band = cal.survey, cal.band
    true_mag, true_colour = fieldio.true_magnitude(folder, survey, band)
    loss = ideal_loss(folder)
    total = calibration_alone(t.mag - true_mag, t.inst_mag, truth["transient"]["m_inst"], loss)
    tr = fieldio.transient_row(folder)
    d_t, _ = _transfer(truth, survey, band, np.array([tr.BV]))
    c0 = cal.assumed_colour
    d_0, _ = _transfer(truth, survey, band, np.array([_bv_at_colour(truth, survey, band, c0)]))
    colour_part = float(d_0[0] - d_t[0])
    zp_part = total - colour_part

    # the final fit's stars and their truth
    p = cal.plot
    used = np.asarray(p.used, bool)
    mag = np.asarray(table.mag, float)
    ra, dec = np.asarray(table.ra, float), np.asarray(table.dec, float)
    obj = pd.read_csv(folder / "objects.csv")
    stars = obj[obj.kind == "star"]
    sra, sdec, sm = stars.ra.to_numpy(), stars.dec.to_numpy(), stars.m_inst.to_numpy()
    cosd = math.cos(math.radians(a["dec"]))
    y_m, c_m, y_ref_true, y_inst_true, c_t, w = [], [], [], [], [], []
    s2 = cal.intrinsic_scatter**2
    for k in np.flatnonzero(used):
        j = np.flatnonzero(mag == p.inst_mag[k])
        if len(j) != 1:
            continue
        d = np.hypot((sra - ra[j[0]]) * cosd, sdec - dec[j[0]]) * 3600.0
        near = np.flatnonzero(d <= 1.0)
        if not len(near):
            continue
        s = near[np.argmin(sm[near])]
        dd, cc = _transfer(truth, survey, band, np.array([stars.BV.iloc[s]]))
        ref_true = float(stars.m_sys.iloc[s] + dd[0])
        inst_true = float(stars.m_inst.iloc[s]) + loss
        y_m.append(p.ref_mag[k] - p.inst_mag[k])
        c_m.append(p.colour[k])
        y_ref_true.append(ref_true - p.inst_mag[k])  # true reference, measured instrumental
        y_inst_true.append(p.ref_mag[k] - inst_true)  # measured reference, true instrumental
        c_t.append(float(cc[0]))
        w.append(1.0 / (p.ref_err[k] ** 2 + p.inst_err[k] ** 2 + s2))
    ya, ca, wa = np.array(y_m), np.array(c_m), np.array(w)
    yr, yi, cta = np.array(y_ref_true), np.array(y_inst_true), np.array(c_t)
    y_true = yr - (ya - yi)  # true reference - true instrumental
    fit_ct = cal.fit_colour_term
    zp_true = truth["zeropoint"]
    d0 = float(d_0[0])
    # each fit's ZP + CT c0 minus its truth there (zp_true + D(c0) - loss: inst = m_sys - zp + loss)
    truth_at_c0 = zp_true + d0 - loss
    relation = _wls_at(y_true, cta, wa, c0, fit_ct) - truth_at_c0
    reference = _wls_at(yi, ca, wa, c0, fit_ct) - truth_at_c0 - relation
    crowding = _wls_at(yr, cta, wa, c0, fit_ct) - truth_at_c0 - relation
    other = zp_part - relation - reference - crowding
    known = total + cal.colour_term * (true_colour - c0)
    floor, floor_band = colour_floor(folder)
    return Budget(
        name=folder.name,
        band=f"{survey}/{band}",
        total=total,
        colour=colour_part,
        zero_point=zp_part,
        relation=relation,
        reference=reference,
        crowding=crowding,
        other=other,
        known_colour=known,
        colour_term=cal.colour_term,
        assumed_colour=c0,
        true_colour=true_colour,
        reported_err=float(t.mag_err or math.nan),
        npoints=len(wa),
        photometry=t.photometry,
        own=(t.mag - true_mag) - total,
        total_aperture=aperture_consistent(folder, table, t, truth, t.mag - true_mag)
        if t.photometry == "aperture"
        else total,
        floor=floor,
        floor_band=floor_band,
    )


def run(set_name: str = "dev", worst_fraction: float = 0.10) -> list[Budget]:
    """Print every target's budget (mmag), worst first, and the worst ``worst_fraction``'s rms per part."""
    specs = sf.suite_specs(kind=set_name)
    folders = ensure_fields(specs, OUT / f"fields_{set_name}")
    rows = [b for spec, f in zip(specs, folders) if (b := budget_of(f, spec["formats"][0])) is not None]
    rows.sort(key=lambda b: -abs(b.total))
    print(
        f"{'field':<24} {'band':<12} {'total':>6} {'colour':>6} {'ZP':>6} | {'relat.':>6} {'ref.':>6} "
        f"{'crowd':>6} {'other':>6} | {'known c':>7} {'CT':>6} {'c0':>6} {'c_true':>6} {'σ rep':>6} {'N':>4}"
    )
    for b in rows:
        print(
            f"{b.name:<24} {b.band:<12} {1e3 * b.total:+6.0f} {1e3 * b.colour:+6.0f} {1e3 * b.zero_point:+6.0f} | "
            f"{1e3 * b.relation:+6.0f} {1e3 * b.reference:+6.0f} {1e3 * b.crowding:+6.0f} {1e3 * b.other:+6.0f} | "
            f"{1e3 * b.known_colour:+7.0f} {b.colour_term:+6.3f} {b.assumed_colour:6.2f} {b.true_colour:6.2f} "
            f"{1e3 * b.reported_err:6.0f} {b.npoints:4d} {1e3 * b.own:+6.0f} "
            + (f"{1e3 * b.total_aperture:+6.0f}" if b.photometry == "aperture" else "")
        )
    n = max(1, round(worst_fraction * len(rows)))
    worst = rows[:n]

    def rms(attr: str, group: list[Budget]) -> float:
        return 1e3 * math.sqrt(float(np.mean([getattr(b, attr) ** 2 for b in group])))

    parts = (
        "total",
        "colour",
        "zero_point",
        "relation",
        "reference",
        "crowding",
        "other",
        "known_colour",
        "own",
        "floor",
    )
    for label, group in ((f"worst {n}", worst), (f"all {len(rows)}", rows)):
        print(f"rms, {label}: " + ", ".join(f"{p} {rms(p, group):.1f}" for p in parts))
    p95 = lambda attr: float(np.percentile(np.abs([getattr(b, attr) for b in rows]) * 1e3, 95))
    print(
        f"p95 |total| {p95('total'):.1f} mmag; colour part alone {p95('colour'):.1f}; zero-point part alone "
        f"{p95('zero_point'):.1f}; with the target's true colour {p95('known_colour'):.1f}; aperture targets' "
        f"own deviation in the aperture {p95('total_aperture'):.1f}"
    )
    print(
        f"p95 floor, the best single-frame calibrator's colour part alone (perfect zero point and relation, "
        f"the simulator's transient colours, its least colour-sensitive right band): {p95('floor'):.1f} mmag"
    )
    return rows


def isolated_aperture_loss_aper(folder: Path) -> float:
    """As :func:`tools.fieldio.isolated_aperture_loss`, for the catalogue's first fixed aperture (MAG_APER), mag."""
    from astropy.io import fits

    truth = fieldio.load_truth(folder)
    w, h = truth["field"]["width_px"], truth["field"]["height_px"]
    fwhm_px = truth["fwhm_arcsec"] / truth["field"]["pixel_scale_arcsec"]
    obj = pd.read_csv(folder / "objects.csv")
    cat = fits.getdata(folder / "sex_fits1.fits", 1)
    inside = obj.x_image.between(0.5, w + 0.5) & obj.y_image.between(0.5, h + 0.5)
    loss = math.nan
    for margin in (fieldio.WELL_MEASURED_MARGIN, 2.0):
        st = obj[
            (obj.kind == "star")
            & ~obj.saturated.astype(bool)
            & inside
            & (obj.m_sys < truth["limit_mag_5sigma"] - margin)
        ]
        loss, n = fieldio.isolated_aperture_loss_of(
            st.x_image.to_numpy(),
            st.y_image.to_numpy(),
            st.m_inst.to_numpy(),
            np.asarray(cat["X_IMAGE"], float),
            np.asarray(cat["Y_IMAGE"], float),
            np.asarray(cat["MAG_APER"], float),
            np.asarray(cat["FLAGS"], int),
            obj.x_image.to_numpy(),
            obj.y_image.to_numpy(),
            obj.m_inst.to_numpy(),
            fwhm_px,
        )
        if n >= fieldio.MIN_ISOLATED:
            break
    return loss


def aperture_consistent(folder: Path, table, target, truth: dict, raw: float) -> float:
    """The calibration-alone error of a target measured in the fixed aperture, its own deviation taken there.

    ``raw - (MAG_APER_t - m_inst_t - L_aper)``, with ``L_aper`` the aperture's loss for an isolated
    star of the frame: the aperture correction's error (``apc`` against the true ``L_iso - L_aper``)
    stays counted as the calibration's, as the zero point's does (mag).
    """
    ra, dec = np.asarray(table.ra, float), np.asarray(table.dec, float)
    j = int(np.argmin(np.hypot(ra - target.ra, dec - target.dec)))
    own = float(table.mag_aper[j]) - truth["transient"]["m_inst"] - isolated_aperture_loss_aper(folder)
    return raw - own
