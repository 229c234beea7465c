"""Waiting for the result of our own upload on ``photcal.calibrated.v1``."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription

from shared.contracts.messages import CalibrationResult
from shared.contracts.subjects import SUBJECT_CALIBRATED
from shared.logging import get_logger

log = get_logger(__name__)


class ResultWaiter:
    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[CalibrationResult]] = {}
        self._sub: Subscription | None = None

    async def start(self, nc: NATS) -> None:
        self._sub = await nc.subscribe(SUBJECT_CALIBRATED, cb=self._on_result)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
        for fut in self._pending.values():
            fut.cancel()

    def expect(self, upload_id: str) -> asyncio.Future[CalibrationResult]:
        """Register before publishing, so a fast result is never missed."""
        fut = asyncio.get_running_loop().create_future()
        self._pending[upload_id] = fut
        return fut

    def forget(self, upload_id: str) -> None:
        self._pending.pop(upload_id, None)

    async def _on_result(self, msg) -> None:
        try:
            result = CalibrationResult.model_validate_json(msg.data)
        except Exception:
            log.warning("unreadable_result")
            return
        fut = self._pending.pop(result.upload_id, None)
        if fut is not None and not fut.done():
            fut.set_result(result)
