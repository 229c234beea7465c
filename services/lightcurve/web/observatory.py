"""The observatories: a list, and each one's page (``/observatories/{id or name}``): its uploads over time,
the zero point and limiting magnitude of its stored calibrations against time, per filter, and (to the
observatory itself, logged in) its failed uploads with their reasons."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve.pages import (
    datapoint_href,
    escape,
    fmt,
    lightcurve_href,
    link,
    mjd_date,
    observatory_href,
    query_href,
    relative_plot,
)
from services.lightcurve.web.common import current_user, render
from services.lightcurve.web.svgchart import Series, bars, scatter
from shared.contracts.errors import ErrorCode
from shared.db.calibrations import zeropoints_of
from shared.db.client import unavailable
from shared.db.datapoints import calibrations_of_observatory
from shared.db.observatories import Observatory, find_observatory, list_observatories
from shared.db.uploads import upload_history
from shared.errors import NotFound
from shared.usecases.uploads import list_uploads

#: failed uploads listed on the page (the rest: "my uploads", filtered by state)
FAILED_SHOWN = 50


async def observatories_page(request: web.Request) -> web.Response:
    try:
        observatories = await list_observatories(request.app["db"])
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    rows = "".join(
        f"<tr><td>{link(observatory_href(o.observatory_id), o.name, class_='obs')}</td>"
        f'<td class="num">{fmt(o.lon, 4)}</td><td class="num">{fmt(o.lat, 4)}</td>'
        f"<td>{escape(', '.join(o.filters))}</td></tr>"
        for o in observatories
        if not o.revoked
    )
    table = (
        '<div class="table-wrap"><table class="list" id="observatories-table"><thead><tr><th>Observatory</th>'
        "<th>Longitude (°E)</th><th>Latitude (°)</th><th>Filters</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )
    return await render(request, "Observatories", table, active="observatories")


def _month(when) -> str | None:
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            return None
    if not isinstance(when, datetime):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).strftime("%Y-%m")


def _months_between(first: str, last: str) -> list[str]:
    year, month = map(int, first.split("-"))
    out: list[str] = []
    while f"{year:04d}-{month:02d}" <= last and len(out) < 600:
        out.append(f"{year:04d}-{month:02d}")
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return out


def uploads_chart(history: list[dict]) -> str:
    """Uploads per month (of their queueing, UTC), stacked by outcome."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for doc in history:
        month = _month(doc.get("queued_at"))
        if month is None:
            continue
        state = doc.get("state") or "queued"
        outcome = "dry run" if state == "done" and doc.get("dry_run") else {"done": "stored"}.get(state, state)
        counts[month][outcome] += 1
    if not counts:
        return '<p class="hint" id="uploads-chart">No uploads yet.</p>'
    months = _months_between(min(counts), max(counts))
    outcomes = [o for o in ("stored", "dry run", "failed", "queued") if any(c[o] for c in counts.values())]
    stacks = {o: [counts[m][o] for m in months] for o in outcomes}
    return bars(months, stacks, title="Uploads per month (UTC), by outcome", chart_id="uploads-chart")


def calibration_charts(points: list[dict], zeropoints: dict[str, float]) -> tuple[str, str]:
    """Zero point and limiting magnitude against MJD, a series per band (survey and filter)."""
    zp: dict[str, Series] = {}
    lim: dict[str, Series] = {}
    for p in points:
        band = f"{p.get('filter') or '?'}" + (f" ({p['survey']})" if p.get("survey") else "")
        mjd = p.get("mjd")
        if mjd is None:
            continue
        zero = p.get("zeropoint")
        if zero is None:
            zero = zeropoints.get(str(p.get("upload_id")))
        if zero is not None:
            s = zp.setdefault(band, Series(band))
            s.x.append(float(mjd))
            s.y.append(float(zero))
            s.err.append(p.get("zeropoint_err"))
        if p.get("limit_mag") is not None:
            s = lim.setdefault(band, Series(band))
            s.x.append(float(mjd))
            s.y.append(float(p["limit_mag"]))
            s.err.append(None)
    zp_chart = scatter(
        [zp[k] for k in sorted(zp)],
        x_label="MJD",
        y_label="zero point (mag)",
        title="Zero point of each stored calibration against time, per filter",
        chart_id="zeropoint-chart",
    )
    lim_chart = scatter(
        [lim[k] for k in sorted(lim)],
        x_label="MJD",
        y_label="limiting magnitude",
        title="Limiting magnitude of each stored calibration against time, per filter (deeper is up)",
        chart_id="limit-chart",  # a fainter limit is a deeper frame: up, as the number grows
    )
    return zp_chart, lim_chart


