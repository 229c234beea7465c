"""What the calibrate worker stores: the same numbers in cheaper form, written once per upload.

The plot's star arrays are binary columns now (shared/db/calibrations.py) holding exactly the
numbers the JSON lists held; the writes are plain inserts (shared/db/client.py ``insert_once``)
with the upsert's outcome: a redelivery stores nothing twice and rewrites nothing.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import numpy as np
import pytest
from bson import BSON

from services.calibrate.cone import field_of
from services.calibrate.core.api import calibrate_frame
from services.catalog.loader import load_extracts
from services.catalog.store import CatalogStore
from services.ingest.parsing import parse_catalogue
from shared.contracts.surveys import SURVEYS
from shared.db.calibrations import plot_columns, read_plot_columns
from shared.db.client import connect_database, insert_once

FIELDS = Path(__file__).resolve().parents[1] / "data" / "fields"
COMMITTED = sorted(p.name for p in FIELDS.iterdir() if (p / "truth.json").exists())


@pytest.mark.parametrize("name", COMMITTED)
def test_the_stored_plot_columns_hold_the_numbers_the_lists_held(name, tmp_path):
    folder = FIELDS / name
    truth = json.loads((folder / "truth.json").read_text())
    for survey in SURVEYS:
        extract = folder / f"ref_{survey}.csv"
        if extract.exists():
            load_extracts(survey, [extract], tmp_path / "data")
    sources = parse_catalogue((folder / "sex_ascii_head.cat").read_bytes()).table
    ra, dec, radius = field_of(sources, 1.0)
    stars = CatalogStore(tmp_path / "data").cone(ra, dec, radius).stars
    cal = calibrate_frame(sources, stars, truth["alert"]["ra"], truth["alert"]["dec"], 2.0)
    lists = cal.plot_data_as_dict()
    # through BSON, as the database hands the record back
    stored = BSON.encode({"stars": plot_columns(cal.plot)}).decode()["stars"]
    columns = read_plot_columns(stored)
    assert set(columns) == set(lists)
    for key, values in lists.items():
        expected = [math.nan if v is None else v for v in values]
        np.testing.assert_array_equal(columns[key], np.array(expected, dtype=columns[key].dtype), err_msg=key)
    # records written before the binary columns read the same
    old = read_plot_columns(lists)
    for key in lists:
        np.testing.assert_array_equal(old[key], columns[key])


def test_insert_once_stores_one_document_and_never_rewrites_it(mongo_proc):
    async def run():
        db = connect_database(mongo_proc.url, "insertonce")
        try:
            await db.ensure_indexes()
            first = {"upload_id": "u1", "mag": 15.25}
            assert await insert_once(db.calibrations, first) is True
            # a redelivery with other numbers: refused quietly, the first record stays
            assert await insert_once(db.calibrations, {"upload_id": "u1", "mag": 99.0}) is False
            docs = [d async for d in db.calibrations.find({"upload_id": "u1"}, {"_id": 0})]
            assert docs == [{"upload_id": "u1", "mag": 15.25}]
            # keyed by _id (upload_sources)
            assert await insert_once(db.upload_sources, {"_id": "u1", "n": 1}) is True
            assert await insert_once(db.upload_sources, {"_id": "u1", "n": 2}) is False
            assert [d async for d in db.upload_sources.find({})] == [{"_id": "u1", "n": 1}]
        finally:
            await db.close()

    asyncio.run(run())
