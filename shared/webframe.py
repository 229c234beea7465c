"""The site's page frame (stylesheet, navigation, main), shared by every service that answers a browser.

The lightcurve service's pages, the gateway's no-JavaScript upload answers and every HTML error page
(an unknown path, a 404 of a page) are drawn in it, so an observer never lands on a bare page
without the site's styling or a way back. The stylesheet is the lightcurve service's
``/static/app.css``, which the gateway forwards.
"""

from __future__ import annotations

from html import escape

#: the navigation: (href, text, key of the active page)
NAV_ITEMS: tuple[tuple[str, str, str], ...] = (
    ("/upload", "Upload", "upload"),
    ("/alerts", "Alerts", "alerts"),
    ("/alerts?with_data=1", "Alerts with data", "with_data"),
    ("/followup", "Follow-up data", "followup"),
    ("/observatories", "Observatories", "observatories"),
    ("/events/new", "New event", "new_event"),
)

LOGGED_OUT = '<a href="/login" id="login-link">log in</a>'
#: the header's right side on pages drawn where the login is not read (the gateway's answers and errors): the
#: observatory's own pages, which ask for the login if need be
UNKNOWN_VISITOR = '<a href="/uploads" id="my-uploads">my uploads</a>'


def _attr(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def frame(
    title: str,
    content: str,
    *,
    who: str = UNKNOWN_VISITOR,
    active: str = "",
    head_extra: str = "",
) -> str:
    """A whole page: ``content`` and ``who`` (the header's right side) are HTML already escaped by the caller."""
    active_attr = ' class="active" aria-current="page"'
    nav = " ".join(
        f'<a href="{_attr(href)}"{active_attr if key == active else ""}>{escape(text)}</a>'
        for href, text, key in NAV_ITEMS
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · photcal</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/app.css">{head_extra}
</head><body>
<a href="#main" class="skip">Skip to the content</a>
<header><a href="/" class="brand">photcal</a><nav aria-label="site">{nav}</nav><div class="user">{who}</div></header>
<main id="main" tabindex="-1"><h1>{escape(title)}</h1>
{content}
</main></body></html>"""


#: what an error page's title says, by HTTP status
ERROR_TITLES = {
    400: "Not understood",
    401: "Log in first",
    403: "Not allowed",
    404: "Not found",
    405: "Not served that way",
    409: "Already there",
    413: "Too large",
    429: "Too many requests",
}


def error_content(message: str, code: str, status: int) -> str:
    """An error page's content: the whole message, its stable code and ways on (escaped here)."""
    return (
        f'<p class="msg error" role="alert" id="msg-error">{escape(message)}</p>'
        f'<p class="hint">error <code id="error-code">{escape(str(code))}</code> (HTTP {int(status)})</p>'
        '<p id="error-ways">Go on: <a href="/alerts">the alerts</a> · <a href="/followup">follow-up data</a> · '
        '<a href="/upload">upload a frame</a> · <a href="/api/docs">the API</a></p>'
    )


def error_title(status: int) -> str:
    return ERROR_TITLES.get(status, "Something went wrong" if status >= 500 else "Refused")


def error_page(message: str, code: str, status: int, *, who: str = UNKNOWN_VISITOR) -> str:
    return frame(error_title(status), error_content(message, code, status), who=who)


def is_html_route(path: str) -> bool:
    """A path a browser reads as a page: not the JSON API, the CPCS endpoints, the plots or the probes
    (those answer JSON, or an image, whoever asks)."""
    if path.startswith(("/api/v1/", "/plots/", "/static/")) or path in ("/healthz", "/readyz", "/metrics"):
        return False
    tail = path.removeprefix("/followup") if path.startswith("/followup/") else path
    return not tail.startswith(("/cgi/", "/get_alert_lc_data", "/list_of_alerts"))


def wants_page(path: str, accept: str) -> bool:
    """An error on ``path`` answers a page: an HTML route asked by a browser (its Accept starts text/html)."""
    return is_html_route(path) and accept.split(",", 1)[0].strip().lower().startswith("text/html")
