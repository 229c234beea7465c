"""My uploads: every upload of the logged-in observatory, newest first, with its state and, when it failed,
why (shared/usecases/uploads.py, the same list as ``GET /api/v1/uploads?mine=1``); logged out, the login page."""

from __future__ import annotations

import math

from aiohttp import web

from services.lightcurve import pages
from services.lightcurve.pages import (
    datapoint_href,
    escape,
    fmt,
    lightcurve_href,
    link,
    message_box,
    mjd_date,
    query_href,
    relative_plot,
)
from services.lightcurve.web.common import MAX_PER_PAGE, PER_PAGE, clamped_int, current_user, redirect_to_login, render
from shared.errors import BadInput
from shared.usecases.uploads import STATE_CHOICES, UploadSummary, list_uploads

_HEADS = ("Queued (UTC)", "State", "Reason", "Event", "MJD", "File", "Band", "Mag ± err / limit", "Datapoint", "Plot")


def _result_cells(u: UploadSummary) -> tuple[str, str]:
    if u.state != "done":
        return "", ""
    band = escape(u.filter or "") + (f" <small>({escape(u.survey)})</small>" if u.survey else "")
    if u.detected is not False and u.mag is not None:
        mag = fmt(u.mag, 3) + (f" ± {fmt(u.mag_err, 3)}" if u.mag_err is not None else "")
    elif u.limit_mag is not None:
        mag = f'<span class="limit">&gt; {fmt(u.limit_mag, 2)}</span>'
    else:
        mag = ""
    return band, mag


def _row(u: UploadSummary) -> str:
    event = link(lightcurve_href(u.ivorn), u.alert_name or u.ivorn.rsplit("#", 1)[-1], class_="lc") if u.ivorn else ""
    state = escape(u.state) + (" <small>(dry run)</small>" if u.dry_run else "")
    reason = ""
    if u.state == "failed":
        reason = f"<code>{escape(u.error or '')}</code> {escape(u.message or '')}"
    band, mag = _result_cells(u)
    datapoint = link(datapoint_href(u.followup_id), str(u.followup_id), class_="dp") if u.followup_id else ""
    plot = relative_plot(u.image_link)
    queued = u.queued_at.strftime("%Y-%m-%d %H:%M:%S") if u.queued_at else ""
    mjd = f"{fmt(u.mjd, 5)} <small>{escape(mjd_date(u.mjd, True))}</small>" if u.mjd is not None else ""
    return (
        f'<tr data-upload-id="{escape(u.upload_id)}" data-state="{escape(u.state)}">'
        f'<td class="num">{escape(queued)}</td><td class="state-{escape(u.state)}">{state}</td>'
        f'<td class="comment">{reason}</td><td>{event}</td><td class="num">{mjd}</td>'
        f'<td class="comment">{escape(u.filename or "")}</td><td>{band}</td><td class="num">{mag}</td>'
        f"<td>{datapoint}</td><td>{link(plot, 'plot', class_='plot') if plot else ''}</td></tr>"
    )


async def uploads_page(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user is None:
        return redirect_to_login(request)  # never everyone's uploads
    state = (request.query.get("state") or "any").lower()
    if state not in STATE_CHOICES:
        state = "any"
    per_page = clamped_int(request.query.get("per_page"), PER_PAGE, 10, MAX_PER_PAGE)
    page_no = clamped_int(request.query.get("page"), 1, 1)
    try:
        listing = await list_uploads(
            request.app["db"], user, mine=True, state=state, skip=(page_no - 1) * per_page, limit=per_page
        )
    except BadInput as exc:
        return await render(request, "My uploads", message_box(exc.message, "error"), status=400)
    n_pages = max(1, math.ceil(listing.total / per_page))
    choices = " · ".join(
        f"<b>{escape(s)}</b>" if s == state else link(query_href("/uploads", {"state": None if s == "any" else s}), s)
        for s in STATE_CHOICES
    )
    params = {"state": None if state == "any" else state, "per_page": per_page if per_page != PER_PAGE else None}
    pager = pages.pager("/uploads", params, min(page_no, n_pages), n_pages, listing.total, "uploads")
    head = "".join(f"<th>{escape(h)}</th>" for h in _HEADS)
    table = (
        f'<div class="table-wrap"><table class="list" id="uploads-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(_row(u) for u in listing.uploads)}</tbody></table></div>"
    )
    intro = (
        "<p>Every upload of your observatory that reached the calibration, newest first: stored ones, dry runs "
        "and the ones refused (with the reason, and the plot of the best failing fit when the stars matched). "
        f"Your stored datapoints: {link('/followup?mine=1', 'my datapoints')}; results POSTed to your URLs: "
        f"{link('/subscriptions', 'my webhook subscriptions', id='subscriptions-link')}. "
        f"As JSON: {link(query_href('/api/v1/uploads', {'mine': 1, 'state': params['state']}), 'the API')}.</p>"
        f'<p class="filters" id="state-filter">State: {choices}</p>'
    )
    return await render(request, f"My uploads ({user.name})", intro + pager + table + pager, active="uploads")
