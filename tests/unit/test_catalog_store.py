"""The local reference catalogues: loading VizieR extracts and cone searches.

Every cone is checked against a brute-force angular cut (astropy) of the
same stars: the same set, no star missing or doubled.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from services.catalog import layout
from services.catalog.loader import load_extracts
from services.catalog.store import CatalogStore, cone_ranges
from shared.contracts.surveys import APASS, GAIA
from shared.errors import BadInput

SMALL: dict[str, Any] = {"partition_rows": 300, "row_group_rows": 40}

#: (ra, dec) of the test cones' centres, each with a cluster of stars around it
CENTRE = (150.0, 20.0)
WRAP = (0.05, 10.0)
NORTH = (37.0, 89.9)
SOUTH = (200.0, -89.95)


def _base_vertex() -> tuple[float, float]:
    """A corner of HEALPix base pixel 0: a partition edge whatever the partitioning."""
    from astropy.coordinates import Latitude, Longitude  # noqa: F401
    from cdshealpix.nested import vertices

    lon, lat = vertices(np.array([0], dtype=np.uint64), 0)
    return float(lon[0, 1].deg), float(lat[0, 1].deg)


EDGE = _base_vertex()


def _stars(rng: np.random.Generator, survey=APASS, n_background: int = 1500, n_cluster: int = 400) -> pd.DataFrame:
    ras, decs = [], []
    z = rng.uniform(-1, 1, n_background)
    ras.append(rng.uniform(0, 360, n_background))
    decs.append(np.degrees(np.arcsin(z)))
    for ra0, dec0 in (CENTRE, WRAP, NORTH, SOUTH, EDGE):
        # uniform-ish in a 1.2 deg cap around the centre
        c = SkyCoord(ra0 * u.deg, dec0 * u.deg)
        pa = rng.uniform(0, 360, n_cluster) * u.deg
        sep = np.sqrt(rng.uniform(0, 1, n_cluster)) * 1.2 * u.deg
        p = c.directional_offset_by(pa, sep)
        ras.append(p.ra.deg)
        decs.append(p.dec.deg)
    ra = np.round(np.concatenate(ras) % 360.0, 7)
    dec = np.round(np.clip(np.concatenate(decs), -90, 90), 7)
    df = pd.DataFrame({survey.ra_column: ra, survey.dec_column: dec})
    for band in survey.bands:
        mag = np.round(rng.uniform(10, 18, len(ra)), 3)
        mag[rng.random(len(ra)) < 0.1] = np.nan
        df[band.column] = mag
        df[band.error_column] = np.round(rng.uniform(0.01, 0.2, len(ra)), 3)
    return df


def _brute(df: pd.DataFrame, survey, ra: float, dec: float, radius: float) -> pd.DataFrame:
    c = SkyCoord(df[survey.ra_column].to_numpy() * u.deg, df[survey.dec_column].to_numpy() * u.deg)
    sep = c.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg
    return df[sep <= radius]


def _check_cone(store: CatalogStore, df: pd.DataFrame, survey, ra: float, dec: float, radius: float) -> int:
    reply = store.cone(ra, dec, radius, [survey.name])
    expected = _brute(df, survey, ra, dec, radius)
    if len(expected) == 0:
        assert survey.name not in reply.covered
        return 0
    assert reply.covered == [survey.name]
    got = reply.stars[survey.name]
    keys = layout.star_keys(got.ra, got.dec)
    assert len(np.unique(keys)) == len(keys), "a star came back twice"
    exp_keys = layout.star_keys(expected[survey.ra_column].to_numpy(), expected[survey.dec_column].to_numpy())
    assert set(keys.tolist()) == set(exp_keys.tolist())
    # the values travel with their star
    order_got = np.argsort(keys)
    order_exp = np.argsort(exp_keys)
    for band in survey.bands:
        np.testing.assert_allclose(
            got.mags[band.name][order_got], expected[band.column].to_numpy()[order_exp], rtol=0, atol=1e-5
        )
        np.testing.assert_allclose(
            got.errs[band.name][order_got], expected[band.error_column].to_numpy()[order_exp], rtol=0, atol=1e-5
        )
    return len(keys)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """APASS stars written as CSV, CSV.gz, FITS and VOTable, loaded in one go."""
    tmp = tmp_path_factory.mktemp("cat")
    rng = np.random.default_rng(42)
    df = _stars(rng)
    shuffled = df.sample(frac=1.0, random_state=1)
    cuts = np.linspace(0, len(shuffled), 5).astype(int)
    parts = [shuffled.iloc[cuts[i] : cuts[i + 1]] for i in range(4)]
    files = []
    # CSV with empty cells and rows without a position
    csv = parts[0].copy()
    bad = csv.iloc[:7].copy()
    bad[APASS.ra_column] = np.nan
    pd.concat([csv, bad]).to_csv(tmp / "a.csv", index=False, na_rep="")
    files.append(tmp / "a.csv")
    parts[1].to_csv(tmp / "b.csv.gz", index=False, na_rep="")
    files.append(tmp / "b.csv.gz")
    Table.from_pandas(parts[2]).write(tmp / "c.fits")
    files.append(tmp / "c.fits")
    Table.from_pandas(parts[3]).write(tmp / "d.vot", format="votable")
    files.append(tmp / "d.vot")
    data_dir = tmp / "data"
    report = load_extracts("APASS", files, data_dir, **SMALL)
    return df, files, data_dir, report


def test_load_report(loaded):
    df, files, data_dir, report = loaded
    assert report.files == 4
    assert report.rows_read == len(df) + 7
    assert report.rows_without_position == 7
    assert report.rows_new == len(df) == report.rows_total
    assert report.version == "v1"
    assert report.partitions > 5
    assert (data_dir / "catalogs" / "APASS" / "current").read_text().strip() == "v1"


@pytest.mark.parametrize(
    "where,radius",
    [
        (CENTRE, 0.25),
        (CENTRE, 1.0),
        (EDGE, 0.5),
        (WRAP, 0.4),
        ((359.98, 10.0), 0.3),
        (NORTH, 0.5),
        ((NORTH[0] + 180, 89.95), 0.2),
        (SOUTH, 0.3),
        ((0.0, -90.0), 0.2),
        ((0.0, 90.0), 0.25),
        ((123.0, -45.0), 4.0),
    ],
)
def test_cone_matches_brute_force(loaded, where, radius):
    df, _, data_dir, _ = loaded
    store = CatalogStore(data_dir, cache_partitions=4)
    n = _check_cone(store, df, APASS, where[0], where[1], radius)
    if where in (CENTRE, EDGE, WRAP, NORTH, SOUTH):
        assert n > 5


def test_edge_cone_spans_partitions(loaded):
    df, _, data_dir, _ = loaded
    store = CatalogStore(data_dir)
    reply = store.cone(EDGE[0], EDGE[1], 0.5, ["APASS"])
    stars = reply.stars["APASS"]
    from hats.pixel_math.spatial_index import compute_spatial_index

    base = compute_spatial_index(stars.ra, stars.dec) >> (2 * 29)
    assert len(set(base.tolist())) >= 3  # a base-pixel corner: three or four base pixels meet


def test_many_random_cones(loaded):
    df, _, data_dir, _ = loaded
    store = CatalogStore(data_dir, cache_partitions=3)
    rng = np.random.default_rng(7)
    for _ in range(40):
        ra = float(rng.uniform(0, 360))
        dec = float(np.degrees(np.arcsin(rng.uniform(-1, 1))))
        _check_cone(store, df, APASS, ra, dec, float(rng.uniform(0.1, 8.0)))
    assert store.cache_info()["partitions"] <= 3


def test_cone_ranges_cover_the_cone():
    rng = np.random.default_rng(3)
    from hats.pixel_math.spatial_index import compute_spatial_index

    for ra0, dec0, r in [(0.0, 0.0, 0.25), (359.9, 45.0, 1.0), (10.0, 89.99, 0.5), (10.0, -89.99, 0.05)]:
        ranges = cone_ranges(ra0, dec0, r)
        c = SkyCoord(ra0 * u.deg, dec0 * u.deg)
        pts = c.directional_offset_by(rng.uniform(0, 360, 500) * u.deg, rng.uniform(0, r, 500) * u.deg)
        hp = compute_spatial_index(pts.ra.deg, pts.dec.deg)
        i = np.searchsorted(ranges[:, 0], hp, side="right") - 1
        assert np.all(i >= 0) and np.all(hp < ranges[i, 1])


def test_list_catalogs_and_surveys(loaded):
    df, _, data_dir, _ = loaded
    store = CatalogStore(data_dir)
    assert store.surveys() == ["APASS"]
    (info,) = store.list_catalogs()
    assert info["survey"] == "APASS"
    assert info["rows"] == len(df)
    assert info["bands"] == ["B", "V", "g'", "r'", "i'"]
    assert info["source"].endswith("catalogs/APASS/v1")
    assert 0 < info["area_deg2"] <= 41253.0


def test_unknown_survey_and_empty(loaded):
    _, _, data_dir, _ = loaded
    store = CatalogStore(data_dir)
    with pytest.raises(BadInput):
        store.cone(10, 10, 0.1, ["NOPE"])
    reply = store.cone(CENTRE[0], CENTRE[1], 0.3, ["GAIA", "apass"])
    assert reply.covered == ["APASS"]
    assert list(reply.stars) == ["APASS"]


def test_lsdb_reads_the_catalogue(loaded):
    lsdb = pytest.importorskip("lsdb")
    df, _, data_dir, _ = loaded
    version = data_dir / "catalogs" / "APASS" / "v1"
    got = lsdb.read_hats(version, search_filter=lsdb.ConeSearch(CENTRE[0], CENTRE[1], 900)).compute()
    expected = _brute(df, APASS, CENTRE[0], CENTRE[1], 0.25)
    assert len(got) == len(expected) > 0


# --------------------------------------------------------------------------- loads


def test_load_twice_changes_nothing(tmp_path):
    df = _stars(np.random.default_rng(1), n_background=300, n_cluster=100)
    df.to_csv(tmp_path / "x.csv.gz", index=False, na_rep="")
    data = tmp_path / "data"
    r1 = load_extracts("APASS", [tmp_path / "x.csv.gz"], data, **SMALL)
    r2 = load_extracts("APASS", [tmp_path / "x.csv.gz"], data, **SMALL)
    assert r1.rows_new == len(df)
    assert r2.rows_new == 0 and r2.rows_total == len(df) and r2.version == "v1"
    assert layout.list_versions(data / "catalogs" / "APASS") == [data / "catalogs" / "APASS" / "v1"]
    # the same file twice in one load: one row per star
    r3 = load_extracts("APASS", [tmp_path / "x.csv.gz", tmp_path / "x.csv.gz"], tmp_path / "data2", **SMALL)
    assert r3.rows_total == len(df)
    _check_cone(CatalogStore(tmp_path / "data2"), df, APASS, *CENTRE, 1.0)


def test_reader_sees_a_later_load(tmp_path):
    rng = np.random.default_rng(5)
    df = _stars(rng, n_background=400, n_cluster=150)
    first, second, third = df.iloc[: len(df) // 2], df.iloc[len(df) // 2 :], _stars(rng, n_background=50, n_cluster=20)
    first.to_csv(tmp_path / "1.csv", index=False, na_rep="")
    second.to_csv(tmp_path / "2.csv", index=False, na_rep="")
    third.to_csv(tmp_path / "3.csv", index=False, na_rep="")
    data = tmp_path / "data"
    load_extracts("APASS", [tmp_path / "1.csv"], data, **SMALL)
    store = CatalogStore(data, refresh_seconds=0.0)
    n1 = _check_cone(store, first, APASS, *CENTRE, 1.0)

    # readers keep answering while a load runs
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                reply = store.cone(CENTRE[0], CENTRE[1], 1.0, ["APASS"])
                assert len(reply.stars["APASS"]) >= n1
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    report = load_extracts("APASS", [tmp_path / "2.csv"], data, **SMALL)
    load_extracts("APASS", [tmp_path / "3.csv"], data, **SMALL)
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    assert report.version == "v2"
    everything = pd.concat([first, second, third])
    n_all = _check_cone(store, everything, APASS, *CENTRE, 1.0)
    assert n_all > n1
    # the previous version is kept, older ones pruned
    sdir = data / "catalogs" / "APASS"
    assert [p.name for p in layout.list_versions(sdir)] == ["v2", "v3"]
    assert (sdir / "current").read_text().strip() == "v3"


def test_new_survey_seen_without_restart(tmp_path):
    data = tmp_path / "data"
    store = CatalogStore(data, refresh_seconds=0.0)
    assert store.surveys() == []
    df = _stars(np.random.default_rng(9), survey=GAIA, n_background=100, n_cluster=60)
    Table.from_pandas(df).write(tmp_path / "g.vot", format="votable")
    load_extracts("GAIA", [tmp_path / "g.vot"], data, **SMALL)
    assert store.surveys() == ["GAIA"]
    _check_cone(store, df, GAIA, *CENTRE, 1.0)
    reply = store.cone(*CENTRE, 1.0, None)
    assert reply.covered == ["GAIA"]
    assert set(reply.stars["GAIA"].mags) == {"G", "BP", "RP"}


def test_missing_band_column_is_nan(tmp_path):
    df = _stars(np.random.default_rng(2), n_background=100, n_cluster=50)
    df.drop(columns=["i'mag", "e_i'mag"]).to_csv(tmp_path / "x.csv", index=False, na_rep="")
    load_extracts("APASS", [tmp_path / "x.csv"], tmp_path / "data", **SMALL)
    reply = CatalogStore(tmp_path / "data").cone(*CENTRE, 1.0, ["APASS"])
    stars = reply.stars["APASS"]
    assert len(stars) > 0
    assert np.all(np.isnan(stars.mags["i'"])) and np.all(np.isnan(stars.errs["i'"]))
    assert np.isfinite(stars.mags["V"]).any()


def test_missing_position_columns_is_a_clear_error(tmp_path):
    pd.DataFrame({"ra": [1.0], "Vmag": [12.0]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(BadInput) as err:
        load_extracts("APASS", [tmp_path / "x.csv"], tmp_path / "data")
    assert "RAJ2000" in err.value.message and "DEJ2000" in err.value.message
    assert not (tmp_path / "data" / "catalogs" / "APASS" / "current").exists()
    with pytest.raises(BadInput):
        load_extracts("NOPE", [tmp_path / "x.csv"], tmp_path / "data")


def test_vizier_tsv_with_units_and_sexagesimal(tmp_path):
    text = (
        "#RESOURCE=yCat_2336\n#Name: II/336/apass9\n\n"
        "RAJ2000\tDEJ2000\tVmag\te_Vmag\tBmag\n"
        '"h:m:s"\t"d:m:s"\tmag\tmag\tmag\n'
        "-----------\t-----------\t------\t------\t------\n"
        "10 00 00.000\t+20 00 00.00\t12.345\t0.020\t13.1\n"
        "10 00 01.000\t+20 00 10.00\t\t\t13.2\n"
        "\t+20 00 10.00\t11.0\t0.1\t\n"
        "10:00:02.000\t-00 30 00.00\t14.0\t0.05\t14.5\n"
    )
    (tmp_path / "apass.tsv").write_text(text)
    report = load_extracts("APASS", [tmp_path / "apass.tsv"], tmp_path / "data")
    assert report.rows_read == 4 and report.rows_without_position == 1 and report.rows_new == 3
    store = CatalogStore(tmp_path / "data")
    stars = store.cone(150.0, 20.0, 0.01, ["APASS"]).stars["APASS"]
    order = np.argsort(stars.ra)
    np.testing.assert_allclose(stars.ra[order], [150.0, 150.0 + 15 / 3600], atol=1e-9)
    np.testing.assert_allclose(stars.mags["V"][order], [12.345, np.nan], atol=1e-5)
    np.testing.assert_allclose(stars.mags["B"][order], [13.1, 13.2], atol=1e-5)
    south = store.cone(150.0 + 30 / 3600, -0.5, 0.01, ["APASS"]).stars["APASS"]
    np.testing.assert_allclose(south.dec, [-0.5], atol=1e-9)


def test_attach_an_existing_hats_catalogue(tmp_path):
    lsdb = pytest.importorskip("lsdb")
    from shared.errors import Conflict

    df = _stars(np.random.default_rng(4), n_background=300, n_cluster=100)
    theirs = pd.DataFrame(
        {"ra": df["RAJ2000"], "dec": df["DEJ2000"], "v_mag": df["Vmag"], "v_err": df["e_Vmag"], "Bmag": df["Bmag"]}
    )
    lsdb.from_dataframe(
        theirs, ra_column="ra", dec_column="dec", partition_rows=200, margin_threshold=None, should_generate_moc=False
    ).to_hats(tmp_path / "ext", progress_bar=False, should_write_skymap=False)
    data = tmp_path / "data"
    store = CatalogStore(data, refresh_seconds=0.0)
    info = store.attach("APASS", tmp_path / "ext", {"Vmag": "v_mag", "e_Vmag": "v_err"})
    assert info["attached"] and info["source"].startswith(str((tmp_path / "ext").resolve()))
    assert info["rows"] == len(df)
    reply = store.cone(*CENTRE, 1.0, ["APASS"])
    got = reply.stars["APASS"]
    expected = _brute(df, APASS, *CENTRE, 1.0)
    assert set(layout.star_keys(got.ra, got.dec).tolist()) == set(
        layout.star_keys(expected["RAJ2000"].to_numpy(), expected["DEJ2000"].to_numpy()).tolist()
    )
    assert len(got) == len(expected) > 0
    order = np.argsort(layout.star_keys(got.ra, got.dec))
    exp_order = np.argsort(layout.star_keys(expected["RAJ2000"].to_numpy(), expected["DEJ2000"].to_numpy()))
    np.testing.assert_allclose(got.mags["V"][order], expected["Vmag"].to_numpy()[exp_order], atol=1e-6)
    np.testing.assert_allclose(got.mags["B"][order], expected["Bmag"].to_numpy()[exp_order], atol=1e-6)
    assert np.all(np.isnan(got.mags["g'"]))
    df.to_csv(tmp_path / "x.csv", index=False, na_rep="")
    with pytest.raises(Conflict):
        load_extracts("APASS", [tmp_path / "x.csv"], data)
    with pytest.raises(BadInput):
        store.attach("APASS", tmp_path / "ext", {"Vmag": "nope"})
