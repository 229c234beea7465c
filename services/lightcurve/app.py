"""The lightcurve service: alerts, follow-up data, light curves (JSON, CSV) and the observer's web pages."""

from __future__ import annotations

from pathlib import Path

from shared import session
from shared.http_errors import json_errors
from services.lightcurve import cpcs, handlers, summary, web
from services.lightcurve.settings import LightcurveSettings
from shared.runtime import Runtime, ServiceSpec

STATIC = Path(__file__).resolve().parent / "static"


def spec(settings: LightcurveSettings) -> ServiceSpec:
    async def setup(rt: Runtime) -> None:
        rt.app["db"] = rt.db
        rt.app["pepper"] = settings.pepper()  # the CPCS reads check the hashtag, as CPCS did
        rt.app[session.APP_KEY] = settings.session_key()  # the browser's login cookie (shared/session.py)
        rt.app[handlers.SUMMARIES] = summary.AlertSummaries()
        rt.app[handlers.LIGHTCURVES] = summary.LightcurveCache()
        r = rt.app.router
        r.add_get("/api/v1/lightcurves/{ivorn:.+}", handlers.api_lightcurve)
        r.add_get("/api/v1/alerts", handlers.api_alerts)
        r.add_get("/api/v1/followup", handlers.api_followup)
        web.add_routes(r)  # /, /login, /logout, /upload (the form), /alerts, /followup, /lightcurve/..., /events/new
        r.add_static("/static", STATIC, append_version=False)
        cpcs.add_routes(r)  # get_alert_lc_data, list_of_alerts (root and /followup/)

    return ServiceSpec("lightcurve", settings, settings.port, setup, uses_nats=False, middlewares=[json_errors])
