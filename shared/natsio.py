"""NATS connection, JetStream streams and correlation-id headers."""

from __future__ import annotations

import asyncio

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError

from shared.contracts import subjects
from shared.logging import correlation_id, get_logger

log = get_logger(__name__)

#: a published upload with the same id within this window is stored once
DEDUPE_WINDOW_S = 2 * 3600


def server_urls(url: str) -> list[str]:
    """``PHOTCAL_NATS_URL`` as nats-py's server list: one URL, or a cluster's URLs comma-separated.

    nats-py takes a list; a comma-separated string is refused ("invalid connect url option").
    """
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("PHOTCAL_NATS_URL is empty: give nats://host:port, or several comma-separated")
    return servers


async def connect(url: str, name: str, *, timeout: float = 30.0) -> NATS:
    """Connect, retrying until ``timeout``; afterwards reconnect forever.

    The services start in any order and NATS may restart under them: a
    lost connection is re-established by the client, never by a crash.
    ``url`` may list a cluster's nodes comma-separated: the client then
    fails over to another node when the one it uses goes away.
    """
    servers = server_urls(url)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await nats.connect(
                servers,
                name=name,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=_log_error,
                disconnected_cb=_log_event("nats_disconnected"),
                reconnected_cb=_log_event("nats_reconnected"),
            )
        except Exception as exc:  # nats raises several unrelated types here
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("nats_connect_retry", url=url, error=str(exc))
            await asyncio.sleep(0.5)


async def _log_error(exc: Exception) -> None:
    log.warning("nats_error", error=repr(exc))


def _log_event(event: str):
    async def callback() -> None:
        log.warning(event)

    return callback


STREAMS = (
    StreamConfig(
        name=subjects.STREAM_UPLOADS,
        subjects=[subjects.SUBJECT_UPLOAD, subjects.SUBJECT_FRAME],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DEDUPE_WINDOW_S,
        max_msg_size=-1,
    ),
    StreamConfig(
        name=subjects.STREAM_RESULTS,
        subjects=[subjects.SUBJECT_CALIBRATED, subjects.SUBJECT_RECALIBRATED],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=DEDUPE_WINDOW_S,
        max_age=30 * 24 * 3600,
    ),
    StreamConfig(
        name=subjects.STREAM_RECALIBRATIONS,
        subjects=[subjects.SUBJECT_RECALIBRATE],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DEDUPE_WINDOW_S,
    ),
    StreamConfig(
        name=subjects.STREAM_DEAD,
        subjects=[subjects.SUBJECT_DEAD],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
    ),
)


async def ensure_streams(js: JetStreamContext, replicas: int = 1) -> None:
    """Create the streams every service relies on; idempotent, any service may call it."""
    for config in STREAMS:
        config = config.evolve(num_replicas=replicas)
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)


_object_stores: dict[tuple[int, str], object] = {}

#: how long a bucket keeps an object: large parsed catalogues only until calibrated (and
#: redelivered, if need be); plots for as long as a light curve links them (no limit)
BUCKET_TTL_S: dict[str, float | None] = {
    subjects.OBJECT_BUCKET_UPLOADS: 7 * 24 * 3600.0,
    subjects.OBJECT_BUCKET_PLOTS: None,
}


async def ensure_object_store(js: JetStreamContext, bucket: str, replicas: int = 1):
    """The bucket, created on first use; looked up once per connection, not per upload."""
    key = (id(js), bucket)
    if key not in _object_stores:
        try:
            _object_stores[key] = await js.object_store(bucket)
        except BucketNotFoundError:
            config = ObjectStoreConfig(replicas=replicas, ttl=BUCKET_TTL_S.get(bucket))
            _object_stores[key] = await js.create_object_store(bucket, config=config)
    return _object_stores[key]


def headers(msg_id: str | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    cid = correlation_id.get()
    if cid:
        out[subjects.HEADER_CORRELATION] = cid
    if msg_id:
        out["Nats-Msg-Id"] = msg_id
    return out


def correlation_from(msg) -> str | None:
    return (msg.headers or {}).get(subjects.HEADER_CORRELATION)
