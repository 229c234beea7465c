"""The ingest gateway: the one public HTTP origin."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from services.ingest import cpcs, guards, handlers, ratelimit, recalibrations, rows, subscriptions, uploads, voevents
from services.ingest.forward import forward
from services.ingest.frameslots import FrameSlots
from services.ingest.settings import IngestSettings
from services.ingest.state import Gateway
from services.ingest.waiter import ResultWaiter
from shared.contracts import routes
from shared.http_errors import json_errors
from shared.logging import get_logger
from shared.runtime import Runtime, ServiceSpec

log = get_logger(__name__)


def spec(settings: IngestSettings) -> ServiceSpec:
    proxies = settings.proxies  # a bad PHOTCAL_TRUSTED_PROXIES entry stops the start, naming it

    async def setup(rt: Runtime) -> None:
        if settings.trust_forwarded_for and not proxies:
            log.warning(
                "trust_forwarded_for_ignored",
                why="PHOTCAL_TRUST_FORWARDED_FOR trusted any client; name the proxies in PHOTCAL_TRUSTED_PROXIES",
            )
        await asyncio.to_thread(rows.warm_up)  # the catalogue reader, compiled before the first upload
        waiter = ResultWaiter()
        await waiter.start(rt.nats())
        # no cookie jar: forwarded requests carry their client's cookies (a hashtag), never keep them
        # idle connections dropped before the lightcurve service's own header timeout closes them under a request
        idle = max(0.5, settings.http_header_timeout / 2)
        http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), connector=aiohttp.TCPConnector(keepalive_timeout=idle)
        )
        rt.app["gateway"] = Gateway(
            settings,
            rt.jetstream(),
            rt.database(),
            waiter,
            http,
            settings.pepper(),
            frame_slots=FrameSlots(settings.max_frames_in_flight),
        )
        add_routes(rt.app)
        rt.on_cleanup(http.close)
        rt.on_cleanup(waiter.stop)

    return ServiceSpec(
        "ingest",
        settings,
        settings.port,
        setup,
        # 429 per IP and per hashtag; then the origin, logged-out sessions and the body limit (413)
        middlewares=[json_errors, ratelimit.middleware(settings), guards.middleware(proxies)],
        # every body aiohttp reads (forms, JSON), counted after decompression; the upload
        # handler reads its multipart body itself, chunk by chunk, up to max_upload_bytes
        client_max_size=guards.SMALL_BODY_BYTES,
        public=True,  # connections per client address bounded (shared/http_server.py)
    )


#: the gateway's own rows of the route table (shared/contracts/routes.py), by handler name; every
#: forwarded row goes to the lightcurve service through ``forward``
HANDLERS = {
    "upload": uploads.handle_upload,
    "upload_status": uploads.handle_upload_status,
    "upload_list": uploads.handle_upload_list,
    "new_alert": handlers.handle_new_alert,
    "delete_datapoint": handlers.handle_delete_datapoint,
    "plot": handlers.handle_plot,
    "cpcs_new_event": cpcs.new_event,
    "cpcs_new_user": cpcs.new_user,
    "cpcs_delete_point": cpcs.delete_point,
    "recalibration_create": recalibrations.handle_create,
    "recalibration_get": recalibrations.handle_get,
    "recalibration_items": recalibrations.handle_items,
    "recalibration_apply": recalibrations.handle_apply,
    "recalibration_resume": recalibrations.handle_resume,
    "voevent": voevents.handle_voevent,
    "subscription_create": subscriptions.handle_create,
    "subscription_list": subscriptions.handle_list,
    "subscription_get": subscriptions.handle_get,
    "subscription_delete": subscriptions.handle_delete,
    "subscription_deliveries": subscriptions.handle_deliveries,
    "subscription_resume": subscriptions.handle_resume,
    "webhook_secret_get": subscriptions.handle_secret_get,
    "webhook_secret_rotate": subscriptions.handle_secret_rotate,
}


def add_routes(app: web.Application) -> None:
    routes.register(app.router, routes.Service.INGEST, HANDLERS, forward=forward)
