"""The lightcurve service: alerts, follow-up data, light curves (JSON, CSV) and the observer's web pages."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web as aiohttp_web

from services.lightcurve import cpcs, handlers, summary, web
from services.lightcurve.settings import LightcurveSettings
from services.lightcurve.web import apidocs
from services.lightcurve.web.errors import html_error_pages
from services.lightcurve.web.subscriptions import ALLOW_PRIVATE
from shared import session
from shared.contracts import routes
from shared.http_errors import json_errors
from shared.runtime import Runtime, ServiceSpec

STATIC = Path(__file__).resolve().parent / "static"


def spec(settings: LightcurveSettings) -> ServiceSpec:
    async def setup(rt: Runtime) -> None:
        rt.app["db"] = rt.db
        rt.app["pepper"] = settings.pepper()  # the CPCS reads check the hashtag, as CPCS did
        rt.app[session.APP_KEY] = settings.session_key()  # the browser's login cookie (shared/session.py)
        rt.app[handlers.SUMMARIES] = summary.AlertSummaries()
        rt.app[handlers.LIGHTCURVES] = summary.LightcurveCache()
        rt.app[ALLOW_PRIVATE] = settings.callback_allow_private  # the subscriptions page's URLs
        add_routes(rt.app.router)

    return ServiceSpec(
        "lightcurve", settings, settings.port, setup, uses_nats=False, middlewares=[json_errors, html_error_pages]
    )


#: this service's rows of the route table (shared/contracts/routes.py), by handler name
HANDLERS: dict[str, routes.Handler | Path] = {
    "api_lightcurve": handlers.api_lightcurve,
    "api_lightcurves": handlers.api_lightcurves,
    "api_alerts": handlers.api_alerts,
    "api_followup": handlers.api_followup,
    "api_datapoint": handlers.api_datapoint,
    "api_openapi": apidocs.api_openapi,
    "api_docs": apidocs.api_docs,
    "api_schemas": apidocs.api_schemas,
    "api_schema": apidocs.api_schema,
    "home": web.home,
    "login_page": web.login_page,
    "login": web.login,
    "logout_page": web.logout_page,
    "logout": web.logout,
    "upload_page": web.upload_page,
    "alerts_page": web.alerts_page,
    "followup_page": web.followup_page,
    "delete_point": web.delete_point,
    "lightcurve_page": web.lightcurve_page,
    "datapoint_page": web.datapoint_page,
    "uploads_page": web.uploads_page,
    "observatories_page": web.observatories_page,
    "observatory_page": web.observatory_page,
    "new_event_page": web.new_event_page,
    "new_event": web.new_event,
    "subscriptions_page": web.subscriptions_page,
    "add_subscription": web.add_subscription,
    "delete_subscription": web.delete_subscription,
    "resume_subscription": web.resume_subscription,
    "rotate_webhook_secret": web.rotate_secret,
    "static": STATIC,
    "cpcs_get_alert_lc_data": cpcs.get_alert_lc_data,
    "cpcs_list_of_alerts": cpcs.list_of_alerts,
}


def add_routes(router: aiohttp_web.UrlDispatcher) -> None:
    routes.register(router, routes.Service.LIGHTCURVE, HANDLERS)
