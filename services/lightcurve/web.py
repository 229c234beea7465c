"""The observer's web pages: login, upload form, alert and follow-up lists, light curves, new event, delete.

Served by this service (it has the database) and forwarded by the gateway
(their rows in ``shared/contracts/routes.py``). Logged in = a valid
``photcal_session`` cookie (shared/session.py) whose hashtag still names an
observatory, and whose session was not logged out (shared/db/sessions.py).
Every POST but /login carries the session's anti-CSRF token; /login needs a
same-origin browser request or its own form's token (shared/session.py).
"""

from __future__ import annotations

import asyncio
import math
from urllib.parse import quote, urlencode

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve import handlers, pages, summary, views
from services.lightcurve.pages import attr, escape, fmt, link, lightcurve_href, message_box, mjd_date, query_href
from shared import session
from shared.auth import UNKNOWN
from shared.contracts.errors import ErrorCode
from shared.contracts.surveys import SURVEYS
from shared.db.alerts import Alert, register_alert
from shared.db.client import unavailable
from shared.db.datapoints import Datapoint, delete_datapoint
from shared.db.observatories import Observatory, find_by_hashtag
from shared.db.sessions import is_revoked, revoke
from shared.errors import PhotcalError
from shared.hashtags import looks_like_hashtag
from shared.validation import validate_alert_name, validate_ivorn

USER = "photcal.observatory"
PER_PAGE = 50
MAX_PER_PAGE = 500
MAX_FORM = 64 * 1024


# ---------------------------------------------------------------- session helpers


def _secret(request: web.Request) -> bytes:
    return session.secret_of(request.app)


async def current_user(request: web.Request) -> Observatory | None:
    if USER in request:
        return request[USER]
    user = None
    found = session.read(request.cookies.get(session.COOKIE), _secret(request))
    if found and looks_like_hashtag(found.hashtag):
        try:
            if not await is_revoked(request.app["db"], found.session_id):
                user = await find_by_hashtag(request.app["db"], request.app["pepper"], found.hashtag)
        except PyMongoError as exc:
            raise unavailable(exc) from exc
    request[USER] = user
    return user


def csrf_of(request: web.Request) -> str | None:
    cookie = request.cookies.get(session.COOKIE)
    return session.csrf_token(cookie, _secret(request)) if cookie else None


def csrf_ok(request: web.Request, form) -> bool:
    return session.check_csrf(request.cookies.get(session.COOKIE), form.get("csrf"), _secret(request))


async def render(
    request: web.Request, title: str, content: str, *, status: int = 200, active: str = "",
    scripts: tuple[str, ...] = (), styles: tuple[str, ...] = (),
) -> web.Response:
    user = await current_user(request)
    html = pages.page(
        title, content, user=user.name if user else None, csrf=csrf_of(request), scripts=scripts, styles=styles,
        active=active,
    )
    headers = dict(pages.SECURITY_HEADERS) | {"Cache-Control": "no-store"}
    return web.Response(text=html, content_type="text/html", status=status, headers=headers)


def _safe_next(value: str | None, default: str = "/upload") -> str:
    """Only a path on this site: no scheme, no ``//host``, no backslash tricks."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or not value.isprintable():
        return default
    return value


def _redirect_to_login(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))


async def _form(request: web.Request):
    if request.content_length is not None and request.content_length > MAX_FORM:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM, actual_size=request.content_length)
    return await request.post()


def _int(value, default: int, low: int = 1, high: int = 10**9) -> int:
    try:
        return min(max(int(value), low), high)
    except (TypeError, ValueError):
        return default


# ---------------------------------------------------------------- home, login, logout


async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/upload" if await current_user(request) else "/login")


def _login_form(next_path: str, error: str | None = None, info: str | None = None, token: str = "") -> str:
    return f"""{message_box(error, "error")}{message_box(info)}
