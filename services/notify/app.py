"""The notify service (issue 22): results and recalibrations to callbacks and subscriptions, signed, at least once."""

from __future__ import annotations

from services.notify.consumer import DURABLES, EventConsumer, ensure_consumer
from services.notify.sender import Sender
from services.notify.settings import NotifySettings
from shared.runtime import Runtime, ServiceSpec


def spec(settings: NotifySettings) -> ServiceSpec:
    async def setup(rt: Runtime) -> None:
        js, db = rt.jetstream(), rt.database()
        await ensure_consumer(js, settings)
        sender = Sender(settings, db)
        rt.run_worker(sender.run, sender.stop)
        for subject in DURABLES:
            consumer = EventConsumer(settings, js, db, on_recorded=sender.poke, subject=subject)
            rt.run_worker(consumer.run, consumer.stop)

    return ServiceSpec("notify", settings, settings.port, setup)
