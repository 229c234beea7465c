"""The webhook subscriptions page (issue 22's API as a page): an observatory's subscriptions, their last
deliveries, the form to add one, delete (after a question) and resume buttons, the signing secret and its
rotation.

Thin adapters of ``shared/usecases/subscriptions.py``, the same calls as ``/api/v1/subscriptions`` and
``/api/v1/webhook-secret`` (services/ingest/subscriptions.py). Every form carries the page's anti-CSRF
token; a refusal draws the page again with its message and its HTTP status, a success redirects to the
page with what was done (so a reload does not post again).
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn
from urllib.parse import urlencode

from aiohttp import web
from pymongo.errors import PyMongoError

from services.lightcurve.pages import attr, escape, lightcurve_href, link, message_box, safe_url
from services.lightcurve.web.common import csrf_of, csrf_ok, current_user, read_form, redirect_to_login, render
from shared.contracts.subjects import HEADER_SIGNATURE
from shared.contracts.webhooks import Delivery, Subscription, WebhookEvent
from shared.db.alerts import get_alert
from shared.db.client import unavailable
from shared.db.observatories import Observatory
from shared.errors import BackendUnavailable, PhotcalError
from shared.usecases import subscriptions as usecase

PATH = "/subscriptions"
#: the app key of PHOTCAL_CALLBACK_ALLOW_PRIVATE (shared/webhooks.py), set by services/lightcurve/app.py
ALLOW_PRIVATE = "photcal.callback_allow_private"
#: the deliveries shown under each subscription, newest first
LAST_DELIVERIES = 5
SCOPES = (
    ("alert", "one event", "each new datapoint of the event named below, anyone's"),
    ("all", "every event", "each new datapoint of every event"),
    ("mine", "my uploads", "the result of each of your own uploads, done or failed, dry runs too"),
)
#: the form's choice of ``events`` (README "Callbacks and subscriptions"): value, label, the events posted
EVENT_CHOICES: tuple[tuple[str, str, list[WebhookEvent]], ...] = (
    ("both", "results and recalibrations", ["calibrated", "recalibrated"]),
    ("calibrated", "results only", ["calibrated"]),
    ("recalibrated", "recalibrations only", ["recalibrated"]),
)
EXPIRED = "The form has expired: reload the page and try again."
README_SECTION = "README.md, “Callbacks and subscriptions”"


def _when(value: datetime | None) -> str:
    return escape(value.strftime("%Y-%m-%d %H:%M UTC")) if value else ""


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


def _csrf_field(csrf: str | None) -> str:
    return f'<input type="hidden" name="csrf" value="{attr(csrf)}">'


def _login_first() -> NoReturn:
    """A form posted without a login: to the login page, then back to this page (not to the POST's path)."""
    raise web.HTTPSeeOther("/login?" + urlencode({"next": PATH}))


def _what(s: Subscription, names: dict[str, str]) -> str:
    if s.scope == "alert" and s.ivorn:
        name = names.get(s.ivorn) or s.ivorn
        return (
            f"event {link(lightcurve_href(s.ivorn), name)}"
            f' <small class="ivorn">{escape(s.ivorn) if name != s.ivorn else ""}</small>'
        )
    return "every event" if s.scope == "all" else "my uploads"


def _events(s: Subscription) -> str:
    for _, label, events in EVENT_CHOICES:
        if sorted(events) == sorted(s.events):
            return label
    return ", ".join(s.events)


def _delivery(d: Delivery) -> str:
    answer = f"HTTP {d.last_status}" if d.last_status is not None else ""
    if d.last_error:
        answer += (": " if answer else "") + d.last_error
    dead = ' <b class="dead-letter">dead letter</b>' if d.state == "failed" else ""
    return (
        f'<li class="delivery state-{attr(d.state)}" data-delivery-id="{attr(d.delivery_id)}">'
        f"<code>{escape(d.upload_id)}</code> {escape(d.state)}{dead}, {d.attempts} "
        f"attempt{'' if d.attempts == 1 else 's'}"
        f"{(', last: ' + escape(answer[:300])) if answer else ''}"
        f" <small>({_when(d.last_attempt_at or d.created_at)})</small></li>"
    )


def _row(s: Subscription, names: dict[str, str], last: list[Delivery], csrf: str | None) -> str:
    sid = escape(s.subscription_id)
    url = safe_url(s.url)
    shown_url = f'<a href="{attr(url)}" rel="noreferrer">{escape(s.url)}</a>' if url else escape(s.url)
    state = escape(s.state)
    if s.state == "paused":
        state = f'<b class="paused">paused</b>: {escape(s.paused_reason or "")}'
        if s.paused_at:
            state += f" <small>(since {_when(s.paused_at)})</small>"
    deliveries = (
        f'<ul class="deliveries">{"".join(_delivery(d) for d in last)}</ul>' if last else "<small>none yet</small>"
    )
    actions = []
    if s.state == "paused":
        actions.append(
            f'<form method="post" action="{PATH}/{sid}/resume" class="inline resume">{_csrf_field(csrf)}'
            '<button type="submit">Resume</button></form>'
        )
    actions.append(
        f'<form method="post" action="{PATH}/{sid}/delete" class="inline delete">{_csrf_field(csrf)}'
        '<button type="submit" class="danger">Delete</button></form>'
    )
    return (
        f'<tr data-subscription-id="{sid}" class="state-{attr(s.state)}"><td class="url">{shown_url}</td>'
        f'<td>{_what(s, names)}<br><small class="events">{escape(_events(s))}</small></td><td>{state}</td>'
        f'<td class="num">{s.consecutive_failures}</td><td>{_when(s.created_at)}</td>'
        f"<td>{deliveries}</td><td>{' '.join(actions)}</td></tr>"
    )


def _table(rows: list[tuple[Subscription, list[Delivery]]], names: dict[str, str], csrf: str | None) -> str:
    if not rows:
        return '<p id="no-subscriptions">No subscriptions yet: add one below.</p>'
    heads = ("URL", "Receives", "State", "Failed in a row", "Created", "Last deliveries", "")
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    body = "".join(_row(s, names, last, csrf) for s, last in rows)
    return (
        f'<div class="table-wrap"><table class="list" id="subscriptions-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
        f"<p><small>The last {LAST_DELIVERIES} deliveries of each, newest first; a <b>failed</b> one is a dead "
        "letter (given up after the retries), a <b>held</b> one waits for its paused subscription to be resumed "
        "(resuming posts both again).</small></p>"
    )


def _add_form(values: dict[str, str], csrf: str | None) -> str:
    chosen = values.get("scope") or "alert"
    radios = "".join(
        f'<label class="check"><input type="radio" name="scope" value="{value}" id="scope-{value}"'
        f"{' checked' if value == chosen else ''}> {escape(text)}</label>"
        for value, text, _ in SCOPES
    )
    hints = "; ".join(f"<i>{escape(text)}</i>: {escape(hint)}" for _, text, hint in SCOPES)
    picked = values.get("events") or EVENT_CHOICES[0][0]
    options = "".join(
        f'<option value="{value}"{" selected" if value == picked else ""}>{escape(label)}</option>'
        for value, label, _ in EVENT_CHOICES
    )
    return f"""<form method="post" action="{PATH}" class="card" id="subscription-form">
{_csrf_field(csrf)}
<div class="grid">
<label for="url">URL</label><input type="url" id="url" name="url" required maxlength="2000" """ + (
        f"""value="{attr(values.get("url"))}" placeholder="https://tom.example.org/photcal-hook">
<span>Receives</span><div class="field" id="scope-choice" role="radiogroup" aria-label="receives">{radios}
<small>{hints}</small></div>
<label for="alert">Event</label><div class="field"><input type="text" id="alert" name="alert" maxlength="300" """
        f"""value="{attr(values.get("alert"))}" placeholder="Gaia23sim or ivo://..." aria-describedby="alert-hint">
<small id="alert-hint">its name or ivorn, for “one event” only</small></div>
<label for="events">Posts</label><div class="field"><select id="events" name="events">{options}</select>
<small>a result is posted once per upload; a recalibration each time a stored datapoint is corrected</small></div>
</div>
<button type="submit" id="subscription-submit">Add the subscription</button>
</form>"""
    )


def _secret_section(secret: str, created: datetime, csrf: str | None) -> str:
    return (
        "<p>Every POST carries the header "
        f"<code>{escape(HEADER_SIGNATURE)}: t=&lt;unix seconds&gt;,v1=&lt;hex&gt;</code>: the HMAC-SHA256, keyed "
        "with this secret, of <code>&lt;t&gt;.&lt;body&gt;</code>. A receiver computes it again over the raw "
        "body, compares it in constant time, refuses a <code>t</code> older than a few minutes, and de-duplicates "
        f"by <code>X-Photcal-Upload</code> (delivery is at least once). {escape(README_SECTION)} has a receiver "
        f"that runs as written; the API: {link('/api/docs', 'its documentation', id='api-docs-link')}.</p>"
        f'<p>Your secret (since {_when(created)}): <code id="webhook-secret">{escape(secret)}</code></p>'
        f'<form method="post" action="{PATH}/secret/rotate" id="rotate-form">{_csrf_field(csrf)}'
        '<button type="submit" id="rotate-secret" class="danger">Rotate the secret</button> '
        "<small>a new one signs every delivery from now on; the old one stops at once, so give your receiver "
        "the new one.</small></form>"
    )


def _notice(request: web.Request) -> str:
    q = request.query
    sid = usecase.checked_id(q["sid"]) if q.get("sid", "").isalnum() and len(q["sid"]) <= usecase.MAX_ID else ""
    if q.get("done") == "added" and sid:
        return message_box(f"Subscription {sid} added.", "ok")
    if q.get("done") == "deleted" and sid:
        return message_box(f"Subscription {sid} deleted: nothing more is posted to it.", "ok")
    if q.get("done") == "resumed" and sid:
        released = q.get("released", "0")
        count = int(released) if released.isdigit() else 0
        return message_box(f"Subscription {sid} resumed: {count} held or failed deliveries are posted again.", "ok")
    if q.get("done") == "rotated":
        return message_box("A new webhook secret: deliveries from now on are signed with it.", "ok")
    return ""


async def _page(
    request: web.Request,
    user: Observatory,
    *,
    notice: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
    title: str = "Webhook subscriptions",
) -> web.Response:
    db = request.app["db"]
    csrf = csrf_of(request)
    listed = await usecase.list_subscriptions(db, user)
    rows = []
    for s in listed:
        last = await usecase.subscription_deliveries(db, user, s.subscription_id, limit=LAST_DELIVERIES)
        rows.append((s, last.deliveries))
    names: dict[str, str] = {}
    for ivorn in {s.ivorn for s in listed if s.scope == "alert" and s.ivorn}:
        try:
            alert = await get_alert(db, ivorn)
        except PyMongoError as exc:
            raise unavailable(exc) from exc
        if alert is not None:
            names[ivorn] = alert.display_name
    secret = await usecase.webhook_secret(db, user)
    content = "\n".join(
        [
            notice,
            "<p>photcal POSTs upload results to your URLs, signed with your webhook secret (below); a receiver "
            "that keeps failing is paused and says why. Scripts use the same through "
            "<code>/api/v1/subscriptions</code>. "
            f"{link('/uploads', 'My uploads')} · {link('/followup?mine=1', 'my datapoints')}.</p>",
            "<h2>Your subscriptions</h2>",
            _table(rows, names, csrf),
            "<h2>Add a subscription</h2>",
            _add_form(values or {}, csrf),
            "<h2>Webhook secret</h2>",
            _secret_section(secret.secret, secret.created_at, csrf),
        ]
    )
    return await render(request, title, content, status=status, active="subscriptions")


async def _refused(request: web.Request, user: Observatory, exc: PhotcalError, **kw) -> web.Response:
    return await _page(request, user, notice=message_box(_sentence(exc.message), "error"), status=exc.http_status, **kw)


async def subscriptions_page(request: web.Request) -> web.Response:
    """GET /subscriptions: the logged-in observatory's subscriptions (logged out: the login page first)."""
    user = await current_user(request)
    if user is None:
        return redirect_to_login(request)
    return await _page(request, user, notice=_notice(request))


async def _posted(request: web.Request) -> tuple[Observatory, dict[str, str]] | web.Response:
    """The logged-in user and the form's fields, or the page again with 403 if its token is not the page's."""
    user = await current_user(request)
    if user is None:
        return _login_first()
    form = await read_form(request)
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    if not csrf_ok(request, form):
        return await _page(request, user, notice=message_box(EXPIRED, "error"), status=403)
    return user, fields


async def add_subscription(request: web.Request) -> web.Response:
    """POST /subscriptions: url, scope (alert, all, mine), alert (a name or ivorn, scope alert only)."""
    got = await _posted(request)
    if isinstance(got, web.Response):
        return got
    user, fields = got
    values = {k: fields.get(k, "").strip() for k in ("url", "scope", "alert", "events")}
    body: dict[str, object] = {"url": values["url"], "scope": values["scope"]}
    if values["alert"]:
        body["ivorn"] = values["alert"]
    chosen = {value: events for value, _, events in EVENT_CHOICES}
    # an unknown value goes to the model as it came, which names it in the refusal
    body["events"] = chosen.get(values["events"] or EVENT_CHOICES[0][0], [values["events"]])
    try:
        wanted = usecase.subscription_request(body)
        created = await usecase.create_subscription(
            request.app["db"], user, wanted, allow_private=bool(request.app.get(ALLOW_PRIVATE, False))
        )
    except BackendUnavailable:
        raise  # the error page, as for every page
    except PhotcalError as exc:
        return await _refused(request, user, exc, values=values, title="Subscription not added")
    raise web.HTTPSeeOther(f"{PATH}?done=added&sid={created.subscription_id}")


def _confirmation(s: Subscription, csrf: str | None) -> str:
    what = "every event" if s.scope == "all" else "your uploads" if s.scope == "mine" else f"the event {s.ivorn}"
    return (
        f'<p class="msg warning" role="alert" id="confirm-question">Delete subscription '
        f"{escape(s.subscription_id)} ({escape(what)}) posting to <code>{escape(s.url)}</code>? Nothing more is "
        "posted to it; its deliveries not made yet are given up.</p>"
        f'<form method="post" action="{PATH}/{escape(s.subscription_id)}/delete" id="confirm-form">'
        f'{_csrf_field(csrf)}<input type="hidden" name="confirm" value="1">'
        '<button type="submit" id="confirm-delete" class="danger">Yes, delete it</button> '
        f"{link(PATH, 'No, keep it', id='cancel-delete')}</form>"
    )


async def delete_subscription(request: web.Request) -> web.Response:
    """POST /subscriptions/{id}/delete: asks first (without ``confirm=1``), then deletes."""
    got = await _posted(request)
    if isinstance(got, web.Response):
        return got
    user, fields = got
    sid = request.match_info["subscription_id"]
    db = request.app["db"]
    try:
        if fields.get("confirm") != "1":
            found = await usecase.get_subscription(db, user, sid)
            return await render(
                request, "Delete this subscription?", _confirmation(found, csrf_of(request)), active="subscriptions"
            )
        await usecase.delete_subscription(db, user, sid)
    except BackendUnavailable:
        raise
    except PhotcalError as exc:
        return await _refused(request, user, exc, title="Subscription not deleted")
    raise web.HTTPSeeOther(f"{PATH}?done=deleted&sid={sid}")


async def resume_subscription(request: web.Request) -> web.Response:
    """POST /subscriptions/{id}/resume: active again, its held and failed deliveries posted again."""
    got = await _posted(request)
    if isinstance(got, web.Response):
        return got
    user, _ = got
    sid = request.match_info["subscription_id"]
    try:
        resumed = await usecase.resume_subscription(request.app["db"], user, sid)
    except BackendUnavailable:
        raise
    except PhotcalError as exc:
        return await _refused(request, user, exc, title="Subscription not resumed")
    raise web.HTTPSeeOther(f"{PATH}?done=resumed&sid={sid}&released={resumed.released}")


async def rotate_secret(request: web.Request) -> web.Response:
    """POST /subscriptions/secret/rotate: a new webhook secret."""
    got = await _posted(request)
    if isinstance(got, web.Response):
        return got
    user, _ = got
    await usecase.rotate_webhook_secret(request.app["db"], user)
    raise web.HTTPSeeOther(f"{PATH}?done=rotated")
