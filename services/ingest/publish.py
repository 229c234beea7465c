"""Publishing an accepted upload to JetStream, acknowledged before we answer.

With NATS down the gateway answers 503 at once: the connection state is
checked first (the client reconnects by itself in the background, so the
next upload after NATS returns goes through), and the acknowledgement is
awaited ``PHOTCAL_PUBLISH_TIMEOUT`` seconds (default 2), not the client's 5.
"""

from __future__ import annotations

import nats.errors
from nats.js import JetStreamContext

from shared.errors import BackendUnavailable
from shared.models import OBJECT_BUCKET_UPLOADS, SUBJECT_UPLOAD, UploadRequested
from shared.natsio import ensure_object_store, headers

async def publish_upload(
    js: JetStreamContext, upload: UploadRequested, inline_limit: int, replicas: int = 1, timeout: float = 2.0
) -> None:
    """Small tables travel in the message; larger ones in the object store first."""
    nc = getattr(js, "_nc", None)  # nats-py keeps the connection there; no public accessor
    if nc is not None and not nc.is_connected:
        raise BackendUnavailable("the upload queue (NATS) is down; try again in a minute")
    try:
        payload = upload.model_dump_json().encode()
        if len(payload) > inline_limit and upload.sources is not None:
            store = await ensure_object_store(js, OBJECT_BUCKET_UPLOADS, replicas)
            await store.put(upload.upload_id, upload.sources.model_dump_json().encode())
            upload = upload.model_copy(update={"sources": None, "sources_in_object_store": True})
            payload = upload.model_dump_json().encode()
        await js.publish(SUBJECT_UPLOAD, payload, timeout=timeout, headers=headers(msg_id=upload.upload_id))
    except Exception as exc:
        err = BackendUnavailable("the upload queue (NATS) is not answering; try again in a minute")
        # sent but its ack timed out: it may be queued all the same (the caller says which upload id to look for)
        err.maybe_published = isinstance(exc, nats.errors.TimeoutError)
        raise err from exc
