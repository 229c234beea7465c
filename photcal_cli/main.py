"""The `photcal` command: run the stack, manage observatories, alerts and catalogues."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from shared.contracts.surveys import SURVEYS, get_survey
from shared.errors import PhotcalError
from shared.settings import CommonSettings


def survey_name(value: str) -> str:
    """A survey named in any case (``gaia``, ``gaiasp``) in its own spelling (``GAIA``, ``GaiaSP``)."""
    try:
        return get_survey(value.strip()).name
    except KeyError:
        return value  # argparse refuses it, listing the choices


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="photcal", description="photometric calibration server for transient follow-up"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the whole stack in the foreground (embedded NATS and database by default)")
    run.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="SERVICE",
        help="do not start this service (repeatable; e.g. photometry: frames then wait in their queue)",
    )
    sub.add_parser("compile", help="compile the calibration kernels into their on-disk cache (once per install)")

    obs = sub.add_parser("observatory", help="manage observatories and their hashtags").add_subparsers(
        dest="action", required=True
    )
    add = obs.add_parser("add", help="add an observatory; prints its hashtag once")
    add.add_argument("--name", required=True)
    add.add_argument("--lon", type=float)
    add.add_argument("--lat", type=float)
    add.add_argument("--filters", default="", help="comma-separated, e.g. V,r")
    add.add_argument("--admin", action="store_true", help="may add observatories through /cgi/newuser")
    revoke = obs.add_parser("revoke", help="revoke an observatory's hashtag")
    revoke.add_argument("--name", required=True)
    rotate = obs.add_parser(
        "rotate", help="give an observatory a new hashtag (prints it once); the old one stops working"
    )
    rotate.add_argument("--name", required=True)
    obs.add_parser("list", help="list observatories")
    webhook = obs.add_parser(
        "webhook-secret", help="print the secret an observatory's callbacks and subscriptions are signed with"
    )
    webhook.add_argument("--name", required=True)
    webhook.add_argument("--rotate", action="store_true", help="replace it first: the old one stops signing at once")

    alert = sub.add_parser("alert", help="manage alerts").add_subparsers(dest="action", required=True)
    aadd = alert.add_parser("add", help="add an alert (event)")
    aadd.add_argument("--ivorn", required=True)
    aadd.add_argument("--ra", type=float, required=True, help="degrees")
    aadd.add_argument("--dec", type=float, required=True, help="degrees")
    aadd.add_argument("--url", default=None)
    aadd.add_argument("--name", default=None)

    alerts = sub.add_parser("alerts", help="bulk alert operations").add_subparsers(dest="action", required=True)
    imp = alerts.add_parser("import", help="import the Gaia Science Alerts alerts.csv")
    imp.add_argument("file", type=Path)
    poll = alerts.add_parser(
        "poll",
        help="read the Gaia Science Alerts list from its URL once: add new alerts, update changed ones "
        "(the intake service does it on a schedule when PHOTCAL_ALERTS_FEED_ENABLED=1)",
    )
    poll.add_argument(
        "--once", action="store_true", required=True, help="one reading, then exit (the schedule is the service's)"
    )
    poll.add_argument("url", nargs="?", default=None, help="the list's URL (default: PHOTCAL_ALERTS_FEED_URL)")

    imports = sub.add_parser("import", help="import old data: the CPCS archive").add_subparsers(
        dest="action", required=True
    )
    cpcs = imports.add_parser(
        "cpcs",
        help="import CPCS light curves (get_alert_lc_data JSON) as datapoints marked imported, idempotently",
    )
    cpcs.add_argument(
        "sources", nargs="+", metavar="FILE|URL|DIR", help="get_alert_lc_data JSON files, URLs or directories of them"
    )
    cpcs.add_argument(
        "--observatory-map",
        required=True,
        metavar="MAP",
        help="CSV (old CPCS name,photcal observatory name or id) or JSON object of the same",
    )
    cpcs.add_argument("--alert", default=None, metavar="NAME|IVORN", help="the alert of files that name none")
    cpcs.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="FILE|URL",
        help="CPCS's list_of_alerts JSON: the alerts of files named alert-<CPCS id>.json",
    )
    cpcs.add_argument(
        "--unmapped-to", default=None, metavar="NAME", help="the photcal observatory of the names the map lacks"
    )
    cpcs.add_argument(
        "--create-missing-alerts",
        action="store_true",
        help="add the alerts photcal lacks, from the ivorn and position the files give",
    )
    cats = imports.add_parser(
        "catalogues", help="re-upload old instrumental catalogues through the gateway (calibrated on the way)"
    )
    cats.add_argument("directory", metavar="DIR", help="the catalogues and their manifest.csv")
    cats.add_argument("--manifest", default=None, help="the manifest (default DIR/manifest.csv)")
    cats.add_argument("--url", default=None, help="the gateway (default http://127.0.0.1:PHOTCAL_HTTP_PORT)")
    cats.add_argument("--hashtag", default=None, help="the observatory's hashtag, for rows without their own")
    cats.add_argument("--concurrency", type=int, default=2, help="uploads at a time (default 2)")
    cats.add_argument("--plots", action="store_true", help="draw each calibration's plot (default: none)")

    cat = sub.add_parser("catalog", help="reference catalogues").add_subparsers(dest="action", required=True)
    load = cat.add_parser("load", help="load VizieR extracts into a survey's HATS catalogue")
    load.add_argument("--survey", required=True, choices=list(SURVEYS), type=survey_name)
    load.add_argument("files", nargs="+", type=Path)
    attach = cat.add_parser(
        "attach", help="serve a survey from an existing HATS catalogue (local path or http(s)/s3 URL)"
    )
    attach.add_argument("--survey", required=True, choices=list(SURVEYS), type=survey_name)
    attach.add_argument("source", metavar="URL_OR_PATH")
    attach.add_argument(
        "--columns",
        default=None,
        help="VizieR name=catalogue column, comma-separated (e.g. Gmag=phot_g_mean_mag); others are detected",
    )
    clist = cat.add_parser("list", help="list the reference catalogues (rows, sky coverage, bands)")
    clist.add_argument("--json", action="store_true", help="machine-readable output")

    recal = sub.add_parser(
        "recalibrate",
        help="a recalibration job (dry run) over the selected datapoints against a survey's catalogue (lsdb on Dask)",
    )
    from photcal_cli.recalibrate import add_arguments

    add_arguments(recal)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = CommonSettings()
    try:
        if args.command == "run":
            from photcal_cli.supervisor import run_stack
            from shared.logging import configure_logging

            configure_logging("supervisor", settings.log_level)
            return run_stack(settings, tuple(args.without))
        if args.command == "compile":
            from photcal_cli.compile import compile_kernels

            print(f"kernels compiled (or loaded from the cache) in {compile_kernels():.1f} s")
            return 0
        if args.command == "recalibrate":
            from photcal_cli import recalibrate

            return asyncio.run(recalibrate.run(args, settings))
        if args.command == "import" and args.action == "cpcs":
            from photcal_cli import cpcs_import

            return asyncio.run(cpcs_import.run(args, settings))
        if args.command == "import":
            from photcal_cli import catalogues_import

            return asyncio.run(catalogues_import.run(args, settings))
        if args.command == "catalog":
            from photcal_cli import catalog

            return catalog.run(args, settings)
        from photcal_cli import admin

        return asyncio.run(admin.run(args, settings))
    except PhotcalError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
