"""Every HTTP route photcal serves: one table, from which each service registers its own.

A row says the method and path, the service that serves it, the name of its
handler in that service, and whether the gateway (``ingest``, the one public
origin) forwards it there (``services/ingest/forward.py``). The lightcurve
service serves the reads and the observer's pages; the gateway serves the
writes and the uploads itself and forwards the rest. Every service also
serves its own ``/healthz``, ``/readyz`` and ``/metrics`` (``shared/runtime.py``),
which the gateway never forwards.

A service registers its rows with :func:`register` and a mapping from
handler names to handlers; a row without a handler, or a handler without a
row, stops the service at start-up (:class:`RouteTableMismatch`). The gateway
registers every forwarded row with its forwarder the same way, so a page
added here is served and forwarded, or the start fails saying which.

CPCS lived under ``/followup/``: every CPCS path is served at the root and
there (:data:`CPCS_PREFIXES`); its reads also with a trailing slash, GET or POST.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: CPCS lived under /followup/; every CPCS path is served at the root and there
CPCS_PREFIXES = ("", "/followup")


class Service(StrEnum):
    INGEST = "ingest"
    CALIBRATE = "calibrate"
    CATALOG = "catalog"
    LIGHTCURVE = "lightcurve"
    #: each service's own endpoints (shared/runtime.py), never forwarded
    EVERY = "every"


@dataclass(frozen=True)
class Route:
    method: str
    #: an aiohttp path pattern; for a ``static`` row, the prefix its files are served under
    path: str
    service: Service
    #: the key of the handler in the serving service's handler mapping (a directory for ``static``)
    handler: str
    #: the gateway forwards it to ``service``
    forwarded: bool = False
    #: files of a directory, served under ``path/``
    static: bool = False

    @property
    def pattern(self) -> str:
        """The path as a router shows it (and as the gateway registers it to forward)."""
        return self.path + "/{path:.+}" if self.static else self.path


def _cpcs(method_paths: Iterable[tuple[str, str]], service: Service, handler: str, *, forwarded: bool) -> list[Route]:
    return [
        Route(method, prefix + path, service, handler, forwarded)
        for prefix in CPCS_PREFIXES
        for method, path in method_paths
    ]


def _get_post(path: str, *, slash: bool = False) -> list[tuple[str, str]]:
    paths = (path, path + "/") if slash else (path,)
    return [(method, p) for p in paths for method in ("GET", "POST")]


_I, _L, _E = Service.INGEST, Service.LIGHTCURVE, Service.EVERY
#: a subscription's page path (its id: the 16 hexadecimal digits its creation answered)
_SUBSCRIPTION = "/subscriptions/{subscription_id:[A-Za-z0-9]{1,64}}"

ROUTES: tuple[Route, ...] = (
    # every service's own
    Route("GET", "/healthz", _E, "healthz"),
    Route("GET", "/readyz", _E, "readyz"),
    Route("GET", "/metrics", _E, "metrics"),
    # the gateway's own: uploads (CPCS's and photcal's), writes, plots
    *_cpcs([("POST", "/cgi/upload")], _I, "upload", forwarded=False),
    Route("POST", "/upload", _I, "upload"),
    Route("POST", "/api/v1/uploads", _I, "upload"),
    Route("GET", "/api/v1/uploads/{upload_id}", _I, "upload_status"),
    # an observatory's uploads (?mine=1&state=failed...): upload state is the gateway's, as for one upload
    Route("GET", "/api/v1/uploads", _I, "upload_list"),
    Route("POST", "/api/v1/alerts", _I, "new_alert"),
    Route("DELETE", "/api/v1/datapoints/{followup_id}", _I, "delete_datapoint"),
    # recalibration jobs (administrators; services/ingest/recalibrations.py, the work in services/calibrate)
    Route("POST", "/api/v1/recalibrations", _I, "recalibration_create"),
    Route("GET", "/api/v1/recalibrations/{job_id}", _I, "recalibration_get"),
    Route("GET", "/api/v1/recalibrations/{job_id}/items", _I, "recalibration_items"),
    Route("POST", "/api/v1/recalibrations/{job_id}/apply", _I, "recalibration_apply"),
    Route("POST", "/api/v1/recalibrations/{job_id}/resume", _I, "recalibration_resume"),
    Route("GET", "/plots/{name}", _I, "plot"),
    *_cpcs(_get_post("/cgi/newevent"), _I, "cpcs_new_event", forwarded=False),
    *_cpcs(_get_post("/cgi/newuser"), _I, "cpcs_new_user", forwarded=False),
    *_cpcs(_get_post("/cgi/delpoint"), _I, "cpcs_delete_point", forwarded=False),
    # the lightcurve service's, forwarded by the gateway: the JSON API reads
    # ?format=json|csv|votable|ecsv|aavso; the bulk export ?alerts=IVORN1,IVORN2&format=... (exports.py)
    Route("GET", "/api/v1/lightcurves/{ivorn:.+}", _L, "api_lightcurve", forwarded=True),
    Route("GET", "/api/v1/lightcurves", _L, "api_lightcurves", forwarded=True),
    Route("GET", "/api/v1/alerts", _L, "api_alerts", forwarded=True),
    Route("GET", "/api/v1/followup", _L, "api_followup", forwarded=True),
    Route("GET", "/api/v1/datapoints/{followup_id}", _L, "api_datapoint", forwarded=True),
    # the API's OpenAPI document (shared/contracts/openapi.py) and its page
    Route("GET", "/api/v1/openapi.json", _L, "api_openapi", forwarded=True),
    Route("GET", "/api/docs", _L, "api_docs", forwarded=True),
    # the observer's pages (GET and their form POSTs; POST /upload is the gateway's CPCS upload)
    Route("GET", "/", _L, "home", forwarded=True),
    Route("GET", "/login", _L, "login_page", forwarded=True),
    Route("POST", "/login", _L, "login", forwarded=True),
    Route("GET", "/logout", _L, "logout_page", forwarded=True),
    Route("POST", "/logout", _L, "logout", forwarded=True),
    Route("GET", "/upload", _L, "upload_page", forwarded=True),
    Route("GET", "/alerts", _L, "alerts_page", forwarded=True),
    Route("GET", "/followup", _L, "followup_page", forwarded=True),
    Route("POST", "/datapoints/{followup_id:[0-9]{1,12}}/delete", _L, "delete_point", forwarded=True),
    Route("GET", "/lightcurve/{ivorn:.+}", _L, "lightcurve_page", forwarded=True),
    Route("GET", "/datapoints/{followup_id:[0-9]{1,12}}", _L, "datapoint_page", forwarded=True),
    Route("GET", "/uploads", _L, "uploads_page", forwarded=True),
    # an observatory's page: uploads over time, zero point and limit against time, its failed uploads
    Route("GET", "/observatories", _L, "observatories_page", forwarded=True),
    Route("GET", "/observatories/{key}", _L, "observatory_page", forwarded=True),
    Route("GET", "/events/new", _L, "new_event_page", forwarded=True),
    Route("POST", "/events/new", _L, "new_event", forwarded=True),
    # the observatory's webhook subscriptions and secret as a page, its forms (shared/usecases/subscriptions.py)
    Route("GET", "/subscriptions", _L, "subscriptions_page", forwarded=True),
    Route("POST", "/subscriptions", _L, "add_subscription", forwarded=True),
    Route("POST", _SUBSCRIPTION + "/delete", _L, "delete_subscription", forwarded=True),
    Route("POST", _SUBSCRIPTION + "/resume", _L, "resume_subscription", forwarded=True),
    Route("POST", "/subscriptions/secret/rotate", _L, "rotate_webhook_secret", forwarded=True),
    Route("GET", "/static", _L, "static", forwarded=True, static=True),
    # CPCS reads
    *_cpcs(_get_post("/get_alert_lc_data", slash=True), _L, "cpcs_get_alert_lc_data", forwarded=True),
    *_cpcs(_get_post("/list_of_alerts", slash=True), _L, "cpcs_list_of_alerts", forwarded=True),
    # the JSON Schemas of the messages outside programs subscribe to (issue 22), read like the API's document
    Route("GET", "/api/v1/schemas", _L, "api_schemas", forwarded=True),
    Route("GET", "/api/v1/schemas/{name}.json", _L, "api_schema", forwarded=True),
    # an event from a VOEvent 2.0 document (administrators): a write, the gateway's
    Route("POST", "/api/v1/voevents", _I, "voevent"),
    # webhooks (issue 22): an observatory's subscriptions and its signing secret (services/ingest/subscriptions.py;
    # the POSTs are the notify service's, which serves no route of its own)
    Route("POST", "/api/v1/subscriptions", _I, "subscription_create"),
    Route("GET", "/api/v1/subscriptions", _I, "subscription_list"),
    Route("GET", "/api/v1/subscriptions/{subscription_id}", _I, "subscription_get"),
    Route("DELETE", "/api/v1/subscriptions/{subscription_id}", _I, "subscription_delete"),
    Route("GET", "/api/v1/subscriptions/{subscription_id}/deliveries", _I, "subscription_deliveries"),
    Route("POST", "/api/v1/subscriptions/{subscription_id}/resume", _I, "subscription_resume"),
    Route("GET", "/api/v1/webhook-secret", _I, "webhook_secret_get"),
    Route("POST", "/api/v1/webhook-secret/rotate", _I, "webhook_secret_rotate"),
)


class RouteTableMismatch(RuntimeError):
    """A service's handlers and its rows of the route table disagree: the service does not start."""


