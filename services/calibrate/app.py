"""The calibrate service: consumes uploads, calibrates, stores, publishes results."""

from __future__ import annotations

import asyncio

from services.calibrate.cone import ConeClient
from services.calibrate.pipeline import Pipeline
from services.calibrate.recalibrate import RecalibrationWorker
from services.calibrate.settings import CalibrateSettings
from services.calibrate.warmup import warm_up
from services.calibrate.worker import Worker
from shared.runtime import Runtime, ServiceSpec


def spec(settings: CalibrateSettings) -> ServiceSpec:
    async def setup(rt: Runtime) -> None:
        # compiled (or loaded from the cache) before the first upload, not during it
        await asyncio.to_thread(warm_up)
        cones = ConeClient(
            rt.nats(),
            settings.backend_timeout,
            settings.cone_cache_ttl,
            settings.cone_cache_size,
            settings.cone_cache_mb << 20,
            settings.cone_stars_per_source,
            settings.cone_min_stars,
        )
        js, db = rt.jetstream(), rt.database()
        pipeline = Pipeline(settings, js, db, cones)
        worker = Worker(settings, js, db, pipeline)
        recalibrations = RecalibrationWorker(settings, js, db, pipeline)

        rt.run_worker(worker.run, worker.stop)
        rt.run_worker(recalibrations.run, recalibrations.stop)

    return ServiceSpec("calibrate", settings, settings.port, setup)
