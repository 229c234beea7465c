"""The photometry service: consumes FITS frames, measures them, hands the sources to calibrate."""

from __future__ import annotations

from services.photometry.measure import FrameMeasurer
from services.photometry.settings import PhotometrySettings
from services.photometry.worker import Worker
from shared.runtime import Runtime, ServiceSpec


def spec(settings: PhotometrySettings) -> ServiceSpec:
    async def setup(rt: Runtime) -> None:
        js, db = rt.jetstream(), rt.database()
        worker = Worker(settings, js, db, FrameMeasurer(settings, js))
        rt.run_worker(worker.run, worker.stop)

    return ServiceSpec("photometry", settings, settings.port, setup)
