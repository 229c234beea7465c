"""Before `photcal run` starts anything: are the NATS and MongoDB it was pointed at there?

NATS: without it no service starts (each retries its connection, then the
supervisor gave up after a minute with a traceback). Checked for a few
seconds (a server just started gets that long), then one line saying what to
do, exit code 1. MongoDB may come up after the services (they make its
indexes when it does, and refuse writes until then: tests/integration/test_faults.py):
one warning line, and the stack starts.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

DEFAULT_NATS_PORT = 4222
#: seconds each server gets to answer
PROBE_SECONDS = 4.0


def redacted(url: str) -> str:
    """The URL without its user and password (it is printed)."""
    parts = []
    for one in url.split(","):
        scheme, sep, rest = one.strip().rpartition("://")
        parts.append(f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}")
    return ",".join(parts)


def nats_addresses(url: str) -> list[tuple[str, int]]:
    out = []
    for one in url.split(","):
        one = one.strip()
        if not one:
            continue
        split = urlsplit(one if "://" in one else "nats://" + one)
        try:
            port = split.port or DEFAULT_NATS_PORT
        except ValueError:
            continue
        out.append((split.hostname or "127.0.0.1", port))
    return out


def nats_reachable(url: str, seconds: float = PROBE_SECONDS) -> bool:
    """Any of the URL's servers accepts a TCP connection and greets with NATS's ``INFO``."""
    addresses = nats_addresses(url)
    deadline = time.monotonic() + seconds
    while addresses:
        for host, port in addresses:
            try:
                with socket.create_connection((host, port), timeout=1.0) as sock:
                    sock.settimeout(1.0)
                    if sock.recv(4) == b"INFO":
                        return True
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)
    return False


def mongo_reachable(url: str, seconds: float = PROBE_SECONDS) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    try:
        client: MongoClient[dict] = MongoClient(
            url, serverSelectionTimeoutMS=int(seconds * 1000), connectTimeoutMS=1000
        )
    except (PyMongoError, ValueError):
        return False
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def require_nats(nats_url: str | None) -> None:
    """``SystemExit`` (exit code 1, one line on stderr) when the configured NATS does not answer."""
    if nats_url is not None and not nats_reachable(nats_url):
        raise SystemExit(f"cannot reach NATS at {redacted(nats_url)}: start it or unset PHOTCAL_NATS_URL")


def mongo_warning(mongo_url: str | None) -> str | None:
    """What to tell the operator when the configured MongoDB does not answer (yet); None when it does."""
    if mongo_url is None or mongo_reachable(mongo_url):
        return None
    return (
        f"cannot reach MongoDB at {redacted(mongo_url)} yet: the services keep trying and refuse writes "
        "until it answers; start it or unset PHOTCAL_MONGO_URL"
    )
