"""The follow-up data list (everyone's, or an observatory's own with its deleted points) and the delete button."""

from __future__ import annotations

import asyncio
import math

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve import handlers, pages
from services.lightcurve.pages import (
    attr,
    datapoint_href,
    escape,
    fmt,
    lightcurve_href,
    link,
    message_box,
    mjd_date,
    observatory_href,
)
from services.lightcurve.web.common import (
    MAX_PER_PAGE,
    PER_PAGE,
    clamped_int,
    csrf_of,
    csrf_ok,
    current_user,
    read_form,
    redirect_to_login,
    render,
)
from shared.db.client import unavailable
from shared.db.datapoints import Datapoint, count_listed, datapoint_by_id, list_datapoints
from shared.db.uploads import image_link_of
from shared.errors import BackendUnavailable, PhotcalError
from shared.usecases.datapoints import delete_datapoint


async def _plot_links(db, points: list[Datapoint]) -> dict[str, str | None]:
    async def one(upload_id: str) -> tuple[str, str | None]:
        return upload_id, await image_link_of(db, upload_id)

    pairs = await asyncio.gather(*(one(p.upload_id) for p in points))
    return dict(pairs)


def _relative_plot(image_link: str | None) -> str | None:
    """The gateway serves plots at /plots/NAME.png; link them on this origin whatever base URL was recorded."""
    return pages.relative_plot(image_link)


def _mag_cell(p: Datapoint) -> str:
    if p.detected and p.mag is not None:
        err = f" ± {fmt(p.mag_err, 3)}" if p.mag_err is not None else ""
        return f"{fmt(p.mag, 3)}{err}"
    if p.limit_mag is not None:
        return f'<span class="limit" title="not detected: fainter than">&gt; {fmt(p.limit_mag, 2)}</span>'
    return ""


