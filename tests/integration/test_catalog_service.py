"""The catalogue service as deployed: a real nats-server, `python -m services.catalog`
as its own process, catalogues loaded with the `photcal catalog` CLI, cones
asked over NATS request/reply and checked against a brute-force angular cut
of the same stars (same set, no star missing or doubled).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nats
import numpy as np
import pandas as pd
import pytest

from services.catalog import layout
from shared.contracts.messages import ConeReply, ConeRequest
from shared.contracts.subjects import SUBJECT_CONE
from shared.contracts.surveys import APASS, GAIA, PS1
from tests.unit.test_catalog_store import (
    CENTRE,
    EDGE,
    NORTH,
    SOUTH,
    WRAP,
    _brute,
    _stars,
)
from tools.infra import free_port, terminate, wait_for_port

pytestmark = pytest.mark.integration

PHOTCAL = [sys.executable, "-m", "photcal_cli.main"]


# --------------------------------------------------------------------------- processes


class CatalogService:
    """`python -m services.catalog` against the test nats-server."""

    def __init__(self, nats_url: str, data_dir: Path, **extra_env: str) -> None:
        self.env = dict(os.environ)
        self.port = free_port()
        self.env.update(
            PHOTCAL_NATS_URL=nats_url,
            PHOTCAL_DATA_DIR=str(data_dir),
            PHOTCAL_CATALOG_PORT=str(self.port),
            PHOTCAL_HTTP_PORT=str(free_port()),
            PHOTCAL_LOG_LEVEL="INFO",
            **extra_env,
        )
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir.parent / f"catalog-service-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> CatalogService:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.catalog"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port, timeout=60, proc=self.proc)
        return self

    def stop(self) -> None:
        terminate(self.proc, 20)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*PHOTCAL, *args], env=self.env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"photcal {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done


@pytest.fixture
def service(nats_proc, tmp_path):
    svc = CatalogService(nats_proc.url, tmp_path / "data").start()
    yield svc
    svc.stop()


async def ask(nc, ra: float, dec: float, radius: float, surveys: list[str] | None = None) -> ConeReply:
    request = ConeRequest(ra=ra % 360.0, dec=dec, radius_deg=radius, surveys=surveys or [])
    msg = await nc.request(SUBJECT_CONE, request.model_dump_json().encode(), timeout=20)
    reply = ConeReply.model_validate_json(msg.data)
    assert reply.ok, reply
    return reply


def assert_same_stars(
    reply: ConeReply, df: pd.DataFrame, survey, ra: float, dec: float, radius: float, bands=None
) -> int:
    """The reply's stars of ``survey`` are exactly the brute-force cut of ``df``, values included."""
    expected = _brute(df, survey, ra, dec, radius)
    if len(expected) == 0:
        assert survey.name not in reply.covered
        return 0
    assert survey.name in reply.covered
    got = reply.stars[survey.name]
    keys = layout.star_keys(got.ra, got.dec)
    assert len(np.unique(keys)) == len(keys), "a star came back twice"
    exp_keys = layout.star_keys(expected[survey.ra_column].to_numpy(), expected[survey.dec_column].to_numpy())
    missing = set(exp_keys.tolist()) - set(keys.tolist())
    extra = set(keys.tolist()) - set(exp_keys.tolist())
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} extra"
    og, oe = np.argsort(keys), np.argsort(exp_keys)
    for band in survey.bands:
        if bands is None or band.name in bands:
            np.testing.assert_allclose(got.mags[band.name][og], expected[band.column].to_numpy()[oe], atol=1e-5)
            np.testing.assert_allclose(got.errs[band.name][og], expected[band.error_column].to_numpy()[oe], atol=1e-5)
    return len(keys)


# --------------------------------------------------------------------------- local catalogues


CONES = [
    ("centre", CENTRE, 0.25),
    ("centre wide", CENTRE, 1.0),
    ("partition edge", EDGE, 0.5),
    ("across RA 0/360", WRAP, 0.4),
    ("across RA 0/360 from 359.98", (359.98, 10.0), 0.3),
    ("near the north pole", NORTH, 0.5),
    ("over the north pole", (NORTH[0] + 180, 89.95), 0.2),
    ("near the south pole", SOUTH, 0.3),
    ("at the south pole", (0.0, -90.0), 0.2),
]


@pytest.fixture
def loaded(service, tmp_path):
    """APASS all over the sky, PS1 only north of Dec -30 (as the real PS1), loaded by the CLI."""
    rng = np.random.default_rng(11)
    apass = _stars(rng, APASS)
    ps1 = _stars(rng, PS1)
    ps1 = ps1[ps1[PS1.dec_column] > -30.0]
    # rows without a position are skipped
    with_bad = pd.concat([apass, apass.iloc[:5].assign(RAJ2000=np.nan)])
    with_bad.to_csv(tmp_path / "apass.csv.gz", index=False, na_rep="")
    ps1.to_csv(tmp_path / "ps1.csv", index=False, na_rep="")
    out = service.cli("catalog", "load", "--survey", "APASS", str(tmp_path / "apass.csv.gz")).stdout
    assert f"{len(apass) + 5} rows read" in out and "5 without position skipped" in out, out
    assert f"{len(apass)} in the catalogue" in out, out
    service.cli("catalog", "load", "--survey", "PS1", str(tmp_path / "ps1.csv"))
    return {"APASS": apass, "PS1": ps1}


