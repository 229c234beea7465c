"""`photcal recalibrate --survey S`: every stored upload against S's current catalogue.

The cross-match runs through lsdb on Dask (photcal_cli/batch/recalibrate.py):
locally by default, on the Dask cluster at ``PHOTCAL_DASK_SCHEDULER`` (or
``--scheduler``) when set. Each upload gets one ``recalibrations`` record per
survey catalogue version (``_id`` ``<upload_id>|<SURVEY>|<version>``; running
again replaces it); the original calibration and datapoint stay untouched.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from shared.contracts.errors import ErrorCode
from shared.contracts.messages import utcnow
from shared.contracts.surveys import get_survey
from shared.db import connect_database
from shared.db.calibrations import calibration_summary
from shared.db.datapoints import has_live_datapoint
from shared.db.recalibrations import store_recalibration
from shared.db.upload_sources import all_sources
from shared.errors import BadInput
from shared.settings import CommonSettings

BATCH = 500


async def run(args, settings: CommonSettings) -> int:
    from photcal_cli.batch.recalibrate import RESULT_KEYS, StoredUpload, recalibrate
    from services.catalog.store import CatalogStore

    survey = get_survey(args.survey).name
    live = CatalogStore(settings.data_dir).live(survey)
    if live is None:
        raise BadInput(
            f"no {survey} catalogue under {settings.data_dir}: load one (`photcal catalog load`) or attach one "
            "(`photcal catalog attach`)",
            code=ErrorCode.NO_CATALOGUE,
        )
    source, columns, version = live
    scheduler = args.scheduler or os.environ.get("PHOTCAL_DASK_SCHEDULER") or None

    db = connect_database(settings.mongo_url, settings.mongo_db, timeout_s=settings.backend_timeout)
    try:
        if not await db.ping():
            print(f"error: no database at {settings.mongo_url}", file=sys.stderr)
            return 2
        started = time.perf_counter()
        old = {}
        uploads: list[StoredUpload] = []
        skipped = 0
        async for doc in all_sources(db):
            up = StoredUpload.from_doc(doc)
            if not await has_live_datapoint(db, up.upload_id):
                skipped += 1  # its datapoint was deleted by the observatory: nothing to recalibrate
                continue
            cal = await calibration_summary(db, up.upload_id)
            old[up.upload_id] = cal or {}
            uploads.append(up)
            if args.limit and len(uploads) >= args.limit:
                break
        if skipped:
            print(f"{skipped} upload(s) skipped: their datapoints were deleted")
        if not uploads:
            print("no stored uploads to recalibrate (sources are kept for uploads stored from now on)")
            return 0
        where = scheduler or "local Dask (threads)"
        print(f"recalibrating {len(uploads)} upload(s) against {survey} {version} ({source}) on {where}", flush=True)
        done = 0
        ok = failed = 0
        for start in range(0, len(uploads), BATCH):
            batch = uploads[start : start + BATCH]
            refits = await asyncio.to_thread(recalibrate, batch, survey, source, columns, scheduler)
            for up, r in zip(batch, refits):
                record = {
                    "upload_id": up.upload_id,
                    "ivorn": up.ivorn,
                    "mjd": up.mjd,
                    "survey": survey,
                    "catalogue": source,
                    "catalogue_version": version,
                    "ok": r.ok,
                    "nref": r.nref,
                    "error": r.error,
                    "message": r.message,
                    "previous": old.get(up.upload_id) or None,
                    "recalibrated_at": utcnow(),
                    **dict.fromkeys(RESULT_KEYS),
                    **r.result,
                }
                record["survey"] = survey
                await store_recalibration(db, up.upload_id, survey, version, record)
                ok += r.ok
                failed += not r.ok
                prev = old.get(up.upload_id) or {}
                if r.ok:
                    mag = r.result.get("mag")
                    shown = f"{mag:.3f}" if mag is not None else f">{r.result.get('limit_mag')}"
                    print(
                        f"  {up.upload_id}: {survey}/{r.result['filter']} zp={r.result['zeropoint']} "
                        f"mag={shown} (npoints {r.result['npoints']}; was {prev.get('survey')}/{prev.get('filter')} "
                        f"{prev.get('mag')})"
                    )
                else:
                    print(f"  {up.upload_id}: not recalibrated: {r.error}: {r.message}")
            done += len(batch)
        print(
            f"{ok} recalibrated, {failed} could not be, {done} uploads in {time.perf_counter() - started:.1f} s "
            f"(collection recalibrations)"
        )
        return 0
    finally:
        await db.close()
