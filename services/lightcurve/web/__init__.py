"""The observer's web pages: login, upload form, alert and follow-up lists, light curves, new event, delete.

Served by this service (it has the database) and forwarded by the gateway. One module per page group;
the pages call shared/db and shared/usecases, never a collection. :func:`add_routes` is the one place
the pages are registered.
"""

from __future__ import annotations

from aiohttp import web

from services.lightcurve.web.alerts import alerts_page
from services.lightcurve.web.auth import home, login, login_page, logout, logout_page
from services.lightcurve.web.events import new_event, new_event_page
from services.lightcurve.web.followup import delete_point, followup_page
from services.lightcurve.web.lightcurves import lightcurve_page
from services.lightcurve.web.uploads import upload_page


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", home)
    router.add_get("/login", login_page)
    router.add_post("/login", login)
    router.add_get("/logout", logout_page)
    router.add_post("/logout", logout)
    router.add_get("/upload", upload_page)
    router.add_get("/alerts", alerts_page)
    router.add_get("/followup", followup_page)
    router.add_post("/datapoints/{followup_id:[0-9]{1,12}}/delete", delete_point)
    router.add_get("/lightcurve/{ivorn:.+}", lightcurve_page)
    router.add_get("/events/new", new_event_page)
    router.add_post("/events/new", new_event)
