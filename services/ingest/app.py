"""The ingest gateway: the one public HTTP origin."""

from __future__ import annotations

import asyncio

import aiohttp

from services.ingest import cpcs, guards, handlers, ratelimit, rows, uploads
from services.ingest.forward import forward
from services.ingest.settings import IngestSettings
from services.ingest.state import Gateway
from services.ingest.waiter import ResultWaiter
from services.lightcurve.gateway_routes import PAGE_ROUTES
from shared.cpcs_http import CPCS_PREFIXES  # CPCS lived under /followup/: served there and at the root
from shared.http_errors import json_errors
from shared.logging import get_logger
from shared.runtime import Runtime, ServiceSpec

log = get_logger(__name__)

#: API reads forwarded to the lightcurve service (its pages are listed in its gateway_routes.PAGE_ROUTES)
READ_PATHS = (
    "/api/v1/alerts",
    "/api/v1/followup",
    "/api/v1/lightcurves/{ivorn:.+}",
)


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
        await waiter.start(rt.nc)
        # no cookie jar: forwarded requests carry their client's cookies (a hashtag), never keep them
        # idle connections dropped before the lightcurve service's own header timeout closes them under a request
        idle = max(0.5, settings.http_header_timeout / 2)
        http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), connector=aiohttp.TCPConnector(keepalive_timeout=idle)
        )
        rt.app["gateway"] = Gateway(settings, rt.js, rt.db, waiter, http, settings.pepper())
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


def add_routes(app) -> None:
    router = app.router
    for prefix in CPCS_PREFIXES:
        router.add_post(prefix + "/cgi/upload", uploads.handle_upload)
    router.add_post("/upload", uploads.handle_upload)
    router.add_post("/api/v1/uploads", uploads.handle_upload)
    router.add_get("/api/v1/uploads/{upload_id}", uploads.handle_upload_status)
    router.add_post("/api/v1/alerts", handlers.handle_new_alert)
    router.add_delete("/api/v1/datapoints/{followup_id}", handlers.handle_delete_datapoint)
    router.add_get("/plots/{name}", handlers.handle_plot)
    for path in READ_PATHS:
        router.add_get(path, forward)
    # the observer's web pages: GET and their form POSTs, with redirects and the login cookie passed through
    for method, path in PAGE_ROUTES:
        router.add_route(method, path, forward)
    cpcs.add_routes(router)  # cgi/newevent, cgi/newuser, cgi/delpoint; get_alert_lc_data, list_of_alerts forwarded
