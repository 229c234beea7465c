"""Publishing an accepted upload to JetStream, acknowledged before we answer.

With NATS down the gateway answers 503 at once: the connection state is
checked first (the client reconnects by itself in the background, so the
next upload after NATS returns goes through), and the acknowledgement is
awaited ``PHOTCAL_PUBLISH_TIMEOUT`` seconds (default 2), not the client's 5.

On a JetStream cluster, losing the stream's leader node leaves the stream
without a leader until the other two elect one: a follower waits 4-9 s
(nats-server's Raft election timeout, server/raft.go) before it campaigns;
measured here 1-7 s from the kill. Meanwhile a publish finds no responder,
or its ack is lost with the old leader. While we are connected
that is retried, with the same ``Nats-Msg-Id`` (JetStream keeps one copy),
for up to :data:`ELECTION_RETRY_S`: a node lost delays uploads, never refuses them.
Losing the node we are connected to, the client moves to another within
milliseconds; an upload arriving in that window waits for it too.
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from shared.contracts.messages import UploadRequested
from shared.contracts.subjects import OBJECT_BUCKET_UPLOADS, SUBJECT_FRAME, SUBJECT_UPLOAD
from shared.errors import BackendUnavailable
from shared.logging import get_logger
from shared.natsio import ensure_object_store, headers

log = get_logger(__name__)

#: how long a publish is retried while connected but JetStream has no leader: one full election
#: timeout (9 s at most) and a second round if the first vote splits
ELECTION_RETRY_S = 20.0
ELECTION_RETRY_PAUSE_S = 0.25
#: how long an upload waits for the client to reconnect to another node of the cluster
RECONNECT_WAIT_S = 2.0

#: a stream electing a leader (no responder, 503), or an ack lost with the old leader
LEADERLESS = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


class UploadQueueUnavailable(BackendUnavailable):
    """The upload queue did not answer; ``maybe_published``: an ack timed out, so it may be queued all the same."""

    def __init__(self, maybe_published: bool) -> None:
        super().__init__("the upload queue (NATS) is not answering; try again in a minute")
        self.maybe_published = maybe_published


async def store_frame(js: JetStreamContext, object_name: str, data: bytes, replicas: int = 1) -> None:
    """Put an uploaded frame's bytes, as sent, in the uploads bucket before its message is published.

    The photometry service reads it there (``UploadedImage.object_name``): a frame never
    travels in a message. NATS not answering: 503, nothing published.
    """
    try:
        store = await ensure_object_store(js, OBJECT_BUCKET_UPLOADS, replicas)
        await store.put(object_name, data)
    except Exception as exc:
        log.warning("frame_not_stored", object_name=object_name, error=repr(exc))
        raise BackendUnavailable("the frame store (NATS) is not answering; try again in a minute") from exc


async def forget_frame(js: JetStreamContext, object_name: str, replicas: int = 1) -> None:
    """Best effort: a stored frame whose upload was never published is deleted (the bucket's TTL otherwise)."""
    try:
        store = await ensure_object_store(js, OBJECT_BUCKET_UPLOADS, replicas)
        await store.delete(object_name)
    except Exception as exc:
        log.info("frame_not_deleted", object_name=object_name, error=repr(exc))


async def publish_upload(
    js: JetStreamContext, upload: UploadRequested, inline_limit: int, replicas: int = 1, timeout: float = 2.0
) -> None:
    """Small tables travel in the message; larger ones in the object store first.

    An upload with a frame (``image``, its bytes already stored: :func:`store_frame`) goes to
    the photometry service on ``photcal.frame.v1``; a catalogue to calibrate on ``photcal.upload.v1``.
    """
    nc = getattr(js, "_nc", None)  # nats-py keeps the connection there; no public accessor
    if nc is not None and not await _connected(nc):
        raise BackendUnavailable("the upload queue (NATS) is down; try again in a minute")
    deadline = asyncio.get_running_loop().time() + ELECTION_RETRY_S
    maybe_published = False
    attempt = 0
    while True:
        attempt += 1
        try:
            await _publish_once(js, upload, inline_limit, replicas, timeout)
            if attempt > 1:
                log.info("upload_published_after_retry", upload_id=upload.upload_id, attempts=attempt)
            return
        except Exception as exc:
            # sent but its ack timed out: it may be queued all the same (the caller says which upload id to look for)
            maybe_published = maybe_published or isinstance(exc, nats.errors.TimeoutError)
            connected = nc is None or await _connected(nc)
            if isinstance(exc, LEADERLESS) and connected and asyncio.get_running_loop().time() < deadline:
                log.warning("upload_publish_retrying", upload_id=upload.upload_id, attempt=attempt, error=repr(exc))
                await asyncio.sleep(ELECTION_RETRY_PAUSE_S)
                continue
            raise UploadQueueUnavailable(maybe_published) from exc


async def _connected(nc) -> bool:
    """Connected; or, on a cluster, reconnecting to another node (that takes milliseconds, measured up
    to 0.1 s): an upload arriving meanwhile waits for it, up to :data:`RECONNECT_WAIT_S`, not refused.

    One server and it is away: no wait, the caller answers 503 at once. Moving is
    ``RECONNECTING`` or ``CONNECTING``: nats-py's reconnect loop marks the handshake with
    the next node ``CONNECTING`` (``_process_connect_init``), so an upload arriving during
    that handshake is moving too, not refused.
    """
    if nc.is_connected:
        return True
    if not (nc.is_reconnecting or nc.is_connecting) or len(nc.servers) < 2:
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECONNECT_WAIT_S
    while loop.time() < deadline:
        await asyncio.sleep(0.02)
        if nc.is_connected:
            return True
        if nc.is_closed:
            return False
    return False


async def _publish_once(
    js: JetStreamContext, upload: UploadRequested, inline_limit: int, replicas: int, timeout: float
) -> None:
    payload = upload.model_dump_json().encode()
    if len(payload) > inline_limit and upload.sources is not None:
        store = await ensure_object_store(js, OBJECT_BUCKET_UPLOADS, replicas)
        await store.put(upload.upload_id, upload.sources.model_dump_json().encode())
        upload = upload.model_copy(update={"sources": None, "sources_in_object_store": True})
        payload = upload.model_dump_json().encode()
    subject = SUBJECT_FRAME if upload.image is not None else SUBJECT_UPLOAD
    await js.publish(subject, payload, timeout=timeout, headers=headers(msg_id=upload.upload_id))
