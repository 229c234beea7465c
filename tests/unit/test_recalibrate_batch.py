"""The lsdb/Dask refit gives a stored upload the calibration its live upload got from the same catalogue."""

from __future__ import annotations

import numpy as np

from bench.bench_recalibrate import live_calibration, make_sky, make_upload, write_extract
from photcal_cli.batch.recalibrate import StoredUpload, recalibrate
from photcal_cli.recalibrate import new_calibration
from services.catalog.loader import load_extracts
from services.catalog.store import CatalogStore
from shared.usecases.recalibrations import compare, point_calibration


def test_the_batch_refit_equals_the_live_calibration(tmp_path):
    rng = np.random.default_rng(11)
    sky = make_sky(rng, 4, stars_per_field=300)
    write_extract(tmp_path / "apass.csv", sky)
    load_extracts("APASS", [tmp_path / "apass.csv"], tmp_path / "data")
    live = CatalogStore(tmp_path / "data").live("APASS")
    assert live is not None
    source, columns, version = live
    uploads, answers = [], []
    for i in range(12):
        sky_field = sky[i % len(sky)]
        sources, _ = make_upload(rng, sky_field, int(rng.integers(50, 301)))
        answers.append(live_calibration(sources, sky_field))
        uploads.append(
            StoredUpload(f"u{i}", sky_field.ra, sky_field.dec, 2.0, sources, followup_id=i, observatory_filters=["V"])
        )
    refits = recalibrate(uploads, "APASS", source, columns, catalogue_version=version)
    assert all(r.ok for r in refits), [r.message for r in refits if not r.ok]
    for refit, answer in zip(refits, answers):
        assert answer is not None
        # the same stars reach the core (a calibrator's neighbours too, not only its match): no change at all
        changed, dmag = compare(point_calibration(answer), new_calibration(refit.result))
        assert not changed and dmag == 0.0, (refit.upload_id, answer["mag"], refit.result["mag"])
        assert refit.result["zeropoint"] == answer["zeropoint"]
