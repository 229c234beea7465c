"""The lightcurve service: alerts, follow-up data and light curves."""

from __future__ import annotations

from shared.http_errors import json_errors
from services.lightcurve import handlers
from services.lightcurve.settings import LightcurveSettings
from shared.runtime import Runtime, ServiceSpec


def spec(settings: LightcurveSettings) -> ServiceSpec:
    async def setup(rt: Runtime) -> None:
        rt.app["db"] = rt.db
        r = rt.app.router
        r.add_get("/api/v1/lightcurves/{ivorn:.+}", handlers.api_lightcurve)
        r.add_get("/lightcurve/{ivorn:.+}", handlers.page_lightcurve)
        r.add_get("/api/v1/alerts", handlers.api_alerts)
        r.add_get("/alerts", handlers.page_alerts)
        r.add_get("/api/v1/followup", handlers.api_followup)
        r.add_get("/followup", handlers.page_followup)

    return ServiceSpec("lightcurve", settings, settings.port, setup, uses_nats=False, middlewares=[json_errors])
