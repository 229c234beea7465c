"""The HTML answer to an upload (CPCS's ``outputFormat=html``), everything escaped."""

from __future__ import annotations

from html import escape

from shared.models import CalibrationResult


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def render_result_html(result: CalibrationResult) -> str:
    title = "Calibration result" if result.status == "ok" else "Calibration failed"
    rows = [
        ("Event", result.ivorn),
        ("Observatory", result.observatory),
        ("MJD", result.mjd),
        ("Survey / filter", f"{result.survey or ''}/{result.filter or ''}"),
        ("Magnitude", None if result.mag is None else f"{result.mag:.3f} ± {result.mag_err:.3f}"),
        ("Limiting magnitude", None if result.limit_mag is None else f"{result.limit_mag:.2f} ({result.limit_method})"),
        ("Zero point", result.zeropoint),
        ("Colour term", None if result.colour_term is None else f"{result.colour_term:.3f} ({result.colour})"),
        ("Stars used", result.npoints),
        ("Scatter", result.scatter),
        ("Stored", "yes" if result.stored else "no (dry run)" if result.dry_run else "no"),
        ("Followup id", result.followup_id),
    ]
    table = "\n".join(f"<tr><th>{escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    plot = f'<p><img src="{escape(result.image_link)}" alt="calibration plot"></p>' if result.image_link else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>
<p class="message">{escape(result.message)}</p>
<table>{table}</table>
{plot}
</body></html>"""
