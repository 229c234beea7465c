"""The alert list: search (name, TNS name, ivorn or a position), filter (class, with data, observed by my
observatory), sort, page; the imported metadata as columns."""

from __future__ import annotations

import math

from aiohttp import web

from services.lightcurve import handlers, pages, summary
from services.lightcurve.pages import (
    attr,
    escape,
    fmt,
    lightcurve_href,
    link,
    message_box,
    mjd_date,
    query_href,
)
from services.lightcurve.web.common import MAX_PER_PAGE, PER_PAGE, clamped_int, current_user, render
from shared.coords import DEFAULT_CONE_RADIUS_DEG, parse_cone

COLUMN_TITLES = {
    "name": "Name",
    "tns_name": "TNS",
    "ra": "RA (°)",
    "dec": "Dec (°)",
    "discovery_date": "Discovered (UTC)",
    "alert_mag": "Alert mag",
    "alert_class": "Class",
    "n_datapoints": "Datapoints",
    "last_mag": "Last mag (filter)",
    "last_mjd": "Last update",
    "alert_comment": "Comment",
    "url": "Link",
}
COLUMNS = tuple(COLUMN_TITLES)
#: columns that do not sort (free text, a link)
UNSORTED = {"url", "alert_comment"}
#: columns whose first click sorts high to low
DESCENDING_FIRST = {"n_datapoints", "last_mjd", "discovery_date", "id"}
TRUE = {"1", "true", "on"}


def _last_mag(r: dict) -> str:
    if r["last_mag"] is None:
        return ""
    text = (">" if r.get("last_is_limit") else "") + fmt(r["last_mag"], 2)
    band = r.get("last_filter") or "?"
    survey = f" {r['last_survey']}" if r.get("last_survey") else ""
    return f'{text} <small class="band" title="filter (survey)">{escape(band)}{escape(survey)}</small>'


def _row(r: dict) -> str:
    url = pages.safe_url(r.get("url"))
    url_cell = link(url, "link", rel="noopener nofollow") if url else escape(r.get("url") or "")
    last_mjd = (
        "" if r["last_mjd"] is None else f"{fmt(r['last_mjd'], 3)} <small>{escape(mjd_date(r['last_mjd']))}</small>"
    )
    return (
        f'<tr data-ivorn="{attr(r["ivorn"])}">'
        f"<td>{link(lightcurve_href(r['ivorn']), r['name'], class_='lc', title=r['ivorn'])}</td>"
        f'<td class="tns">{escape(r.get("tns_name") or "")}</td>'
        f'<td class="num">{fmt(r["ra"], 5)}</td><td class="num">{fmt(r["dec"], 5)}</td>'
        f'<td class="num">{escape(r.get("discovery_date") or "")}</td>'
        f'<td class="num">{fmt(r.get("alert_mag"), 2)}</td>'
        f'<td class="class">{escape(r.get("alert_class") or "")}</td>'
        f'<td class="num">{r["n_datapoints"]}</td><td class="num last-mag">{_last_mag(r)}</td><td>{last_mjd}</td>'
        f'<td class="comment">{escape(r.get("alert_comment") or "")}</td>'
        f"<td>{url_cell}</td>"
        "</tr>"
    )


