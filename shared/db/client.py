"""The database handle and its indexes."""

from __future__ import annotations

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.errors import BackendUnavailable
from shared.metrics import DB_LATENCY

#: collection -> list of (field, unique)
INDEXES: dict[str, list[tuple[str, bool]]] = {
    "observatories": [("hashtag_hash", True), ("name", True), ("observatory_id", True)],
    "alerts": [("ivorn", True), ("alert_id", True), ("name", False), ("name_key", False), ("fragment_key", False),
               ("dec", False)],
    "datapoints": [("dedupe_key", True), ("upload_id", True), ("followup_id", True), ("ivorn", False)],
    "calibrations": [("upload_id", True)],
    "uploads": [("upload_id", True)],
}


class Database:
    """A connected database: ``db.datapoints`` etc. are the collections."""

    def __init__(self, client: AsyncMongoClient, name: str) -> None:
        self.client = client
        self.db: AsyncDatabase = client[name]

    def __getattr__(self, collection: str):
        return self.db[collection]

    async def ping(self) -> bool:
        try:
            await self.db.command("ping")
            return True
        except PyMongoError:
            return False

    async def ensure_indexes(self) -> None:
        for collection, fields in INDEXES.items():
            for field, unique in fields:
                await self.db[collection].create_index([(field, ASCENDING)], unique=unique, name=f"{field}_1")
        from shared.db.alerts import ensure_name_keys  # here: these modules import this one
        from shared.db.sessions import ensure_ttl_index

        await ensure_ttl_index(self)
        await ensure_name_keys(self)  # alerts stored before names were compared get their keys, once

    async def next_id(self, counter: str) -> int:
        """A new integer id (CPCS clients use integer alert and followup ids)."""
        doc = await self.db["counters"].find_one_and_update(
            {"_id": counter},
            {"$inc": {"value": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["value"])

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
