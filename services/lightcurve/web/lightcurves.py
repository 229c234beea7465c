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
from shared.db.uploads import image_links_of


def _sexagesimal(ra: float, dec: float) -> str:
    h = ra / 15.0
    hh, mm = int(h), int((h - int(h)) * 60)
    ss = ((h - hh) * 60 - mm) * 60
    sign = "-" if dec < 0 else "+"
    d = abs(dec)
    dd, dm = int(d), int((d - int(d)) * 60)
    ds = ((d - dd) * 60 - dm) * 60
    return f"{hh:02d}:{mm:02d}:{ss:05.2f} {sign}{dd:02d}:{dm:02d}:{ds:04.1f}"


def _point_rows(points: list[dict], plots: dict[str, str]) -> str:
    """The light curve's table body, one string (thousands of rows: per-point work kept to string formatting).

    ``plots``: the calibration plot's path on this origin by upload id (a point without one has no link).
    """
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
        plot = plots.get(p.get("upload_id") or "")
        plot_cell = f'<a href="{pages.attr(plot)}" class="plot">plot</a>' if plot else ""
        append(
            f'<tr><td class="num">{num(p["mjd"], 5)}</td><td>{when}</td>'
            f"<td>{escape(band) if band else ''}</td><td>{escape(survey) if survey else ''}</td>"
            f'<td class="num">{mag}</td><td class="num">{err}</td><td class="num">{lim}</td>'
            f'<td class="observatory">{escape(p["observatory"])}</td><td class="num">{num(p["exptime"], 1)}</td>'
            f'<td class="comment">{escape(comment) if comment else ""}</td><td>{plot_cell}</td>'
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


async def _plots_of(request: web.Request, points: list[dict]) -> dict[str, str]:
    """The calibration plot of every uploaded point (imported ones have none), as paths on this origin."""
    upload_ids = [str(p["upload_id"]) for p in points if p.get("upload_id") and not p.get("imported")]
    try:
        links = await image_links_of(request.app["db"], upload_ids)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    plots = {upload_id: pages.relative_plot(link) for upload_id, link in links.items()}
    return {upload_id: path for upload_id, path in plots.items() if path}


async def _rendered(request: web.Request, data: dict) -> tuple[str, str]:
    item = _RENDERED.get(data["ivorn"])
    if item is None or item[0] is not data:
        plots = await _plots_of(request, data["points"])
        item = (data, _chart_island(data), _point_rows(data["points"], plots))
        _RENDERED.pop(data["ivorn"], None)
        _RENDERED[data["ivorn"]] = item
        while len(_RENDERED) > 32:
            _RENDERED.pop(next(iter(_RENDERED)))
    return item[1], item[2]


def _systems(points: list[dict]) -> str:
    """A line per survey shown: the magnitude system (Vega or AB) of each of its bands."""
    lines = []
    for survey, bands in views.magnitude_systems(points):
        systems = sorted({system for _band, system in bands})
        if len(systems) == 1:
            text = f"{', '.join(b for b, _ in bands)}: {systems[0]}"
        else:
            text = "; ".join(f"{b}: {system}" for b, system in bands)
        lines.append(f"<li><b>{escape(survey)}</b> {escape(text)}</li>")
    if not lines:
        return ""
    return (
        '<div id="mag-systems"><h2>Magnitude systems</h2><p class="hint">each point is in its reference '
        "survey's system: Vega magnitudes are relative to Vega, AB magnitudes to 3631 Jy</p>"
        f"<ul>{''.join(lines)}</ul></div>"
    )


def _fold_form(request: web.Request, ivorn: str) -> str:
    period, t0 = request.query.get("period", "")[:40], request.query.get("t0", "")[:40]
    unfold = f" {link(pages.lightcurve_href(ivorn), 'back to time', id='unfold')}" if "period" in request.query else ""
    return (
        '<form id="fold-form" class="fold" method="get">'
        '<label for="period">period (days)</label> '
        f'<input id="period" name="period" type="text" inputmode="decimal" size="10" value="{pages.attr(period)}"> '
        '<label for="t0">T0 (MJD)</label> '
        f'<input id="t0" name="t0" type="text" inputmode="decimal" size="11" value="{pages.attr(t0)}" '
        'placeholder="first point"> <button type="submit" id="fold-submit">fold</button>'
        f'{unfold} <span id="fold-msg" class="hint" role="status"></span></form>'
    )


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
    heads = ("MJD", "UTC", "Filter", "Survey", "Mag", "Err", "Limit", "Observatory", "Exp (s)", "Comment", "Plot", "id")
    island, table_rows = await _rendered(request, data)
    count = f"{len(points)} point{'' if len(points) == 1 else 's'}"
    limits = f"{n_limits} limit{'' if n_limits == 1 else 's'}"
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
<p class="meta"><span id="lc-count">{count}</span> ({limits}) """
        f"""in {len(filters)} filter(s): {escape(", ".join(filters))} ·
{link(csv_href, "download CSV", id="csv-link", download="")} · {link(json_href, "JSON", id="json-link")} ·
{link("/upload?" + urlencode({"ivorn": data["ivorn"]}), "upload a frame of this event")} ·
{link(query_href("/followup", {"ivorn": data["ivorn"]}), "follow-up list")}</p>
<div class="chart-box">
<div class="chart-tools"><button type="button" id="zoom-in" aria-label="zoom in">zoom +</button>
<button type="button" id="zoom-out" aria-label="zoom out">zoom −</button>
<button type="button" id="reset-zoom">reset zoom</button>
<button type="button" id="export-png">save PNG</button> <button type="button" id="export-svg">save SVG</button>
<span class="hint">click a point: its datapoint page · drag: zoom to a box · wheel: zoom · shift+drag: pan · """
        f"""double-click: reset</span></div>
{_fold_form(request, data["ivorn"])}
<div class="chart-toggles"><fieldset id="band-toggles"></fieldset><fieldset id="obs-toggles"></fieldset></div>
<div id="chart" aria-label="light curve plot"></div>
<noscript><p>The plot needs JavaScript; every point is in the table below.</p></noscript>
</div>
{island}
{_systems(points)}
<h2>Datapoints</h2>
<div class="table-scroll"><table class="list" id="points-table"><thead><tr>"""
        f"""{"".join(f"<th>{escape(h)}</th>" for h in heads)}</tr></thead>
<tbody>{table_rows}</tbody></table></div>"""
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
