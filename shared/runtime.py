"""The life of a service: logging, NATS, database, health endpoints, graceful stop.

Every service's ``__main__`` has the same shape::

    settings = Settings()
    run(ServiceSpec("calibrate", settings, port, setup))

``setup(rt)`` registers its handlers on ``rt`` (NATS subscriptions, HTTP
routes, readiness checks, cleanup callbacks) and returns; the runtime then
serves until SIGTERM/SIGINT and shuts down in reverse order.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from shared import metrics
from shared.contracts import routes
from shared.contracts.subjects import HEADER_CORRELATION
from shared.db import Database, connect_database
from shared.errors import BackendUnavailable
from shared.http_server import (
    DISCONNECTED,
    ConnectionLimit,
    HttpServerSettings,
    body_rate_middleware,
    hide_server_version,
    security_headers,
)
from shared.logging import (
    configure_logging,
    correlation_id,
    get_logger,
    new_correlation_id,
)
from shared.natsio import connect, ensure_streams
from shared.settings import CommonSettings

log = get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]


@dataclass
class Runtime:
    name: str
    settings: CommonSettings
    app: web.Application
    nc: NATS | None = None
    js: JetStreamContext | None = None
    db: Database | None = None
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)
    #: set once the database's unique indexes exist: before, nothing may be written
    #: (a write in that window would have no unique index to stop its duplicate)
    indexed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_cleanup(self, callback: Callable[[], Awaitable[None]]) -> None:
        self.cleanups.append(callback)

    def run_worker(self, run: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
        """Run a consumer once the database's indexes exist (it writes), and stop it on shutdown."""

        async def run_when_indexed() -> None:
            await self.indexed.wait()  # no record is written before its unique index exists
            await run()

        task = asyncio.create_task(run_when_indexed())

        async def stop_worker() -> None:
            await stop()
            task.cancel()

        self.on_cleanup(stop_worker)

    # a service's setup runs after start() connected what its spec uses: these name the one it needs
    def nats(self) -> NATS:
        if self.nc is None:
            raise RuntimeError(f"{self.name} was started without NATS (ServiceSpec.uses_nats)")
        return self.nc

    def jetstream(self) -> JetStreamContext:
        if self.js is None:
            raise RuntimeError(f"{self.name} was started without NATS (ServiceSpec.uses_nats)")
        return self.js

    def database(self) -> Database:
        if self.db is None:
            raise RuntimeError(f"{self.name} was started without the database (ServiceSpec.uses_db)")
        return self.db


@dataclass
class ServiceSpec:
    name: str
    settings: CommonSettings
    port: int
    setup: Callable[[Runtime], Awaitable[None]]
    uses_nats: bool = True
    uses_db: bool = True
    middlewares: list = field(default_factory=list)
    client_max_size: int = 1024**2
    #: the public origin (the gateway) bounds connections per client address; the internal services
    #: are not (every forwarded request comes from the gateway's one address)
    public: bool = False


def run(spec: ServiceSpec) -> None:
    configure_logging(spec.name, spec.settings.log_level)
    asyncio.run(serve(spec))


async def serve(spec: ServiceSpec) -> None:
    rt = await start(spec)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, rt.stopping.set)
    await rt.stopping.wait()
    await stop(rt)


async def start(spec: ServiceSpec) -> Runtime:
    settings = spec.settings
    indexed = asyncio.Event()
    http = HttpServerSettings()
    middlewares = [_observe_http(spec.name), *spec.middlewares, body_rate_middleware(http)]
    if spec.uses_db:
        middlewares.append(_writes_wait_for_indexes(indexed))
    app = web.Application(middlewares=middlewares, client_max_size=spec.client_max_size)
    app.on_response_prepare.append(security_headers)
    hide_server_version()
    rt = Runtime(name=spec.name, settings=settings, app=app, indexed=indexed)
    routes.register(
        app.router, routes.Service.EVERY, {"healthz": _healthz(rt), "readyz": _readyz(rt), "metrics": _metrics}
    )
    if spec.uses_nats:
        rt.nc = await connect(settings.nats_url, f"photcal-{spec.name}")
        rt.js = rt.nc.jetstream(timeout=settings.backend_timeout)
        await ensure_streams(rt.js, settings.nats_replicas)
        rt.readiness["nats"] = _nats_ready(rt.nc)
    if spec.uses_db:
        rt.db = connect_database(
            settings.mongo_url, settings.mongo_db, timeout_s=settings.backend_timeout, service=spec.name
        )
        await _indexes_or_retry(rt)
    await spec.setup(rt)
    # keepalive_timeout also closes a connection whose request (line and headers) is not complete by then
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=http.http_header_timeout)
    await runner.setup()
    if spec.public:
        assert runner.server is not None, "AppRunner.setup() makes the server"
        ConnectionLimit(http.http_max_connections_per_ip).install(runner.server)
    site = web.TCPSite(runner, settings.http_host, spec.port, reuse_address=True)
    await site.start()
    rt.on_cleanup(runner.cleanup)
    log.info("service_started", port=spec.port, nats=bool(rt.nc), database=bool(rt.db))
    return rt


