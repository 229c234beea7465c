"""Issue 15: dense fields -- the cone (catalog service request -> whole reply, bytes on the wire)
and the calibration at 10,000, 50,000 and 200,000 reference stars (all surveys together).

Three synthetic low-latitude fields (bench/densefield.py: stars uniform in a
0.27 deg cone with simfield's counts and colours, published per survey as
APASS/PS1/GAIA/SDSS extracts) are loaded into one stack (`photcal run` on its
own nats-server and nx-27017). Each field has a frame: a SExtractor catalogue
of its stars inside a 0.34 deg square down to V = 18 (so a denser field has
more sources, as on the sky), plus a transient at the alert position.

Per field:
1. the cone through NATS from a client like the worker's (photcal.catalog.cone.v2):
   p50 of 20, its bytes on the wire and parts, and what the v1 JSON reply would weigh;
2. ``calibrate_frame`` on that reply in this process (median of 5);
3. stored uploads through /cgi/upload (dryRun=0, noPlot=1), synchronous:
   p50/p99 and the median of each stage. The stack runs with
   PHOTCAL_CONE_CACHE_TTL=0, so every upload asks the catalogue for its cone
   (a repeated field normally hits the worker's cone cache and skips that stage).
Then the peak RSS (VmHWM) of the catalog and calibrate service processes.

Target (issue 15): the 200,000-star field calibrated with a stored-upload p50 <= 150 ms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

from bench.densefield import dense_references, frame_catalogue, write_extracts

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "dense"
ROUNDS = int(os.environ.get("BENCH_DENSE_ROUNDS", "20"))
#: (reference stars of all surveys, field centre): low-latitude fields away from each other
FIELDS = ((10_000, (100.0, 0.0)), (50_000, (103.0, 0.0)), (200_000, (106.0, 0.0)))
CONE_RADIUS = 0.262
FRAME_HALF_WIDTH = 0.17
FRAME_LIMIT_V = 18.0


def ivorn(n: int) -> str:
    return f"ivo://gaia/alerts#BenchDense{n}"


def make_fields(work: Path) -> dict[int, dict]:
    """Extracts written under ``work``; per field its frame catalogue and transient."""
    fields = {}
    for n, (ra, dec) in FIELDS:
        # about n in the worker's cone (a little smaller than CONE_RADIUS)
        extracts, stars = dense_references(ra, dec, CONE_RADIUS, int(n * 1.04), seed=n)
        files = write_extracts(extracts, work / "extracts", prefix=f"f{n}")
        transient = (ra + 0.011, dec + 0.013, 16.5)
        cat = frame_catalogue(stars, ra, dec, FRAME_HALF_WIDTH, FRAME_LIMIT_V, transient=transient, seed=n)
        fields[n] = {
            "files": files,
            "catalogue": cat,
            "transient": transient,
            "stars": sum(len(df) for df in extracts.values()),
            "sources": cat.count(b"\n") - 5,
        }
    return fields


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure_cone(nats_url: str, catalogue: bytes, transient) -> dict:
    import nats

    from services.calibrate.cone import ConeClient, field_of
    from services.calibrate.core.api import calibrate_frame
    from services.ingest.parsing import parse_catalogue
    from shared.conewire import PART_OVERHEAD

    sources = parse_catalogue(catalogue).table
    ra, dec, radius = field_of(sources, 1.0)
    nc = await nats.connect(nats_url)
    out = {}
    try:
        # the worker's client; "all": every star in the cone, "cut": as the worker asks (brightest_for)
        client = ConeClient(nc, timeout=30.0, ttl=0.0, size=0)
        for label, n_sources in (("all", None), ("cut", len(sources))):
            times, reply = [], None
            for _ in range(20):
                reply = await client.cone(ra, dec, radius, n_sources=n_sources)
                times.append(client.last_seconds * 1000)
            wire = client.last_wire_bytes
            assert reply is not None
            calib = []
            for _ in range(5):
                started = time.perf_counter()
                cal = calibrate_frame(sources, reply.stars, transient[0], transient[1], 2.0)
                calib.append((time.perf_counter() - started) * 1000)
            out[label] = {
                "cone_ms": statistics.median(times),
                "wire": wire,
                "parts": -(-wire // (nc.max_payload - PART_OVERHEAD)),
                "v1_bytes": len(reply.model_dump_json()),
                "stars": sum(len(s) for s in reply.stars.values()),
                "calibrate_ms": statistics.median(calib),
                "cal": cal,
                "core_ms": cal.durations_ms,
            }
    finally:
        await nc.close()
    return out


async def uploads(url: str, hashtag: str, n: int, catalogue: bytes, rounds: int) -> tuple[list[float], dict, dict]:
    times: list[float] = []
    stages: dict[str, list[float]] = {}
    last: dict = {}
    async with aiohttp.ClientSession() as session:
        for i in range(rounds + 2):
            form = aiohttp.FormData()
            for key, value in {
                "hashtag": hashtag,
                "EventID": ivorn(n),
                "MJD": f"{61000 + n / 1000 + i:.6f}",
                "matchDist": "2",
                "noPlot": "1",
                "dryRun": "0",
                "outputFormat": "json",
                "forceFilter": "no",
            }.items():
                form.add_field(key, value)
            form.add_field("sexCat", catalogue, filename="cat.txt", content_type="text/plain")
            started = time.perf_counter()
            async with session.post(f"{url}/cgi/upload", data=form) as response:
                body = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"upload failed: {response.status} {body}")
            if i < 2:
                continue  # warm-up
            times.append((time.perf_counter() - started) * 1000)
            for stage, ms in body.get("duration_ms", {}).items():
                stages.setdefault(stage, []).append(ms)
            last = body
    return times, stages, last


def main() -> None:
    from tools.devstack import standalone_stack, stop_all

    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-dense-", dir=OUT))
    t0 = time.perf_counter()
    fields = make_fields(work)
    print(f"simulated {len(fields)} fields in {time.perf_counter() - t0:.1f} s")
    stack, servers = standalone_stack(
        workers=1,
        tmp=work / "stack",
        PHOTCAL_RATE_LIMIT_IP_PER_S="0",
        PHOTCAL_RATE_LIMIT_HASHTAG_PER_S="0",
        PHOTCAL_CONE_CACHE_TTL="0",
    )
    try:
        for survey in ("APASS", "PS1", "GAIA", "SDSS"):
            stack.cli("catalog", "load", "--survey", survey, *(str(f["files"][survey]) for f in fields.values()))
        hashtag = stack.add_observatory("BenchDense")
        for n, f in fields.items():
            stack.cli(
                "alert", "add", "--ivorn", ivorn(n), "--ra", str(f["transient"][0]), "--dec", str(f["transient"][1])
            )
        stack.start()
        time.sleep(2.0)  # the services' start-up (imports, compiled kernels) done
        at_start = {svc: rss_mb(stack.service_pid(svc), "VmRSS") for svc in ("catalog", "calibrate")}
        nats_url = stack.env["PHOTCAL_NATS_URL"]
        print(
            f"frame: the field's stars in a {2 * FRAME_HALF_WIDTH} deg square to V = {FRAME_LIMIT_V}; "
            f"{ROUNDS} stored uploads per field (after 2 warm-up), every one asking its cone"
        )
        print(
            f"{'':>4} {'ref stars':>9} {'sources':>7} | {'cone p50':>8} {'wire MB':>7} {'parts':>5} "
            f"{'v1 JSON MB':>10} | "
            f"{'calibrate':>9} (match fit limit) | answer"
        )
        summary = []
        for n, f in fields.items():
            cones = asyncio.run(measure_cone(nats_url, f["catalogue"], f["transient"]))
            for label, cone in cones.items():
                core, t = cone["core_ms"], cone["cal"].target
                print(
                    f"{label:>4} {cone['stars']:>9,} {f['sources']:>7,} | {cone['cone_ms']:6.1f}ms "
                    f"{cone['wire'] / 1e6:7.2f} {cone['parts']:>5} {cone['v1_bytes'] / 1e6:10.2f} | "
                    f"{cone['calibrate_ms']:7.1f}ms ({core['match']:.0f} {core['fit']:.0f} {core['limit']:.0f}) | "
                    f"{cone['cal'].survey} {cone['cal'].band} {t.mag:.4f} limit {t.limit_mag:.4f}"
                )
            times, stages, last = asyncio.run(uploads(stack.url, hashtag, n, f["catalogue"], ROUNDS))
            summary.append((n, cones["all"]["stars"], cones["cut"]["stars"], times, stages, last))
        print(
            f"stored uploads through /cgi/upload, {ROUNDS} per field (after 2 warm-up), each asking its cone "
            "(the worker's cut):"
        )
        for n, n_all, n_cut, times, stages, last in summary:
            per_stage = " ".join(
                f"{k}={statistics.median(v):.1f}"
                for k, v in stages.items()
                if k in ("parse", "publish", "cone", "calibrate", "write", "publish_to_result")
            )
            p50 = np.percentile(times, 50)
            verdict = f"  target p50 <= 150 ms: {'PASS' if p50 <= 150 else 'MISS'}" if n == 200_000 else ""
            print(
                f"  {n_all:>9,} stars in the cone ({n_cut:,} asked): p50 {p50:.1f} ms  "
                f"p99 {np.percentile(times, 99):.0f} ms"
                f"{verdict}\n      stage medians (ms): {per_stage}; answer {last['survey']} {last['filter']} "
                f"{last['mag']} (true V 16.5)"
            )
        peak = {svc: rss_mb(stack.service_pid(svc)) for svc in ("catalog", "calibrate")}
        print(
            f"peak RSS: catalog service {peak['catalog']:.0f} MB ({at_start['catalog']:.0f} MB after start), "
            f"calibrate service {peak['calibrate']:.0f} MB ({at_start['calibrate']:.0f} MB after start)"
        )
    finally:
        stop_all(stack, servers)
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
