"""The synthetic-field simulator and the committed fields in tests/data/fields.

Most tests read only committed files (fast, no source-extractor); the ones
that run source-extractor are skipped where it is not installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table

from shared.contracts.surveys import SURVEYS, get_survey
from tools import photsystem as ps
from tools import simfield as sf

FIELDS_DIR = Path(__file__).resolve().parents[1] / "data" / "fields"
FIELDS = sorted(p.parent.name for p in FIELDS_DIR.glob("*/truth.json"))
HAVE_SEX = shutil.which("source-extractor") is not None
needs_sex = pytest.mark.skipif(not HAVE_SEX, reason="source-extractor not installed")


def truth(name: str) -> dict:
    return json.loads((FIELDS_DIR / name / "truth.json").read_text())


def catalogue(name: str) -> pd.DataFrame:
    return Table.read(FIELDS_DIR / name / "sex_fits1.fits", hdu=1).to_pandas()


def objects(name: str) -> pd.DataFrame:
    return pd.read_csv(FIELDS_DIR / name / "objects.csv")


def match_sky(ra1, dec1, ra2, dec2, radius_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i into 1, j into 2) of nearest matches within the radius."""
    c1, c2 = SkyCoord(ra1, dec1, unit="deg"), SkyCoord(ra2, dec2, unit="deg")
    j, sep, _ = c1.match_to_catalog_sky(c2)
    ok = sep.arcsec < radius_arcsec
    return np.flatnonzero(ok), j[ok]


# ---------------------------------------------------------------- photsystem


def test_every_survey_band_is_modelled():
    mags = ps.survey_magnitudes(15.0, 0.65)
    expected = {(s.name, b) for s in SURVEYS.values() for b in s.band_names}
    assert set(mags) == expected


def test_solar_colours_are_plausible():
    m = ps.survey_magnitudes(10.0, 0.65)
    assert m[("SDSS", "g")] - m[("SDSS", "r")] == pytest.approx(0.44, abs=0.05)
    assert m[("GAIA", "BP")] - m[("GAIA", "RP")] == pytest.approx(0.82, abs=0.05)
    assert m[("GAIA", "G")] - 10.0 == pytest.approx(-0.10, abs=0.05)
    assert m[("PS1", "r")] - m[("SDSS", "r")] == pytest.approx(0.0, abs=0.02)


def test_colours_increase_with_b_minus_v():
    bv = np.linspace(*ps.COLOUR_RANGE, 50)
    mags = ps.survey_magnitudes(np.full_like(bv, 15.0), bv)
    for survey in SURVEYS.values():
        for band in survey.bands:
            assert np.all(np.diff(ps.survey_colour(mags, survey.name, band.name)) > 0), (survey.name, band.name)


@pytest.mark.parametrize("name", sorted(ps.INSTRUMENT_BANDS))
def test_instrument_band_definition(name):
    band = ps.get_instrument_band(name)
    mags = ps.survey_magnitudes(np.array([14.0, 16.0]), np.array([0.4, 1.2]))
    m_sys = band.system_magnitude(mags)
    assert np.allclose(band.reference(mags), m_sys + band.colour_term * band.colour(mags))
    assert abs(band.colour_term) < 0.3
    get_survey(band.survey).band(band.band)  # is a real survey band


def test_drawn_colours_stay_in_range():
    bv = ps.draw_colours(np.random.default_rng(0), 10000)
    assert bv.min() >= ps.COLOUR_RANGE[0] and bv.max() <= ps.COLOUR_RANGE[1]
    assert 0.5 < np.median(bv) < 1.0


# ---------------------------------------------------------- committed fields


def test_committed_fields_exist_and_are_small():
    assert {"north_V", "south_r", "north_faint_target"} <= set(FIELDS)
    size = sum(p.stat().st_size for p in FIELDS_DIR.rglob("*") if p.is_file())
    assert size < 5e6


@pytest.mark.parametrize("name", FIELDS)
def test_truth_schema(name):
    t = truth(name)
    assert t["schema"] == sf.SCHEMA and t["name"] == name
    for key in (
        "field",
        "alert",
        "instrument_band",
        "best",
        "zeropoint",
        "colour_term",
        "transient",
        "limit_mag_5sigma",
        "exptime",
        "mjd",
        "surveys",
        "generator",
    ):
        assert key in t
    band = ps.get_instrument_band(t["instrument_band"])
    assert t["best"] == {"survey": band.survey, "band": band.band, "colour": band.colour_name}
    assert t["transient"]["detectable"] == (t["transient"]["m_sys"] < t["limit_mag_5sigma"])