async def test_cones_match_brute_force(loaded, service):
    nc = await nats.connect(service.env["PHOTCAL_NATS_URL"])
    try:
        # the service started before the loads: it must see them without a restart
        deadline = time.monotonic() + 15
        while (await ask(nc, *CENTRE, 0.25)).covered != ["APASS", "PS1"]:
            assert time.monotonic() < deadline, "the service never saw the loaded catalogues"
            await asyncio.sleep(0.2)
        for label, (ra, dec), radius in CONES:
            reply = await ask(nc, ra, dec, radius, ["APASS", "PS1"])
            n_apass = assert_same_stars(reply, loaded["APASS"], APASS, ra, dec, radius)
            assert_same_stars(reply, loaded["PS1"], PS1, ra, dec, radius)
            assert n_apass > 3, label
        # the edge cone really spans partitions (three or four base pixels meet there)
        reply = await ask(nc, *EDGE, 0.5, ["APASS"])
        from hats.pixel_math.spatial_index import compute_spatial_index

        base = compute_spatial_index(reply.stars["APASS"].ra, reply.stars["APASS"].dec) >> (2 * 29)
        assert len(set(base.tolist())) >= 3
        # random cones too
        rng = np.random.default_rng(3)
        for _ in range(25):
            ra, dec = float(rng.uniform(0, 360)), float(np.degrees(np.arcsin(rng.uniform(-1, 1))))
            radius = float(rng.uniform(0.2, 5.0))
            reply = await ask(nc, ra, dec, radius)
            assert_same_stars(reply, loaded["APASS"], APASS, ra, dec, radius)
            assert_same_stars(reply, loaded["PS1"], PS1, ra, dec, radius)
    finally:
        await nc.close()


async def test_coverage_south_of_minus_30_has_no_ps1(loaded, service):
    nc = await nats.connect(service.env["PHOTCAL_NATS_URL"])
    try:
        deadline = time.monotonic() + 15
        while "PS1" not in (await ask(nc, *CENTRE, 0.5)).covered:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        south = await ask(nc, *SOUTH, 0.5)
        assert south.covered == ["APASS"] and list(south.stars) == ["APASS"]
        north = await ask(nc, *CENTRE, 0.5)
        assert north.covered == ["APASS", "PS1"]
        # in the order asked, and only what was asked
        assert (await ask(nc, *CENTRE, 0.5, ["PS1", "APASS"])).covered == ["PS1", "APASS"]
        assert (await ask(nc, *CENTRE, 0.5, ["GAIA"])).covered == []
        # a bad request is an error reply, not silence
        msg = await nc.request(SUBJECT_CONE, b'{"ra": 10, "dec": 95, "radius_deg": 1}', timeout=10)
        bad = ConeReply.model_validate_json(msg.data)
        assert not bad.ok and bad.error == "bad_request"
        msg = await nc.request(
            SUBJECT_CONE,
            ConeRequest(ra=1, dec=1, radius_deg=1, surveys=["NOPE"]).model_dump_json().encode(),
            timeout=10,
        )
        assert ConeReply.model_validate_json(msg.data).error == "unknown_survey"
    finally:
        await nc.close()


async def test_load_while_serving(service, tmp_path):
    """A load while the service answers: no failed answer, the new stars seen without a restart."""
    rng = np.random.default_rng(21)
    first = _stars(rng, GAIA, n_background=3000, n_cluster=600)
    second = _stars(rng, GAIA, n_background=3000, n_cluster=600)
    first.to_csv(tmp_path / "g1.csv.gz", index=False, na_rep="")
    second.to_csv(tmp_path / "g2.csv.gz", index=False, na_rep="")
    service.cli("catalog", "load", "--survey", "GAIA", str(tmp_path / "g1.csv.gz"))

    nc = await nats.connect(service.env["PHOTCAL_NATS_URL"])
    try:
        deadline = time.monotonic() + 15
        while not (await ask(nc, *CENTRE, 1.0)).covered:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        n1 = assert_same_stars(await ask(nc, *CENTRE, 1.0), first, GAIA, *CENTRE, 1.0)

        loader = asyncio.create_task(
            asyncio.to_thread(service.cli, "catalog", "load", "--survey", "GAIA", str(tmp_path / "g2.csv.gz"))
        )
        answered = 0
        while not loader.done():
            reply = await ask(nc, *CENTRE, 1.0, ["GAIA"])  # never an error, never fewer stars
            assert len(reply.stars["GAIA"]) >= n1
            answered += 1
            await asyncio.sleep(0.01)
        out = (await loader).stdout
        assert f"{len(second)} new" in out, out
        assert answered > 0
        both = pd.concat([first, second])
        deadline = time.monotonic() + 15
        while len((await ask(nc, *CENTRE, 1.0, ["GAIA"])).stars["GAIA"]) == n1:
            assert time.monotonic() < deadline, "the new stars never showed up"
            await asyncio.sleep(0.2)
        for _, (ra, dec), radius in CONES:
            assert_same_stars(await ask(nc, ra, dec, radius, ["GAIA"]), both, GAIA, ra, dec, radius)
        # loading the same file again changes nothing
        out = service.cli("catalog", "load", "--survey", "GAIA", str(tmp_path / "g2.csv.gz")).stdout
        assert " 0 new" in out and f"{len(both)} in the catalogue" in out, out
    finally:
        await nc.close()
    assert service.proc.poll() is None