<form method="post" action="/login" class="card narrow" id="login-form">
<input type="hidden" name="csrf" value="{attr(token)}">
<p>Log in with your observatory's hashtag (the key the administrator gave you; the same as for
<code>curl -F hashtag=...</code>).</p>
<label for="hashtag">Hashtag</label>
<input type="password" id="hashtag" name="hashtag" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{attr(next_path)}">
<button type="submit" id="login-submit">Log in</button>
</form>"""


def _login_nonce(request: web.Request) -> tuple[str, bool]:
    """The login form's pre-session nonce (its cookie), and whether it is new."""
    nonce = request.cookies.get(session.LOGIN_COOKIE, "")
    if 16 <= len(nonce) <= 64 and nonce.replace("-", "").replace("_", "").isalnum():
        return nonce, False
    return session.new_login_nonce(), True


def _with_login_nonce(request: web.Request, response: web.StreamResponse, nonce: str, new: bool) -> None:
    if new:
        response.set_cookie(
            session.LOGIN_COOKIE, nonce, max_age=session.MAX_AGE, path="/login", httponly=True, samesite="Strict",
            secure=session.cookie_secure(request),
        )


async def _login_answer(request: web.Request, next_path: str, *, error: str | None = None,
                        info: str | None = None, status: int = 200) -> web.Response:
    nonce, new = _login_nonce(request)
    token = session.login_token(nonce, _secret(request))
    response = await render(request, "Log in", _login_form(next_path, error, info, token), status=status)
    _with_login_nonce(request, response, nonce, new)
    return response


async def login_page(request: web.Request) -> web.Response:
    next_path = _safe_next(request.query.get("next"))
    info = "You are logged out." if request.query.get("bye") else None
    user = await current_user(request)
    if user is not None:
        info = f"You are logged in as {user.name}."
    return await _login_answer(request, next_path, info=info)


def login_allowed(request: web.Request, form) -> bool:
    """A login from our own login page: a same-origin browser request, or the form's token.

    Otherwise a page elsewhere could log its visitor in as the attacker's
    observatory (and collect what the visitor then uploads).
    """
    if session.same_origin(request.headers, session.request_origin(request)):
        return True
    token = form.get(session.CSRF_FIELD)
    return session.check_login_token(
        request.cookies.get(session.LOGIN_COOKIE), token if isinstance(token, str) else None, _secret(request)
    )


async def login(request: web.Request) -> web.Response:
    form = await _form(request)
    next_path = _safe_next(form.get("next"))
    if not login_allowed(request, form):
        request[USER] = None
        return await _login_answer(
            request, next_path, status=403,
            error="This login did not come from photcal's own login page: log in here.",
        )
    hashtag = str(form.get("hashtag") or "").strip()
    observatory = None
    if looks_like_hashtag(hashtag):
        try:
            observatory = await find_by_hashtag(request.app["db"], request.app["pepper"], hashtag)
        except PyMongoError as exc:
            raise unavailable(exc) from exc
    if observatory is None:
        request[USER] = None
        error = "Give your hashtag." if not hashtag else f"That hashtag is not known: {UNKNOWN}."
        return await _login_answer(request, next_path, error=error, status=401)
    response = web.HTTPSeeOther(next_path)
    # Strict: not sent with requests other sites start; Secure behind TLS (the gateway's trusted proxy says so)
    response.set_cookie(
        session.COOKIE, session.encode(hashtag, _secret(request)), max_age=session.MAX_AGE, path="/",
        httponly=True, samesite="Strict", secure=session.cookie_secure(request),
    )
    raise response


async def logout_page(request: web.Request) -> web.Response:
    """GET /logout: a page with the log-out button (a link elsewhere cannot log anyone out)."""
    user = await current_user(request)
    if user is None:
        return await render(request, "Log out", '<p class="msg info" role="status">You are not logged in.</p>')
    content = f"""<form method="post" action="/logout" class="card narrow" id="logout-form">
<p>Log out of {escape(user.name)}? The login cookie stops working at once, also any copy of it.</p>
<input type="hidden" name="csrf" value="{attr(csrf_of(request))}">
<button type="submit" id="logout-confirm">Log out</button>
</form>"""
    return await render(request, "Log out", content)


