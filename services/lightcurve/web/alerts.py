"""The alert list: search, sort, page."""

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
    mjd_date,
    query_href,
)
from services.lightcurve.web.common import MAX_PER_PAGE, PER_PAGE, clamped_int, render

COLUMN_TITLES = {
    "name": "Name",
    "ivorn": "ivorn",
    "ra": "RA (°)",
    "dec": "Dec (°)",
    "url": "Link",
    "n_datapoints": "Datapoints",
    "last_mag": "Last mag",
    "last_mjd": "Last update",
}


async def alerts_page(request: web.Request) -> web.Response:
    rows = await handlers.summary_rows(request)
    q = request.query.get("q", "")[:200]
    with_data = request.query.get("with_data") in {"1", "true"}
    sort = request.query.get("sort", "id")
    if sort not in summary.SORT_KEYS:
        sort = "id"
    descending = request.query.get("dir", "desc" if sort in ("id", "last_mjd", "n_datapoints") else "asc") == "desc"
    per_page = clamped_int(request.query.get("per_page"), PER_PAGE, 10, MAX_PER_PAGE)
    selected = summary.select(rows, with_data=with_data, q=q, sort=sort, descending=descending)
    total = len(selected)
    n_pages = max(1, math.ceil(total / per_page))
    page_no = clamped_int(request.query.get("page"), 1, 1, n_pages)
    shown = selected[(page_no - 1) * per_page : page_no * per_page]
    base = {
        "with_data": "1" if with_data else None,
        "q": q or None,
        "per_page": per_page if per_page != PER_PAGE else None,
    }
    params = base | {"sort": sort, "dir": "desc" if descending else "asc"}

    def head(col: str) -> str:
        title = COLUMN_TITLES[col]
        if col == "url":
            return f"<th>{escape(title)}</th>"
        new_dir = (
            "asc"
            if (col == sort and descending)
            else "desc"
            if col == sort
            else ("desc" if col in ("n_datapoints", "last_mjd") else "asc")
        )
        mark = (" ▼" if descending else " ▲") if col == sort else ""
        aria = f' aria-sort="{"descending" if descending else "ascending"}"' if col == sort else ""
        sort_link = link(
            query_href("/alerts", base | {"sort": col, "dir": new_dir}), title + mark, class_="sort", data_col=col
        )
        return f"<th{aria}>{sort_link}</th>"

    body = []
    for r in shown:
        url = pages.safe_url(r.get("url"))
        url_cell = link(url, "link", rel="noopener nofollow") if url else escape(r.get("url") or "")
        last = ""
        if r["last_mag"] is not None:
            last = (">" if r.get("last_is_limit") else "") + fmt(r["last_mag"], 2)
        last_mjd = (
            "" if r["last_mjd"] is None else f"{fmt(r['last_mjd'], 3)} <small>{escape(mjd_date(r['last_mjd']))}</small>"
        )
        body.append(
            "<tr>"
            f"<td>{link(lightcurve_href(r['ivorn']), r['name'], class_='lc')}</td>"
            f'<td class="ivorn">{escape(r["ivorn"])}</td>'
            f'<td class="num">{fmt(r["ra"], 5)}</td><td class="num">{fmt(r["dec"], 5)}</td>'
            f"<td>{url_cell}</td>"
            f'<td class="num">{r["n_datapoints"]}</td><td class="num">{last}</td><td>{last_mjd}</td>'
            "</tr>"
        )
    columns = ("name", "ivorn", "ra", "dec", "url", "n_datapoints", "last_mag", "last_mjd")
    search = (
        f"""<form method="get" action="/alerts" class="search" id="alert-search">
<input type="search" name="q" value="{attr(q)}" placeholder="name or ivorn" aria-label="search alerts" id="q">
{'<input type="hidden" name="with_data" value="1">' if with_data else ""}
<input type="hidden" name="sort" value="{attr(sort)}"><input type="hidden" name="dir" """
        f"""value="{"desc" if descending else "asc"}">
<button type="submit">Search</button>
<label class="check"><a """
        f"""href="{attr(query_href("/alerts", params | {"with_data": None if with_data else "1", "page": None}))}" """
        f"""id="toggle-with-data">{"show all alerts" if with_data else "only alerts with data"}</a></label>
</form>"""
    )
    pager = pages.pager("/alerts", params, page_no, n_pages, total, "alerts")
    table = (
        f'<table class="list" id="alerts-table"><thead><tr>{"".join(head(c) for c in columns)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    title = "Alerts with data" if with_data else "Alerts"
    return await render(request, title, search + pager + table + pager, active="with_data" if with_data else "alerts")
