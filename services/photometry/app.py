"""The photometry service: consumes FITS frames, measures them, hands the sources to calibrate."""

from __future__ import annotations

import asyncio

from services.photometry.measure import FrameMeasurer
from services.photometry.settings import PhotometrySettings
from services.photometry.worker import Worker
from shared.runtime import Runtime, ServiceSpec


def spec(settings: PhotometrySettings) -> ServiceSpec:
    async def setup(rt: Runtime) -> None:
        js, db = rt.jetstream(), rt.database()
        worker = Worker(settings, js, db, FrameMeasurer(settings, js))

        async def run_when_indexed() -> None:
            await rt.indexed.wait()  # a failure is recorded in the uploads collection: its index first
            await worker.run()

        task = asyncio.create_task(run_when_indexed())

        async def stop_worker() -> None:
            await worker.stop()
            task.cancel()

        rt.on_cleanup(stop_worker)

    return ServiceSpec("photometry", settings, settings.port, setup)