async def followup_page(request: web.Request) -> web.Response:
    db = request.app["db"]
    user = await current_user(request)
    if request.query.get("mine") in {"1", "true"} and user is None:
        return redirect_to_login(request)  # "my datapoints" logged out: never everyone's in their place
    mine = request.query.get("mine") in {"1", "true"} and user is not None
    ivorn = request.query.get("ivorn") or None
    per_page = clamped_int(request.query.get("per_page"), PER_PAGE, 10, MAX_PER_PAGE)
    # mine: every datapoint the observatory uploaded, deleted ones too; else the live ones
    owner = user.observatory_id if mine and user is not None else None
    try:
        total = await count_listed(db, observatory_id=owner, ivorn=ivorn)
        n_pages = max(1, math.ceil(total / per_page))
        page_no = clamped_int(request.query.get("page"), 1, 1, n_pages)
        points = await list_datapoints(
            db, observatory_id=owner, ivorn=ivorn, skip=(page_no - 1) * per_page, limit=per_page
        )
        plots = await _plot_links(db, points)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    csrf = csrf_of(request)
    deleted_class = ' class="deleted-row"'
    body = []
    for p in points:
        plot = _relative_plot(plots.get(p.upload_id))
        own = user is not None and p.observatory_id == user.observatory_id
        if p.deleted:
            action = f'<span class="deleted">deleted: {escape(p.delete_reason or "")}</span>'
        elif own:
            action = (
                f'<form method="post" action="/datapoints/{p.followup_id}/delete" class="delete inline">'
                f'<input type="hidden" name="csrf" value="{attr(csrf)}">'
                '<input type="text" name="reason" required maxlength="500" placeholder="reason" aria-label="reason '
                f'for deleting {p.followup_id}">'
                '<button type="submit">delete</button></form>'
            )
        else:
            action = ""
        survey = f" <small>({escape(p.survey)})</small>" if p.survey else ""
        body.append(
            f'<tr data-followup-id="{p.followup_id}"{deleted_class if p.deleted else ""}>'
            f'<td class="num">{link(datapoint_href(p.followup_id), str(p.followup_id), class_="dp")}</td>'
            f"<td>{link(lightcurve_href(p.ivorn), p.alert_name or p.ivorn.rsplit('#', 1)[-1], class_='lc')}</td>"
            f"<td>{link(observatory_href(p.observatory_id), p.observatory, class_='obs')}</td>"
            f'<td class="num">{fmt(p.mjd, 5)} <small>{escape(mjd_date(p.mjd, True))}</small></td>'
            f"<td>{escape(p.filter or '')}{survey}</td>"
            f'<td class="num">{_mag_cell(p)}</td>'
            f'<td class="num">{fmt(p.exptime, 1)}</td>'
            f'<td class="comment">{escape(p.comment or "")}</td>'
            f"<td>{link(plot, 'plot', class_='plot') if plot else ''}</td>"
            f"<td>{action}</td></tr>"
        )
    heads = (
        "id",
        "Alert",
        "Observatory",
        "MJD (UTC date)",
        "Filter",
        "Mag ± err / limit",
        "Exp (s)",
        "Comment",
        "Plot",
        "",
    )
    table = (
        '<div class="table-wrap"><table class="list" id="followup-table"><thead><tr>'
        f"{''.join(f'<th>{escape(h)}</th>' for h in heads)}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    params = {"mine": "1" if mine else None, "ivorn": ivorn, "per_page": per_page if per_page != PER_PAGE else None}
    pager = pages.pager("/followup", params, page_no, n_pages, total, "datapoints")
    notes = ""
    if request.query.get("deleted"):
        notes += message_box(
            f"Datapoint {clamped_int(request.query.get('deleted'), 0)} deleted (kept in the history with its reason)."
        )
    if mine:
        notes += (
            "<p>Your observatory's datapoints, deleted ones included (with the reason); every upload, refused "
            f"ones too: {link('/uploads', 'my uploads')}.</p>"
        )
    elif user is not None:
        notes += f"<p>{link('/followup?mine=1', 'Only my uploads')} (there you may delete your own datapoints).</p>"
    if ivorn:
        notes += f"<p>Event {escape(ivorn)} · {link(lightcurve_href(ivorn), 'light curve')}</p>"
    # "my uploads" (/uploads) lists every upload, refused ones too; this is the stored datapoints
    title = f"My datapoints ({user.name})" if mine and user is not None else "Follow-up data"
    return await render(request, title, notes + pager + table + pager, active="followup")


def _confirmation(p: Datapoint, reason: str, csrf: str | None) -> str:
    """The question before a delete: which datapoint, why, and the two ways on."""
    what = (
        f"datapoint {p.followup_id} of {p.alert_name or p.ivorn} by {p.observatory}, MJD {fmt(p.mjd, 5)} "
        f"({mjd_date(p.mjd, True)} UTC), {p.filter or '?'}: "
    )
    mag = _mag_cell(p)
    return (
        f'<p class="msg warning" role="alert" id="confirm-question">Delete {escape(what)}{mag}? It leaves the light '
        "curve; it stays in your history with the reason.</p>"
        f'<p>Reason: <q id="confirm-reason">{escape(reason)}</q></p>'
        f'<form method="post" action="/datapoints/{p.followup_id}/delete" id="confirm-form">'
        f'<input type="hidden" name="csrf" value="{attr(csrf)}"><input type="hidden" name="reason" '
        f'value="{attr(reason)}"><input type="hidden" name="confirm" value="1">'
        '<button type="submit" id="confirm-delete" class="danger">Yes, delete it</button> '
        f"{link(datapoint_href(p.followup_id), 'No, keep it', id='cancel-delete')}</form>"
    )


async def delete_point(request: web.Request) -> web.Response:
    """A delete asks first: the list's form comes here without ``confirm`` and is asked "delete ...?" (after
    the same checks as the delete itself: the token, a reason, the datapoint and that it is one's own)."""
    user = await current_user(request)
    if user is None:
        return redirect_to_login(request)
    form = await read_form(request)
    if not csrf_ok(request, form):
        return await render(
            request,
            "Not deleted",
            message_box("The form has expired: reload the page and try again.", "error"),
            status=403,
        )
    followup_id = clamped_int(request.match_info["followup_id"], 0, 0)
    reason = str(form.get("reason") or "").strip()[:500]
    if not reason:
        return await render(
            request, "Not deleted", message_box("Give a reason for deleting the datapoint.", "error"), status=400
        )
    if form.get("confirm") != "1":
        try:
            point = await datapoint_by_id(request.app["db"], followup_id)
        except PyMongoError as exc:
            raise unavailable(exc) from exc
        problem = None
        if point is None:
            problem = (404, f"There is no datapoint {followup_id}.")
        elif point.observatory_id != user.observatory_id:
            problem = (403, "Only the observatory that uploaded a datapoint may delete it.")
        elif point.deleted:
            problem = (409, f"Datapoint {followup_id} is already deleted: {point.delete_reason or ''}")
        if problem is not None:
            return await render(request, "Not deleted", message_box(problem[1], "error"), status=problem[0])
        assert point is not None
        return await render(request, f"Delete datapoint {followup_id}?", _confirmation(point, reason, csrf_of(request)))
    try:
        await delete_datapoint(request.app["db"], followup_id, user, reason, via="web")
    except BackendUnavailable:
        raise  # the error page, as for every page
    except PhotcalError as exc:
        return await render(request, "Not deleted", message_box(exc.message, "error"), status=exc.http_status)
    handlers.invalidate(request.app)
    raise web.HTTPSeeOther(f"/followup?mine=1&deleted={followup_id}")