def routes_of(service: Service) -> list[Route]:
    """The rows ``service`` serves itself, in table order."""
    return [route for route in ROUTES if route.service is service]


def forwarded_routes() -> list[Route]:
    """The rows the gateway forwards to the service that serves them."""
    return [route for route in ROUTES if route.forwarded]


def internal_paths() -> frozenset[str]:
    """Paths every service answers for itself: the gateway never forwards them."""
    return frozenset(route.path for route in routes_of(Service.EVERY))


def register(
    router: web.UrlDispatcher,
    service: Service,
    handlers: Mapping[str, Handler | Path],
    *,
    forward: Handler | None = None,
) -> None:
    """Add ``service``'s rows to ``router``, each with ``handlers[row.handler]``.

    With ``forward``, every forwarded row too.

    Raises :class:`RouteTableMismatch` naming the rows without a handler and the handlers without a row.
    A GET answers HEAD as well.
    """
    own = routes_of(service)
    missing = sorted({route.handler for route in own} - set(handlers))
    unused = sorted(set(handlers) - {route.handler for route in own})
    if missing or unused:
        raise RouteTableMismatch(
            f"{service} route table and handlers disagree: rows without a handler {missing}, handlers without a "
            f"row {unused}"
        )
    for route in own:
        target = handlers[route.handler]
        if route.static:
            if not isinstance(target, Path):
                raise RouteTableMismatch(f"{route.path} serves a directory: its handler {route.handler!r} is a Path")
            router.add_static(route.path, target, append_version=False)
        elif isinstance(target, Path):
            raise RouteTableMismatch(f"{route.method} {route.path} takes a handler, not the directory {target}")
        else:
            _add(router, route.method, route.path, target)
    if forward is not None:
        for route in forwarded_routes():
            _add(router, route.method, route.pattern, forward)


def _add(router: web.UrlDispatcher, method: str, path: str, handler: Handler) -> None:
    if method == "GET":
        router.add_get(path, handler)
    else:
        router.add_route(method, path, handler)
