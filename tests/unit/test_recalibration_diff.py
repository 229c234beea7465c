"""A recalibration's judgement of each point (compare) and of the job (summarize), and what a refit takes
of the stored upload and the job's change (stored_upload)."""

from __future__ import annotations

import numpy as np
import pytest

from services.calibrate.recalibrate import stored_upload
from shared.arrays import SourceTable
from shared.contracts.messages import PointCalibration, RecalibrationChange
from shared.db.datapoints import Datapoint
from shared.db.recalibrations import ItemState, RecalibrationItem
from shared.errors import BadInput
from shared.usecases.recalibrations import compare, summarize

APASS_V = PointCalibration(survey="APASS", filter="V", mag=15.0, mag_err=0.02, zeropoint=25.0, version=1)


def test_the_same_calibration_within_the_answers_rounding_is_unchanged():
    same = APASS_V.model_copy(update={"mag": 15.0004, "version": None})
    assert compare(APASS_V, same) == (False, 0.0004)


def test_a_magnitude_an_error_or_a_band_that_moves_is_a_change():
    assert compare(APASS_V, APASS_V.model_copy(update={"mag": 15.031})) == (True, 0.031)
    assert compare(APASS_V, APASS_V.model_copy(update={"mag_err": 0.05}))[0] is True
    gaia = APASS_V.model_copy(update={"survey": "GAIA", "filter": "G", "mag": 14.8})
    assert compare(APASS_V, gaia) == (True, -0.2)
    # the survey's case is not a change; the band's is (r and R are different bands)
    assert compare(APASS_V, APASS_V.model_copy(update={"survey": "apass"}))[0] is False
    assert compare(APASS_V, APASS_V.model_copy(update={"filter": "v"}))[0] is True


def test_a_detection_that_becomes_a_limit_has_no_dmag():
    limit = PointCalibration(survey="APASS", filter="V", limit_mag=19.5, detected=False)
    assert compare(APASS_V, limit) == (True, None)
    deeper = limit.model_copy(update={"limit_mag": 19.75})
    assert compare(limit, deeper) == (True, 0.25)


def _item(followup_id: int, state: ItemState, **fields) -> RecalibrationItem:
    return RecalibrationItem(
        job_id="j",
        followup_id=followup_id,
        upload_id=f"u{followup_id}",
        ivorn="ivo://x",
        old=APASS_V,
        state=state,
        **fields,
    )


def test_a_jobs_summary_counts_every_state_and_the_changes_sizes():
    gaia = APASS_V.model_copy(update={"survey": "GAIA", "filter": "G"})
    items = [
        _item(1, "computed", new=gaia, changed=True, dmag=-0.2),
        _item(2, "applied", new=APASS_V, changed=True, dmag=0.05),
        _item(3, "computed", new=APASS_V, changed=False, dmag=0.0),
        _item(4, "failed", reason="unknown_catalogue_version"),
        _item(5, "skipped", reason="datapoint_deleted"),
        _item(6, "skipped", reason="datapoint_deleted"),
        _item(7, "pending"),
    ]
    summary = summarize(items)
    assert (summary.computed, summary.changed, summary.unchanged, summary.applied) == (3, 2, 1, 1)
    assert (summary.failed, summary.skipped, summary.band_changed) == (1, 2, 1)
    assert summary.median_abs_dmag == pytest.approx(0.125)
    assert summary.max_abs_dmag == pytest.approx(0.2)
    assert summary.reasons == {"unknown_catalogue_version": 1, "datapoint_deleted": 2}
    assert summarize([]).computed == 0 and summarize([]).median_abs_dmag is None


RECORD = {
    "upload_id": "u1",
    "alert_ra": 150.0,
    "alert_dec": 30.0,
    "match_dist_arcsec": 3.0,
    "force_filter": "APASS/V",
    "sources": SourceTable(
        ra=np.array([150.0]), dec=np.array([30.0]), mag=np.array([12.0]), mag_err=np.array([0.01]), flags=np.array([0])
    ).model_dump(mode="json"),
}
POINT = Datapoint(
    followup_id=1, upload_id="u1", ivorn="ivo://x", observatory_id="o1", observatory="Obs", mjd=60000.5, exptime=30.0
)


def test_a_refit_takes_the_uploads_own_settings_unless_the_job_changes_them():
    own = stored_upload(RECORD, POINT, RecalibrationChange())
    assert (own.force_filter, own.match_dist_arcsec, own.dry_run, own.no_plot) == ("APASS/V", 3.0, True, True)
    assert own.observatory_filters == [] and own.forced_target is None  # a record from before they were kept
    assert len(own.sources or []) == 1 and own.mjd == 60000.5
    automatic = stored_upload(RECORD, POINT, RecalibrationChange(force_filter="", match_dist_arcsec=1.5))
    assert (automatic.force_filter, automatic.forced_band, automatic.match_dist_arcsec) == (None, None, 1.5)
    gaia = stored_upload(RECORD | {"observatory_filters": ["V"]}, POINT, RecalibrationChange(force_filter="gaia/g"))
    assert gaia.force_filter == "GAIA/G" and gaia.observatory_filters == ["V"]
    with pytest.raises(BadInput):
        stored_upload(RECORD, POINT, RecalibrationChange(force_filter="GAIA/V"))
