"""Publishing an accepted upload to JetStream, acknowledged before we answer."""

from __future__ import annotations

from nats.js import JetStreamContext

from shared.errors import BackendUnavailable
from shared.models import OBJECT_BUCKET_UPLOADS, SUBJECT_UPLOAD, UploadRequested
from shared.natsio import ensure_object_store, headers


async def publish_upload(js: JetStreamContext, upload: UploadRequested, inline_limit: int, replicas: int = 1) -> None:
    """Small tables travel in the message; larger ones in the object store first."""
    try:
        payload = upload.model_dump_json().encode()
        if len(payload) > inline_limit and upload.sources is not None:
            store = await ensure_object_store(js, OBJECT_BUCKET_UPLOADS, replicas)
            await store.put(upload.upload_id, upload.sources.model_dump_json().encode())
            upload = upload.model_copy(update={"sources": None, "sources_in_object_store": True})
            payload = upload.model_dump_json().encode()
        await js.publish(SUBJECT_UPLOAD, payload, headers=headers(msg_id=upload.upload_id))
    except Exception as exc:
        raise BackendUnavailable("the upload queue (NATS) is not answering; try again in a minute") from exc
