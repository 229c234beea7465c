"""Issue 5: render time of the observer's pages. Target: a light curve of 5,000 points in under 200 ms.

Runs a real stack (`photcal run` on its own nats-server and nx-27017), inserts
5,000 datapoints of one alert (4 observatories, 3 filters, 10% limits) and
10,000 alerts directly with shared/db, then times the HTML pages through the
gateway as a browser fetches them (the whole answer read), after one warm-up.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from urllib.parse import quote

import aiohttp

from shared.db import connect_database
from shared.db.alerts import Alert, add_alert
from shared.db.datapoints import store_datapoint
from tools.devstack import standalone_stack

IVORN = "ivo://gaia/alerts#BenchPages"
N_POINTS = 5_000
N_ALERTS = 10_000
ROUNDS = int(os.environ.get("PHOTCAL_BENCH_ROUNDS", "20"))
TARGET_MS = 200.0


async def _fill(mongo_url: str) -> None:
    db = connect_database(mongo_url)
    try:
        await add_alert(db, Alert(ivorn=IVORN, ra=150.0, dec=30.0, name="BenchPages", url="https://example.org/b"))
        docs = []
        for i in range(N_POINTS):
            limit = i % 10 == 0
            docs.append(
                {
                    "followup_id": 10_000_000 + i,
                    "upload_id": f"bench{i}",
                    "ivorn": IVORN,
                    "alert_name": "BenchPages",
                    "observatory_id": f"obs{i % 4}",
                    "observatory": f"Observatory {i % 4}",
                    "mjd": 59000 + i * 0.2,
                    "exptime": 120.0,
                    "survey": "APASS",
                    "filter": "VrB"[i % 3],
                    "mag": None if limit else 17 + (i % 50) / 25,
                    "mag_err": None if limit else 0.04,
                    "limit_mag": 19.8 if limit else None,
                    "detected": not limit,
                    "zeropoint_err": 0.02,
                    "comment": "bench <point>",
                    "calibration_id": f"bench{i}",
                    "dedupe_key": f"bench|{i}",
                    "deleted": False,
                }
            )
        await db.datapoints.insert_many(docs)
        # the ids the inserted points took: a datapoint stored later gets the next one, as in production
        await db.db["counters"].update_one(
            {"_id": "datapoints"}, {"$set": {"value": 10_000_000 + N_POINTS}}, upsert=True
        )
        await db.alerts.insert_many(
            [
                {
                    "ivorn": f"ivo://gaia/alerts#BenchBulk{i:05d}",
                    "name": f"BenchBulk{i:05d}",
                    "ra": (i * 0.036) % 360,
                    "dec": -60 + i * 0.01,
                    "url": None,
                    "alert_id": 1_000_000 + i,
                    "extra": {},
                }
                for i in range(N_ALERTS)
            ]
        )
    finally:
        await db.close()


async def _time(session: aiohttp.ClientSession, url: str, rounds: int) -> tuple[list[float], int]:
    t0 = time.perf_counter()
    async with session.get(url) as r:  # the first read after a change (summaries and light curves are then reused)
        body = await r.read()
        assert r.status == 200, (r.status, body[:300])
    times = [(time.perf_counter() - t0) * 1000]
    for _ in range(rounds):
        t0 = time.perf_counter()
        async with session.get(url) as r:
            body = await r.read()
        times.append((time.perf_counter() - t0) * 1000)
    return times, len(body)


async def _another_alerts_datapoint(mongo_url: str, i: int) -> None:
    """What a busy network does between two page views: a datapoint of another alert is stored."""
    db = connect_database(mongo_url)
    try:
        await store_datapoint(
            db,
            {
                "upload_id": f"other{i}",
                "ivorn": "ivo://gaia/alerts#BenchBulk00001",
                "observatory_id": "obs0",
                "observatory": "Observatory 0",
                "mjd": 60000 + i,
                "survey": "APASS",
                "filter": "V",
                "mag": 16.0,
                "mag_err": 0.03,
                "limit_mag": 19.5,
                "detected": True,
            },
        )
    finally:
        await db.close()


async def _after_another_upload(base: str, mongo_url: str, session: aiohttp.ClientSession) -> None:
    for label, url in (
        (f"light curve, {N_POINTS:,} points (HTML)", f"{base}/lightcurve/{quote(IVORN, safe='')}"),
        (f"alerts list, {N_ALERTS:,} alerts, page 1", f"{base}/alerts"),
    ):
        times = []
        for i in range(5):
            await _another_alerts_datapoint(mongo_url, len(label) * 100 + i)
            t0 = time.perf_counter()
            async with session.get(url) as r:
                await r.read()
            times.append((time.perf_counter() - t0) * 1000)
        print(
            f"{label:62s} right after another alert's datapoint: median {statistics.median(times):6.1f} ms", flush=True
        )


async def _run(base: str, mongo_url: str) -> None:
    pages = [
        (f"light curve, {N_POINTS:,} points (HTML, plot data + table)", f"{base}/lightcurve/{quote(IVORN, safe='')}"),
        (f"light curve, {N_POINTS:,} points (JSON API)", f"{base}/api/v1/lightcurves/{quote(IVORN, safe='')}"),
        (f"alerts list, {N_ALERTS:,} alerts, page 1", f"{base}/alerts"),
        (f"alerts list, {N_ALERTS:,} alerts, sorted by name, search", f"{base}/alerts?sort=name&dir=asc&q=bulk0"),
        ("follow-up list, page 1", f"{base}/followup"),
    ]
    async with aiohttp.ClientSession() as session:
        for label, url in pages:
            times, size = await _time(session, url, ROUNDS)
            cold, times = times[0], times[1:]
            p50, p95 = statistics.median(times), sorted(times)[int(0.95 * (len(times) - 1))]
            verdict = ""
            if "HTML" in label:
                met = cold < TARGET_MS and p50 < TARGET_MS  # the first request (read from the database) too
                verdict = f"  (target < {TARGET_MS:.0f} ms, first and p50: {'met' if met else 'NOT met'})"
            print(
                f"{label:62s} first {cold:6.1f} ms, then p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
                f"{size / 1024:5.0f} KiB{verdict}",
                flush=True,
            )
        await _after_another_upload(base, mongo_url, session)


def main() -> None:
    stack, servers = standalone_stack()
    try:
        asyncio.run(_fill(stack.env["PHOTCAL_MONGO_URL"]))
        stack.start()
        print(f"through the gateway: the first request (data read from the database), then {ROUNDS} more", flush=True)
        asyncio.run(_run(stack.url, stack.env["PHOTCAL_MONGO_URL"]))
    finally:
        stack.stop()
        for server in reversed(servers):
            server.stop()


if __name__ == "__main__":
    main()
