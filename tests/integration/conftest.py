"""The whole stack as a user runs it: `photcal run` against test NATS and database."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.infra import wait_for_port
from tests.conftest import DATA, free_port_block

PHOTCAL = [sys.executable, "-m", "photcal_cli.main"]


@dataclass
class Stack:
    env: dict[str, str]
    port: int
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    hashtags: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*PHOTCAL, *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"photcal {' '.join(args)} failed: {done.stdout}\n{done.stderr}")
        return done

    def add_observatory(self, name: str = "Test Observatory") -> str:
        out = self.cli("observatory", "add", "--name", name, "--lon", "20.0", "--lat", "50.0", "--filters", "V,r").stdout
        hashtag = re.search(r"hashtag: (\S+)", out).group(1)
        self.hashtags[name] = hashtag
        return hashtag

    def load_field(self, field_dir: Path) -> dict:
        truth = json.loads((field_dir / "truth.json").read_text())
        for survey in ("APASS", "PS1", "GAIA", "SDSS"):
            extract = field_dir / f"ref_{survey}.csv"
            if extract.exists():
                self.cli("catalog", "load", "--survey", survey, str(extract))
        return truth

    def start(self) -> "Stack":
        self.log_path = Path(self.env["PHOTCAL_DATA_DIR"]) / "stack.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*PHOTCAL, "run"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=60, proc=self.proc)
        for offset in (1, 2, 3):
            wait_for_port(self.port + offset, timeout=60, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def service_pid(self, service: str) -> int:
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if f"services.{service}".encode() in cmdline:
                return int(pid)
        raise AssertionError(f"no {service} process under the supervisor")


@pytest.fixture
def stack(test_env) -> Stack:
    port = free_port_block(4)
    s = Stack(env=test_env | {"PHOTCAL_HTTP_PORT": str(port), "PHOTCAL_UPLOAD_TIMEOUT": "30"}, port=port)
    yield s
    s.stop()


def field_dir(name: str) -> Path:
    return DATA / "fields" / name


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
