"""The database a `photcal` command works on: connected, answering and indexed, or a one-line error."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shared.db import Database, connect_database
from shared.settings import CommonSettings


class NoDatabase(SystemExit):
    """The database did not answer: the command stops with exit code 2 and one line saying where it looked."""

    def __init__(self, url: str) -> None:
        print(f"error: no database at {url}: start it with `make run` or set PHOTCAL_MONGO_URL", file=sys.stderr)
        super().__init__(2)


@asynccontextmanager
async def command_database(settings: CommonSettings) -> AsyncIterator[Database]:
    """The settings' database, pinged and with its indexes; closed when the command is done."""
    db = connect_database(settings.mongo_url, settings.mongo_db, timeout_s=settings.backend_timeout)
    try:
        if not await db.ping():
            raise NoDatabase(settings.mongo_url)
        await db.ensure_indexes()
        yield db
    finally:
        await db.close()