async def logout(request: web.Request) -> web.Response:
    """POST /logout with the session's CSRF token: the session is revoked (every replica refuses it)."""
    form = await _form(request)
    found = session.read(request.cookies.get(session.COOKIE), _secret(request))
    if found is not None:
        if not csrf_ok(request, form):
            raise web.HTTPSeeOther("/logout")  # not from our page: ask, with our own form
        try:
            await revoke(request.app["db"], found.session_id, found.expires)
        except PyMongoError as exc:
            raise unavailable(exc) from exc
    response = web.HTTPSeeOther("/login?bye=1")
    response.del_cookie(session.COOKIE, path="/")
    raise response


# ---------------------------------------------------------------- upload form


def _force_filter_options() -> str:
    options = ['<option value="no" selected>no (the best survey and band)</option>']
    for survey in SURVEYS.values():
        for band in survey.band_names:
            value = f"{survey.name}/{band}"
            options.append(f'<option value="{attr(value)}">{escape(value)}</option>')
    return "".join(options)


async def upload_page(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user is None:
        return _redirect_to_login(request)
    rows = (await handlers.summary_rows(request))[:300]
    datalist = "".join(f'<option value="{attr(r["ivorn"])}">{escape(r["name"])}</option>' for r in rows)
    event = request.query.get("ivorn", "")
    content = f"""
<p>Send a SExtractor catalogue of your frame; photcal matches it with the reference surveys, fits the zero point
and answers the target's magnitude (or limit) with a plot. With <b>dry run</b> on, nothing is stored.</p>
<form method="post" action="/cgi/upload" enctype="multipart/form-data" class="card" id="upload-form">
<input type="hidden" name="outputFormat" value="html">
<input type="hidden" name="csrf" value="{attr(csrf_of(request))}">
<div class="grid">
<label for="sexCat">Catalogue (SExtractor)</label><input type="file" id="sexCat" name="sexCat" required>
<label for="EventID">Event (ivorn)</label>
<input type="text" id="EventID" name="EventID" list="alerts-list" required value="{attr(event)}"
 placeholder="ivo://gaia/alerts#Gaia21eeo" size="50"><datalist id="alerts-list">{datalist}</datalist>
<label for="MJD">MJD (mid-exposure)</label><input type="number" id="MJD" name="MJD" step="any" min="0" max="100000" required placeholder="60000.12345">
<label for="expTime">Exposure (s)</label><input type="number" id="expTime" name="expTime" step="any" min="0">
<label for="matchDist">Match distance (arcsec)</label><input type="number" id="matchDist" name="matchDist" step="any" min="0.1" max="60" value="2">
<label for="forceFilter">Force filter</label><select id="forceFilter" name="forceFilter">{_force_filter_options()}</select>
<label for="comment">Comment</label><input type="text" id="comment" name="comment" maxlength="2000" size="50">
<span>Options</span>
<span><input type="hidden" name="dryRun" value="0"><label class="check"><input type="checkbox" id="dryRun" name="dryRun" value="1" checked> dry run (do not store)</label>
<input type="hidden" name="noPlot" value="0"><label class="check"><input type="checkbox" id="noPlot" name="noPlot" value="1"> no plot</label></span>
</div>
<button type="submit" id="upload-submit">Calibrate</button> <span id="upload-state" class="state" aria-live="polite"></span>
</form>
<section id="result" hidden>
<p id="result-message" class="msg"></p>
<table id="result-table" class="kv"></table>
<p id="result-links"></p>
<figure id="result-plot-box" hidden><img id="result-plot" alt="calibration plot"><figcaption>Calibration plot</figcaption></figure>
</section>"""
    return await render(request, "Upload a frame", content, active="upload", scripts=("/static/upload.js",))


# ---------------------------------------------------------------- alerts


COLUMN_TITLES = {
    "name": "Name", "ivorn": "ivorn", "ra": "RA (°)", "dec": "Dec (°)", "url": "Link",
    "n_datapoints": "Datapoints", "last_mag": "Last mag", "last_mjd": "Last update",
}


async def alerts_page(request: web.Request) -> web.Response:
    rows = await handlers.summary_rows(request)
    q = request.query.get("q", "")[:200]
    with_data = request.query.get("with_data") in {"1", "true"}
    sort = request.query.get("sort", "id")
    if sort not in summary.SORT_KEYS:
        sort = "id"
    descending = request.query.get("dir", "desc" if sort in ("id", "last_mjd", "n_datapoints") else "asc") == "desc"
    per_page = _int(request.query.get("per_page"), PER_PAGE, 10, MAX_PER_PAGE)
    selected = summary.select(rows, with_data=with_data, q=q, sort=sort, descending=descending)
    total = len(selected)
    n_pages = max(1, math.ceil(total / per_page))
    page_no = _int(request.query.get("page"), 1, 1, n_pages)
    shown = selected[(page_no - 1) * per_page: page_no * per_page]
    base = {"with_data": "1" if with_data else None, "q": q or None, "per_page": per_page if per_page != PER_PAGE else None}
    params = base | {"sort": sort, "dir": "desc" if descending else "asc"}

    def head(col: str) -> str:
        title = COLUMN_TITLES[col]
        if col == "url":
            return f"<th>{escape(title)}</th>"
        new_dir = "asc" if (col == sort and descending) else "desc" if col == sort else (
            "desc" if col in ("n_datapoints", "last_mjd") else "asc")
        mark = (" ▼" if descending else " ▲") if col == sort else ""
        aria = f' aria-sort="{"descending" if descending else "ascending"}"' if col == sort else ""
        return f'<th{aria}>{link(query_href("/alerts", base | {"sort": col, "dir": new_dir}), title + mark, class_="sort", data_col=col)}</th>'

    body = []
    for r in shown:
        url = pages.safe_url(r.get("url"))
        url_cell = link(url, "link", rel="noopener nofollow") if url else escape(r.get("url") or "")
        last = ""
        if r["last_mag"] is not None:
            last = (">" if r.get("last_is_limit") else "") + fmt(r["last_mag"], 2)
        last_mjd = "" if r["last_mjd"] is None else f'{fmt(r["last_mjd"], 3)} <small>{escape(mjd_date(r["last_mjd"]))}</small>'
        body.append(
            "<tr>"
            f'<td>{link(lightcurve_href(r["ivorn"]), r["name"], class_="lc")}</td>'
            f'<td class="ivorn">{escape(r["ivorn"])}</td>'
            f'<td class="num">{fmt(r["ra"], 5)}</td><td class="num">{fmt(r["dec"], 5)}</td>'
            f"<td>{url_cell}</td>"
            f'<td class="num">{r["n_datapoints"]}</td><td class="num">{last}</td><td>{last_mjd}</td>'
            "</tr>"
        )
    columns = ("name", "ivorn", "ra", "dec", "url", "n_datapoints", "last_mag", "last_mjd")
    search = f"""<form method="get" action="/alerts" class="search" id="alert-search">
<input type="search" name="q" value="{attr(q)}" placeholder="name or ivorn" aria-label="search alerts" id="q">
{'<input type="hidden" name="with_data" value="1">' if with_data else ''}
<input type="hidden" name="sort" value="{attr(sort)}"><input type="hidden" name="dir" value="{"desc" if descending else "asc"}">
<button type="submit">Search</button>
<label class="check"><a href="{attr(query_href("/alerts", params | {"with_data": None if with_data else "1", "page": None}))}" id="toggle-with-data">{"show all alerts" if with_data else "only alerts with data"}</a></label>
</form>"""
    pager = pages.pager("/alerts", params, page_no, n_pages, total, "alerts")
    table = (
        f'<table class="list" id="alerts-table"><thead><tr>{"".join(head(c) for c in columns)}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>'
    )
    title = "Alerts with data" if with_data else "Alerts"
    return await render(request, title, search + pager + table + pager, active="with_data" if with_data else "alerts")


# ---------------------------------------------------------------- follow-up data


async def _plot_links(db, points: list[Datapoint]) -> dict[str, str | None]:
    async def one(upload_id: str) -> tuple[str, str | None]:
        doc = await db.uploads.find_one({"upload_id": upload_id}, {"_id": 0, "result": 1})
        image = ((doc or {}).get("result") or {}).get("image_link")
        return upload_id, image

    pairs = await asyncio.gather(*(one(p.upload_id) for p in points))
    return dict(pairs)


def _relative_plot(image_link: str | None) -> str | None:
    """The gateway serves plots at /plots/NAME.png; link them on this origin whatever base URL was recorded."""
    if not image_link or "/plots/" not in image_link:
        return None
    name = image_link.rsplit("/plots/", 1)[1]
    return "/plots/" + name if name.endswith(".png") and name[:-4].isalnum() else None


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
    mine = request.query.get("mine") in {"1", "true"} and user is not None
    ivorn = request.query.get("ivorn") or None
    per_page = _int(request.query.get("per_page"), PER_PAGE, 10, MAX_PER_PAGE)
    query: dict = {"observatory_id": user.observatory_id} if mine else {"deleted": False}
    if ivorn:
        query["ivorn"] = ivorn
    try:
        if query == {"deleted": False}:  # every live datapoint: counted from the collection's size and the deleted range
            deleted = [d async for d in db.datapoints.find(summary.DELETED_RANGE, {"_id": 0, "followup_id": 1})]
            total = max(0, await db.datapoints.estimated_document_count() - len(deleted))
        else:
            total = await db.datapoints.count_documents(query)
        n_pages = max(1, math.ceil(total / per_page))
        page_no = _int(request.query.get("page"), 1, 1, n_pages)
        cursor = db.datapoints.find(query).sort("followup_id", -1).skip((page_no - 1) * per_page).limit(per_page)
        points = [Datapoint.model_validate(d) async for d in cursor]
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
                f'<input type="text" name="reason" required maxlength="500" placeholder="reason" aria-label="reason for deleting {p.followup_id}">'
                f'<button type="submit">delete</button></form>'
            )
        else:
            action = ""
        survey = f" <small>({escape(p.survey)})</small>" if p.survey else ""
        body.append(
            f'<tr data-followup-id="{p.followup_id}"{deleted_class if p.deleted else ""}>'
            f'<td class="num">{p.followup_id}</td>'
            f"<td>{link(lightcurve_href(p.ivorn), p.alert_name or p.ivorn.rsplit('#', 1)[-1], class_='lc')}</td>"
            f"<td>{escape(p.observatory)}</td>"
            f'<td class="num">{fmt(p.mjd, 5)} <small>{escape(mjd_date(p.mjd, True))}</small></td>'
            f"<td>{escape(p.filter or '')}{survey}</td>"
            f'<td class="num">{_mag_cell(p)}</td>'
            f'<td class="num">{fmt(p.exptime, 1)}</td>'
            f'<td class="comment">{escape(p.comment or "")}</td>'
            f"<td>{link(plot, 'plot', class_='plot') if plot else ''}</td>"
            f"<td>{action}</td></tr>"
        )
    heads = ("id", "Alert", "Observatory", "MJD (UTC date)", "Filter", "Mag ± err / limit", "Exp (s)", "Comment", "Plot", "")
    table = (
        f'<table class="list" id="followup-table"><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in heads)}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>'
    )
    params = {"mine": "1" if mine else None, "ivorn": ivorn, "per_page": per_page if per_page != PER_PAGE else None}
    pager = pages.pager("/followup", params, page_no, n_pages, total, "datapoints")
    notes = ""
    if request.query.get("deleted"):
        notes += message_box(f"Datapoint {_int(request.query.get('deleted'), 0)} deleted (kept in the history with its reason).")
    if mine:
        notes += "<p>Your observatory's uploads, deleted ones included (with the reason).</p>"
    elif user is not None:
        notes += f'<p>{link("/followup?mine=1", "Only my uploads")} (there you may delete your own datapoints).</p>'
    if ivorn:
        notes += f"<p>Event {escape(ivorn)} · {link(lightcurve_href(ivorn), 'light curve')}</p>"
    title = f"My uploads ({user.name})" if mine else "Follow-up data"
    return await render(request, title, notes + pager + table + pager, active="followup")


