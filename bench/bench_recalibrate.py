"""Recalibrating the archive: `photcal recalibrate`'s job on lsdb/Dask, points per second.

1. A synthetic sky: ``BENCH_RECAL_FIELDS`` (2,000) alert positions uniform
   over the sphere, each with ~400 APASS-like stars within 0.12 deg (B, V,
   g', r', i' from V and B-V), written as a VizieR-style CSV and loaded with
   the project's loader (services/catalog/loader.py, `photcal catalog load`).
2. Stored uploads, as the calibrate service stores them: for each, a field
   chosen at random, 50-300 of its stars seen through an instrument (zero
   point, colour term, noise, 0.3" position jitter) plus the transient at the
   alert position; the datapoint, its calibration record (with provenance:
   the observatory's V filter) and its ``upload_sources`` record written
   through shared/db (store_datapoint, store_calibration, store_sources) into
   a real nx-27017 (tools/infra.py), 32 at a time; the insertion is timed
   on its own. A third of the stored calibrations carry a +0.05 mag "bug",
   so the job has changes to report.
3. For each count in ``BENCH_RECAL_UPLOADS`` (default ``10000``; e.g.
   ``10000,100000``; uploads are added up to each count): the whole archive
   recalibrated against APASS by the command's own code
   (photcal_cli/recalibrate.py ``prepare_job`` + ``compute_job``), in a
   process of its own so that its peak memory is its own, (a) on local Dask
   threads, (b) on a 2-worker dask.distributed LocalCluster (processes, 1
   thread each). Printed: points per second, the wall time split (select,
   read sources, cross-match, refit, write items), the summary, the peak RSS
   (the command's process; the cluster's workers, each).
4. Peer: ``BENCH_RECAL_PEER`` (300) of the same points done as a naive job
   would, one upload at a time without lsdb: read its sources, a cone from the
   catalogue store, ``calibrate_frame``: points per second.

On this machine's 2 cores 100,000 uploads take about half an hour (insertion
included), so the default is 10,000: set ``BENCH_RECAL_UPLOADS=10000,100000``
for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

COUNTS = [int(c) for c in os.environ.get("BENCH_RECAL_UPLOADS", "10000").split(",") if c.strip()]
N_FIELDS = int(os.environ.get("BENCH_RECAL_FIELDS", 2000))
N_PEER = int(os.environ.get("BENCH_RECAL_PEER", 300))
BATCH = int(os.environ.get("BENCH_RECAL_BATCH", 5000))
STARS_PER_FIELD = 400
FIELD_RADIUS_DEG = 0.12
SOURCES = (50, 300)
OBSERVATORY = "bench-observatory"
#: the stored calibrations' "bug": this many mag too bright in a third of them
BUG_MAG = 0.05
ZP_COUNTS = 25.0


@dataclass
class SkyField:
    """One alert position and the reference stars around it (APASS bands)."""

    ra: float
    dec: float
    star_ra: np.ndarray
    star_dec: np.ndarray
    bands: dict[str, np.ndarray]


def true_bands(v: np.ndarray, bv: np.ndarray) -> dict[str, np.ndarray]:
    """APASS-like bands from V and B-V (approximate Jester et al. 2005 relations), mag."""
    g = v + 0.60 * bv - 0.12
    r = v - 0.42 * bv + 0.11
    return {"B": v + bv, "V": v, "g'": g, "r'": r, "i'": r - 0.27 * bv - 0.18}


def make_sky(rng: np.random.Generator, n_fields: int, stars_per_field: int = STARS_PER_FIELD) -> list[SkyField]:
    """``n_fields`` alert positions uniform on the sphere, each with stars within FIELD_RADIUS_DEG (none
    within 10" of the alert: the transient is not in the catalogue)."""
    ra0 = rng.uniform(0.0, 360.0, n_fields)
    dec0 = np.degrees(np.arcsin(rng.uniform(-0.98, 0.98, n_fields)))  # clear of the poles' RA wrap
    out = []
    for ra, dec in zip(ra0, dec0):
        r = FIELD_RADIUS_DEG * np.sqrt(rng.uniform((10 / 3600 / FIELD_RADIUS_DEG) ** 2, 1.0, stars_per_field))
        theta = rng.uniform(0.0, 2 * math.pi, stars_per_field)
        sdec = dec + r * np.sin(theta)
        sra = (ra + r * np.cos(theta) / math.cos(math.radians(dec))) % 360.0
        u = rng.uniform(0.0, 1.0, stars_per_field)
        v = 11.0 + np.log10(1 + u * (10 ** (0.3 * 7.0) - 1)) / 0.3  # 11-18 mag, more faint than bright
        bv = np.clip(rng.normal(0.7, 0.35, stars_per_field), -0.2, 1.9)
        out.append(SkyField(float(ra), float(dec), sra, sdec, true_bands(v, bv)))
    return out


def catalogue_error(mag: np.ndarray) -> np.ndarray:
    """The synthetic catalogue's magnitude errors, mag: 0.01 at the bright end, growing to the faint."""
    return 0.01 + 0.02 * np.exp(mag - 16.0)


def field_stars(sky_field: SkyField):
    """The field's stars as a cone of the catalogue serves them (SurveyStars, APASS), rounded as loaded."""
    from shared.contracts.messages import SurveyStars

    return SurveyStars(
        survey="APASS",
        ra=np.round(sky_field.star_ra, 7),
        dec=np.round(sky_field.star_dec, 7),
        mags={b: np.round(m, 3) for b, m in sky_field.bands.items()},
        errs={b: np.round(catalogue_error(m), 3) for b, m in sky_field.bands.items()},
    )


def live_calibration(sources, sky_field: SkyField) -> dict | None:
    """What the calibrate service answered for this upload (its field's stars, the observatory's V
    filter), as the answer's fields; None if it could not calibrate it."""
    from services.calibrate.answer import calibration_answer
    from services.calibrate.core.api import calibrate_frame
    from shared.errors import PhotcalError

    try:
        cal = calibrate_frame(
            sources,
            {"APASS": field_stars(sky_field)},
            sky_field.ra,
            sky_field.dec,
            2.0,
            None,
            observatory_filters=["V"],
        )
    except PhotcalError:
        return None
    return calibration_answer(cal, 2.0, upload_id="", ivorn="").model_dump(mode="json")


def write_extract(path: Path, sky: list[SkyField]) -> int:
    """The sky's stars as a VizieR APASS extract (CSV: RAJ2000, DEJ2000, <band>mag, e_<band>mag); rows."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from shared.contracts.surveys import APASS

    ra = np.concatenate([f.star_ra for f in sky])
    dec = np.concatenate([f.star_dec for f in sky])
    cols: dict[str, np.ndarray] = {"RAJ2000": np.round(ra, 7), "DEJ2000": np.round(dec, 7)}
    for band in APASS.bands:
        mag = np.concatenate([f.bands[band.name] for f in sky])
        cols[band.column] = np.round(mag, 3)
        cols[band.error_column] = np.round(catalogue_error(mag), 3)
    pacsv.write_csv(pa.table(cols), str(path))
    return len(ra)


def make_upload(rng: np.random.Generator, sky_field: SkyField, n_sources: int, transient_v: float = 15.5):
    """An instrument's sources of ``sky_field`` (``n_sources`` - 1 of its stars and the transient at the
    alert position, last) in V: (SourceTable, the transient's true V)."""
    from shared.arrays import SourceTable

    n_stars = len(sky_field.star_ra)
    pick = rng.choice(n_stars, size=min(n_sources - 1, n_stars), replace=False)
    v = np.append(sky_field.bands["V"][pick], transient_v)
    bv = np.append((sky_field.bands["B"] - sky_field.bands["V"])[pick], 0.6)
    zp, ct = rng.uniform(21.0, 24.0), rng.normal(0.05, 0.02)
    inst_true = v - zp - ct * bv + rng.normal(0.0, 0.02, len(v))
    flux = 10 ** (-0.4 * (inst_true - ZP_COUNTS))
    sigma = np.sqrt(flux + 150.0**2)
    err = 1.0857 * sigma / flux
    mag = inst_true + rng.normal(0.0, 1.0, len(v)) * err
    jitter = 0.3 / 3600
    cosd = math.cos(math.radians(sky_field.dec))
    ra = np.append(sky_field.star_ra[pick], sky_field.ra) + rng.normal(0.0, jitter, len(v)) / cosd
    dec = np.append(sky_field.star_dec[pick], sky_field.dec) + rng.normal(0.0, jitter, len(v))
    sources = SourceTable.from_columns(ra % 360.0, dec, mag, err)
    return sources, float(transient_v)


def stored_upload(
    rng: np.random.Generator, sky: list[SkyField], index: int, calibrate: bool = True
) -> tuple[dict, dict, dict]:
    """One stored upload's records as the calibrate service writes them: (datapoint fields, calibration
    record, upload_sources record). ``calibrate``: the stored calibration is the core's answer on the
    field's stars (else the truth, rounded)."""
    from shared.contracts.messages import utcnow
    from shared.provenance import calibration_provenance

    field_index = int(rng.integers(len(sky)))
    sky_field = sky[field_index]
    sources, transient_v = make_upload(rng, sky_field, int(rng.integers(SOURCES[0], SOURCES[1] + 1)))
    upload_id = f"bench{index:08d}"
    ivorn = f"ivo://bench/alerts#Bench{field_index:05d}"
    mjd = 60000.0 + index * 0.001
    # the stored calibration is the live one; a third carry a "bug" the recalibration should find
    live = (live_calibration(sources, sky_field) if calibrate else None) or {
        "survey": "APASS",
        "filter": "V",
        "mag": round(transient_v, 3),
        "mag_err": 0.02,
        "limit_mag": 18.5,
        "detected": True,
        "zeropoint": 22.5,
        "zeropoint_err": 0.01,
    }
    bug = BUG_MAG if index % 3 == 0 else 0.0
    mag = None if live["mag"] is None else round(live["mag"] - bug, 4)
    provenance = calibration_provenance(
        input_sha256=f"{index:064x}",
        covered=["APASS"],
        versions={"APASS": "v1"},
        fit_settings=_fit_settings(),
        match_radius_arcsec=2.0,
        force_filter=None,
        observatory_filters=["V"],
    )
    datapoint = {
        "upload_id": upload_id,
        "ivorn": ivorn,
        "alert_name": f"Bench{field_index:05d}",
        "observatory_id": OBSERVATORY,
        "observatory": "Bench Observatory",
        "mjd": mjd,
        "exptime": 60.0,
        "survey": live["survey"],
        "filter": live["filter"],
        "mag": mag,
        "mag_err": live["mag_err"],
        "limit_mag": live["limit_mag"],
        "detected": bool(live["detected"]),
        "zeropoint_err": live["zeropoint_err"],
        "comment": "",
        "calibration_id": upload_id,
    }
    calibration = {
        "upload_id": upload_id,
        "ivorn": ivorn,
        "status": "ok",
        "survey": live["survey"],
        "filter": live["filter"],
        "mag": mag,
        "zeropoint": live["zeropoint"],
        "calibration_id": upload_id,
        "observatory_id": OBSERVATORY,
        "match_dist_arcsec": 2.0,
        "force_filter": None,
        "provenance": provenance.model_dump(mode="json"),
        "stars": None,
    }
    sources_record = {
        "upload_id": upload_id,
        "ivorn": ivorn,
        "alert_ra": sky_field.ra,
        "alert_dec": sky_field.dec,
        "match_dist_arcsec": 2.0,
        "force_filter": None,
        "mjd": mjd,
        "n_sources": len(sources),
        "sources": sources.model_dump(mode="json"),
        "stored_at": utcnow(),
    }
    return datapoint, calibration, sources_record


def _fit_settings():
    from services.calibrate.core.settings import FitSettings

    return FitSettings()


async def insert_uploads(
    mongo_url: str, db_name: str, sky: list[SkyField], start: int, stop: int
) -> tuple[float, float]:
    """Store uploads ``start``..``stop`` through shared/db, 32 at a time, 2,000 made at a time (the live
    calibration of each included): (seconds making them, seconds storing them)."""
    from shared.db import connect_database
    from shared.db.calibrations import store_calibration
    from shared.db.datapoints import store_datapoint
    from shared.db.upload_sources import store_sources

    db = connect_database(mongo_url, db_name, timeout_s=30)
    await db.ensure_indexes()
    rng = np.random.default_rng(start + 1)
    limit = asyncio.Semaphore(32)

    async def one(records: tuple[dict, dict, dict]) -> None:
        datapoint, calibration, sources = records
        async with limit:
            await store_datapoint(db, datapoint, bump=False)
            await asyncio.gather(store_calibration(db, calibration), store_sources(db, sources))

    making = storing = 0.0
    try:
        for chunk in range(start, stop, 2000):
            t0 = time.perf_counter()
            records = [stored_upload(rng, sky, i) for i in range(chunk, min(stop, chunk + 2000))]
            t1 = time.perf_counter()
            await asyncio.gather(*(one(r) for r in records))
            making += t1 - t0
            storing += time.perf_counter() - t1
    finally:
        await db.close()
    return making, storing


# ---- one engine's run, in a process of its own (python -m bench.bench_recalibrate run ...)


def _run_engine(engine: str, peer: int) -> dict:
    from photcal_cli.recalibrate import compute_job, prepare_job, report
    from shared.db import connect_database
    from shared.settings import CommonSettings

    settings = CommonSettings()
    out: dict = {"engine": engine}
    cluster = client = None
    scheduler = None
    if engine == "cluster":
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        scheduler = cluster.scheduler_address

    async def go() -> None:
        db = connect_database(settings.mongo_url, settings.mongo_db, timeout_s=30)
        try:
            if engine == "naive":
                out.update(await _naive(db, settings, peer))
                return
            args = argparse.Namespace(
                resume=None,
                survey="APASS",
                alert=[],
                observatory=[],
                mjd_min=None,
                mjd_max=None,
                band=None,
                followup_id=[],
                force_filter=None,
                match_dist=None,
                limit=None,
                batch=BATCH,
                scheduler=scheduler,
                reason="bench",
                quiet=True,
            )
            job = await prepare_job(db, args, settings)
            assert job is not None
            timing = await compute_job(db, job, settings, args)
            await report(db, job.job_id, settings, timing)
            after = await _job_summary(db, job.job_id)
            out.update(
                points=timing.points,
                select_s=timing.select_s,
                load_s=timing.load_s,
                crossmatch_s=timing.crossmatch_s,
                refit_s=timing.refit_s,
                write_s=timing.write_s,
                summary=after,
            )
        finally:
            await db.close()

    try:
        asyncio.run(go())
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if client is not None:
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            out["worker_peak_rss_mb"] = sorted(peaks.values())
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return out


async def _job_summary(db, job_id: str) -> dict:
    from shared.db.recalibrations import get_job

    job = await get_job(db, job_id)
    assert job is not None and job.summary is not None
    return job.summary.model_dump(mode="json")


async def _naive(db, settings, n: int) -> dict:
    """What a job without lsdb would do, one point at a time: its sources, a cone, the core."""
    from photcal_cli.batch.recalibrate import StoredUpload, refit_force
    from services.calibrate.cone import field_of
    from services.calibrate.core.api import calibrate_frame
    from services.catalog.store import CatalogStore
    from shared.db.upload_sources import sources_of_uploads
    from shared.errors import PhotcalError

    store = CatalogStore(settings.data_dir)
    ids = [f"bench{i:08d}" for i in range(n)]
    started = time.perf_counter()
    ok = 0
    for upload_id in ids:
        doc = (await sources_of_uploads(db, [upload_id]))[upload_id]
        up = StoredUpload.from_doc(doc, observatory_filters=["V"])
        ra, dec, radius = field_of(up.sources, 1.0)
        reply = store.cone(ra, dec, radius, ["APASS"])
        try:
            calibrate_frame(
                up.sources,
                reply.stars,
                up.alert_ra,
                up.alert_dec,
                up.match_dist_arcsec,
                refit_force(up.force_filter, "APASS", None, up.observatory_filters),
                observatory_filters=up.observatory_filters,
            )
            ok += 1
        except PhotcalError:
            pass
    return {"points": n, "ok": ok, "seconds": time.perf_counter() - started}


# ---- the bench


def _engine_process(engine: str, env: dict, peer: int = 0) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_recalibrate", "run", engine, str(peer)],
        env=env,
        capture_output=True,
        text=True,
        timeout=6 * 3600,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{engine} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _print_engine(label: str, r: dict) -> None:
    total = r["select_s"] + r["load_s"] + r["crossmatch_s"] + r["refit_s"] + r["write_s"]
    s = r["summary"]
    workers = r.get("worker_peak_rss_mb")
    memory = f"peak RSS {r['peak_rss_mb']:.0f} MB" + (
        f" (command), workers {', '.join(f'{w:.0f}' for w in workers)} MB" if workers else ""
    )
    print(
        f"  {label}: {r['points'] / total:7.0f} points/s  ({r['points']} points in {total:.1f} s: "
        f"select {r['select_s']:.1f}, read sources {r['load_s']:.1f}, crossmatch {r['crossmatch_s']:.1f}, "
        f"refit {r['refit_s']:.1f}, write items {r['write_s']:.1f} s); {memory}",
        flush=True,
    )
    print(
        f"      job: {s['computed']} computed, {s['changed']} change (|dmag| median {s['median_abs_dmag']}, "
        f"max {s['max_abs_dmag']}; {s['band_changed']} change band), {s['failed']} failed {s['reasons']}",
        flush=True,
    )


def main() -> None:
    from services.catalog.loader import load_extracts
    from tools.infra import free_port, mongo_server

    work = Path(tempfile.mkdtemp(prefix="bench-recal-"))
    mongo = None
    try:
        rng = np.random.default_rng(19)
        started = time.perf_counter()
        sky = make_sky(rng, N_FIELDS)
        extract = work / "apass_bench.csv"
        rows = write_extract(extract, sky)
        made = time.perf_counter() - started
        data_dir = work / "var"
        report = load_extracts("APASS", [extract], data_dir)
        print(
            f"catalogue: {rows} APASS stars around {N_FIELDS} alert positions (made in {made:.1f} s), "
            f"loaded in {report.seconds:.1f} s ({report.partitions} partitions)",
            flush=True,
        )
        mongo = mongo_server(work / "mongodata", free_port()).start(timeout=60)
        env = os.environ | {
            "PHOTCAL_MONGO_URL": mongo.url,
            "PHOTCAL_MONGO_DB": "bench",
            "PHOTCAL_DATA_DIR": str(data_dir),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("PHOTCAL_DASK_SCHEDULER", None)
        stored = 0
        for count in COUNTS:
            making, seconds = asyncio.run(insert_uploads(mongo.url, "bench", sky, stored, count))
            print(
                f"\n{count} stored uploads: {count - stored} made (live calibration included) in {making:.1f} s, "
                f"inserted in {seconds:.1f} s ({(count - stored) / seconds:.0f} uploads/s: datapoint, calibration "
                "and sources each)",
                flush=True,
            )
            stored = count
            _print_engine("local Dask threads     ", _engine_process("local", env))
            _print_engine("LocalCluster 2 x 1 proc", _engine_process("cluster", env))
        peer = _engine_process("naive", env, min(N_PEER, stored))
        print(
            f"\npeer, one upload at a time without lsdb (sources, cone, calibrate_frame; no writes): "
            f"{peer['points'] / peer['seconds']:.0f} points/s ({peer['points']} points in {peer['seconds']:.1f} s)",
            flush=True,
        )
    finally:
        if mongo is not None:
            mongo.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        result = _run_engine(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
        print(json.dumps(result))
    else:
        main()
