"""Reference catalogue service: load rate, cone latency through NATS, memory.

1. 1,000,000 APASS-like stars (a 25 x 20 deg patch, ~2,000 stars/deg2, so a
   0.25 deg cone holds ~400 stars as in the Galactic plane) written as a
   VizieR-style CSV.gz under bench/out/catalog/ (kept between runs);
2. loaded with services.catalog.loader.load_extracts (the `photcal catalog
   load` code): stars/s;
3. a real nats-server and `python -m services.catalog` as its own process;
   cones of radius 0.25 deg at random fields of the patch asked with
   request/reply from a nats-py client: the first (cold) query, then
   10,000 queries: p50/p99, and the service's RSS before and after.

Targets (issue 10): p50 <= 10 ms, p99 <= 40 ms; load >= 100,000 stars/s;
RSS bounded by PHOTCAL_CATALOG_CACHE_PARTITIONS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "catalog"

N_STARS = int(os.environ.get("BENCH_CATALOG_STARS", 1_000_000))
N_QUERIES = int(os.environ.get("BENCH_CATALOG_QUERIES", 10_000))
RADIUS = 0.25
RA_RANGE = (100.0, 125.0)
DEC_RANGE = (-10.0, 10.0)
CACHE_PARTITIONS = int(os.environ.get("BENCH_CATALOG_CACHE_PARTITIONS", 64))


def _random_positions(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on the sphere inside the RA/Dec box."""
    ra = rng.uniform(*RA_RANGE, n)
    z = rng.uniform(np.sin(np.radians(DEC_RANGE[0])), np.sin(np.radians(DEC_RANGE[1])), n)
    return ra, np.degrees(np.arcsin(z))