async def alerts_page(request: web.Request) -> web.Response:
    rows = await handlers.summary_rows(request)
    user = await current_user(request)
    q = request.query.get("q", "")[:200]
    with_data = request.query.get("with_data") in TRUE
    mine = request.query.get("mine") in TRUE
    alert_class = request.query.get("class", "")[:100]
    sort = request.query.get("sort", "id")
    if sort not in summary.SORT_KEYS:
        sort = "id"
    descending = request.query.get("dir", "desc" if sort in DESCENDING_FIRST else "asc") == "desc"
    per_page = clamped_int(request.query.get("per_page"), PER_PAGE, 10, MAX_PER_PAGE)
    notes = ""
    if mine and user is None:
        notes += message_box(
            "“Observed by my observatory” needs you to log in: showing every observatory's alerts.", "warning"
        )
    selected = summary.select(
        rows,
        with_data=with_data,
        q=q,
        sort=sort,
        descending=descending,
        alert_class=alert_class,
        observatory_id=user.observatory_id if mine and user is not None else None,
    )
    cone = parse_cone(q) if q.strip() else None
    if cone is not None:
        ra, dec, radius = cone
        notes += message_box(f"Alerts within {radius:g}° of RA {ra:.5f}°, Dec {dec:+.5f}°.")
    total = len(selected)
    n_pages = max(1, math.ceil(total / per_page))
    page_no = clamped_int(request.query.get("page"), 1, 1, n_pages)
    shown = selected[(page_no - 1) * per_page : page_no * per_page]
    base = {
        "with_data": "1" if with_data else None,
        "mine": "1" if mine else None,
        "class": alert_class or None,
        "q": q or None,
        "per_page": per_page if per_page != PER_PAGE else None,
    }
    params = base | {"sort": sort, "dir": "desc" if descending else "asc"}

    def head(col: str) -> str:
        title = COLUMN_TITLES[col]
        if col in UNSORTED:
            return f"<th>{escape(title)}</th>"
        if col == sort:
            new_dir = "asc" if descending else "desc"
        else:
            new_dir = "desc" if col in DESCENDING_FIRST else "asc"
        mark = (" ▼" if descending else " ▲") if col == sort else ""
        aria = f' aria-sort="{"descending" if descending else "ascending"}"' if col == sort else ""
        sort_link = link(
            query_href("/alerts", base | {"sort": col, "dir": new_dir}), title + mark, class_="sort", data_col=col
        )
        return f"<th{aria}>{sort_link}</th>"

    class_options = "".join(
        f'<option value="{attr(c)}"{" selected" if c.lower() == alert_class.lower() else ""}>{escape(c)}</option>'
        for c in summary.classes(rows)
    )
    mine_box = (
        f'<label class="check"><input type="checkbox" name="mine" value="1" id="mine"{" checked" if mine else ""}>'
        " observed by my observatory</label>"
        if user is not None
        else '<span class="hint">log in to list the alerts your observatory observed</span>'
    )
    search = f"""<form method="get" action="/alerts" class="search" id="alert-search" role="search">
<label for="q" class="sr-only">Search alerts</label>
<input type="search" name="q" value="{attr(q)}" id="q" aria-describedby="q-hint"
 placeholder="name, TNS name, or RA Dec [radius°]">
<label for="class">Class</label><select name="class" id="class"><option value="">any</option>{class_options}</select>
<label class="check"><input type="checkbox" name="with_data" value="1" id="with_data"{" checked" if with_data else ""}>
 only with data</label>
{mine_box}
<input type="hidden" name="sort" value="{attr(sort)}">
<input type="hidden" name="dir" value="{"desc" if descending else "asc"}">
<button type="submit" id="alert-search-submit">Search</button>
</form>
<p class="hint" id="q-hint">A position finds the alerts in a cone: <code>12:34:56.7 -12:34:56</code> or
<code>188.736 -12.582 0.1</code> (RA Dec, then the radius in degrees; {DEFAULT_CONE_RADIUS_DEG:g}° if none).</p>"""
    pager = pages.pager("/alerts", params, page_no, n_pages, total, "alerts")
    table = (
        f'<div class="table-wrap"><table class="list" id="alerts-table"><thead><tr>'
        f"{''.join(head(c) for c in COLUMNS)}</tr></thead>"
        f"<tbody>{''.join(_row(r) for r in shown)}</tbody></table></div>"
    )
    title = "Alerts with data" if with_data else "Alerts"
    return await render(
        request, title, search + notes + pager + table + pager, active="with_data" if with_data else "alerts"
    )