@pytest.mark.parametrize("name", FIELDS)
def test_catalogue_formats_parse_and_agree(name):
    folder = FIELDS_DIR / name
    fits1 = catalogue(name)
    ldac = Table.read(folder / "sex_ldac.fits", hdu="LDAC_OBJECTS").to_pandas()
    head = Table.read(folder / "sex_ascii_head.cat", format="ascii.sextractor").to_pandas()
    cpcs = Table.read(folder / "sex_cpcs.cat", format="ascii.sextractor").to_pandas()
    assert len(fits1) == len(ldac) == len(head) == len(cpcs) > 100
    for other in (ldac, head, cpcs):
        assert np.allclose(other.MAG_AUTO, fits1.MAG_AUTO, atol=1e-3)
        assert np.allclose(other.ALPHA_J2000, fits1.ALPHA_J2000, atol=1e-6)
    for col in ("NUMBER", "X_IMAGE", "ALPHA_J2000", "MAG_AUTO", "FLUX_AUTO", "FWHM_IMAGE", "FLAGS", "CLASS_STAR"):
        assert col in fits1


@pytest.mark.parametrize("name", FIELDS)
def test_cpcs_catalogue_header(name):
    lines = (FIELDS_DIR / name / "sex_cpcs.cat").read_text().splitlines()
    header = [ln.split()[2] for ln in lines if ln.startswith("#")]
    assert header == ["MAG_AUTO", "MAGERR_AUTO", "ALPHA_J2000", "DELTA_J2000"]
    assert lines[0].startswith("#   1 MAG_AUTO")
    assert len(lines[4].split()) == 4


