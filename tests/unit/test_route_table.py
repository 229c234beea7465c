"""Each service's router serves exactly its rows of the route table.

And the gateway forwards exactly the forwarded rows.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from services.ingest import app as ingest_app
from services.ingest.forward import INTERNAL_PATHS, forward
from services.lightcurve import app as lightcurve_app
from shared.contracts import routes
from shared.contracts.routes import ROUTES, RouteTableMismatch, Service, forwarded_routes, routes_of
from shared.runtime import Runtime, ServiceSpec, start, stop
from shared.settings import CommonSettings

ADD_ROUTES = {
    Service.INGEST: ingest_app.add_routes,
    Service.LIGHTCURVE: lambda app: lightcurve_app.add_routes(app.router),
    Service.CALIBRATE: lambda app: None,
    Service.CATALOG: lambda app: None,
}


def served(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, path, handler kind) of every route on the app's router; HEAD, which every GET also answers, left out."""
    out = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:  # every route added by register has one
            continue
        if isinstance(route.resource, web.StaticResource):
            out.append((route.method, shape(route.resource), "static"))
        else:
            out.append((route.method, shape(route.resource), "forward" if route.handler is forward else "own"))
    return out


def shape(resource: web.AbstractResource) -> str:
    """A resource's path as a comparable string: a plain path, a static prefix, or a dynamic one's regex."""
    info = resource.get_info()
    if "pattern" in info:
        return info["pattern"].pattern
    return info.get("path") or info["prefix"]


def shape_of(path: str) -> str:
    return shape(web.UrlDispatcher().add_resource(path))


def expected(service: Service) -> list[tuple[str, str, str]]:
    rows = routes_of(Service.EVERY) + routes_of(service)
    want = [(r.method, shape_of(r.path), "static" if r.static else "own") for r in rows]
    if service is Service.INGEST:
        want += [(r.method, shape_of(r.pattern), "forward") for r in forwarded_routes()]
    return want


@pytest.mark.parametrize("service", [s for s in Service if s is not Service.EVERY])
async def test_each_service_router_is_its_rows_of_the_table(service: Service):
    """The app as the runtime builds it, with the service's own route registration.

    It serves the table's rows and no other.
    """

    async def setup(rt: Runtime) -> None:
        ADD_ROUTES[service](rt.app)

    settings = CommonSettings(http_host="127.0.0.1")
    rt = await start(ServiceSpec(str(service), settings, 0, setup, uses_nats=False, uses_db=False))
    try:
        got = served(rt.app)
    finally:
        await stop(rt)
    assert sorted(got) == sorted(expected(service))
    assert len(got) == len(set(got)), "a route registered twice"


def test_the_gateway_forwards_every_read_and_page_of_the_lightcurve_service_and_nothing_of_its_own():
    forwarded = forwarded_routes()
    assert {r.service for r in forwarded} == {Service.LIGHTCURVE}
    assert [r for r in routes_of(Service.LIGHTCURVE) if not r.forwarded] == []
    assert not {r.path for r in forwarded} & INTERNAL_PATHS
    assert {"/healthz", "/readyz", "/metrics"} == INTERNAL_PATHS


def test_table_rows_are_unique():
    keys = [(r.method, r.path) for r in ROUTES]
    assert len(keys) == len(set(keys))


def test_a_row_without_handler_or_a_handler_without_row_stops_the_start():
    app = web.Application()
    handlers = dict(ingest_app.HANDLERS)
    handlers.pop("plot")
    with pytest.raises(RouteTableMismatch, match="plot"):
        routes.register(app.router, Service.INGEST, handlers)
    with pytest.raises(RouteTableMismatch, match="stray"):
        routes.register(app.router, Service.INGEST, dict(ingest_app.HANDLERS) | {"stray": forward})


def test_cpcs_paths_are_served_at_the_root_and_under_followup():
    paths = {r.path for r in ROUTES}
    for name in (
        "/cgi/upload",
        "/cgi/newevent",
        "/cgi/newuser",
        "/cgi/delpoint",
        "/get_alert_lc_data",
        "/list_of_alerts",
    ):
        assert name in paths and "/followup" + name in paths
