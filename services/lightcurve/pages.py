"""HTML building blocks of the observer's pages. Every value from a user or the database is escaped here.

No template engine: small functions that return strings, each escaping what it
is given (``_cell``, ``attr``, ``link``). Scripts are static files only (the
pages send a Content-Security-Policy without inline scripts); data for a
script travels in ``<script type="application/json">``, made safe by
:func:`json_island`.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from html import escape
from urllib.parse import quote, urlencode

from shared import webframe

#: pages run only the app's own static scripts; images are the app's own plots
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
MJD_EPOCH = datetime(1858, 11, 17, tzinfo=UTC)


def attr(value) -> str:
    """A value for a double-quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return escape(str(value))


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return escape(str(value))


def mjd_date(mjd: float | None, with_time: bool = False) -> str:
    """Calendar date (UTC) of an MJD."""
    if mjd is None:
        return ""
    try:
        when = MJD_EPOCH + timedelta(days=float(mjd))
    except (OverflowError, ValueError):
        return ""
    return when.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


_EPOCH_ORDINAL = MJD_EPOCH.date().toordinal()
_DAY_CACHE: dict[int, str] = {}


def mjd_datetimes(mjds) -> list[str]:
    """``mjd_date(mjd, True)`` of many MJDs at once (a light curve's table).

    The same text, without strftime per point.
    """
    out: list[str] = []
    append = append_out = out.append
    days = _DAY_CACHE
    for mjd in mjds:
        try:
            delta = timedelta(days=float(mjd))
            day = days.get(delta.days)
            if day is None:
                if len(days) > 100_000:
                    days.clear()
                when = date.fromordinal(_EPOCH_ORDINAL + delta.days)
                day = days[delta.days] = when.isoformat() if when.year >= 1000 else when.strftime("%Y-%m-%d")
        except (OverflowError, ValueError, TypeError):
            append_out(mjd_date(mjd, True) if mjd is not None else "")
            continue
        minutes = delta.seconds // 60
        append(f"{day} {minutes // 60:02d}:{minutes % 60:02d}")
    return out


def lightcurve_href(ivorn: str) -> str:
    return "/lightcurve/" + quote(ivorn, safe="")


def datapoint_href(followup_id: int | None) -> str:
    """The datapoint page: its calibration, plot, provenance and history."""
    return f"/datapoints/{int(followup_id or 0)}"


def relative_plot(image_link: str | None) -> str | None:
    """A plot's (or cut-out's) path on this origin: the gateway serves them at /plots/NAME.png, whatever base
    URL the answer recorded; None for anything else (the pages show only the app's own images)."""
    if not image_link or "/plots/" not in image_link:
        return None
    name = image_link.rsplit("/plots/", 1)[1]
    stem = name[:-4].removesuffix("-cutout")
    return "/plots/" + name if name.endswith(".png") and stem.isalnum() else None


def safe_url(url: str | None) -> str | None:
    """A URL good for an href: http(s) only (a ``javascript:`` URL is shown as text, never linked)."""
    if not url:
        return None
    text = url.strip()
    if text.lower().startswith(("http://", "https://")) and text.isprintable():
        return text
    return None


def link(href: str, text: str, **attrs: str) -> str:
    extra = "".join(f' {k.rstrip("_").replace("_", "-")}="{attr(v)}"' for k, v in attrs.items())
    return f'<a href="{attr(href)}"{extra}>{escape(text)}</a>'


def query_href(path: str, params: dict) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "", False)}
    return path + ("?" + urlencode(clean) if clean else "")


def json_island(element_id: str, data) -> str:
    """Data for a script, inert and unbreakable: ``<`` ``>`` ``&`` as JSON escapes, so no ``</script>``."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return f'<script type="application/json" id="{attr(element_id)}">{text}</script>'


def table(rows: list[dict], columns: tuple[str, ...], link_column: str | None = None) -> str:
    """A plain table of ``columns`` (used by the CPCS HTML answers too)."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            text = _cell(row.get(c))
            if c == link_column and row.get("ivorn"):
                text = f'<a href="{attr(lightcurve_href(row["ivorn"]))}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(
    title: str,
    content: str,
    *,
    user: str | None = None,
    csrf: str | None = None,
    scripts: tuple[str, ...] = (),
    styles: tuple[str, ...] = (),
    active: str = "",
) -> str:
    """The layout (shared/webframe.py): navigation, who is logged in (with a log-out button), the content."""
    active_attr = ' class="active"'
    if user:
        who = (
            f'<span class="who">Observatory: <b>{escape(user)}</b></span> '
            f'<a href="{attr(observatory_href(user))}" id="my-observatory"'
            f"{active_attr if active == 'observatory' else ''}>my observatory</a> "
            f'<a href="/uploads" id="my-uploads"{active_attr if active == "uploads" else ""}>my uploads</a> '
            f'<a href="/subscriptions" id="my-subscriptions"'
            f"{active_attr if active == 'subscriptions' else ''}>my webhooks</a> "
            '<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" '
            f'value="{attr(csrf)}">'
            '<button type="submit" class="linklike" id="logout">log out</button></form>'
        )
    else:
        who = webframe.LOGGED_OUT
    head_extra = "".join(f'<link rel="stylesheet" href="{attr(s)}">' for s in styles)
    head_extra += "".join(f'<script src="{attr(s)}" defer></script>' for s in scripts)
    return webframe.frame(title, content, who=who, active=active, head_extra=head_extra)


def observatory_href(name_or_id: str) -> str:
    """An observatory's page: its uploads, zero points and limits over time, its failed uploads."""
    return "/observatories/" + quote(name_or_id, safe="")


def message_box(text: str | None, kind: str = "info") -> str:
    if not text:
        return ""
    role = "alert" if kind == "error" else "status"
    return f'<p class="msg {attr(kind)}" role="{role}" id="msg-{attr(kind)}">{escape(text)}</p>'


def pager(path: str, params: dict, page_no: int, pages: int, total: int, noun: str) -> str:
    if total == 0:
        return f'<p class="pager">No {escape(noun)}.</p>'
    parts = [f'<span class="count">{total:,} {escape(noun)} · page {page_no} of {pages}</span>']
    if page_no > 1:
        parts.append(link(query_href(path, params | {"page": 1}), "« first"))
        parts.append(link(query_href(path, params | {"page": page_no - 1}), "‹ previous", rel="prev", id="prev-page"))
    if page_no < pages:
        parts.append(link(query_href(path, params | {"page": page_no + 1}), "next ›", rel="next", id="next-page"))
        parts.append(link(query_href(path, params | {"page": pages}), "last »"))
    return '<p class="pager">' + " ".join(parts) + "</p>"
