"""The HTML answer to an upload (CPCS's ``outputFormat=html``), everything escaped.

It never fails, whatever the answer holds: it is rendered after the datapoint
was stored, so an exception here would be a 500 for a stored point, and the
client's retry a 409. Every value is turned into text by :func:`_text`, which
takes None, NaN, infinities and anything else; every text is escaped once, where
it goes into the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from shared import webframe
from shared.contracts.messages import CalibrationResult

#: shown for a value the answer does not have
MISSING = "–"


def _number(value: object, digits: int) -> str | None:
    """A number with ``digits`` decimals; NaN and infinities spelt out; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return str(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    if isinstance(value, int):
        return str(value)
    return f"{number:.{digits}f}"


def _text(value: object, digits: int = 3) -> str:
    """Any value as plain (unescaped) text: :data:`MISSING` for None or an empty string."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, str):
        return value
    text = _number(value, digits)
    return MISSING if text is None else text


def _with_error(value: float | None, error: float | None, digits: int = 3) -> str | None:
    """``value ± error``; the value alone, saying so, when the error is unknown."""
    if value is None:
        return None
    if error is None:
        return f"{_text(value, digits)} (error unknown)"
    return f"{_text(value, digits)} ± {_text(error, digits)}"


def _with_note(value: float | None, note: str | None, digits: int) -> str | None:
    if value is None:
        return None
    return f"{_text(value, digits)} ({note})" if note else _text(value, digits)


def _stored(result: CalibrationResult) -> str:
    if result.stored:
        return "yes"
    return "no (dry run)" if result.dry_run else "no"


def _plot_link(link: str | None, alt: str = "calibration plot") -> str:
    # an http(s) address only: the page never carries a javascript: or data: source
    if not link or not link.lower().startswith(("http://", "https://")):
        return ""
    return f'<p><img src="{escape(link, quote=True)}" alt="{escape(alt, quote=True)}"></p>'


def _datapoint_link(followup_id: object) -> str:
    """The stored datapoint's page (its calibration, candidates, plot, provenance), when there is one."""
    if isinstance(followup_id, bool) or not isinstance(followup_id, int) or followup_id < 0:
        return ""
    return f'<p><a href="/datapoints/{followup_id}" id="datapoint-link">datapoint {followup_id}: its page</a></p>'


def _frame_rows(result: CalibrationResult) -> list[tuple[str, object]]:
    """An uploaded frame's rows: how the target was measured, and what its header gave (each may be missing)."""
    rows: list[tuple[str, object]] = []
    phot = result.photometry
    if phot is not None:
        method = phot.method.replace("_", " ")
        aperture = f"radius {_text(phot.radius_px, 1)} px, FWHM {_text(phot.fwhm_px, 1)} px"
        rows += [
            ("Photometry", f"{method} at the alert's position ({aperture})"),
            ("S/N", f"{_text(phot.snr, 1)} (a limit below {_text(phot.snr_limit, 1)})"),
            ("Astrometry", "the frame's WCS" if phot.wcs == "header" else "plate-solved"),
            ("Objects detected", phot.n_detected),
        ]
    frame = result.frame
    if frame is not None:
        site = frame.site
        rows += [
            ("Filter (header)", frame.filter),
            ("Airmass", frame.airmass),
            ("Gain (e-/ADU)", frame.gain),
            ("Saturation (ADU)", frame.saturate),
            ("Site", None if site is None else " ".join(_text(v, 4) for v in (site.name, site.lat, site.lon))),
        ]
    if result.from_header:
        taken = ", ".join(f"{field} from {keyword}" for field, keyword in sorted(result.from_header.items()))
        rows.append(("From the header", taken))
    return rows


def render_result_html(result: CalibrationResult, warnings: Sequence[str] = ()) -> str:
    """The page for one upload's answer (a success, a limit or an error), never raising on its values."""
    ok = result.status == "ok"
    title = "Calibration result" if ok else "Calibration failed"
    survey_filter = f"{result.survey or ''}/{result.filter or ''}" if (result.survey or result.filter) else None
    if result.detected is False and result.mag is None:
        magnitude: str | None = "not detected"
    else:
        magnitude = _with_error(result.mag, result.mag_err)
    rows: list[tuple[str, object]] = [
        ("Event", result.ivorn),
        ("Observatory", result.observatory),
        ("MJD", _number(result.mjd, 5)),
        ("Survey / filter", survey_filter),
        ("Magnitude", magnitude),
        ("Limiting magnitude", _with_note(result.limit_mag, result.limit_method, 2)),
        ("Zero point", _with_error(result.zeropoint, result.zeropoint_err)),
        ("Colour term", _with_note(result.colour_term, result.colour, 3)),
        ("Stars used", result.npoints),
        ("Scatter", result.scatter),
        ("Stored", _stored(result)),
        ("Followup id", result.followup_id),
    ]
    rows.extend(_frame_rows(result))
    if not ok:
        rows.insert(0, ("Error", result.error))
    if result.comment:
        rows.append(("Comment", result.comment))
    table = "\n".join(f"<tr><th>{escape(k)}</th><td>{escape(_text(v))}</td></tr>" for k, v in rows)
    notes = "".join(f'<p class="warning">{escape(_text(w))}</p>' for w in warnings or ())
    cutout = _plot_link(result.cutout_link, "the frame around the target, aperture drawn")
    kind, role = ("ok", "status") if ok else ("error", "alert")
    content = f"""<p class="message msg {kind}" role="{role}" id="msg-{kind}">{escape(_text(result.message))}</p>
{notes}<table class="kv" id="result-table">{table}</table>
{_datapoint_link(result.followup_id)}{_plot_link(result.image_link)}{cutout}
<p><a href="/upload">Upload another</a> · <a href="/uploads">my uploads</a></p>"""
    # the site's frame (styling, navigation), as every page: the no-JavaScript upload lands here
    return webframe.frame(title, content)
