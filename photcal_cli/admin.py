"""Observatory and alert commands (they talk to the same database as `photcal run`)."""

from __future__ import annotations

import sys

from photcal_cli.database import command_database
from shared.db.observatories import add_observatory, list_observatories, revoke, rotate
from shared.errors import BadInput
from shared.settings import CommonSettings
from shared.usecases.events import add_event, event_fields


async def run(args, settings: CommonSettings) -> int:
    async with command_database(settings) as db:
        handler = COMMANDS[(args.command, args.action)]
        return await handler(args, settings, db)


async def observatory_add(args, settings, db) -> int:
    filters = [f.strip() for f in args.filters.split(",") if f.strip()]
    obs, hashtag = await add_observatory(
        db, settings.pepper(), name=args.name, lon=args.lon, lat=args.lat, filters=filters, is_admin=args.admin
    )
    print(f"observatory {obs.name} added (id {obs.observatory_id})")
    print(f"hashtag: {hashtag}")
    print("keep it: it is shown only this once (only its hash is stored)")
    return 0


async def observatory_revoke(args, settings, db) -> int:
    if not await revoke(db, args.name):
        print(f"error: no observatory named {args.name!r}", file=sys.stderr)
        return 2
    print(f"hashtag of {args.name} revoked")
    return 0


async def observatory_rotate(args, settings, db) -> int:
    hashtag = await rotate(db, settings.pepper(), args.name)
    if hashtag is None:
        print(f"error: no observatory named {args.name!r}", file=sys.stderr)
        return 2
    print(f"new hashtag of {args.name}: {hashtag}")
    print("keep it: it is shown only this once; the previous hashtag no longer works")
    return 0


async def observatory_list(args, settings, db) -> int:
    for obs in await list_observatories(db):
        state = "revoked" if obs.revoked else "active"
        print(f"{obs.name}\t{obs.observatory_id}\tlon={obs.lon}\tlat={obs.lat}\t{','.join(obs.filters)}\t{state}")
    return 0


async def observatory_webhook_secret(args, settings, db) -> int:
    from shared.db.webhook_secrets import rotate_secret, secret_of

    found = [obs for obs in await list_observatories(db) if obs.name == args.name]
    if not found:
        print(f"error: no observatory named {args.name!r}", file=sys.stderr)
        return 2
    observatory_id = found[0].observatory_id
    doc = await (rotate_secret if args.rotate else secret_of)(db, observatory_id)
    print(f"webhook secret of {args.name}: {doc['secret']}")
    if args.rotate:
        print("deliveries are signed with it from now on; the previous secret no longer verifies")
    return 0


async def alert_add(args, settings, db) -> int:
    fields, problems = event_fields(
        {"ivorn": args.ivorn, "ra": args.ra, "dec": args.dec, "url": args.url, "name": args.name}
    )
    if fields is None:
        raise BadInput("; ".join(p.reason for p in problems))
    stored, warnings = await add_event(db, fields, created_by=None)
    print(f"alert {stored.ivorn} added (id {stored.alert_id})")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


async def alerts_import(args, settings, db) -> int:
    from photcal_cli.gaia_alerts import import_alerts

    created, updated, skipped, refused = await import_alerts(db, args.file)
    for line in refused[:50]:
        print(f"refused: {line}", file=sys.stderr)
    if len(refused) > 50:
        print(f"refused: ... and {len(refused) - 50} more", file=sys.stderr)
    print(f"{created} alerts created, {updated} updated, {skipped} rows skipped")
    return 0


async def alerts_poll(args, settings, db) -> int:
    import aiohttp

    from services.intake.settings import IntakeSettings
    from shared.usecases.alert_intake import FeedError, poll_feed

    intake = IntakeSettings()
    url = args.url or intake.alerts_feed_url
    async with aiohttp.ClientSession(headers={"User-Agent": "photcal-cli"}) as session:
        try:
            counts = await poll_feed(
                db, session, url, timeout_s=intake.alerts_feed_timeout, max_bytes=intake.alerts_feed_max_bytes
            )
        except FeedError as exc:
            print(f"error: {exc.message} ({exc.reason})", file=sys.stderr)
            return 1
    for line in counts.refused[:50]:
        print(f"refused: {line}", file=sys.stderr)
    print(f"{url}: alerts {counts.summary()}")
    return 0


COMMANDS = {
    ("observatory", "add"): observatory_add,
    ("observatory", "revoke"): observatory_revoke,
    ("observatory", "rotate"): observatory_rotate,
    ("observatory", "list"): observatory_list,
    ("observatory", "webhook-secret"): observatory_webhook_secret,
    ("alert", "add"): alert_add,
    ("alerts", "import"): alerts_import,
    ("alerts", "poll"): alerts_poll,
}
