"""The gateway keeps accepting uploads while the database is down.

Before it accepts an upload the gateway asks the database two things: whose
hashtag this is, and which alert the ivorn names. Both change rarely, so the
gateway remembers the database's last answers (:class:`LastKnown`) and uses
them **only when the database cannot be asked**; while the database answers,
every request is decided by the database alone.

Security bound: a hashtag revoked just before the database went down is
still accepted from memory for at most ``PHOTCAL_AUTH_CACHE_TTL`` seconds
(default 300) after the database last confirmed it. An unknown hashtag is
never accepted from memory (only positive answers are kept); it gets 503.

:class:`DbGuard` keeps a dead database from costing every request the
driver's full server-selection timeout: a lookup gets ``PHOTCAL_DB_LOOKUP_TIMEOUT``
seconds, and after a failure the database is not asked again for
``PHOTCAL_DB_RETRY_AFTER`` seconds (answers come from memory meanwhile).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pymongo
from prometheus_client import Counter
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo.errors import PyMongoError

from shared.db.client import unavailable
from shared.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")

FALLBACKS = Counter(
    "photcal_gateway_db_fallbacks_total",
    "Gateway lookups answered without the database (it was down), by kind and outcome",
    ["kind", "outcome"],
)


class CacheSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTCAL_", extra="ignore")

    #: seconds an answer of the database may be used while the database is down
    auth_cache_ttl: float = 300.0
    auth_cache_entries: int = 10_000
    #: seconds one gateway lookup may take before the database is called down
    db_lookup_timeout: float = 1.5
    #: seconds the database is not asked again after it failed
    db_retry_after: float = 2.0


class LastKnown:
    """A bounded map of the database's last positive answers, each valid ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._items: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()

    def remember(self, kind: str, key: str, value: Any) -> None:
        """What the database just said; ``None`` (unknown, revoked) forgets."""
        k = (kind, key)
        if value is None:
            self._items.pop(k, None)
            return
        self._items[k] = (self.clock(), value)
        self._items.move_to_end(k)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def recall(self, kind: str, key: str) -> Any | None:
        hit = self._items.get((kind, key))
        if hit is None:
            return None
        confirmed, value = hit
        if self.clock() - confirmed > self.ttl:
            self._items.pop((kind, key), None)
            return None
        return value

    def __len__(self) -> int:
        return len(self._items)


class DbGuard:
    """Short timeouts and a short cool-down for the gateway's database calls."""

    def __init__(self, timeout: float, retry_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout, self.retry_after, self.clock = timeout, retry_after, clock
        self.down_until = 0.0

    @property
    def up(self) -> bool:
        return self.clock() >= self.down_until

    async def call(self, fetch: Callable[[], Awaitable[T]]) -> T:
        """``fetch()`` within the timeout; raises PyMongoError (at once while the database is down)."""
        if not self.up:
            raise pymongo.errors.ServerSelectionTimeoutError("the database failed moments ago")
        try:
            with pymongo.timeout(self.timeout):
                return await fetch()
        except PyMongoError as exc:
            if self.up:
                log.warning("database_unreachable", error=type(exc).__name__, retry_in_s=self.retry_after)
            self.down_until = self.clock() + self.retry_after
            raise


_settings: CacheSettings | None = None
_known: LastKnown | None = None
_guard: DbGuard | None = None


def _init() -> None:
    global _settings, _known, _guard
    if _settings is None:
        _settings = CacheSettings()
        _known = LastKnown(_settings.auth_cache_ttl, _settings.auth_cache_entries)
        _guard = DbGuard(_settings.db_lookup_timeout, _settings.db_retry_after)


def guard() -> DbGuard:
    _init()
    return _guard  # type: ignore[return-value]


def known() -> LastKnown:
    _init()
    return _known  # type: ignore[return-value]


async def lookup(kind: str, key: str, fetch: Callable[[], Awaitable[T | None]]) -> T | None:
    """The database's answer, refreshing the memory; the remembered one if the database is down.

    Raises :class:`BackendUnavailable` (503) when the database is down and
    nothing (recent enough) is remembered.
    """
    try:
        value = await guard().call(fetch)
    except PyMongoError as exc:
        remembered = known().recall(kind, key)
        if remembered is None:
            FALLBACKS.labels(kind, "miss").inc()
            raise unavailable(exc) from exc
        FALLBACKS.labels(kind, "hit").inc()
        return remembered
    known().remember(kind, key, value)
    return value


async def optional(fetch: Callable[[], Awaitable[T]], default: T) -> T:
    """A lookup the gateway can do without (the worker checks it again): ``default`` if the database is down."""
    try:
        return await guard().call(fetch)
    except PyMongoError:
        return default


async def required(fetch: Callable[[], Awaitable[T]]) -> T:
    """A lookup with no stand-in: 503 at once while the database is down."""
    try:
        return await guard().call(fetch)
    except PyMongoError as exc:
        raise unavailable(exc) from exc


async def find_observatory(db, pepper: bytes, hashtag: str):
    """``shared.auth.authenticate``'s lookup in the gateway: keyed by the hashtag's hash, never the hashtag."""
    from shared.db.observatories import find_by_hashtag
    from shared.hashtags import hash_hashtag

    return await lookup("observatory", hash_hashtag(hashtag, pepper), lambda: find_by_hashtag(db, pepper, hashtag))


async def find_alert(db, key: str):
    """The upload's event by ivorn, or by its bare name (``Gaia23sim``: shared.db.alerts.find_alert)."""
    from shared.db.alerts import find_alert as find

    return await lookup("alert", key, lambda: find(db, key))