async def stop(rt: Runtime) -> None:
    log.info("service_stopping")
    rt.stopping.set()
    for callback in reversed(rt.cleanups):
        try:
            await asyncio.wait_for(callback(), rt.settings.shutdown_grace)
        except Exception as exc:
            log.warning("cleanup_failed", callback=getattr(callback, "__qualname__", "?"), error=repr(exc))
    if rt.nc is not None and not rt.nc.is_closed:
        try:
            await asyncio.wait_for(rt.nc.drain(), rt.settings.shutdown_grace)
        except Exception:
            await rt.nc.close()
    if rt.db is not None:
        await rt.db.close()
    log.info("service_stopped")


async def _indexes_or_retry(rt: Runtime) -> None:
    """The unique indexes are what makes a datapoint impossible to store twice.

    A database still starting is not fatal: the service keeps trying in the
    background and is not ready (``/readyz``) until the indexes exist.
    """
    indexed = rt.indexed
    db = rt.db
    assert db is not None, "only a service that uses the database waits for its indexes"

    async def ready() -> bool:
        return indexed.is_set() and await db.ping()

    rt.readiness["database"] = ready

    async def attempt() -> bool:
        try:
            await db.ensure_indexes()
        except Exception as exc:
            log.warning("ensure_indexes_failed", error=str(exc)[:200])
            return False
        indexed.set()
        return True

    if await attempt():
        return

    async def keep_trying() -> None:
        while not rt.stopping.is_set() and not await attempt():
            await asyncio.sleep(2.0)

    task = asyncio.create_task(keep_trying())

    async def cancel() -> None:
        task.cancel()

    rt.on_cleanup(cancel)


def _writes_wait_for_indexes(indexed: asyncio.Event):
    """A request that may write answers 503 until the unique indexes exist.

    Writes: every method but GET/HEAD/OPTIONS, and the CPCS ``cgi/`` endpoints
    whatever the method (CPCS clients add events and delete points by GET).
    """

    @web.middleware
    async def middleware(request: web.Request, handler):
        may_write = request.method not in ("GET", "HEAD", "OPTIONS") or "/cgi/" in request.path
        if may_write and not indexed.is_set():
            raise BackendUnavailable("the database is starting; try again in a few seconds")
        return await handler(request)

    return middleware


def _nats_ready(nc: NATS) -> ReadinessCheck:
    async def check() -> bool:
        return nc.is_connected

    return check


def _healthz(rt: Runtime):
    async def handler(_request: web.Request) -> web.Response:
        return web.json_response(
            {"status": "ok", "service": rt.name, "uptime_s": round(time.monotonic() - rt.started, 1)}
        )

    return handler


def _readyz(rt: Runtime):
    async def handler(_request: web.Request) -> web.Response:
        results = {}
        for name, check in rt.readiness.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), 3))
            except Exception:
                results[name] = False
        ok = all(results.values()) and not rt.stopping.is_set()
        return web.json_response({"ready": ok, "checks": results}, status=200 if ok else 503)

    return handler


async def _metrics(_request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


def _observe_http(service: str):
    @web.middleware
    async def middleware(request: web.Request, handler):
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        cid = request.headers.get(HEADER_CORRELATION, "")[:64]
        correlation_id.set(cid if cid.isprintable() and cid else new_correlation_id())
        start_t = time.perf_counter()
        status: int | str = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers[HEADER_CORRELATION] = correlation_id.get() or ""
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except ConnectionError:
            # the client went away mid-request (an aborted upload): not the server's failure
            status = DISCONNECTED
            log.info(DISCONNECTED, path=request.path, method=request.method)
            return web.Response(status=400, text="client disconnected")  # nobody is there to read it
        finally:
            metrics.HTTP_REQUESTS.labels(service, route, request.method, str(status)).inc()
            metrics.HTTP_LATENCY.labels(service, route).observe(time.perf_counter() - start_t)

    return middleware
