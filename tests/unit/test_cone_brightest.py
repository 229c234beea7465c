"""The cone's brightness cut (ConeRequestV2.brightest) and the v2 binary path change no answer.

On every committed field the cut does not bind (its floor is above their
densities) and the v2 reply (float32 magnitudes, binary columns) calibrates
bit for bit as v1 did; on a dense field where it binds, the answer moves by
less than a hundredth of a magnitude.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.densefield import dense_references, frame_catalogue, write_extracts
from services.calibrate.cone import brightest_for, field_of
from services.calibrate.core.api import calibrate_frame
from services.catalog.loader import load_extracts
from services.catalog.store import CatalogStore, brightest_mask
from services.ingest.parsing import parse_catalogue
from shared.conewire import decode_reply, encode_reply
from shared.contracts.surveys import SURVEYS

FIELDS = Path(__file__).resolve().parents[1] / "data" / "fields"
COMMITTED = sorted(p.name for p in FIELDS.iterdir() if (p / "truth.json").exists())


def test_brightest_mask_keeps_the_brightest_in_any_band_and_the_starless():
    nan = np.nan
    g = np.array([15.0, nan, 18.0, 20.0, nan, 12.0], dtype=np.float32)
    r = np.array([16.0, 14.0, nan, 19.0, nan, 13.0], dtype=np.float32)
    # brightest band per star: 15, 14, 18, 19, none, 12
    assert brightest_mask([g, r], 3).tolist() == [True, True, False, False, True, True]
    assert brightest_mask([g, r], 5).all()
    assert brightest_mask([g], 1).tolist() == [False, True, False, False, True, True]  # no g: kept


def test_brightest_for():
    assert brightest_for(None, 10, 20_000) is None
    assert brightest_for(500, 0, 20_000) is None
    assert brightest_for(500, 10, 20_000) == 20_000
    assert brightest_for(2_841, 10, 20_000) == 30_000
    assert brightest_for(12_000, 10, 20_000) == 120_000


def results(cal) -> tuple:
    t = cal.target
    return (
        cal.survey,
        cal.band,
        cal.zeropoint,
        cal.colour_term,
        cal.npoints,
        cal.nmatched,
        cal.scatter,
        t.detected,
        t.mag,
        t.mag_err,
        t.limit_mag,
        [(c.survey, c.filter, c.score, c.zeropoint) for c in cal.candidates],
    )


def store_of(folder: Path, data_dir: Path) -> CatalogStore:
    for survey in SURVEYS:
        extract = folder / f"ref_{survey}.csv"
        if extract.exists():
            load_extracts(survey, [extract], data_dir)
    return CatalogStore(data_dir)


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_fields_calibrate_the_same_through_v2_and_the_cut(name, tmp_path):
    folder = FIELDS / name
    truth = json.loads((folder / "truth.json").read_text())
    store = store_of(folder, tmp_path / "data")
    sources = parse_catalogue((folder / "sex_ascii_head.cat").read_bytes()).table
    ra, dec, radius = field_of(sources, 1.0)
    v1 = store.cone(ra, dec, radius)  # what the v1 JSON reply carried (float64)
    brightest = brightest_for(len(sources), 10.0, 20_000)
    v2 = decode_reply(encode_reply(store.cone(ra, dec, radius, brightest=brightest, float32=True)))
    assert list(v1.stars) == list(v2.stars)
    for survey in v1.stars:
        a, b = v1.stars[survey], v2.stars[survey]
        np.testing.assert_array_equal(a.ra, b.ra)
        for band in a.mags:
            np.testing.assert_array_equal(a.mags[band], b.mags[band])
            np.testing.assert_array_equal(a.errs[band], b.errs[band])
    args = (truth["alert"]["ra"], truth["alert"]["dec"], 2.0)
    assert results(calibrate_frame(sources, v1.stars, *args)) == results(calibrate_frame(sources, v2.stars, *args))


def test_on_a_dense_field_the_cut_moves_the_answer_by_less_than_a_hundredth(tmp_path):
    ra0, dec0 = 106.0, 0.0
    extracts, stars = dense_references(ra0, dec0, 0.26, 60_000, seed=7)
    files = write_extracts(extracts, tmp_path / "x")
    for survey, path in files.items():
        load_extracts(survey, [path], tmp_path / "data")
    store = CatalogStore(tmp_path / "data")
    transient = (ra0 + 0.011, dec0 + 0.013, 16.5)
    sources = parse_catalogue(frame_catalogue(stars, ra0, dec0, 0.17, 18.0, transient=transient, seed=7)).table
    ra, dec, radius = field_of(sources, 1.0)
    brightest = brightest_for(len(sources), 10.0, 1_000)  # a low floor, so that the cut binds
    every = store.cone(ra, dec, radius)
    cut = store.cone(ra, dec, radius, brightest=brightest)
    assert sum(map(len, cut.stars.values())) < 0.6 * sum(map(len, every.stars.values()))
    a = calibrate_frame(sources, every.stars, transient[0], transient[1], 2.0)
    b = calibrate_frame(sources, cut.stars, transient[0], transient[1], 2.0)
    assert (a.survey, a.band, a.npoints) == (b.survey, b.band, b.npoints)
    assert a.target.mag is not None and b.target.mag is not None
    assert abs(a.target.mag - b.target.mag) < 0.01
    assert a.target.limit_mag is not None and b.target.limit_mag is not None
    assert abs(a.target.limit_mag - b.target.limit_mag) < 0.01
    assert math.isclose(a.zeropoint, b.zeropoint, abs_tol=0.01)