def test_catalog_list_table(loaded, service):
    out = service.cli("catalog", "list").stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["SURVEY", "SOURCE", "ROWS", "PARTS"]
    apass = next(line for line in lines if line.startswith("APASS"))
    ps1 = next(line for line in lines if line.startswith("PS1"))
    assert f"{len(loaded['APASS']):,}" in apass and "B,V,g',r',i'" in apass and "local" in apass
    assert "g,r,i,z,y" in ps1
    import json

    entries = {e["survey"]: e for e in json.loads(service.cli("catalog", "list", "--json").stdout)}
    # PS1 stops at Dec -30: its MOC covers clearly less sky than APASS'
    assert 0 < entries["PS1"]["area_deg2"] < entries["APASS"]["area_deg2"] <= 41253


# --------------------------------------------------------------------------- a remote catalogue


class StaticServer:
    """A local HTTP server (aiohttp static files, with Range support) in a thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.requests: list[tuple[str, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        from aiohttp import web

        async def main() -> None:
            @web.middleware
            async def record(request, handler):
                self.requests.append((request.method, request.path))
                return await handler(request)

            app = web.Application(middlewares=[record])
            app.router.add_static("/", self.root, show_index=True)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()

        asyncio.run(main())

    def start(self) -> StaticServer:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def partition_gets(self) -> int:
        return sum(1 for method, path in self.requests if method == "GET" and "Npix=" in path)


async def test_remote_catalogue_over_http(nats_proc, tmp_path):
    import lsdb

    rng = np.random.default_rng(8)
    df = _stars(rng, GAIA, n_background=4000, n_cluster=500)
    # the remote catalogue's own column names, as Gaia's archive spells them
    theirs = pd.DataFrame(
        {
            "ra": df["RA_ICRS"],
            "dec": df["DE_ICRS"],
            "phot_g_mean_mag": df["Gmag"],
            "phot_g_mean_mag_error": df["e_Gmag"],
            "BPmag": df["BPmag"],
            "e_BPmag": df["e_BPmag"],
        }
    )
    www = tmp_path / "www"
    lsdb.from_dataframe(
        theirs, ra_column="ra", dec_column="dec", partition_rows=400, margin_threshold=None
    ).write_catalog(www / "gaia_dr3", progress_bar=False)
    http = StaticServer(www).start()
    data = tmp_path / "data"
    svc = CatalogService(nats_proc.url, data).start()
    try:
        url = f"{http.url}/gaia_dr3"
        out = svc.cli(
            "catalog",
            "attach",
            "--survey",
            "GAIA",
            url,
            "--columns",
            "Gmag=phot_g_mean_mag,e_Gmag=phot_g_mean_mag_error",
        ).stdout
        assert "now served from http://127.0.0.1" in out and "G: phot_g_mean_mag +/- phot_g_mean_mag_error" in out, out
        assert "BP: BPmag +/- e_BPmag" in out, out  # detected by name
        assert "RP: not in the catalogue" in out, out
        listed = svc.cli("catalog", "list").stdout
        gaia_line = next(line for line in listed.splitlines() if line.startswith("GAIA"))
        assert "remote" in gaia_line and " G,BP " in gaia_line, listed

        nc = await nats.connect(nats_proc.url)
        try:
            deadline = time.monotonic() + 20
            while not (await ask(nc, *CENTRE, 0.5)).covered:
                assert time.monotonic() < deadline, svc.log()
                await asyncio.sleep(0.2)
            for _, (ra, dec), radius in CONES:
                reply = await ask(nc, ra, dec, radius, ["GAIA"])
                assert_same_stars(reply, df, GAIA, ra, dec, radius, bands=("G", "BP"))
                if len(_brute(df, GAIA, ra, dec, radius)):
                    assert np.all(np.isnan(reply.stars["GAIA"].mags["RP"]))  # a band the catalogue lacks
        finally:
            await nc.close()
        fetched = http.partition_gets()
        assert fetched > 0
        cached = list((data / "cache").rglob("Npix=*.parquet"))
        assert len(cached) == fetched, (cached, http.requests)
    finally:
        svc.stop()

    # a new service process reads the partitions from the disk cache, not the server
    svc = CatalogService(nats_proc.url, data).start()
    try:
        nc = await nats.connect(nats_proc.url)
        try:
            for _, (ra, dec), radius in CONES:
                reply = await ask(nc, ra, dec, radius, ["GAIA"])
                assert_same_stars(reply, df, GAIA, ra, dec, radius, bands=("G", "BP"))
        finally:
            await nc.close()
        assert http.partition_gets() == fetched
    finally:
        svc.stop()
        http.stop()
