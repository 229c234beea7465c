"""`photcal catalog load|attach|list`: the reference catalogues (HATS) under PHOTCAL_DATA_DIR."""

from __future__ import annotations

import json
import sys

from shared.contracts.errors import ErrorCode
from shared.errors import BadInput
from shared.settings import CommonSettings


def parse_columns(text: str | None) -> dict[str, str]:
    """``Vmag=phot_v,e_Vmag=phot_v_err`` -> {VizieR name: catalogue column}."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        ours, sep, theirs = item.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise BadInput(
                f"--columns: {item!r} is not VizierName=column (e.g. Gmag=phot_g_mean_mag)",
                code=ErrorCode.BAD_COLUMN_MAP,
            )
        out[ours.strip()] = theirs.strip()
    return out


def _fmt_rows(n) -> str:
    return "?" if n is None else f"{int(n):,}"


def format_table(entries: list[dict]) -> str:
    """The catalogues as an aligned text table."""
    if not entries:
        return "no reference catalogues yet: load VizieR extracts with `photcal catalog load --survey S FILE...`"
    header = ["SURVEY", "SOURCE", "ROWS", "PARTS", "AREA deg2", "SKY %", "BANDS", "VERSION", "WHERE"]
    rows = []
    for e in entries:
        area = float(e.get("area_deg2") or 0.0)
        rows.append(
            [
                e["survey"],
                "remote" if e.get("remote") else ("attached" if e.get("attached") else "local"),
                _fmt_rows(e.get("rows")),
                str(e.get("partitions", "")),
                f"{area:,.1f}",
                f"{100 * area / 41252.96:.2f}",
                ",".join(e.get("bands", [])),
                e.get("version") or "",
                e.get("source") or "",
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4, 5}
    lines = []
    for r in [header, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args, settings: CommonSettings) -> int:
    if args.action == "load":
        from services.catalog.loader import load_extracts

        missing = [str(f) for f in args.files if not f.exists()]
        if missing:
            print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
            return 2
        report = load_extracts(args.survey, list(args.files), settings.data_dir, progress=sys.stderr.isatty())
        rate = report.rows_read / report.seconds if report.seconds > 0 else 0.0
        print(
            f"{args.survey}: {report.rows_read} rows read from {len(args.files)} file(s), "
            f"{report.rows_without_position} without position skipped, {report.rows_new} new, "
            f"{report.rows_total} in the catalogue ({report.seconds:.1f} s, {rate:,.0f} rows/s)"
        )
        return 0
    if args.action == "attach":
        from services.catalog.loader import attach_catalogue
        from services.catalog.store import CatalogStore

        column_map = parse_columns(args.columns)
        version = attach_catalogue(args.survey, args.source, settings.data_dir, column_map)
        spec = json.loads((version / "attached.json").read_text())
        entry = next((e for e in CatalogStore(settings.data_dir).list_catalogs() if e["survey"] == args.survey), None)
        print(f"{args.survey}: now served from {spec['source']} ({version.name})")
        cols = spec["columns"]
        print(f"  position: {cols['ra']}, {cols['dec']}")
        absent = set(spec.get("missing", []))
        for band, (mag, err) in cols["bands"].items():
            if mag in absent:
                print(f"  {band}: not in the catalogue (answers NaN; map it with --columns {mag}=COLUMN)")
            else:
                print(f"  {band}: {mag} +/- {err if err not in absent else 'no error column (NaN)'}")
        if entry is not None:
            print(format_table([entry]))
        return 0
    if args.action == "list":
        from services.catalog.store import CatalogStore

        entries = CatalogStore(settings.data_dir).list_catalogs()
        if getattr(args, "json", False):
            print(json.dumps(entries, indent=1))
        else:
            print(format_table(entries))
        return 0
    return 2
