"""The margin catalogue: a source near a partition edge finds its star on the other side (photcal recalibrate)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from photcal_cli.batch.recalibrate import StoredUpload, crossmatch
from services.catalog import layout
from services.catalog.loader import load_extracts
from shared.arrays import SourceTable
from shared.contracts.surveys import APASS

pytest.importorskip("lsdb")


def _partition_of(ra: np.ndarray, dec: np.ndarray, pixels: list) -> np.ndarray:
    """The (order, pixel) partition holding each position."""
    from hats.pixel_math.spatial_index import compute_spatial_index

    hp29 = compute_spatial_index(ra, dec).astype(np.int64)
    out = np.full(len(ra), -1, dtype=np.int64)
    for k, px in enumerate(pixels):
        shift = 2 * (layout.HEALPIX_ORDER - px.order)
        out[(hp29 >> shift) == px.pixel] = k
    return out


def test_sources_across_a_partition_edge_find_their_stars(tmp_path):
    import hats
    from hats.catalog import Catalog

    rng = np.random.default_rng(11)
    n = 6000  # dense enough to split a 2-degree field into many small partitions
    ra = 150.0 + rng.uniform(-1.0, 1.0, n)
    dec = 20.0 + rng.uniform(-1.0, 1.0, n)
    df = pd.DataFrame({APASS.ra_column: np.round(ra, 7), APASS.dec_column: np.round(dec, 7)})
    for band in APASS.bands:
        df[band.column] = np.round(rng.uniform(11, 16, n), 3)
        df[band.error_column] = 0.02
    df.to_csv(tmp_path / "apass.csv", index=False)
    data = tmp_path / "data"
    load_extracts("APASS", [tmp_path / "apass.csv"], data, partition_rows=400, row_group_rows=64)
    version = layout.read_pointer(layout.survey_dir(data, "APASS"))
    assert version is not None
    assert (version / layout.MARGIN_NAME / "hats.properties").is_file()
    catalog = hats.read_hats(version, read_moc=False)
    assert isinstance(catalog, Catalog)
    pixels = catalog.get_healpix_pixels()
    assert len(pixels) > 10

    # each star gets sources 1.5" away in 8 directions; keep those that land in another partition
    stars_ra = np.repeat(df[APASS.ra_column].to_numpy(), 8)
    stars_dec = np.repeat(df[APASS.dec_column].to_numpy(), 8)
    angle = np.tile(np.arange(8) * np.pi / 4, n) + rng.uniform(0, 0.3, 8 * n)
    src_ra = stars_ra + 1.5 / 3600 * np.cos(angle) / np.cos(np.radians(stars_dec))
    src_dec = stars_dec + 1.5 / 3600 * np.sin(angle)
    across = _partition_of(src_ra, src_dec, pixels) != _partition_of(stars_ra, stars_dec, pixels)
    assert across.sum() >= 10, "the field has too few sources across a partition edge to test"
    upload = StoredUpload(
        upload_id="u1",
        alert_ra=150.0,
        alert_dec=20.0,
        match_dist_arcsec=2.0,
        sources=SourceTable.from_columns(
            ra=src_ra[across],
            dec=src_dec[across],
            mag=np.full(across.sum(), -8.0),
            mag_err=np.full(across.sum(), 0.02),
            flags=np.zeros(across.sum(), dtype=np.int32),
        ),
    )
    matched = crossmatch([upload], str(version), layout.Columns.for_survey(APASS), 2.0)[0]
    found = set(layout.star_keys(matched[APASS.ra_column], matched[APASS.dec_column]).tolist())
    wanted = set(layout.star_keys(stars_ra[across], stars_dec[across]).tolist())
    assert wanted <= found, f"{len(wanted - found)} of {len(wanted)} stars across an edge were missed"
