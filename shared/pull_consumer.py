"""The fetch loop of a JetStream work-queue consumer, shared by the calibrate and photometry workers.

One message is fetched at a time, and at most ``concurrency`` are handled at
once (a slot is taken before each fetch and freed when its handler ends), so
a worker never holds more messages than it works on: the rest stay in the
stream for its peers. ``stop`` stops fetching and lets the messages in hand
finish, their acks included, within ``shutdown_grace`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from prometheus_client import Gauge

from shared.logging import get_logger

log = get_logger(__name__)


class PullConsumerLoop:
    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        config: ConsumerConfig,
        concurrency: int,
        shutdown_grace: float,
        pending: Gauge,
        handle: Callable[[Any], Coroutine[Any, Any, None]],
    ) -> None:
        assert config.filter_subject and config.durable_name, "a durable consumer of one subject"
        self.js, self.stream, self.config = js, stream, config
        self.concurrency, self.shutdown_grace = concurrency, shutdown_grace
        self.pending, self.handle = pending, handle
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._sub: JetStreamContext.PullSubscription | None = None

    async def run(self) -> None:
        assert self.config.filter_subject is not None
        self._sub = sub = await self.js.pull_subscribe(
            self.config.filter_subject, durable=self.config.durable_name, stream=self.stream, config=self.config
        )
        slots = asyncio.Semaphore(self.concurrency)
        while not self._stopping.is_set():
            await slots.acquire()
            if self._stopping.is_set():
                slots.release()
                break
            try:
                msgs = await sub.fetch(1, timeout=1.0)
            except NatsTimeout:
                slots.release()
                await self._update_pending(sub)
                continue
            except Exception as exc:  # NATS reconnecting: wait and fetch again
                slots.release()
                log.warning("fetch_failed", consumer=self.config.durable_name, error=repr(exc))
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                task = asyncio.create_task(self.handle(msg))
                self._tasks.add(task)
                task.add_done_callback(self._task_done(slots))

    def _task_done(self, slots: asyncio.Semaphore) -> Callable[[asyncio.Task], None]:
        """The callback that forgets a finished task and frees its slot."""

        def done(task: asyncio.Task) -> None:
            self._tasks.discard(task)
            slots.release()

        return done

    async def stop(self) -> None:
        """Stop fetching and let the messages in hand finish (their acks included)."""
        self._stopping.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.shutdown_grace)
        if self._sub is not None:
            # unfetched messages stay in the stream for the next worker; a drain would wait on them
            await self._sub.unsubscribe()

    async def _update_pending(self, sub) -> None:
        with contextlib.suppress(Exception):
            self.pending.set((await sub.consumer_info()).num_pending)
