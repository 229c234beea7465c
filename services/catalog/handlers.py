"""NATS request/reply: ``photcal.catalog.cone.v1`` -> reference stars of a field."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from shared.errors import PhotcalError
from shared.logging import correlation_id, get_logger
from shared.models import ConeReply, ConeRequest
from shared.natsio import correlation_from

log = get_logger(__name__)

CONE_LATENCY = Histogram(
    "photcal_catalog_cone_duration_seconds",
    "Time to answer a cone search, from request to reply",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.5, 1, 5),
)
CONE_REQUESTS = Counter("photcal_catalog_cone_requests_total", "Cone searches answered, by outcome", ["outcome"])


def make_cone_handler(store):
    async def handle(msg) -> None:
        correlation_id.set(correlation_from(msg))
        started = time.perf_counter()
        try:
            request = ConeRequest.model_validate_json(msg.data)
            reply = await asyncio.to_thread(store.cone, request.ra, request.dec, request.radius_deg, request.surveys or None)
            outcome = "ok"
        except ValidationError as exc:
            reply = ConeReply(ok=False, error="bad_request", message=str(exc.errors()[:3]))
            outcome = "bad_request"
        except PhotcalError as exc:
            reply = ConeReply(ok=False, error=exc.code, message=exc.message)
            outcome = "bad_request"
        except Exception as exc:
            log.exception("cone_failed")
            reply = ConeReply(ok=False, error="catalog_error", message=str(exc)[:300])
            outcome = "error"
        await msg.respond(reply.model_dump_json().encode())
        CONE_LATENCY.observe(time.perf_counter() - started)
        CONE_REQUESTS.labels(outcome).inc()

    return handle