def _failed_table(uploads) -> str:
    rows = []
    for u in uploads:
        plot = relative_plot(u.image_link)
        event = link(lightcurve_href(u.ivorn), u.alert_name or u.ivorn.rsplit("#", 1)[-1]) if u.ivorn else ""
        queued = u.queued_at.strftime("%Y-%m-%d %H:%M") if u.queued_at else ""
        rows.append(
            f'<tr data-upload-id="{escape(u.upload_id)}"><td class="num">{escape(queued)}</td><td>{event}</td>'
            f'<td class="num">{fmt(u.mjd, 5)}</td><td><code>{escape(u.error or "")}</code></td>'
            f'<td class="comment">{escape(u.message or "")}</td>'
            f"<td>{link(plot, 'plot', class_='plot') if plot else ''}</td></tr>"
        )
    if not rows:
        return '<p id="failed-none">No failed uploads.</p>'
    return (
        '<div class="table-wrap"><table class="list" id="failed-table"><thead><tr><th>Queued (UTC)</th><th>Event</th>'
        "<th>MJD</th><th>Error</th><th>Reason</th><th>Plot</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _recent_table(points: list[dict]) -> str:
    newest = sorted(points, key=lambda p: p.get("mjd") or 0, reverse=True)[:10]
    if not newest:
        return ""
    rows = "".join(
        f"<tr><td>{link(datapoint_href(p.get('followup_id')), str(p.get('followup_id')), class_='dp')}</td>"
        f'<td class="num">{fmt(p.get("mjd"), 5)} <small>{escape(mjd_date(p.get("mjd"), True))}</small></td>'
        f"<td>{escape(p.get('filter') or '')} <small>{escape(p.get('survey') or '')}</small></td>"
        f'<td class="num">{fmt(p.get("zeropoint"), 3)}</td><td class="num">{fmt(p.get("limit_mag"), 2)}</td></tr>'
        for p in newest
    )
    return (
        "<h2>Latest calibrations</h2>"
        '<div class="table-wrap"><table class="list" id="recent-table"><thead><tr><th>Datapoint</th>'
        "<th>MJD (UTC)</th><th>Band</th><th>Zero point</th><th>Limit</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )


async def observatory_page(request: web.Request) -> web.Response:
    db = request.app["db"]
    key = request.match_info["key"]
    viewer = await current_user(request)
    try:
        observatory: Observatory | None = await find_observatory(db, key)
        if observatory is None or observatory.revoked:
            raise NotFound(
                f"no observatory {key[:100]}: the list of observatories is at /observatories",
                code=ErrorCode.NOT_FOUND,
            )
        points = await calibrations_of_observatory(db, observatory.observatory_id)
        missing = [str(p["upload_id"]) for p in points if p.get("zeropoint") is None and p.get("upload_id")]
        zeropoints = await zeropoints_of(db, missing) if missing else {}
        history = await upload_history(db, observatory.observatory_id)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    own = viewer is not None and (viewer.observatory_id == observatory.observatory_id or viewer.is_admin)
    failed_count = sum(1 for d in history if d.get("state") == "failed")
    zp_chart, lim_chart = calibration_charts(points, zeropoints)
    where = ""
    if observatory.lon is not None and observatory.lat is not None:
        where = f" at longitude {fmt(observatory.lon, 4)}° E, latitude {fmt(observatory.lat, 4)}°"
    filters = f"; filters {escape(', '.join(observatory.filters))}" if observatory.filters else ""
    parts = [
        f'<p id="obs-summary">{escape(observatory.name)}{where}{filters}: {len(history):,} uploads, '
        f"{len(points):,} stored datapoints, {failed_count:,} failed uploads. "
        f"{link(query_href('/followup', {'mine': 1}), 'My datapoints') if own else ''}"
        f"{' · ' + link('/subscriptions', 'my webhook subscriptions', id='subscriptions-link') if own else ''}</p>",
        "<h2>Uploads over time</h2>" + uploads_chart(history),
        "<h2>Zero point</h2>" + zp_chart,
        "<h2>Limiting magnitude</h2>" + lim_chart,
        _recent_table(points),
        "<h2>Failed uploads</h2>",
    ]
    if own:
        assert viewer is not None
        listing = await list_uploads(db, observatory, mine=True, state="failed", limit=FAILED_SHOWN)
        parts.append(_failed_table(listing.uploads))
        if listing.total > FAILED_SHOWN:
            parts.append(f"<p>{link('/uploads?state=failed', f'All {listing.total:,} failed uploads')}</p>")
    else:
        parts.append(
            f'<p id="failed-login">{failed_count:,} failed uploads: their reasons are shown to the observatory '
            f"itself ({link('/login?next=' + observatory_href(observatory.observatory_id), 'log in')}).</p>"
        )
    active = "observatory" if viewer is not None and viewer.observatory_id == observatory.observatory_id else ""
    return await render(request, f"Observatory {observatory.name}", "\n".join(parts), active=active or "observatories")
