"""Issue 6: a load run. 500 uploads at the concurrency that saturates the machine.

Starts its own stack (`photcal run` on a fresh nats-server and nx-27017, free
ports) with the committed field tests/data/fields/north_V, finds the client
concurrency beyond which throughput stops growing (short probe of dry runs),
then sends ``PHOTCAL_BENCH_LOAD_N`` (500) stored uploads through the CPCS
endpoint exactly as curl does, each waiting for its calibration, and prints:
throughput, p50/p99 latency, errors (target 0) and datapoints stored, counted
in the database (target: equal to the uploads accepted).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
import numpy as np
import pymongo

from tools.devstack import standalone_stack

ROOT = Path(__file__).resolve().parent.parent
FIELD = ROOT / "tests" / "data" / "fields" / "north_V"
IVORN = "ivo://gaia/alerts#BenchLoad"
PROBE_IVORN = "ivo://gaia/alerts#BenchLoadProbe"
N = int(os.environ.get("PHOTCAL_BENCH_LOAD_N", "500"))
PROBE_N = int(os.environ.get("PHOTCAL_BENCH_PROBE_N", "40"))
LEVELS = (1, 2, 4, 8, 16, 32)


async def one_upload(
    session: aiohttp.ClientSession, url: str, hashtag: str, cat: bytes, mjd: float, dry_run: bool, ivorn: str
) -> tuple[float, int, dict]:
    form = aiohttp.FormData()
    for key, value in {
        "hashtag": hashtag,
        "EventID": ivorn,
        "MJD": f"{mjd:.6f}",
        "expTime": "60",
        "matchDist": "2",
        "noPlot": "1",
        "dryRun": "1" if dry_run else "0",
        "outputFormat": "json",
    }.items():
        form.add_field(key, value)
    form.add_field("sexCat", cat, filename="cat.txt", content_type="text/plain")
    started = time.perf_counter()
    try:
        async with session.post(f"{url}/cgi/upload", data=form) as response:
            body = await response.json(content_type=None)
            status = response.status
    except Exception as exc:  # a dropped connection is an error like any other
        return time.perf_counter() - started, 0, {"error": repr(exc)}
    return time.perf_counter() - started, status, body


async def run_batch(
    url: str, hashtag: str, cat: bytes, mjds: list[float], concurrency: int, dry_run: bool, ivorn: str = IVORN
):
    queue: asyncio.Queue[float] = asyncio.Queue()
    for mjd in mjds:
        queue.put_nowait(mjd)
    results: list[tuple[float, int, dict]] = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def client() -> None:
            while not queue.empty():
                mjd = queue.get_nowait()
                results.append(await one_upload(session, url, hashtag, cat, mjd, dry_run, ivorn))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return results, elapsed


def saturating_concurrency(url: str, hashtag: str, cat: bytes) -> int:
    """The smallest concurrency past which doubling gains under 10 % throughput."""
    print(f"probe: {PROBE_N} stored uploads per level (another alert)")
    print(f"{'clients':>8} {'uploads/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    best_c, best_rate, mjd = LEVELS[0], 0.0, 59000.0
    for c in LEVELS:
        mjds = [mjd + i * 0.001 for i in range(PROBE_N)]
        mjd += 1
        results, elapsed = asyncio.run(run_batch(url, hashtag, cat, mjds, c, dry_run=False, ivorn=PROBE_IVORN))
        rate = len(results) / elapsed
        lat = [r[0] * 1000 for r in results]
        print(f"{c:>8} {rate:>10.1f} {np.percentile(lat, 50):>8.0f} {np.percentile(lat, 99):>8.0f}", flush=True)
        if rate > best_rate * 1.10:
            best_c, best_rate = c, rate
        else:
            break
    return best_c


def main() -> None:
    stack, servers = standalone_stack(
        # the limits are for hostile clients; this one is a friendly flood from one address with one hashtag
        PHOTCAL_RATE_LIMIT_IP_PER_S="0",
        PHOTCAL_RATE_LIMIT_HASHTAG_PER_S="0",
        PHOTCAL_UPLOAD_TIMEOUT="60",
        PHOTCAL_RATE_LIMIT_READ_PER_S="0",
        PHOTCAL_HTTP_MAX_CONNECTIONS_PER_IP="0",
        PHOTCAL_MONGO_DB="benchload",
    )
    try:
        truth = stack.load_field(FIELD)
        hashtag = stack.add_observatory("Bench Load")
        for ivorn in (IVORN, PROBE_IVORN):
            stack.cli(
                "alert", "add", "--ivorn", ivorn, "--ra", str(truth["alert"]["ra"]), "--dec", str(truth["alert"]["dec"])
            )
        stack.start()
        cat = (FIELD / "sex_cpcs.cat").read_bytes()
        asyncio.run(run_batch(stack.url, hashtag, cat, [58000.0 + i for i in range(5)], 1, dry_run=True))  # warm-up
        concurrency = saturating_concurrency(stack.url, hashtag, cat)
        print(
            f"\nload: {N} stored uploads (CPCS /cgi/upload, synchronous, {len(cat)} B catalogue) "
            f"at {concurrency} concurrent clients, {os.cpu_count()} cores"
        )
        mjds = [60000.0 + i * 0.001 for i in range(N)]
        results, elapsed = asyncio.run(run_batch(stack.url, hashtag, cat, mjds, concurrency, dry_run=False))
        lat = np.array([r[0] * 1000 for r in results])
        accepted = [r[2]["upload_id"] for r in results if r[1] == 200 and r[2].get("stored")]
        errors = [r for r in results if r[1] != 200 or not r[2].get("stored")]
        client: pymongo.MongoClient[dict] = pymongo.MongoClient(stack.env["PHOTCAL_MONGO_URL"])
        try:
            docs = list(client["benchload"].datapoints.find({"ivorn": IVORN}, {"upload_id": 1}))
        finally:
            client.close()
        stored_ids = [d["upload_id"] for d in docs]
        print(f"  throughput          {len(results) / elapsed:8.1f} uploads/s  ({elapsed:.1f} s)")
        print(f"  latency p50         {np.percentile(lat, 50):8.0f} ms")
        print(f"  latency p99         {np.percentile(lat, 99):8.0f} ms   (max {lat.max():.0f} ms)")
        print(f"  errors              {len(errors):8d}      (target 0)")
        if errors:
            kinds: dict[str, int] = {}
            for _, status, body in errors:
                key = f"{status} {body.get('error')}"
                kinds[key] = kinds.get(key, 0) + 1
            print(f"    {json.dumps(kinds)}")
        print(f"  uploads accepted    {len(accepted):8d}")
        same = sorted(stored_ids) == sorted(accepted) and len(set(stored_ids)) == len(stored_ids)
        print(f"  datapoints stored   {len(stored_ids):8d}      (target = accepted: {'yes' if same else 'NO'})")
    finally:
        stack.stop()
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
