"""The observer's web pages: login, upload form, alert and follow-up lists, light curves, new event, delete,
webhook subscriptions.

Served by this service (it has the database) and forwarded by the gateway. One module per page group;
the pages call shared/db and shared/usecases, never a collection. Their routes are rows of
``shared/contracts/routes.py``; ``services/lightcurve/app.py`` registers them from there.
"""

from __future__ import annotations

from services.lightcurve.web.alerts import alerts_page
from services.lightcurve.web.auth import home, login, login_page, logout, logout_page
from services.lightcurve.web.datapoint import datapoint_page
from services.lightcurve.web.events import new_event, new_event_page
from services.lightcurve.web.followup import delete_point, followup_page
from services.lightcurve.web.lightcurves import lightcurve_page
from services.lightcurve.web.myuploads import uploads_page
from services.lightcurve.web.observatory import observatories_page, observatory_page
from services.lightcurve.web.subscriptions import (
    add_subscription,
    delete_subscription,
    resume_subscription,
    rotate_secret,
    subscriptions_page,
)
from services.lightcurve.web.uploads import upload_page

__all__ = [
    "add_subscription",
    "alerts_page",
    "datapoint_page",
    "delete_point",
    "delete_subscription",
    "followup_page",
    "home",
    "lightcurve_page",
    "login",
    "login_page",
    "logout",
    "logout_page",
    "new_event",
    "new_event_page",
    "observatories_page",
    "observatory_page",
    "resume_subscription",
    "rotate_secret",
    "subscriptions_page",
    "upload_page",
    "uploads_page",
]
