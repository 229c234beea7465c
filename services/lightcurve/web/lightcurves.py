"""An event's light curve: the plot, its datapoints' table, downloads."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve import handlers, pages, views
from services.lightcurve.pages import escape, fmt, link, query_href
from services.lightcurve.web.common import render
from shared.db.alerts import get_alert_url
from shared.db.client import unavailable


def _sexagesimal(ra: float, dec: float) -> str:
    h = ra / 15.0
    hh, mm = int(h), int((h - int(h)) * 60)
    ss = ((h - hh) * 60 - mm) * 60
    sign = "-" if dec < 0 else "+"
    d = abs(dec)
    dd, dm = int(d), int((d - int(d)) * 60)
    ds = ((d - dd) * 60 - dm) * 60
    return f"{hh:02d}:{mm:02d}:{ss:05.2f} {sign}{dd:02d}:{dm:02d}:{ds:04.1f}"


def _point_rows(points: list[dict]) -> str:
    """The light curve's table body, one string (thousands of rows: per-point work kept to string formatting)."""
    num = fmt
    out: list[str] = []
    append = out.append
    for p, when in zip(points, pages.mjd_datetimes(p["mjd"] for p in points)):
        mag_value, err_value, limit = p["mag"], p["mag_err"], p["limit_mag"]
        if err_value is not None and mag_value is not None:
            mag, err, lim = num(mag_value, 3), num(err_value, 3), ""
        else:
            mag, err, lim = "", "", ("&gt; " + num(limit, 2)) if limit is not None else ""
        band, survey, comment = p["filter"], p["survey"], p["comment"]
        append(
            f'<tr><td class="num">{num(p["mjd"], 5)}</td><td>{when}</td>'
            f"<td>{escape(band) if band else ''}</td><td>{escape(survey) if survey else ''}</td>"
            f'<td class="num">{mag}</td><td class="num">{err}</td><td class="num">{lim}</td>'
            f'<td>{escape(p["observatory"])}</td><td class="num">{num(p["exptime"], 1)}</td>'
            f'<td class="comment">{escape(comment) if comment else ""}</td>'
            f'<td class="num"><a href="/datapoints/{int(p["followup_id"] or 0)}" class="dp">'
            f"{p['followup_id']}</a></td></tr>"
        )
    return "".join(out)


def _chart_island(data: dict) -> str:
    return pages.json_island(
        "lc-data", {"name": data["name"], "ivorn": data["ivorn"]} | views.chart_data(data["points"])
    )


#: ivorn -> (the light curve data it was rendered from, plot data island, table rows): reused while
#: handlers.lightcurve_of answers the same (cached) object, i.e. while the data have not changed
_RENDERED: dict[str, tuple[dict, str, str]] = {}


def _rendered(data: dict) -> tuple[str, str]:
    item = _RENDERED.get(data["ivorn"])
    if item is None or item[0] is not data:
        item = (data, _chart_island(data), _point_rows(data["points"]))
        _RENDERED.pop(data["ivorn"], None)
        _RENDERED[data["ivorn"]] = item
        while len(_RENDERED) > 32:
            _RENDERED.pop(next(iter(_RENDERED)))
    return item[1], item[2]


async def lightcurve_page(request: web.Request) -> web.Response:
    ivorn = request.match_info["ivorn"]  # decoded once by the router; never again ("#b%42" is not "#bB")
    data = await handlers.lightcurve_of(request, ivorn)
    points = data["points"]
    href = quote(data["ivorn"], safe="")
    csv_href = f"/api/v1/lightcurves/{href}?format=csv"
    json_href = f"/api/v1/lightcurves/{href}"
    alert = await _alert_url(request, data["ivorn"])
    url = pages.safe_url(alert)
    filters = sorted({p["filter"] or "?" for p in points})
    n_limits = sum(1 for p in points if p["mag_err"] is None)
    heads = ("MJD", "UTC", "Filter", "Survey", "Mag", "Err", "Limit", "Observatory", "Exp (s)", "Comment", "id")
    island, table_rows = _rendered(data)
    ext = (
        f" · {link(url, 'event page', rel='noopener nofollow', id='event-url')}"
        if url
        else (f' · <span id="event-url">{escape(alert)}</span>' if alert else "")
    )
    content = (
        f"""
<p class="meta"><span class="ivorn" id="lc-ivorn">{escape(data["ivorn"])}</span> · RA {fmt(data["ra"], 5)}°, Dec """
        f"""{fmt(data["dec"], 5)}°
({escape(_sexagesimal(data["ra"], data["dec"]))}){ext}</p>
<p class="meta"><span id="lc-count">{len(points)} point{"" if len(points) == 1 else "s"}</span> ({n_limits} limits) """
        f"""in {len(filters)} filter(s): {escape(", ".join(filters))} ·
{link(csv_href, "download CSV", id="csv-link", download="")} · {link(json_href, "JSON", id="json-link")} ·
{link("/upload?" + urlencode({"ivorn": data["ivorn"]}), "upload a frame of this event")} ·
{link(query_href("/followup", {"ivorn": data["ivorn"]}), "follow-up list")}</p>
<div class="chart-box">
<div class="chart-tools"><button type="button" id="reset-zoom">reset zoom</button>
<span class="hint">click a point: its datapoint page · drag: zoom to a box · wheel: zoom · shift+drag: pan · """
        f"""double-click: reset · click a filter in the legend to hide it</span></div>
<div id="chart" aria-label="light curve plot"></div>
<noscript><p>The plot needs JavaScript; every point is in the table below.</p></noscript>
</div>
{island}
<h2>Datapoints</h2>
<table class="list" id="points-table"><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in heads)}</tr></thead>
<tbody>{table_rows}</tbody></table>"""
    )
    return await render(
        request,
        f"Light curve of {data['name']}",
        content,
        scripts=("/static/vendor/uPlot.iife.min.js", "/static/lightcurve.js"),
        styles=("/static/vendor/uPlot.min.css",),
    )


async def _alert_url(request: web.Request, ivorn: str) -> str | None:
    try:
        return await get_alert_url(request.app["db"], ivorn)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
