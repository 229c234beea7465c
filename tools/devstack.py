"""A whole photcal stack on free ports, for tests and benchmarks.

Starts a real nats-server and nx-27017 (or uses given URLs), then `photcal
run` against them, exactly as a user would; the CLI is driven as a subprocess.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from shared.contracts.surveys import SURVEYS
from tools.infra import (
    ServerProcess,
    free_port,
    mongo_server,
    nats_server,
    terminate,
    wait_for_port,
)


def free_port_block(count: int) -> int:
    """A base port with ``count`` consecutive free ports (gateway + the services' own)."""
    for _ in range(200):
        # below Linux's ephemeral range (32768+): an outgoing connection can't take the port meanwhile
        base = random.randint(20000, 32000)
        ok = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


PHOTCAL = [sys.executable, "-m", "photcal_cli.main"]
#: each service's health port, from the gateway's
HEALTH_PORT_OFFSETS = {"calibrate": 1, "catalog": 2, "lightcurve": 3, "photometry": 4, "notify": 6}
#: the intake service's, started only with PHOTCAL_ALERTS_FEED_ENABLED (services/intake)
INTAKE_PORT_OFFSET = 5


@dataclass
class Stack:
    env: dict[str, str]
    port: int
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    hashtags: dict[str, str] = field(default_factory=dict)
    #: what a test module keeps beside its stack: uploads meant to go through, the loaded field's truth
    accepted: int = 0
    truth: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*PHOTCAL, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"photcal {' '.join(args)} failed: {done.stdout}\n{done.stderr}")
        return done

    def add_observatory(self, name: str = "Test Observatory") -> str:
        out = self.cli(
            "observatory", "add", "--name", name, "--lon", "20.0", "--lat", "50.0", "--filters", "V,r"
        ).stdout
        found = re.search(r"hashtag: (\S+)", out)
        assert found is not None, f"`photcal observatory add` printed no hashtag: {out!r}"
        hashtag = found.group(1)
        self.hashtags[name] = hashtag
        return hashtag

    def load_field(self, field_dir: Path) -> dict:
        truth = json.loads((field_dir / "truth.json").read_text())
        for survey in SURVEYS:  # ref_GaiaSP.csv only in fields made since GaiaSP exists
            extract = field_dir / f"ref_{survey}.csv"
            if extract.exists():
                self.cli("catalog", "load", "--survey", survey, str(extract))
        return truth

    def start(self, without: tuple[str, ...] = ()) -> Stack:
        """Start ``photcal run`` (``without``: services it does not start) and wait for every health port."""
        self.log_path = Path(self.env["PHOTCAL_DATA_DIR"]) / "stack.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        extra = [arg for service in without for arg in ("--without", service)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*PHOTCAL, "run", *extra], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=60, proc=self.proc)
        # the services' own health ports
        for service, offset in HEALTH_PORT_OFFSETS.items():
            if service not in without:
                wait_for_port(self.port + offset, timeout=60, proc=self.proc)
        if self.env.get("PHOTCAL_ALERTS_FEED_ENABLED", "").lower() in {"1", "true", "yes", "on"}:
            wait_for_port(self.port + INTAKE_PORT_OFFSET, timeout=60, proc=self.proc)
        return self

    def stop(self) -> None:
        terminate(self.proc, 30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def service_pid(self, service: str) -> int:
        assert self.proc is not None, "the stack is not running"
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if f"services.{service}".encode() in cmdline:
                return int(pid)
        raise AssertionError(f"no {service} process under the supervisor")


def standalone_stack(workers: int = 1, tmp: Path | None = None, **env: str) -> tuple[Stack, list[ServerProcess]]:
    """A stack (not started yet) with its own nats-server and nx-27017 in ``tmp``.

    The caller loads catalogues, adds observatories, then ``stack.start()``;
    :func:`stop_all` tears everything down.
    """
    tmp = tmp or Path(tempfile.mkdtemp(prefix="photcal-stack-"))
    servers = [nats_server(tmp / "natsdata", free_port()).start(), mongo_server(tmp / "mongodata", free_port()).start()]
    # extra calibrate workers take health ports at +11, +12...
    port = free_port_block(12 + workers)
    stack_env = (
        dict(os.environ)
        | {
            "PHOTCAL_NATS_URL": servers[0].url,
            "PHOTCAL_MONGO_URL": servers[1].url,
            "PHOTCAL_DATA_DIR": str(tmp / "data"),
            "PHOTCAL_HASHTAG_PEPPER": "stack-pepper",
            "PHOTCAL_HTTP_PORT": str(port),
            "PHOTCAL_CALIBRATE_WORKERS": str(workers),
            "PHOTCAL_LOG_LEVEL": "WARNING",
        }
        | env
    )
    return Stack(env=stack_env, port=port), servers


def stop_all(stack: Stack, servers: list[ServerProcess]) -> None:
    stack.stop()
    for server in reversed(servers):
        server.stop()