def bright_unsaturated_matches(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Matched (truth star, catalogue row) pairs, 4+ mag above the limit."""
    t, cat, obj = truth(name), catalogue(name), objects(name)
    stars = obj[(obj.kind == "star") & ~obj.saturated & (obj.m_sys < t["limit_mag_5sigma"] - 4.0)]
    i, j = match_sky(stars.ra, stars.dec, cat.ALPHA_J2000, cat.DELTA_J2000, 1.0)
    rows = cat.iloc[j].reset_index(drop=True)
    keep = (rows.FLAGS == 0).to_numpy()
    return stars.iloc[i].reset_index(drop=True)[keep], rows[keep]


@pytest.mark.parametrize("name", FIELDS)
def test_mag_auto_is_true_instrumental_magnitude(name):
    stars, rows = bright_unsaturated_matches(name)
    assert len(stars) >= 15
    offset = rows.MAG_AUTO.to_numpy() - stars.m_inst.to_numpy()
    # MAG_AUTO = m_inst up to the Kron aperture's small flux loss
    assert abs(np.median(offset)) < 0.03
    assert np.median(np.abs(offset - np.median(offset))) < 0.02
    zp = truth(name)["zeropoint"]
    assert np.median(rows.MAG_AUTO.to_numpy() + zp - stars.m_sys.to_numpy()) == pytest.approx(0.0, abs=0.03)


def fit_zeropoint(m_ref, colour, m_inst, weight) -> tuple[np.ndarray, np.ndarray]:
    """Weighted, 3-sigma-clipped fit of m_ref - m_inst = zp + ct * colour.

    Returns (zp, ct) and their 1-sigma errors (scaled by the reduced chi^2).
    """
    y = m_ref - m_inst
    keep = np.ones(y.size, bool)
    for _ in range(5):
        A = np.vstack([np.ones(keep.sum()), colour[keep]]).T
        w = weight[keep]
        cov = np.linalg.inv(A.T @ (A * w[:, None]))
        p = cov @ (A.T @ (w * y[keep]))
        resid = y - p[0] - p[1] * colour
        keep = np.abs(resid) < 3.0 * 1.4826 * np.median(np.abs(resid[keep]))
    chi2 = np.sum(w * (y[keep] - A @ p) ** 2) / max(len(w) - 2, 1) if len(w) == keep.sum() else 1.0
    return p, np.sqrt(np.diag(cov) * max(chi2, 1.0))


@pytest.mark.parametrize("name", FIELDS)
def test_best_survey_calibration_recovers_truth(name):
    """Fitting the committed catalogue against the committed reference extract
    of the true best survey gives back the true zero point and colour term."""
    t, cat = truth(name), catalogue(name)
    survey = get_survey(t["best"]["survey"])
    band = survey.band(t["best"]["band"])
    ref = pd.read_csv(FIELDS_DIR / name / f"ref_{survey.name}.csv")
    blue, red = (survey.band(b) for b in band.colour)
    ref = ref.dropna(subset=[band.column, blue.column, red.column])
    ref = ref[ref[band.column].between(survey.mag_bright, survey.mag_faint)]
    i, j = match_sky(ref[survey.ra_column], ref[survey.dec_column], cat.ALPHA_J2000, cat.DELTA_J2000, 1.5)
    ref, rows = ref.iloc[i], cat.iloc[j]
    good = (rows.FLAGS == 0).to_numpy()
    ref, rows = ref[good], rows[good]
    colour = (ref[blue.column] - ref[red.column]).to_numpy()
    sigma2 = ref[band.error_column].to_numpy() ** 2 + rows.MAGERR_AUTO.to_numpy() ** 2 + 0.01**2
    (zp, ct), (e_zp, e_ct) = fit_zeropoint(ref[band.column].to_numpy(), colour, rows.MAG_AUTO.to_numpy(), 1.0 / sigma2)
    assert len(ref) >= 20
    assert e_zp < 0.03 and e_ct < 0.05
    # MAG_AUTO's ~0.01 mag Kron flux loss goes into the fitted zero point
    assert zp == pytest.approx(t["zeropoint"], abs=3 * e_zp + 0.02)
    assert ct == pytest.approx(t["colour_term"], abs=3 * e_ct + 0.01)


@pytest.mark.parametrize("name", FIELDS)
def test_transient_detected_when_it_should_be(name):
    t, cat = truth(name), catalogue(name)
    alert = SkyCoord(t["alert"]["ra"], t["alert"]["dec"], unit="deg")
    sep = alert.separation(SkyCoord(cat.ALPHA_J2000, cat.DELTA_J2000, unit="deg")).arcsec
    if not t["transient"]["detectable"]:
        assert sep.min() > 3.0
        return
    j = int(np.argmin(sep))
    assert sep[j] < 1.5
    tr = t["transient"]
    calibrated = cat.MAG_AUTO[j] + t["zeropoint"] + t["colour_term"] * tr["colour"]
    assert calibrated == pytest.approx(tr["mag"], abs=3 * float(cat.MAGERR_AUTO[j]) + 0.05)


@pytest.mark.parametrize("name", FIELDS)
def test_reference_extracts_cover_the_right_sky(name):
    t = truth(name)
    files = {p.stem.removeprefix("ref_") for p in (FIELDS_DIR / name).glob("ref_*.csv")}
    assert files == set(t["surveys"])
    assert {"APASS", "GAIA"} <= files
    assert ("PS1" in files) == (t["field"]["dec"] > -30)
    assert ("SDSS" in files) == (t["field"]["dec"] >= sf.SDSS_DEC_MIN)
    for survey in files:
        s = get_survey(survey)
        ref = pd.read_csv(FIELDS_DIR / name / f"ref_{survey}.csv")
        expected = [s.ra_column, s.dec_column] + [c for b in s.bands for c in (b.column, b.error_column)]
        assert list(ref.columns) == expected
        sep = (
            SkyCoord(ref[s.ra_column], ref[s.dec_column], unit="deg")
            .separation(SkyCoord(t["field"]["ra"], t["field"]["dec"], unit="deg"))
            .deg
        )
        assert sep.max() <= t["field"]["radius_deg"] + 1e-3
        assert ref.isna().any(axis=None)  # some empty values, as in VizieR


def test_southern_field_has_no_ps1():
    assert truth("south_r")["field"]["dec"] < -30
    assert not (FIELDS_DIR / "south_r" / "ref_PS1.csv").exists()


@pytest.mark.parametrize("name", FIELDS)
def test_apass_has_enough_stars_on_the_image(name):
    t = truth(name)
    ref = pd.read_csv(FIELDS_DIR / name / "ref_APASS.csv")
    ref = ref[ref.Vmag.between(10.0, 17.0)]
    obj = objects(name)
    inside = obj[
        obj.x_image.between(0.5, t["field"]["width_px"] + 0.5) & obj.y_image.between(0.5, t["field"]["height_px"] + 0.5)
    ]
    i, _ = match_sky(ref.RAJ2000, ref.DEJ2000, inside.ra, inside.dec, 1.0)
    assert len(i) >= 30


@pytest.mark.parametrize("name", FIELDS)
def test_reference_errors_match_the_scatter(name):
    """(published - true) / e_mag is ~N(0, 1) for unsaturated stars."""
    obj = objects(name)
    stars = obj[obj.kind == "star"]
    for survey in truth(name)["surveys"]:
        s, spec = get_survey(survey), sf.SURVEY_SPECS[survey]
        ref = pd.read_csv(FIELDS_DIR / name / f"ref_{survey}.csv")
        i, j = match_sky(ref[s.ra_column], ref[s.dec_column], stars.ra, stars.dec, 1.0)
        true = ps.survey_magnitudes(stars.V.to_numpy()[j], stars.BV.to_numpy()[j])
        per_band = []
        for b in s.bands:
            m = true[(survey, b.name)]
            ok = m > (spec.saturation or -99) + 0.5
            per_band.append(((ref[b.column].to_numpy()[i] - m) / ref[b.error_column].to_numpy()[i])[ok])
        pulls = np.concatenate(per_band)
        pulls = pulls[np.isfinite(pulls)]
        assert len(pulls) > 50, survey
        assert abs(np.median(pulls)) < 0.2, survey
        assert 0.8 < 1.4826 * np.median(np.abs(pulls - np.median(pulls))) < 1.25, survey


@pytest.mark.parametrize("name", FIELDS)
def test_clearly_saturated_stars_are_flagged(name):
    t, cat, obj = truth(name), catalogue(name), objects(name)
    cam = t["camera"]
    inside = obj.x_image.between(3, cam["width"] - 3) & obj.y_image.between(3, cam["height"] - 3)
    sat = obj[inside & (obj.peak > 1.2 * cam["saturation"])]
    assert len(sat) >= 2
    i, j = match_sky(sat.ra, sat.dec, cat.ALPHA_J2000, cat.DELTA_J2000, 2.0)
    assert len(i) == len(sat)
    assert np.all(cat.FLAGS.to_numpy()[j] & 4)


@pytest.mark.parametrize("name", FIELDS)
def test_committed_field_regenerates(name):
    """The simulator still makes the committed truth and reference extracts."""
    t = truth(name)
    g = t["generator"]
    f = sf.simulate_field(
        g["seed"],
        g["ra"],
        g["dec"],
        g["instrument_band"],
        name=name,
        faint=g["faint"],
        transient_mag=g["transient_mag"],
        keep_image=False,
        surveys=g.get("surveys", sf.LEGACY_SURVEYS),
    )
    for key in ("zeropoint", "colour_term", "limit_mag_5sigma", "exptime", "mjd", "alert", "transient", "surveys"):
        assert f.truth[key] == pytest.approx(t[key], abs=1e-3), key
    for survey, ref in f.references.items():
        committed = pd.read_csv(FIELDS_DIR / name / f"ref_{survey}.csv")
        assert len(committed) == len(ref)
        assert np.allclose(committed.to_numpy(float), ref.to_numpy(float), atol=1e-3, equal_nan=True)


# ------------------------------------------------------------------ simulator


def test_image_is_a_valid_ccd_frame():
    cam = sf.Camera(width=256, height=256)
    f = sf.simulate_field(7, 120.0, 20.0, "g", camera=cam)
    assert f.image is not None
    assert f.image.dtype == np.float32 and f.image.shape == (256, 256)
    assert f.image.max() <= cam.saturation
    assert f.header["CTYPE1"] == "RA---TAN" and f.header["EXPTIME"] == f.truth["exptime"]
    sky = np.median(f.image) - cam.bias
    assert sky * cam.gain == pytest.approx(
        sf.sky_electrons(
            cam,
            sf.Observation(
                f.truth["exptime"], 0, f.truth["fwhm_arcsec"], 0, f.truth["zp_1e_per_s"], f.truth["sky_mag_arcsec2"], 1
            ),
        ),
        rel=0.05,
    )


def test_band_outside_its_survey_is_refused():
    with pytest.raises(ValueError):
        sf.simulate_field(1, 10.0, -60.0, "z")


def test_suite_specs_vary():
    specs = sf.suite_specs(12)
    assert {s["instrument_band"] for s in specs} == set(ps.INSTRUMENT_BANDS)
    assert any(s["dec"] < -30 for s in specs) and any(s["dec"] > -30 for s in specs)
    assert any(s["faint"] for s in specs)
    assert all(s["dec"] > -30 for s in specs if ps.INSTRUMENT_BANDS[s["instrument_band"]].survey == "PS1")


@needs_sex
def test_simulate_field_end_to_end(tmp_path):
    cam = sf.Camera(width=512, height=512)
    f = sf.simulate_field(11, 210.0, 10.0, "V", camera=cam, out=tmp_path, keep_image=True)
    for name in [*sf.CATALOGUES, "image.fits", "truth.json", "objects.csv", "ref_APASS.csv", "ref_GAIA.csv"]:
        assert (tmp_path / name).exists(), name
    m = f.truth["measured"]
    assert m["n_sources"] > 50
    assert abs(m["mag_auto_minus_m_inst_median"]) < 0.03
    assert m["transient_detected"] == f.truth["transient"]["detectable"]
    header = fits.getheader(tmp_path / "image.fits")
    assert header["SATURATE"] == pytest.approx(cam.saturate_keyword)


# ------------------------------------------------------- realistic sky types
# (issue 15: the committed fields are sparse and northern-kind; these are the skies where it broke)

SMALL = sf.Camera(width=400, height=400, pixel_scale=1.25)  # 8.3' frame: fast, catalogue level


def realistic(seed=21, ra=280.0, dec=-5.0, band="V", sky="dense", **kw) -> sf.SimulatedField:
    return sf.simulate_field(seed, ra, dec, band, sky=sky, camera=kw.pop("camera", SMALL), keep_image=False, **kw)


def test_legacy_is_the_default_sky():
    """The committed fields are the legacy sky: no 'sky' block, the latitude-law density."""
    f = sf.simulate_field(3, 150.0, 30.0, "V", camera=SMALL, keep_image=False)
    assert "sky" not in f.truth
    assert sf.SKY_TYPES["legacy"].legacy and not sf.SKY_TYPES["dense"].legacy


@pytest.mark.parametrize("density", [50_000.0, 200_000.0])
def test_dense_sky_realises_the_density_asked(density):
    f = realistic(density=density)
    sky = f.truth["sky"]
    assert sky["type"] == "dense" and sky["density_per_deg2_v21"] == pytest.approx(density)
    # stars brighter than V 21 per deg^2 over the extract cone: Poisson noise of ~5,000-20,000 stars
    assert sky["realised_per_deg2_v21"] == pytest.approx(density, rel=0.05)
    in_image = f.objects[
        (f.objects.kind == "star") & f.objects.x_image.between(0.5, 400.5) & f.objects.y_image.between(0.5, 400.5)
    ]
    area = (400 * 1.25 / 3600.0) ** 2
    assert (in_image.V < sf.DENSITY_DEPTH_V).sum() / area == pytest.approx(density, rel=0.1)


def test_dense_sky_density_range_and_redder_stars():
    assert sf.SKY_TYPES["dense"].density is not None
    lo, hi = sf.SKY_TYPES["dense"].density
    assert (lo, hi) == (50_000.0, 200_000.0)
    dense = realistic(seed=5)
    sparse = realistic(seed=5, ra=150.0, dec=40.0, sky="sparse")
    assert lo <= dense.truth["sky"]["density_per_deg2_v21"] <= hi
    assert dense.truth["sky"]["realised_per_deg2_v21"] > 10 * sparse.truth["sky"]["realised_per_deg2_v21"]
    stars = lambda f: f.objects[f.objects.kind == "star"]
    assert np.median(stars(dense).BV) > np.median(stars(sparse).BV) + 0.3  # reddening
    assert stars(dense).BV.max() <= ps.REDDENED_COLOUR_RANGE[1]


def test_reddened_colours_stay_where_the_transformations_are_monotonic():
    bv = np.linspace(*ps.REDDENED_COLOUR_RANGE, 80)
    mags = ps.survey_magnitudes(np.full_like(bv, 15.0), bv)
    for survey in SURVEYS.values():
        for band in survey.bands:
            assert np.all(np.diff(ps.survey_colour(mags, survey.name, band.name)) > 0), (survey.name, band.name)


@pytest.mark.parametrize("sky", ["sparse", "dense"])
def test_southern_fields_have_no_ps1_and_no_sdss(sky):
    f = realistic(ra=250.0, dec=-45.0, sky=sky)
    assert set(f.references) == {"APASS", "GAIA", "GaiaSP"}
    assert f.truth["surveys"] == ["APASS", "GAIA", "GaiaSP"]


def test_southern_z_is_calibrated_against_gaiasp_z():
    f = realistic(ra=250.0, dec=-45.0, band="z")
    best = f.truth["best"]
    assert (best["survey"], best["band"], best["colour"]) == ("GaiaSP", "z", "i-z")
    assert "PS1" in best["fallback"]
    z = ps.get_instrument_band("z")
    assert ps.acceptable_bands(z, ["APASS", "GAIA", "GaiaSP"]) == [("GaiaSP", "z")]
    assert ps.acceptable_bands(z) == [("PS1", "z")]  # north: as before
    # the truth is self-consistent: the transient's true GaiaSP z, and the ideal fit's colour term
    t = f.objects[f.objects.kind == "transient"].iloc[0]
    true = ps.survey_magnitudes(np.array([t.V]), np.array([t.BV]))[("GaiaSP", "z")][0]
    assert f.truth["transient"]["mag"] == pytest.approx(true, abs=1e-4)
    assert f.truth["colour_term"] == pytest.approx(ps.ideal_transfer(z, "GaiaSP", "z")[1], abs=1e-4)
    with pytest.raises(ValueError):  # the legacy sky still refuses it
        sf.simulate_field(1, 250.0, -45.0, "z", camera=SMALL, keep_image=False)


def bp_rp_lacking(f: sf.SimulatedField) -> pd.DataFrame:
    g = f.references["GAIA"]
    return g.assign(lack=g.BPmag.isna() | g.RPmag.isna())


@pytest.mark.parametrize("sky,ra,dec", [("sparse", 150.0, 40.0), ("sparse", 20.0, -60.0), ("dense", 280.0, -5.0)])
def test_gaia_extracts_lack_bp_rp_for_10_to_30_percent(sky, ra, dec):
    f = realistic(seed=8, ra=ra, dec=dec, sky=sky, camera=sf.Camera(width=800, height=800))
    g = bp_rp_lacking(f)
    assert 0.10 <= g.lack.mean() <= 0.32
    assert f.truth["sky"]["gaia_bp_rp_missing_fraction"] == pytest.approx(g.lack.mean(), abs=1e-4)
    # more for the faint ones, as in DR3
    assert g.lack[g.Gmag > 20.0].mean() > 2 * g.lack[g.Gmag < 19.0].mean()


def test_crowded_gaia_stars_lack_bp_rp_more_often():
    dense = bp_rp_lacking(realistic(seed=9, density=200_000.0))
    sparse = bp_rp_lacking(realistic(seed=9, ra=150.0, dec=40.0, sky="sparse", camera=sf.Camera()))
    bright = lambda g: g.lack[g.Gmag.between(17.0, 19.5)].mean()
    assert bright(dense) > bright(sparse) + 0.02


def test_reference_photometry_is_blended_in_crowded_fields():
    """APASS (8" blends) publishes a crowded star brighter than it is, once per blend."""
    f = realistic(seed=4, density=200_000.0)
    stars = f.objects[f.objects.kind == "star"]
    ref = f.references["APASS"]
    i, j = match_sky(ref.RAJ2000, ref.DEJ2000, stars.ra, stars.dec, 0.5)
    true_v = ps.survey_magnitudes(stars.V.to_numpy()[j], stars.BV.to_numpy()[j])[("APASS", "V")]
    offset = ref.Vmag.to_numpy()[i] - true_v
    offset = offset[np.isfinite(offset)]
    assert np.median(offset) < -0.01
    assert np.mean(offset < -0.1) > 0.05
    legacy = sf.simulate_field(
        4, 280.0, -5.0, "V", camera=SMALL, keep_image=False, density=200_000.0, sky=sf.SkyType("legacy", "no blends")
    )
    assert "sky" not in legacy.truth


def test_brightest_of_blends():
    mag = np.array([15.0, 16.0, 14.0, 18.0])
    pairs = (np.array([0, 1, 1, 2]), np.array([1, 0, 2, 1]))  # 0-1 and 1-2 are blends
    assert sf.brightest_of_blends(mag, pairs).tolist() == [True, False, True, True]


def test_cheap_rendering_keeps_flux_and_centroid():
    cam = sf.Camera(width=64, height=64)
    stars = pd.DataFrame({"x_image": [20.3, 40.77], "y_image": [30.6, 12.21], "flux": [1000.0, 500.0]})
    image, peak_fraction = sf.render_points(stars, cam, fwhm=2.0, beta=3.5)
    assert image.sum() == pytest.approx(1500.0, rel=1e-3)
    yy, xx = np.mgrid[1:65, 1:65]
    near = np.hypot(xx - 20.3, yy - 30.6) < 12
    assert (image * xx)[near].sum() / image[near].sum() == pytest.approx(20.3, abs=0.02)
    assert (image * yy)[near].sum() / image[near].sum() == pytest.approx(30.6, abs=0.02)
    assert 0.05 < peak_fraction < 0.5


@pytest.mark.parametrize("kind", ["dev", "eval", "eval2"])
def test_realistic_sets(kind):
    specs = sf.suite_specs(kind=kind)
    assert len(specs) >= 40
    for sky in ("sparse", "dense"):
        for south in (False, True):
            group = [s for s in specs if s["sky"] == sky and (s["dec"] < -30) == south]
            assert {s["instrument_band"] for s in group} == set(ps.INSTRUMENT_BANDS), (sky, south)
    arcmin = [s["camera"].width * s["camera"].pixel_scale / 60.0 for s in specs]
    assert min(arcmin) >= 9.99 and max(arcmin) <= 60.01
    assert max(arcmin) > 40 and min(arcmin) < 15
    for s in specs:
        b = SkyCoord(s["ra"], s["dec"], unit="deg").galactic.b.deg
        assert (abs(b) < 4.01) if s["sky"] == "dense" else (abs(b) > 25)
    assert any(s["faint"] for s in specs)


def test_development_and_evaluation_sets_differ():
    dev, ev = sf.suite_specs(kind="dev"), sf.suite_specs(kind="eval")
    assert not {s["seed"] for s in dev} & {s["seed"] for s in ev}
    assert not {(s["ra"], s["dec"]) for s in dev} & {(s["ra"], s["dec"]) for s in ev}
    assert sf.suite_specs(kind="dev") == dev  # anyone can regenerate them
    ev2 = sf.suite_specs(kind="eval2")
    for other in (dev, ev):
        assert not {s["seed"] for s in other} & {s["seed"] for s in ev2}
        assert not {(s["ra"], s["dec"]) for s in other} & {(s["ra"], s["dec"]) for s in ev2}


def test_frame_size_is_the_cameras():
    cam = sf.Camera(width=300, height=200, pixel_scale=2.0)
    f = realistic(camera=cam, sky="sparse", ra=150.0, dec=40.0)
    assert f.truth["sky"]["frame_arcmin"] == [10.0, pytest.approx(6.67, abs=0.01)]
    assert f.truth["field"]["radius_deg"] == pytest.approx(1.1 * 0.5 * np.hypot(300, 200) * 2.0 / 3600, abs=1e-5)
    assert f.truth["generator"]["camera"] == {"width": 300, "height": 200, "pixel_scale": 2.0}


@needs_sex
def test_dense_field_end_to_end(tmp_path):
    """A crowded image: SExtractor finds thousands of sources, blends among them."""
    cam = sf.Camera(width=500, height=500, pixel_scale=1.0)
    f = sf.simulate_field(
        31, 280.0, -5.0, "r", sky="dense", density=150_000.0, camera=cam, out=tmp_path, formats=("sex_cpcs.cat",)
    )
    assert {p.name for p in tmp_path.glob("sex_*")} == {"sex_fits1.fits", "sex_cpcs.cat"}
    m = f.truth["measured"]
    assert m["n_sources"] > 1000
    assert abs(m["mag_auto_minus_m_inst_median"]) < 0.1
    assert f.image is not None
    assert f.image.shape == (500, 500) and f.image.max() <= cam.saturation
    assert "realism_version" in f.truth["generator"] and "--sky dense" in f.truth["generator"]["command"]