async def delete_point(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user is None:
        return _redirect_to_login(request)
    form = await _form(request)
    if not csrf_ok(request, form):
        return await render(request, "Not deleted", message_box("The form has expired: reload the page and try again.", "error"), status=403)
    followup_id = _int(request.match_info["followup_id"], 0, 0)
    reason = str(form.get("reason") or "").strip()[:500]
    if not reason:
        return await render(request, "Not deleted", message_box("Give a reason for deleting the datapoint.", "error"), status=400)
    try:
        await delete_datapoint(request.app["db"], followup_id, user.observatory_id, f"{reason} (by {user.name}, web)")
    except PhotcalError as exc:
        return await render(request, "Not deleted", message_box(exc.message, "error"), status=exc.http_status)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    handlers.invalidate(request.app)
    raise web.HTTPSeeOther(f"/followup?mine=1&deleted={followup_id}")


# ---------------------------------------------------------------- light curve


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
    out = []
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
            f'<td>{escape(band) if band else ""}</td><td>{escape(survey) if survey else ""}</td>'
            f'<td class="num">{mag}</td><td class="num">{err}</td><td class="num">{lim}</td>'
            f'<td>{escape(p["observatory"])}</td><td class="num">{num(p["exptime"], 1)}</td>'
            f'<td class="comment">{escape(comment) if comment else ""}</td><td class="num">{p["followup_id"]}</td></tr>'
        )
    return "".join(out)


