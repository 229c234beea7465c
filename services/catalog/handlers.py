"""NATS request/reply: the reference stars of a field.

``photcal.catalog.cone.v2`` (what the calibrate worker asks): the reply is
binary columns in parts of at most ``max_payload`` (shared/conewire.py), so
any density is served. ``photcal.catalog.cone.v1`` (JSON, kept for older
clients) answers ``cone_too_large`` when its reply is over ``max_payload``.
Either way a request is always answered: a reply that cannot be sent is
followed by an error reply, never by silence.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from nats.errors import MaxPayloadError
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from shared.conewire import PART_OVERHEAD, BytesLike, encode_reply, part_headers, split_parts
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import CatalogueVersionsReply, ConeReply, ConeRequest, ConeRequestV2
from shared.errors import PhotcalError
from shared.logging import correlation_id, get_logger
from shared.natsio import correlation_from

log = get_logger(__name__)

CONE_LATENCY = Histogram(
    "photcal_catalog_cone_duration_seconds",
    "Time to answer a cone search, from request to reply",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.5, 1, 5),
)
CONE_REQUESTS = Counter("photcal_catalog_cone_requests_total", "Cone searches answered, by outcome", ["outcome"])


def _stars(reply: ConeReply) -> int:
    return sum(len(s) for s in reply.stars.values())


async def _search(store, msg, model, max_stars: int) -> tuple[ConeReply, str]:
    """The store's answer to the request in ``msg`` (an error reply if the request is bad or the search fails)."""
    try:
        request = model.model_validate_json(msg.data)
        # v2's binary reply carries magnitudes as float32, as stored: no round trip through float64
        options: dict = {"brightest": request.brightest, "float32": True} if isinstance(request, ConeRequestV2) else {}
        if isinstance(request, ConeRequestV2) and request.versions:  # a recalibration's catalogue versions
            options["versions"] = request.versions
        reply = await asyncio.to_thread(
            store.cone, request.ra, request.dec, request.radius_deg, request.surveys or None, **options
        )
    except ValidationError as exc:
        return ConeReply(ok=False, error=ErrorCode.BAD_REQUEST, message=str(exc.errors()[:3])), "bad_request"
    except PhotcalError as exc:
        return ConeReply(ok=False, error=exc.code, message=exc.message), "bad_request"
    except Exception as exc:
        log.exception("cone_failed")
        return ConeReply(ok=False, error=ErrorCode.CATALOG_ERROR, message=str(exc)[:300]), "error"
    n = _stars(reply)
    if n > max_stars:
        # a deterministic refusal (the same cone always has as many stars), named so the caller stops asking
        return too_large(
            n, f"more than the {max_stars:,} a cone may hold (PHOTCAL_CATALOG_CONE_MAX_STARS)"
        ), "too_large"
    return reply, "ok"


def too_large(n: int, why: str) -> ConeReply:
    return ConeReply(ok=False, error=ErrorCode.CONE_TOO_LARGE, message=f"the cone holds {n:,} reference stars, {why}")


def make_cone_handler(store, max_stars: int = 1_000_000):
    """``photcal.catalog.cone.v1``: one JSON reply; an error reply if that is over the payload limit."""

    async def handle(msg) -> None:
        correlation_id.set(correlation_from(msg))
        started = time.perf_counter()
        reply, outcome = await _search(store, msg, ConeRequest, max_stars)
        body = reply.model_dump_json().encode()
        try:
            await msg.respond(body)
        except MaxPayloadError:
            outcome = "too_large"
            why = f"{len(body):,} bytes as JSON: over the NATS payload limit; ask photcal.catalog.cone.v2"
            await msg.respond(too_large(_stars(reply), why).model_dump_json().encode())
        CONE_LATENCY.observe(time.perf_counter() - started)
        CONE_REQUESTS.labels(outcome).inc()

    return handle


def make_cone_v2_handler(store, nc, max_stars: int = 1_000_000, part_bytes: int | None = None):
    """``photcal.catalog.cone.v2``: the binary reply in parts to the request's inbox."""

    async def handle(msg) -> None:
        correlation_id.set(correlation_from(msg))
        if not msg.reply:
            return  # nobody to answer
        started = time.perf_counter()
        reply, outcome = await _search(store, msg, ConeRequestV2, max_stars)
        limit = part_bytes or max(nc.max_payload - PART_OVERHEAD, 1024)
        try:
            body = await asyncio.to_thread(encode_reply, reply) if reply.stars else encode_reply(reply)
            await send_parts(nc, msg.reply, body, limit)
        except Exception as exc:  # the connection failed half way: tell the requester, if we still can
            log.exception("cone_reply_not_sent")
            outcome = "error"
            failed = ConeReply(
                ok=False, error=ErrorCode.CATALOG_ERROR, message=f"the reply could not be sent: {exc!r}"[:300]
            )
            try:
                await send_parts(nc, msg.reply, encode_reply(failed), limit)
            except Exception:
                log.warning("cone_error_reply_not_sent")
        CONE_LATENCY.observe(time.perf_counter() - started)
        CONE_REQUESTS.labels(outcome).inc()

    return handle


async def send_parts(nc, inbox: str, body: BytesLike, part_bytes: int) -> int:
    """Publish ``body`` to ``inbox`` in parts under a fresh reply id; the number of parts."""
    reply_id = uuid.uuid4().hex[:16]
    parts = split_parts(body, part_bytes)
    for i, part in enumerate(parts):
        await nc.publish(inbox, part, headers=part_headers(reply_id, i, len(parts)))
    return len(parts)


def make_versions_handler(store):
    """``photcal.catalog.versions.v1``: survey -> the catalogue versions on disk (JSON)."""

    async def handle(msg) -> None:
        correlation_id.set(correlation_from(msg))
        if not msg.reply:
            return
        versions = await asyncio.to_thread(store.versions_on_disk)
        await msg.respond(CatalogueVersionsReply(versions=versions).model_dump_json().encode())

    return handle
