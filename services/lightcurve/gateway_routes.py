"""The observer's pages: the paths the gateway forwards to this service.

The pages live in this service (it has the database); the gateway, the one
public origin, forwards these paths here (services/ingest/forward.py).
``POST /upload`` and ``POST /cgi/upload`` stay the gateway's own (the CPCS
upload): only ``GET /upload`` (the form) comes here.
"""

from __future__ import annotations

#: (method, path) the gateway forwards to the lightcurve service
PAGE_ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/logout"),
    ("POST", "/logout"),
    ("GET", "/upload"),
    ("GET", "/alerts"),
    ("GET", "/followup"),
    ("POST", "/datapoints/{followup_id:[0-9]{1,12}}/delete"),
    ("GET", "/lightcurve/{ivorn:.+}"),
    ("GET", "/events/new"),
    ("POST", "/events/new"),
    ("GET", "/static/{path:.+}"),
)
#: paths in PAGE_ROUTES the gateway must not also register with its read forwarder
PAGE_PATHS = frozenset(path for _, path in PAGE_ROUTES)
