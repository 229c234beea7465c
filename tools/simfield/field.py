"""One simulated field: its objects, transient and truth, simulated and written out."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.time import Time

from shared.contracts.surveys import get_survey
from tools.photsystem import (
    InstrumentBand,
    best_available,
    draw_colours,
    get_instrument_band,
    ideal_transfer,
    survey_magnitudes,
)
from tools.simfield.image import (
    Camera,
    Observation,
    add_photometry,
    expose,
    extract_radius,
    image_header,
    limiting_magnitude,
    make_wcs,
    render_objects,
    saturation_magnitude,
    sky_electrons,
    zeropoint,
)
from tools.simfield.sextractor import BIG_FRAME_MEMORY, measure_catalogue, run_sextractor, sextractor_version
from tools.simfield.sky import (
    DENSITY_DEPTH_V,
    REALISM_VERSION,
    SKY_TYPES,
    SURVEY_SPECS,
    SkyType,
    covers,
    draw_galaxies,
    draw_stars,
    get_sky_type,
    n17_density,
    n17_for_density,
    realistic_extracts,
    reference_extract,
    stellar_density,
)

SCHEMA = "photcal.simfield.truth/1"


@dataclass
class SimulatedField:
    """What :func:`simulate_field` returns.

    ``objects``: one row per rendered object (kind ``star``, ``galaxy`` or
    ``transient``) with its truth; ``references``: survey name -> VizieR-style
    extract (NaN = empty); ``image``: float32 ADU array (``None`` unless
    kept); ``files``: what was written, name -> path.
    """

    name: str
    truth: dict
    objects: pd.DataFrame
    references: dict[str, pd.DataFrame]
    header: fits.Header
    image: np.ndarray | None = None
    files: dict[str, Path] = field(default_factory=dict)


#: a simulated transient's intrinsic ``B-V`` is uniform in this range (mag), before the field's reddening
TRANSIENT_INTRINSIC_BV = (0.2, 1.0)
#: and its reddened ``B-V`` at most this (mag)
TRANSIENT_MAX_BV = 2.0


def place_transient(
    rng,
    objects: pd.DataFrame,
    camera: Camera,
    m_sys: np.ndarray,
    clear_arcsec: float = 10.0,
    brighter_than: float = 21.0,
) -> tuple[float, float]:
    """Pixel position (FITS) in the central half of the image, clear of
    anything brighter than ``m_sys < brighter_than`` within ``clear_arcsec``."""
    bright = objects[m_sys < brighter_than]
    clear = clear_arcsec / camera.pixel_scale
    for _ in range(1000):
        x = rng.uniform(0.25, 0.75) * camera.width
        y = rng.uniform(0.25, 0.75) * camera.height
        if np.all(np.hypot(bright.x_image - x, bright.y_image - y) > clear):
            return x, y
    raise RuntimeError("no clear position for the transient")


def draw_observation(rng, band: InstrumentBand) -> Observation:
    """Random but plausible conditions for one exposure in ``band``."""
    airmass = rng.uniform(1.0, 1.8)
    return Observation(
        exptime=float(rng.choice([30.0, 60.0, 120.0, 180.0])),
        mjd=round(float(rng.uniform(60000.0, 61000.0)), 5),
        fwhm=float(rng.uniform(1.8, 3.0)),
        rotation=float(rng.uniform(-3.0, 3.0)),
        zp_1e=float(band.zp_1e - 0.15 * (airmass - 1.0) + rng.normal(0.0, 0.1)),
        sky_mag=float(band.sky_mag + rng.normal(0.0, 0.3)),
        airmass=float(airmass),
    )


def make_transient(
    rng, band: InstrumentBand, limit: float, faint: bool, mag: float | None, reddening: float = 0.0
) -> pd.DataFrame:
    """The transient's photometric truth: its B-V, and V such that ``m_ref = mag``.

    Without ``mag``: 1.3-2 mag below the 5-sigma limit if ``faint``, else
    1-4 mag above it. ``reddening`` (E(B-V), mag) is added to its intrinsic
    :data:`TRANSIENT_INTRINSIC_BV`: a transient in the plane shines through the field stars' dust.
    """
    if mag is None:
        mag = limit + rng.uniform(1.3, 2.0) if faint else limit - rng.uniform(1.0, 4.0)
    bv = np.array([min(rng.uniform(*TRANSIENT_INTRINSIC_BV) + reddening, TRANSIENT_MAX_BV)])
    v = mag - band.reference(survey_magnitudes(0.0, bv))  # m_ref is V + f(B-V)
    return pd.DataFrame({"kind": "transient", "V": v, "BV": bv})


def saturated_stars(rng, wcs, camera, obs, band, stars: pd.DataFrame, minimum: int) -> pd.DataFrame:
    """Extra bright stars in the image so that at least ``minimum`` saturate.

    They are ordinary stars (in the reference extracts too), 0.3-2.5 mag
    brighter than :func:`saturation_magnitude`.
    """
    m_sat = saturation_magnitude(camera, obs)
    inside = stars.x_image.between(0.5, camera.width + 0.5) & stars.y_image.between(0.5, camera.height + 0.5)
    n = max(0, minimum - int((inside & (stars.m_sys < m_sat)).sum()))
    bv = draw_colours(rng, n)
    v = m_sat - rng.uniform(0.3, 2.5, n) - band.system_magnitude(survey_magnitudes(np.zeros(n), bv))
    x, y = rng.uniform(20, camera.width - 20, n), rng.uniform(20, camera.height - 20, n)
    ra, dec = wcs.all_pix2world(x, y, 1)
    return pd.DataFrame({"kind": "star", "ra": ra, "dec": dec, "x_image": x, "y_image": y, "V": v, "BV": bv})


def build_objects(
    rng,
    wcs,
    camera,
    obs,
    band,
    ra,
    dec,
    faint,
    transient_mag,
    min_saturated=3,
    sky: SkyType | None = None,
    n17: float | None = None,
):
    """Stars over the extract cone (at least ``min_saturated`` saturated in
    the image), galaxies and the transient, with photometry.

    ``n17`` (stars/deg^2 with V < 17) defaults to :func:`stellar_density`."""
    sky = sky or SKY_TYPES["legacy"]
    zp = zeropoint(obs, camera)
    radius = extract_radius(camera)
    n17 = stellar_density(ra, dec) if n17 is None else n17
    stars = add_photometry(draw_stars(rng, wcs, camera, radius, n17, None if sky.legacy else sky), band, zp)
    extra = add_photometry(saturated_stars(rng, wcs, camera, obs, band, stars, min_saturated), band, zp)
    stars = pd.concat([stars, extra], ignore_index=True)
    galaxies = add_photometry(draw_galaxies(rng, wcs, camera, int(rng.integers(5, 11))), band, zp)
    limit = limiting_magnitude(camera, obs)
    reddening = 0.0 if sky.reddening is None else float(rng.uniform(*sky.reddening))
    transient = add_photometry(make_transient(rng, band, limit, faint, transient_mag, reddening), band, zp)
    in_image = stars[
        (stars.x_image > -20)
        & (stars.x_image < camera.width + 20)
        & (stars.y_image > -20)
        & (stars.y_image < camera.height + 20)
    ]
    scene = pd.concat([in_image, galaxies], ignore_index=True)
    if sky.legacy:
        x, y = place_transient(rng, scene, camera, scene.m_sys.to_numpy())
    else:
        # a plane field has no empty 10": clear only of stars brighter than the transient itself
        x, y = place_transient(
            rng,
            scene,
            camera,
            scene.m_sys.to_numpy(),
            sky.transient_clear_arcsec,
            min(21.0, float(transient.m_sys.iloc[0])),
        )
    t_ra, t_dec = wcs.all_pix2world([x], [y], 1)
    transient = transient.assign(x_image=x, y_image=y, ra=t_ra, dec=t_dec)
    return stars, pd.concat([scene, transient], ignore_index=True)


def build_truth(name, seed, ra, dec, band, camera, obs, objects, surveys) -> dict:
    """The ``truth.json`` content (see tests/data/fields/README.md)."""
    t = objects[objects.kind == "transient"].iloc[0]
    limit = limiting_magnitude(camera, obs)
    return {
        "schema": SCHEMA,
        "name": name,
        "seed": seed,
        "field": {
            "ra": ra,
            "dec": dec,
            "radius_deg": round(extract_radius(camera), 6),
            "width_px": camera.width,
            "height_px": camera.height,
            "pixel_scale_arcsec": camera.pixel_scale,
            "rotation_deg": round(obs.rotation, 4),
        },
        "alert": {"ra": round(float(t.ra), 7), "dec": round(float(t.dec), 7)},
        "instrument_band": band.name,
        "instrument_band_description": band.description,
        "best": {"survey": band.survey, "band": band.band, "colour": band.colour_name},
        "model": "m_ref = m_inst + zeropoint + colour_term * colour; m_inst = -2.5 log10(ADU)",
        "zeropoint": round(zeropoint(obs, camera), 5),
        "colour_term": band.colour_term,
        "transient": {
            "ra": round(float(t.ra), 7),
            "dec": round(float(t.dec), 7),
            "x_image": round(float(t.x_image), 3),
            "y_image": round(float(t.y_image), 3),
            "mag": round(float(t.m_ref), 4),
            "colour": round(float(t.colour), 4),
            "m_sys": round(float(t.m_sys), 4),
            "m_inst": round(float(t.m_inst), 4),
            "detectable": bool(t.m_sys < limit),
        },
        "limit_mag_5sigma": round(limit, 3),
        "exptime": obs.exptime,
        "mjd": obs.mjd,
        "date_obs": Time(obs.mjd, format="mjd").isot,
        "fwhm_arcsec": round(obs.fwhm, 3),
        "airmass": round(obs.airmass, 3),
        "sky_mag_arcsec2": round(obs.sky_mag, 3),
        "zp_1e_per_s": round(obs.zp_1e, 4),
        "camera": asdict(camera),
        "surveys": surveys,
        "counts": {k: int(v) for k, v in objects.kind.value_counts().items()},
        "sextractor_mag_zeropoint": 0.0,
    }


def simulate_field(
    seed: int,
    ra: float,
    dec: float,
    instrument_band: str,
    *,
    name: str | None = None,
    faint: bool = False,
    transient_mag: float | None = None,
    camera: Camera = Camera(),
    out: str | Path | None = None,
    keep_image: bool = True,
    sextract: bool = True,
    surveys: tuple[str, ...] | list[str] | None = None,
    sky: str | SkyType = "legacy",
    density: float | None = None,
    formats: tuple[str, ...] | list[str] | None = None,
) -> SimulatedField:
    """Simulate one field around (ra, dec) deg observed in ``instrument_band``.

    ``faint`` puts the transient below the 5-sigma limit; ``transient_mag``
    (m_ref, mag) overrides it. ``surveys`` limits the reference extracts
    written (default: every survey of :data:`SURVEY_SPECS`); all are drawn
    in a fixed order whatever is kept, so a field made with
    :data:`LEGACY_SURVEYS` is the one made before GaiaSP existed. With ``out``, writes the image (if
    ``keep_image``), the SExtractor catalogues (if ``sextract``), the reference
    extracts ``ref_<SURVEY>.csv``, ``objects.csv`` and ``truth.json`` there.

    ``formats`` limits the SExtractor catalogues written (names of
    :data:`CATALOGUES`; ``sex_fits1.fits`` is always made, the diagnostics
    read it). ``sky`` is a :data:`SKY_TYPES` name (``legacy``, the default, is the
    simulator of the committed fields, unchanged); ``density`` (stars/deg^2
    brighter than :data:`DENSITY_DEPTH_V`) overrides the sky type's density.
    A band whose survey does not cover the field (z' south of Dec -30) is
    simulated with its :func:`tools.photsystem.best_available` fallback as
    the truth (``truth.best.fallback``); the legacy sky refuses it, as before.
    """
    sky = get_sky_type(sky)
    band = get_instrument_band(instrument_band)
    if not covers(band.survey, np.array([dec]))[0] and (sky.legacy or band.fallback is None):
        raise ValueError(f"band {band.name} is built on {band.survey}, which does not cover dec {dec}")
    rng = np.random.default_rng(seed)
    name = name or f"sim_{seed}_{band.name}"
    obs = draw_observation(rng, band)
    wcs = make_wcs(ra, dec, camera, obs.rotation)
    n17 = None
    if density is None and sky.density is not None:
        density = float(np.exp(rng.uniform(*np.log(sky.density))))
    if density is not None:
        n17 = n17_for_density(density, sky.count_slope)
    stars, objects = build_objects(rng, wcs, camera, obs, band, ra, dec, faint, transient_mag, sky=sky, n17=n17)
    cheap = None if sky.stamp_margin is None else limiting_magnitude(camera, obs) - sky.stamp_margin
    image = expose(rng, render_objects(objects, camera, obs, cheap), camera, obs)
    objects["saturated"] = objects.peak + camera.bias + sky_electrons(camera, obs) / camera.gain >= camera.saturation
    wanted = list(SURVEY_SPECS) if surveys is None else [get_survey(s).name for s in surveys]
    if sky.legacy:
        references = {s: reference_extract(rng, stars, s) for s in SURVEY_SPECS}
    else:
        references = realistic_extracts(rng, stars, sky, camera.pixel_scale)
    references = {s: df for s, df in references.items() if len(df) and s in wanted}
    truth = build_truth(name, seed, ra, dec, band, camera, obs, objects, list(references))
    truth["generator"] = {
        "module": "tools.simfield",
        "seed": seed,
        "ra": ra,
        "dec": dec,
        "instrument_band": band.name,
        "faint": faint,
        "transient_mag": transient_mag,
        "surveys": wanted,
        "command": cli_command(
            name, seed, ra, dec, band.name, faint, transient_mag, None if surveys is None else wanted
        ),
    }
    if not sky.legacy:
        add_sky_truth(
            truth,
            sky,
            stars,
            objects,
            references,
            band,
            density if density is not None else n17_density(stellar_density(ra, dec)),
            camera,
        )
    result = SimulatedField(name, truth, objects, references, image_header(wcs, camera, obs, band, name), image)
    if out is not None:
        write_field(
            result,
            Path(out),
            keep_image=keep_image,
            sextract=sextract,
            formats=None if formats is None else {"sex_fits1.fits", *formats},
        )
    if not keep_image:
        result.image = None
    return result


def add_sky_truth(
    truth: dict,
    sky: SkyType,
    stars: pd.DataFrame,
    objects: pd.DataFrame,
    references: dict,
    band: InstrumentBand,
    density: float,
    camera: Camera,
) -> None:
    """What the realistic sky types add to ``truth.json``: the sky, and the best band where
    the band's own survey is absent (its fallback, with the ideal zero point and colour term)."""
    area = np.pi * truth["field"]["radius_deg"] ** 2
    gaia = references.get("GAIA")
    lack = float((gaia.BPmag.isna() | gaia.RPmag.isna()).mean()) if gaia is not None and len(gaia) else None
    truth["sky"] = {
        "type": sky.name,
        "description": sky.description,
        "density_per_deg2_v21": round(density, 1),
        "realised_per_deg2_v21": round(float((stars.V < DENSITY_DEPTH_V).sum() / area), 1),
        "count_slope": sky.count_slope,
        "reddening_ebv": sky.reddening,
        "gaia_bp_rp_missing_fraction": None if lack is None else round(lack, 4),
        "frame_arcmin": [
            round(camera.width * camera.pixel_scale / 60.0, 2),
            round(camera.height * camera.pixel_scale / 60.0, 2),
        ],
    }
    g = truth["generator"]
    g["sky"] = sky.name
    g["realism_version"] = REALISM_VERSION
    g["camera"] = {"width": camera.width, "height": camera.height, "pixel_scale": camera.pixel_scale}
    g["command"] += (
        f" --sky {sky.name} --width {camera.width} --height {camera.height} --pixel-scale {camera.pixel_scale}"
    )
    best = best_available(band, list(references))
    if best != (band.survey, band.band):
        zp_offset, ct = ideal_transfer(band, *best)
        truth["best"] = {
            "survey": best[0],
            "band": best[1],
            "colour": get_survey(best[0]).band(best[1]).colour_name,
            "fallback": f"{band.survey} {band.band} has no data here",
        }
        truth["zeropoint"] = round(truth["zeropoint"] + zp_offset, 5)
        truth["colour_term"] = round(ct, 5)
        truth["model"] += "; zeropoint and colour_term here: the ideal fit against the fallback band"
        t = objects[objects.kind == "transient"].iloc[0]
        mags = survey_magnitudes(np.array([t.V]), np.array([t.BV]))
        blue, red = get_survey(best[0]).band(best[1]).colour
        truth["transient"]["mag"] = round(float(mags[best][0]), 4)
        truth["transient"]["colour"] = round(float(mags[(best[0], blue)][0] - mags[(best[0], red)][0]), 4)


def cli_command(name, seed, ra, dec, band, faint, transient_mag, surveys=None) -> str:
    """The command line that regenerates one field (output folder ``OUT``)."""
    cmd = f"python -m tools.simfield --out OUT --name {name} --seed {seed} --ra {ra} --dec {dec} --band {band}"
    if transient_mag is not None:
        cmd += f" --transient-mag {transient_mag}"
    elif faint:
        cmd += " --faint"
    if surveys is not None:
        cmd += f" --surveys {','.join(surveys)}"
    return cmd


def write_field(f: SimulatedField, out: Path, *, keep_image: bool = True, sextract: bool = True, formats=None) -> None:
    """Write a simulated field's files into ``out`` (see :func:`simulate_field`)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        image = (out if keep_image else Path(tmp)) / "image.fits"
        fits.PrimaryHDU(f.image, f.header).writeto(image, overwrite=True)
        if keep_image:
            f.files["image.fits"] = image
        if sextract:
            t = f.truth
            aperture = 2.0 * t["fwhm_arcsec"] / t["field"]["pixel_scale_arcsec"]
            extra = () if "sky" not in t else BIG_FRAME_MEMORY + get_sky_type(t["sky"]["type"]).sextractor_args
            f.files.update(run_sextractor(image.resolve(), out.resolve(), t["fwhm_arcsec"], aperture, extra, formats))
            f.truth["measured"] = measure_catalogue(
                out / "sex_fits1.fits", f.objects, t, t["field"]["pixel_scale_arcsec"]
            )
            f.truth["measured"]["sextractor_version"] = sextractor_version()
    for survey, df in f.references.items():
        f.files[f"ref_{survey}.csv"] = out / f"ref_{survey}.csv"
        df.to_csv(out / f"ref_{survey}.csv", index=False, na_rep="")
    write_objects(f.objects, out / "objects.csv", f.truth["limit_mag_5sigma"])
    f.files["objects.csv"] = out / "objects.csv"
    f.truth["files"] = sorted(f.files)
    (out / "truth.json").write_text(json.dumps(f.truth, indent=2) + "\n")


def write_objects(objects: pd.DataFrame, path: Path, limit: float) -> None:
    """The per-object truth table, rounded to what matters.

    Stars fainter than ``limit`` + 2 mag (m_sys) are left out: they are only
    background texture, and the file stays small.
    """
    objects = objects[(objects.kind != "star") | (objects.m_sys < limit + 2.0)]
    cols = [
        "kind",
        "ra",
        "dec",
        "x_image",
        "y_image",
        "V",
        "BV",
        "m_ref",
        "colour",
        "m_sys",
        "m_inst",
        "flux",
        "peak",
        "saturated",
    ]
    table = objects[cols].copy()
    table.insert(0, "id", np.arange(1, len(table) + 1))
    rounding = {"ra": 7, "dec": 7, "x_image": 3, "y_image": 3, "flux": 2, "peak": 2}
    table = table.round({c: rounding.get(c, 4) for c in cols[5:] + ["ra", "dec", "x_image", "y_image"]})
    table.to_csv(path, index=False)