def make_extract(path: Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from shared.contracts.surveys import APASS

    rng = np.random.default_rng(2024)
    ra, dec = _random_positions(rng, n)
    cols = {"RAJ2000": np.round(ra, 6), "DEJ2000": np.round(dec, 6)}
    for band in APASS.bands:
        mag = np.round(rng.uniform(10.0, 17.5, n), 3)
        mag[rng.random(n) < 0.05] = np.nan
        cols[band.column] = mag
        cols[band.error_column] = np.round(rng.uniform(0.01, 0.15, n), 3)
    table = pa.table(cols)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with pa.CompressedOutputStream(str(tmp), "gzip") as stream:
        pacsv.write_csv(table, stream)
    os.replace(tmp, path)


def rss_kb(pid: int) -> int:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss // 1024
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def _queries(nats_url: str, pid: int, n: int) -> dict:
    import nats

    from shared.contracts.messages import ConeReply, ConeRequest
    from shared.contracts.subjects import SUBJECT_CONE

    nc = await nats.connect(nats_url)
    rng = np.random.default_rng(7)
    ra, dec = _random_positions(rng, n + 1)
    # keep the cones inside the patch
    ra = RA_RANGE[0] + 0.5 + (ra - RA_RANGE[0]) * (RA_RANGE[1] - RA_RANGE[0] - 1.0) / (RA_RANGE[1] - RA_RANGE[0])
    dec = np.clip(dec, DEC_RANGE[0] + 0.5, DEC_RANGE[1] - 0.5)

    async def one(i: int) -> tuple[float, int]:
        body = ConeRequest(ra=float(ra[i]), dec=float(dec[i]), radius_deg=RADIUS, surveys=["APASS"]).model_dump_json()
        t0 = time.perf_counter()
        msg = await nc.request(SUBJECT_CONE, body.encode(), timeout=30)
        reply = ConeReply.model_validate_json(msg.data)
        dt = time.perf_counter() - t0
        assert reply.ok, reply.message
        return dt, len(reply.stars["APASS"]) if "APASS" in reply.stars else 0

    try:
        cold, cold_n = await one(n)
        rss_before = rss_kb(pid)
        times = np.empty(n)
        stars = np.empty(n, dtype=np.int64)
        for i in range(n):
            times[i], stars[i] = await one(i)
        rss_after = rss_kb(pid)
    finally:
        await nc.close()
    return {
        "cold": cold,
        "cold_n": cold_n,
        "times": times,
        "stars": stars,
        "rss_before": rss_before,
        "rss_after": rss_after,
    }


def _serve_and_ask(work: Path, data_dir: Path, nats_url: str, cache: int, n: int) -> tuple[int, dict]:
    """Start `python -m services.catalog` with this cache size, ask ``n`` cones; (RSS at start, results)."""
    from tools.infra import free_port, terminate, wait_for_port

    port = free_port()
    env = dict(os.environ)
    env.update(
        PHOTCAL_NATS_URL=nats_url,
        PHOTCAL_DATA_DIR=str(data_dir),
        PHOTCAL_CATALOG_PORT=str(port),
        PHOTCAL_HTTP_PORT=str(free_port()),
        PHOTCAL_CATALOG_CACHE_PARTITIONS=str(cache),
        PHOTCAL_LOG_LEVEL="WARNING",
    )
    with open(work / f"catalog-{cache}.log", "ab") as log:
        svc = subprocess.Popen(
            [sys.executable, "-m", "services.catalog"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, timeout=60, proc=svc)
        rss_start = rss_kb(svc.pid)
        return rss_start, asyncio.run(_queries(nats_url, svc.pid, n))
    finally:
        terminate(svc, 20)


def main() -> None:
    from services.catalog.loader import load_extracts
    from tools.infra import free_port, nats_server

    extract = OUT / f"apass_{N_STARS}.csv.gz"
    if not extract.exists():
        t0 = time.perf_counter()
        make_extract(extract, N_STARS)
        print(f"generated {N_STARS:,} stars -> {extract.relative_to(ROOT)} ({time.perf_counter() - t0:.1f} s)")
    size_mb = extract.stat().st_size / 1e6

    work = Path(tempfile.mkdtemp(prefix="bench-catalog-", dir=OUT))
    data_dir = work / "data"
    try:
        report = load_extracts("APASS", [extract], data_dir)
        rate = report.rows_read / report.seconds
        print(
            f"load: {report.rows_read:,} stars from CSV.gz ({size_mb:.0f} MB) in {report.seconds:.2f} s = "
            f"{rate:,.0f} stars/s  (target >= 100,000)  [{report.partitions} partitions]"
        )
        again = load_extracts("APASS", [extract], data_dir)
        print(f"load again (idempotent): {again.rows_new} new, {again.seconds:.2f} s")

        nats = nats_server(work / "nats", free_port()).start()
        try:
            for cache, n in ((CACHE_PARTITIONS, N_QUERIES), (4, min(N_QUERIES, 2_000))):
                rss_start, res = _serve_and_ask(work, data_dir, nats.url, cache, n)
                t = res["times"] * 1000
                print(
                    f"cone r={RADIUS} deg through NATS over {report.rows_total:,} stars, cache {cache} partitions, "
                    f"{n:,} random fields ({np.median(res['stars']):.0f} stars per cone, median):"
                )
                print(f"  cold first query: {res['cold'] * 1000:.1f} ms ({res['cold_n']} stars)")
                print(
                    f"  p50 {np.percentile(t, 50):.2f} ms (target <= 10)   p99 {np.percentile(t, 99):.2f} ms "
                    f"(target <= 40)   mean {t.mean():.2f} ms   max {t.max():.1f} ms"
                )
                print(
                    f"  catalog service RSS: {rss_start / 1024:.0f} MB at start, {res['rss_before'] / 1024:.0f} MB "
                    f"after the cold query, {res['rss_after'] / 1024:.0f} MB after {n:,} queries "
                    f"(PHOTCAL_CATALOG_CACHE_PARTITIONS={cache}; the catalogue has {report.partitions} partitions "
                    f"of <= {100_000:,} rows)"
                )
        finally:
            nats.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
