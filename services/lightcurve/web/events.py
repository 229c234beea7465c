"""The new-event form: a thin adapter of ``shared.usecases.events.add_event``."""

from __future__ import annotations

from aiohttp import web

from services.lightcurve import handlers
from services.lightcurve.pages import attr, escape, lightcurve_href, link, message_box
from services.lightcurve.web.common import (
    csrf_of,
    csrf_ok,
    current_user,
    read_form,
    redirect_to_login,
    render,
)
from shared.contracts.errors import ErrorCode
from shared.coords import parse_dec, parse_ra
from shared.errors import BackendUnavailable, PhotcalError
from shared.usecases.events import add_event, event_fields


def _event_form(values: dict, errors: list[str], info: str = "", csrf: str | None = None) -> str:
    errs = "".join(message_box(e, "error") for e in errors)
    return (
        f"""{errs}{info}
<form method="post" action="/events/new" class="card" id="event-form">
<input type="hidden" name="csrf" value="{attr(csrf)}">
<div class="grid">
<label for="ivorn">ivorn</label><input type="text" id="ivorn" name="ivorn" required """
        f"""value="{attr(values.get("ivorn"))}" placeholder="ivo://authority/path#name">
<label for="name">Name (optional)</label><input type="text" id="name" name="name" maxlength="100" """
        f"""value="{attr(values.get("name"))}" placeholder="Gaia21eeo">
<label for="ra">RA (° or h:m:s)</label><input type="text" id="ra" name="ra" required """
        f"""value="{attr(values.get("ra"))}" placeholder="188.73625 or 12:34:56.7" aria-describedby="pos-hint">
<label for="dec">Dec (° or d:m:s)</label><input type="text" id="dec" name="dec" required """
        f"""value="{attr(values.get("dec"))}" placeholder="-12.58222 or -12:34:56" aria-describedby="pos-hint">
<span class="spacer"></span><small id="pos-hint">decimal degrees (0 ≤ RA &lt; 360, −90 ≤ Dec ≤ 90) or sexagesimal: """
        f"""RA in hours, Dec in degrees</small>
<label for="url">URL</label><input type="url" id="url" name="url" value="{attr(values.get("url"))}" """
        """placeholder="https://...">
</div>
<button type="submit" id="event-submit">Add the event</button>
</form>
<p class="hint">Scripts may use the API: <code>POST /api/v1/alerts</code> with <code>ivorn</code>, <code>ra</code>, """
        """<code>dec</code>, <code>url</code>, <code>name</code> and the hashtag.</p>"""
    )


#: what the form says of a position it cannot read (the form takes sexagesimal too, the API decimal degrees)
POSITION_RULES = {
    "ra": "RA is decimal degrees (0 ≤ RA < 360) or sexagesimal hours such as 12:34:56.7",
    "dec": "Dec is decimal degrees (−90 ≤ Dec ≤ 90) or sexagesimal degrees such as -12:34:56",
}


def _in_degrees(values: dict[str, str]) -> dict[str, str]:
    """The form's position in decimal degrees when typed sexagesimal (``12:34:56.7 -12:34:56``, as alert pages
    and catalogues give it); what neither notation reads is left for the use case to refuse."""
    out = dict(values)
    for key, parse in (("ra", parse_ra), ("dec", parse_dec)):
        degrees = parse(values.get(key, "")) if values.get(key) else None
        if degrees is not None:
            out[key] = repr(degrees)
    return out


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


async def new_event_page(request: web.Request) -> web.Response:
    if await current_user(request) is None:
        return redirect_to_login(request)
    return await render(request, "New event", _event_form({}, [], csrf=csrf_of(request)), active="new_event")


async def new_event(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user is None:
        return redirect_to_login(request)
    form = await read_form(request)
    values = {k: str(form.get(k) or "").strip() for k in ("ivorn", "name", "ra", "dec", "url")}
    errors: list[str] = []
    if not csrf_ok(request, form):
        errors.append("The form has expired: reload the page and try again.")
    fields, problems = event_fields(_in_degrees(values))
    errors += [_sentence(POSITION_RULES.get(p.field, p.reason)) for p in problems]
    status = 400
    exists = False
    if fields is not None and not errors:
        try:
            stored, warnings = await add_event(request.app["db"], fields, created_by=user.name)
        except BackendUnavailable:
            raise  # the error page, as for every page
        except PhotcalError as exc:
            exists = exc.code == ErrorCode.ALERT_EXISTS
            if exists:
                errors.append(f"An event with the ivorn {fields.ivorn} already exists.")
            else:
                errors.append(_sentence(exc.message))
            status = exc.http_status
        else:
            handlers.invalidate(request.app)
            info = (
                f'<p class="msg ok" role="status" id="msg-ok">Event {escape(stored.display_name)} added '
                f"(id {stored.alert_id}): "
                f"{link(lightcurve_href(stored.ivorn), 'its light curve', id='new-event-link')}.</p>"
            )
            info += "".join(
                f'<p class="msg warning" role="status">Another event is near: {escape(w)}.</p>' for w in warnings
            )
            return await render(
                request, "New event", _event_form({}, [], info, csrf_of(request)), status=201, active="new_event"
            )
    existing = ""
    if exists and fields is not None:
        existing = f"<p>{link(lightcurve_href(fields.ivorn), 'See that event.', id='existing-event')}</p>"
    content = _event_form(values, errors, existing, csrf_of(request))
    return await render(request, "New event", content, status=status, active="new_event")