def _chart_island(data: dict) -> str:
    return pages.json_island("lc-data", {"name": data["name"], "ivorn": data["ivorn"]} | views.chart_data(data["points"]))


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
    ext = f" · {link(url, 'event page', rel='noopener nofollow', id='event-url')}" if url else (
        f" · <span id=\"event-url\">{escape(alert)}</span>" if alert else "")
    content = f"""
<p class="meta"><span class="ivorn" id="lc-ivorn">{escape(data["ivorn"])}</span> · RA {fmt(data["ra"], 5)}°, Dec {fmt(data["dec"], 5)}°
({escape(_sexagesimal(data["ra"], data["dec"]))}){ext}</p>
<p class="meta"><span id="lc-count">{len(points)} point{"" if len(points) == 1 else "s"}</span> ({n_limits} limits) in {len(filters)} filter(s): {escape(", ".join(filters))} ·
{link(csv_href, "download CSV", id="csv-link", download="")} · {link(json_href, "JSON", id="json-link")} ·
{link("/upload?" + urlencode({"ivorn": data["ivorn"]}), "upload a frame of this event")} ·
{link(query_href("/followup", {"ivorn": data["ivorn"]}), "follow-up list")}</p>
<div class="chart-box">
<div class="chart-tools"><button type="button" id="reset-zoom">reset zoom</button>
<span class="hint">drag: zoom to a box · wheel: zoom · shift+drag: pan · double-click: reset · click a filter in the legend to hide it</span></div>
<div id="chart" aria-label="light curve plot"></div>
<noscript><p>The plot needs JavaScript; every point is in the table below.</p></noscript>
</div>
{island}
<h2>Datapoints</h2>
<table class="list" id="points-table"><thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in heads)}</tr></thead>
<tbody>{table_rows}</tbody></table>"""
    return await render(
        request, f"Light curve of {data['name']}", content,
        scripts=("/static/vendor/uPlot.iife.min.js", "/static/lightcurve.js"), styles=("/static/vendor/uPlot.min.css",),
    )


