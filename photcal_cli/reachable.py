"""Before `photcal run` starts anything: are the NATS and MongoDB it was pointed at there?

Without this, every service retries its connection and the supervisor gives
up after a minute with a traceback. Checked for a few seconds (a server just
started gets that long), then one line saying what to do, exit code 1.
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
        client = MongoClient(url, serverSelectionTimeoutMS=int(seconds * 1000), connectTimeoutMS=1000)
    except (PyMongoError, ValueError):
        return False
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def require(nats_url: str | None, mongo_url: str | None) -> None:
    """``SystemExit`` (exit code 1, one line on stderr) when a configured server does not answer."""
    if nats_url is not None and not nats_reachable(nats_url):
        raise SystemExit(f"cannot reach NATS at {redacted(nats_url)}: start it or unset PHOTCAL_NATS_URL")
    if mongo_url is not None and not mongo_reachable(mongo_url):
        raise SystemExit(f"cannot reach MongoDB at {redacted(mongo_url)}: start it or unset PHOTCAL_MONGO_URL")
