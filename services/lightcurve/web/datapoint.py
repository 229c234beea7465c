"""A datapoint's page: the point, its calibration and every candidate band, the plot and cut-out, the
provenance and the history (recalibrations, the soft delete). The same data as /api/v1/datapoints/{id}."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from services.lightcurve.datapoints import CalibrationRecord, DatapointDetail, datapoint_detail
from services.lightcurve.pages import (
    attr,
    escape,
    fmt,
    lightcurve_href,
    link,
    message_box,
    mjd_date,
    relative_plot,
)
from services.lightcurve.web.common import clamped_int, render
from shared.contracts.messages import Provenance
from shared.errors import NotFound


def _kv(rows: list[tuple[str, str]], table_id: str) -> str:
    """A two-column table; the values are HTML already escaped by the caller."""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows if v)
    return f'<div class="table-wrap"><table class="kv" id="{attr(table_id)}">{body}</table></div>'


def _with_err(value: float | None, err: float | None, digits: int = 3) -> str:
    if value is None:
        return ""
    return fmt(value, digits) + (f" ± {fmt(err, digits)}" if err is not None else "")


def _when(value: datetime | None) -> str:
    return escape(value.strftime("%Y-%m-%d %H:%M:%S UTC")) if value else ""


def _magnitude(mag: float | None, mag_err: float | None, limit: float | None, detected: bool) -> str:
    if detected and mag is not None:
        return _with_err(mag, mag_err)
    if limit is not None:
        return f'<span class="limit">&gt; {fmt(limit, 2)} (not detected: fainter than the limit)</span>'
    return ""


def _point_table(d: DatapointDetail) -> str:
    p = d.datapoint
    band = escape(p.filter or "") + (f" <small>({escape(p.survey)})</small>" if p.survey else "")
    return _kv(
        [
            ("Event", link(lightcurve_href(p.ivorn), p.alert_name or p.ivorn, id="dp-event")),
            ("Observatory", escape(p.observatory)),
            ("MJD", f"{fmt(p.mjd, 5)} <small>({escape(mjd_date(p.mjd, True))} UTC)</small>"),
            ("Band", band),
            ("Magnitude", f'<span id="dp-mag">{_magnitude(p.mag, p.mag_err, p.limit_mag, p.detected)}</span>'),
            ("Limiting magnitude", fmt(p.limit_mag, 2) if p.detected else ""),
            ("Calibration error", fmt(p.zeropoint_err, 3)),
            ("Exposure (s)", fmt(p.exptime, 1)),
            ("Comment", escape(p.comment or "")),
            ("Version", str(p.version)),
            ("Stored", _when(p.created)),
            ("Upload id", f"<code>{escape(p.upload_id)}</code>"),
        ],
        "dp-point",
    )


def _calibration_table(c: CalibrationRecord) -> str:
    ct = _with_err(c.colour_term, c.colour_term_err)
    if c.colour and ct:
        ct += f" <small>× ({escape(c.colour)})</small>"
    if c.colour_term_assumed:
        ct += " <small>(assumed, not fitted)</small>"
    used = f"{c.npoints} of {c.nmatched} matched" if c.npoints is not None and c.nmatched is not None else ""
    rows = [
        ("Reference", escape(f"{c.survey or ''} {c.filter or ''}".strip())),
        ("Zero point", _with_err(c.zeropoint, c.zeropoint_err)),
        ("Colour term", ct),
        ("Scatter (mag)", fmt(c.scatter, 3)),
        ("Stars used", escape(used)),
        ("Outlier fraction", fmt(c.outlier_fraction, 3)),
        ("Limit method", escape(c.limit_method or "")),
        ("Match radius (arcsec)", fmt(c.match_dist_arcsec, 2)),
        ("forceFilter", escape(c.force_filter or "no")),
        ("Sources in the catalogue", str(c.n_sources) if c.n_sources is not None else ""),
        ("Calibration id", f"<code>{escape(c.calibration_id)}</code>"),
    ]
    warnings = "".join(f'<p class="msg">{escape(w)}</p>' for w in c.warnings)
    return _kv(rows, "dp-calibration") + warnings


def _candidates_table(c: CalibrationRecord) -> str:
    if not c.candidates:
        return "<p>No candidate bands were recorded.</p>"
    heads = ("Survey", "Band", "Colour", "Zero point", "Colour term", "Scatter", "Stars", "Matched", "Score", "Note")
    rows = []
    for k in c.candidates:
        chosen = ' class="chosen"' if k.chosen else ""
        note = ("<b>chosen</b>" + ("; " if k.note else "") if k.chosen else "") + escape(k.note or "")
        rows.append(
            f"<tr{chosen}><td>{escape(k.survey)}</td><td>{escape(k.filter)}</td><td>{escape(k.colour)}</td>"
            f'<td class="num">{_with_err(k.zeropoint, k.zeropoint_err)}</td>'
            f'<td class="num">{fmt(k.colour_term, 3)}</td><td class="num">{fmt(k.scatter, 3)}</td>'
            f'<td class="num">{k.npoints}</td><td class="num">{k.nmatched}</td>'
            f'<td class="num">{fmt(k.score, 4)}</td><td class="comment">{note}</td></tr>'
        )
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    return (
        f'<div class="table-wrap"><table class="list" id="dp-candidates"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _dl(items: list[tuple[str, str]], dl_id: str = "") -> str:
    """A definition list; the values are HTML already escaped by the caller."""
    body = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items)
    ident = f' id="{attr(dl_id)}"' if dl_id else ""
    return f'<dl class="provenance"{ident}>{body}</dl>'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return escape(", ".join(str(v) for v in value)) or "none"
    return escape("" if value is None else str(value))


def _provenance(prov: Provenance) -> str:
    software = prov.software
    code = escape(software.package) + (f" (commit <code>{escape(software.commit)}</code>)" if software.commit else "")
    if software.dirty:
        code += " <small>with uncommitted changes</small>"
    catalogues = "; ".join(
        escape(f"{c.survey} {c.release}" + (f" (version {c.version})" if c.version else "")) for c in prov.catalogues
    )
    items = [
        ("Input (sha256)", f"<code>{escape(prov.input_sha256 or 'unknown')}</code>"),
        ("Software", code),
        ("Catalogues", catalogues or "none"),
        ("Match radius (arcsec)", fmt(prov.match_radius_arcsec, 2)),
        ("forceFilter", escape(prov.force_filter or "no")),
        ("Bands allowed", _value(["/".join(b) for b in prov.forced_bands]) if prov.forced_bands else "any"),
        ("Observatory filters", _value(prov.observatory_filters) if prov.observatory_filters else "none registered"),
        ("Fit settings", _dl([(k, _value(v)) for k, v in sorted(prov.fit_settings.items())], "dp-fit-settings")),
    ]
    return _dl(items, "dp-provenance")


def _history(d: DatapointDetail) -> str:
    p = d.datapoint
    heads = ("Version", "Band", "Magnitude", "Calibration error", "Calibration", "Replaced", "By job")
    rows = []
    for v in d.history:
        band = escape(f"{v.filter or ''} ({v.survey})" if v.survey else v.filter or "")
        rows.append(
            f'<tr class="replaced"><td class="num">{v.version}</td><td>{band}</td>'
            f'<td class="num">{_magnitude(v.mag, v.mag_err, v.limit_mag, v.detected)}</td>'
            f'<td class="num">{fmt(v.zeropoint_err, 3)}</td><td><code>{escape(v.calibration_id or "")}</code></td>'
            f"<td>{_when(v.replaced_at)}</td><td><code>{escape(v.replaced_by_job or '')}</code></td></tr>"
        )
    band = escape(f"{p.filter or ''} ({p.survey})" if p.survey else p.filter or "")
    rows.append(
        f'<tr class="current"><td class="num">{p.version}</td><td>{band}</td>'
        f'<td class="num">{_magnitude(p.mag, p.mag_err, p.limit_mag, p.detected)}</td>'
        f'<td class="num">{fmt(p.zeropoint_err, 3)}</td><td><code>{escape(p.calibration_id or "")}</code></td>'
        "<td><b>current</b></td><td></td></tr>"
    )
    if p.deleted:
        rows.append(
            f'<tr class="deleted-row"><td></td><td colspan="4">deleted: {escape(p.delete_reason or "")}</td>'
            f"<td>{_when(d.deleted_at)}</td><td></td></tr>"
        )
    head = "".join(f"<th>{escape(h)}</th>" for h in heads)
    note = "" if d.history else "<p>No recalibration has replaced this datapoint's calibration.</p>"
    return (
        f'{note}<div class="table-wrap"><table class="list" id="dp-history"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _images(d: DatapointDetail) -> str:
    plot, cutout = relative_plot(d.image_link), relative_plot(d.cutout_link)
    figures = []
    if plot:
        figures.append(
            f'<figure><a href="{attr(plot)}"><img id="dp-plot" src="{attr(plot)}" alt="calibration plot"></a>'
            "<figcaption>calibration plot: reference against instrumental magnitude, residuals</figcaption></figure>"
        )
    if cutout:
        figures.append(
            f'<figure><img id="dp-cutout" src="{attr(cutout)}" alt="cut-out of the frame around the target">'
            "<figcaption>the frame around the target, aperture drawn</figcaption></figure>"
        )
    return '<div class="figures">' + "".join(figures) + "</div>" if figures else "<p>No plot was made (noPlot=1).</p>"


async def datapoint_page(request: web.Request) -> web.Response:
    followup_id = clamped_int(request.match_info["followup_id"], 0, 0)
    try:
        detail = await datapoint_detail(request.app["db"], followup_id)
    except NotFound as exc:
        return await render(request, "Datapoint not found", message_box(exc.message, "error"), status=404)
    p = detail.datapoint
    parts = []
    if p.deleted:
        when = f" on {_when(detail.deleted_at)}" if detail.deleted_at else ""
        parts.append(
            f'<p class="msg error" role="status" id="dp-deleted">Deleted{when}: {escape(p.delete_reason or "")}. '
            "Kept here with its history; it is not in the light curve.</p>"
        )
    parts.append(_point_table(detail))
    parts.append(
        f'<p class="meta">{link(lightcurve_href(p.ivorn), "light curve")} · '
        f"{link(f'/api/v1/datapoints/{p.followup_id}', 'JSON', id='dp-json')}</p>"
    )
    if p.imported:
        parts.append(
            f'<p class="msg" id="dp-imported">imported from {escape(p.imported)}, no instrumental data: no '
            "calibration record, it cannot be recalibrated.</p>"
        )
    elif detail.calibration is None:
        parts.append('<p class="msg" id="dp-no-calibration">No calibration record is stored for this datapoint.</p>')
    else:
        parts.append("<h2>Calibration</h2>" + _calibration_table(detail.calibration))
        parts.append("<h2>Every candidate band tried</h2>" + _candidates_table(detail.calibration))
    if not p.imported:
        parts.append("<h2>Plot</h2>" + _images(detail))
    if detail.provenance is not None:
        parts.append("<h2>Provenance</h2>" + _provenance(detail.provenance))
    parts.append("<h2>History</h2>" + _history(detail))
    title = f"Datapoint {p.followup_id}" + (" (deleted)" if p.deleted else "")
    return await render(request, title, "\n".join(parts), active="followup")
