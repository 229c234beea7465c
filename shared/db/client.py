"""The database handle: its collections by name, their indexes made at start-up."""

from __future__ import annotations

from pymongo import ASCENDING, AsyncMongoClient, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.contracts.collections import (
    ALERTS,
    BY_NAME,
    CALIBRATIONS,
    COLLECTIONS,
    COUNTERS,
    DATAPOINTS,
    DELIVERIES,
    OBSERVATORIES,
    RECALIBRATION_JOBS,
    RECALIBRATIONS,
    REVOKED_SESSIONS,
    SUBSCRIPTIONS,
    UPLOAD_SOURCES,
    UPLOADS,
    WEBHOOK_SECRETS,
    Collection,
)
from shared.errors import BackendUnavailable
from shared.metrics import DB_LATENCY


class Database:
    """A connected database; its collections are the ones ``shared.contracts.collections`` names, by name
    (``db.alerts``...). Only the collection's own module (``shared.db.<module>``) queries it."""

    def __init__(self, client: AsyncMongoClient, name: str) -> None:
        self.client = client
        self.db: AsyncDatabase = client[name]

    def collection(self, spec: Collection) -> AsyncCollection:
        if BY_NAME.get(spec.name) is not spec:
            raise KeyError(f"{spec.name!r} is not in shared.contracts.collections")
        return self.db[spec.name]

    @property
    def alerts(self) -> AsyncCollection:
        return self.collection(ALERTS)

    @property
    def datapoints(self) -> AsyncCollection:
        return self.collection(DATAPOINTS)

    @property
    def calibrations(self) -> AsyncCollection:
        return self.collection(CALIBRATIONS)

    @property
    def uploads(self) -> AsyncCollection:
        return self.collection(UPLOADS)

    @property
    def upload_sources(self) -> AsyncCollection:
        return self.collection(UPLOAD_SOURCES)

    @property
    def recalibrations(self) -> AsyncCollection:
        return self.collection(RECALIBRATIONS)

    @property
    def recalibration_jobs(self) -> AsyncCollection:
        return self.collection(RECALIBRATION_JOBS)

    @property
    def observatories(self) -> AsyncCollection:
        return self.collection(OBSERVATORIES)

    @property
    def revoked_sessions(self) -> AsyncCollection:
        return self.collection(REVOKED_SESSIONS)

    @property
    def counters(self) -> AsyncCollection:
        return self.collection(COUNTERS)

    @property
    def subscriptions(self) -> AsyncCollection:
        return self.collection(SUBSCRIPTIONS)

    @property
    def deliveries(self) -> AsyncCollection:
        return self.collection(DELIVERIES)

    @property
    def webhook_secrets(self) -> AsyncCollection:
        return self.collection(WEBHOOK_SECRETS)

    async def ping(self) -> bool:
        try:
            await self.db.command("ping")
            return True
        except PyMongoError:
            return False

    async def ensure_indexes(self) -> None:
        """Every index ``shared.contracts.collections`` declares (present ones are left as they are)."""
        for spec in COLLECTIONS:
            for index in spec.indexes:
                options: dict = {"unique": True} if index.unique else {}
                if index.expire_after_s is not None:
                    options["expireAfterSeconds"] = index.expire_after_s
                await self.db[spec.name].create_index([(index.field, ASCENDING)], name=index.index_name, **options)
        from shared.db.alerts import (
            ensure_name_keys,  # here: that module imports this one
        )

        await ensure_name_keys(self)  # alerts stored before names were compared get their keys, once

    async def close(self) -> None:
        await self.client.close()


class _LatencyListener(monitoring.CommandListener):
    """Every database command's duration, by command name (find, insert, update...)."""

    def __init__(self, service: str) -> None:
        self.service = service

    def started(self, event) -> None:
        pass

    def succeeded(self, event) -> None:
        DB_LATENCY.labels(self.service, event.command_name).observe(event.duration_micros / 1e6)

    def failed(self, event) -> None:
        DB_LATENCY.labels(self.service, f"{event.command_name}_failed").observe(event.duration_micros / 1e6)


def connect_database(url: str, name: str = "photcal", *, timeout_s: float = 5.0, service: str = "cli") -> Database:
    client: AsyncMongoClient = AsyncMongoClient(
        url,
        event_listeners=[_LatencyListener(service)],
        serverSelectionTimeoutMS=int(timeout_s * 1000),
        connectTimeoutMS=int(timeout_s * 1000),
        tz_aware=True,
        retryWrites=False,  # nx-27017 is not a replica set; real MongoDB retries are per-op anyway
    )
    return Database(client, name)


async def insert_once(collection, doc: dict) -> bool:
    """Insert ``doc`` unless a document with its unique key (``_id`` or a unique index) is stored: True if
    inserted. The same outcome as ``update_one(key, {"$setOnInsert": doc}, upsert=True)``, but a plain
    insert: nx-27017 serves an upsert that inserts by scanning the collection (tens of ms, growing with
    it), an insert through the unique index in about a millisecond (measured: notes/stored-records.md)."""
    try:
        await collection.insert_one(doc)
    except DuplicateKeyError:
        return False  # a redelivery: the first delivery stored it, nothing is rewritten
    return True


def unavailable(exc: PyMongoError) -> BackendUnavailable:
    return BackendUnavailable(f"the database is not answering ({type(exc).__name__}); try again in a minute")
