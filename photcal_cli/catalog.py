"""`photcal catalog load|list`: the local HATS reference catalogues."""

from __future__ import annotations

import sys

from shared.settings import CommonSettings


def run(args, settings: CommonSettings) -> int:
    if args.action == "load":
        from services.catalog.loader import load_extracts

        missing = [str(f) for f in args.files if not f.exists()]
        if missing:
            print(f"error: no such file: {', '.join(missing)}", file=sys.stderr)
            return 2
        report = load_extracts(args.survey, list(args.files), settings.data_dir, progress=sys.stderr.isatty())
        print(
            f"{args.survey}: {report.rows_read} rows read from {len(args.files)} file(s), "
            f"{report.rows_without_position} without position skipped, {report.rows_new} new, "
            f"{report.rows_total} in the catalogue"
        )
        return 0
    if args.action == "list":
        from services.catalog.store import CatalogStore

        for entry in CatalogStore(settings.data_dir).list_catalogs():
            print("\t".join(f"{k}={v}" for k, v in entry.items()))
        return 0
    return 2