async def _alert_url(request: web.Request, ivorn: str) -> str | None:
    try:
        doc = await request.app["db"].alerts.find_one({"ivorn": ivorn}, {"_id": 0, "url": 1})
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return (doc or {}).get("url")


# ---------------------------------------------------------------- new event


def _event_form(values: dict, errors: list[str], info: str = "", csrf: str | None = None) -> str:
    errs = "".join(message_box(e, "error") for e in errors)
    return f"""{errs}{info}
<form method="post" action="/events/new" class="card" id="event-form">
<input type="hidden" name="csrf" value="{attr(csrf)}">
<div class="grid">
<label for="ivorn">ivorn</label><input type="text" id="ivorn" name="ivorn" required size="50" value="{attr(values.get("ivorn"))}" placeholder="ivo://authority/path#name">
<label for="name">Name (optional)</label><input type="text" id="name" name="name" maxlength="100" value="{attr(values.get("name"))}" placeholder="Gaia21eeo">
<label for="ra">RA (decimal °, 0 ≤ RA &lt; 360)</label><input type="text" id="ra" name="ra" required inputmode="decimal" value="{attr(values.get("ra"))}">
<label for="dec">Dec (decimal °, −90 … 90)</label><input type="text" id="dec" name="dec" required inputmode="decimal" value="{attr(values.get("dec"))}">
<label for="url">URL</label><input type="url" id="url" name="url" size="50" value="{attr(values.get("url"))}" placeholder="https://...">
</div>
<button type="submit" id="event-submit">Add the event</button>
</form>
<p class="hint">Scripts may use the API: <code>POST /api/v1/alerts</code> with <code>ivorn</code>, <code>ra</code>, <code>dec</code>, <code>url</code>, <code>name</code> and the hashtag.</p>"""


