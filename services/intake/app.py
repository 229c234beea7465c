"""The intake service: events that come in by themselves (the Gaia Science Alerts list, polled).

Its own process, one replica, started by ``photcal run`` only when ``PHOTCAL_ALERTS_FEED_ENABLED``
is set; serves ``/healthz``, ``/readyz`` (the database) and ``/metrics`` like every service.
"""

from __future__ import annotations

from services.intake.poller import FeedPoller
from services.intake.settings import IntakeSettings
from shared.runtime import Runtime, ServiceSpec


def spec(settings: IntakeSettings) -> ServiceSpec:
    async def setup(rt: Runtime) -> None:
        poller = FeedPoller(settings, rt.database())
        rt.run_worker(poller.run, poller.stop)

    return ServiceSpec("intake", settings, settings.port, setup, uses_nats=False)
