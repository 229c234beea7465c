"""What the gateway's handlers share: settings, connections, the result waiter."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from nats.js import JetStreamContext

from services.ingest.frameslots import FrameSlots
from services.ingest.settings import IngestSettings
from services.ingest.waiter import ResultWaiter
from shared.db import Database


@dataclass
class Gateway:
    settings: IngestSettings
    js: JetStreamContext
    db: Database
    waiter: ResultWaiter
    http: aiohttp.ClientSession
    pepper: bytes
    frame_slots: FrameSlots | None = None