def _validated(validate, value: str, errors: list[str]):
    """``validate(value)``, or None with its complaint added to ``errors`` as a sentence."""
    try:
        return validate(value)
    except ValueError as exc:
        text = str(exc)
        errors.append(text[:1].upper() + text[1:] + ".")
        return None


def _number(text: str, name: str, low: float, high: float, high_open: bool, errors: list[str]) -> float | None:
    try:
        value = float(text.replace(",", ".").strip())
    except ValueError:
        value = math.nan
    ok = math.isfinite(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        bound = f"{low:g} ≤ {name} < {high:g}" if high_open else f"{low:g} ≤ {name} ≤ {high:g}"
        errors.append(f"{name} is decimal degrees, {bound}.")
        return None
    return value


async def new_event_page(request: web.Request) -> web.Response:
    if await current_user(request) is None:
        return _redirect_to_login(request)
    return await render(request, "New event", _event_form({}, [], csrf=csrf_of(request)), active="new_event")


async def new_event(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user is None:
        return _redirect_to_login(request)
    form = await _form(request)
    values = {k: str(form.get(k) or "").strip() for k in ("ivorn", "name", "ra", "dec", "url")}
    errors: list[str] = []
    if not csrf_ok(request, form):
        errors.append("The form has expired: reload the page and try again.")
    ivorn = _validated(validate_ivorn, values["ivorn"], errors)
    ra = _number(values["ra"], "RA", 0.0, 360.0, True, errors)
    dec = _number(values["dec"], "Dec", -90.0, 90.0, False, errors)
    url = values["url"] or None
    if url and (pages.safe_url(url) is None or len(url) > 500):
        errors.append("URL is a web address starting with http:// or https:// (at most 500 characters).")
    name = _validated(validate_alert_name, values["name"], errors)
    status = 400
    exists = False
    if not errors:
        try:
            stored, warnings = await register_alert(
                request.app["db"],
                Alert(ivorn=ivorn, ra=ra, dec=dec, url=url, name=name, extra={"created_by": user.name}),
            )
        except PhotcalError as exc:
            exists = exc.code == ErrorCode.ALERT_EXISTS
            if exists:
                errors.append(f"An event with the ivorn {ivorn} already exists.")
            else:
                errors.append(exc.message[:1].upper() + exc.message[1:] + ".")
            status = exc.http_status
        except PyMongoError as exc:
            raise unavailable(exc) from exc
        else:
            handlers.invalidate(request.app)
            info = (
                f'<p class="msg ok" role="status" id="msg-ok">Event {escape(stored.display_name)} added '
                f"(id {stored.alert_id}): {link(lightcurve_href(stored.ivorn), 'its light curve', id='new-event-link')}.</p>"
            )
            info += "".join(
                f'<p class="msg warning" role="status">Another event is near: {escape(w)}.</p>' for w in warnings
            )
            return await render(
                request, "New event", _event_form({}, [], info, csrf_of(request)), status=201, active="new_event"
            )
    existing = f"<p>{link(lightcurve_href(ivorn), 'See that event.', id='existing-event')}</p>" if exists else ""
    content = _event_form(values, errors, existing, csrf_of(request))
    return await render(request, "New event", content, status=status, active="new_event")
