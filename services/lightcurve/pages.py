"""Minimal HTML pages (every value escaped)."""

from __future__ import annotations

from html import escape
from urllib.parse import quote


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return escape(str(value))


def table(rows: list[dict], columns: tuple[str, ...], link_column: str | None = None) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            text = _cell(row.get(c))
            if c == link_column and row.get("ivorn"):
                text = f'<a href="/lightcurve/{quote(row["ivorn"], safe="")}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(title: str, content: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · photcal</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}</style>
</head><body><nav><a href="/alerts">alerts</a> · <a href="/followup">follow-up</a></nav>
<h1>{escape(title)}</h1>{content}</body></html>"""
