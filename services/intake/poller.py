"""The alerts list read on a schedule: every ``PHOTCAL_ALERTS_FEED_INTERVAL`` s, sooner again after a failure.

One process (a single replica: two would read the same list twice, harmlessly but for nothing). Each
reading is :func:`shared.usecases.alert_intake.poll_feed`; this adds the schedule, the logs and the
metrics an operator watches (``deploy/prometheus/rules.yml``: ``PhotcalAlertsFeedStale``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
from prometheus_client import Counter, Gauge

from services.intake.settings import IntakeSettings
from shared.db import Database
from shared.logging import get_logger
from shared.usecases.alert_intake import FeedError, IntakeCounts, poll_feed

log = get_logger(__name__)

FEED_LAST_SUCCESS = Gauge(
    "photcal_intake_feed_last_success_timestamp_seconds",
    "Unix time of the last complete reading of the alerts list (0: none since the start)",
)
FEED_INTERVAL = Gauge(
    "photcal_intake_feed_interval_seconds",
    "Seconds between two readings of the alerts list; 0: the list is not read (PHOTCAL_ALERTS_FEED_ENABLED off)",
)
FEED_POLLS = Counter("photcal_intake_feed_polls", "Readings of the alerts list, by outcome (ok, failed)", ["outcome"])
FEED_FAILURES = Counter(
    "photcal_intake_feed_failures",
    "Failed readings of the alerts list, by reason (unreachable, http_status, too_large, not_alerts_csv, database)",
    ["reason"],
)
ALERTS_TAKEN_IN = Counter(
    "photcal_intake_alerts",
    "Alerts of the list taken in, by outcome (added, updated, unchanged, skipped)",
    ["outcome"],
)
for _outcome in ("ok", "failed"):
    FEED_POLLS.labels(_outcome)
for _outcome in ("added", "updated", "unchanged", "skipped"):
    ALERTS_TAKEN_IN.labels(_outcome)


class FeedPoller:
    def __init__(self, settings: IntakeSettings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._stop = asyncio.Event()

    async def poll_once(self, session: aiohttp.ClientSession) -> IntakeCounts | None:
        """One reading, counted in the metrics; None if it failed (logged with its reason)."""
        started = time.monotonic()
        try:
            counts = await poll_feed(
                self.db,
                session,
                self.settings.alerts_feed_url,
                timeout_s=self.settings.alerts_feed_timeout,
                max_bytes=self.settings.alerts_feed_max_bytes,
            )
        except FeedError as exc:
            FEED_POLLS.labels("failed").inc()
            FEED_FAILURES.labels(exc.reason).inc()
            log.warning("alerts_feed_failed", url=self.settings.alerts_feed_url, reason=exc.reason, error=exc.message)
            return None
        FEED_POLLS.labels("ok").inc()
        FEED_LAST_SUCCESS.set(time.time())
        for outcome in ("added", "updated", "unchanged", "skipped"):
            ALERTS_TAKEN_IN.labels(outcome).inc(getattr(counts, outcome))
        log.info(
            "alerts_feed_read",
            url=self.settings.alerts_feed_url,
            added=counts.added,
            updated=counts.updated,
            unchanged=counts.unchanged,
            skipped=counts.skipped,
            refused=counts.refused[:10],
            seconds=round(time.monotonic() - started, 2),
        )
        return counts

    async def run(self) -> None:
        if not self.settings.alerts_feed_enabled:
            log.info("alerts_feed_disabled", hint="PHOTCAL_ALERTS_FEED_ENABLED=1 reads the list")
            return
        FEED_INTERVAL.set(self.settings.alerts_feed_interval)  # the alert rule's yardstick of "stale"
        async with aiohttp.ClientSession(headers={"User-Agent": "photcal-intake"}) as session:
            while not self._stop.is_set():
                counts = await self.poll_once(session)
                wait = self.settings.alerts_feed_interval
                if counts is None:
                    wait = min(self.settings.alerts_feed_retry, wait)
                with contextlib.suppress(TimeoutError):  # the time to read it again
                    await asyncio.wait_for(self._stop.wait(), wait)

    async def stop(self) -> None:
        """SIGTERM: no new reading; one under way is cancelled (the next start reads the list again)."""
        self._stop.set()
