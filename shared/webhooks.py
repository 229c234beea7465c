"""Webhooks (issue 22): which URLs photcal may POST to, and how a POST is signed.

Used by the gateway (a ``callback_url`` or a subscription's URL is checked when it is given)
and by the notify service (checked again before every attempt: DNS can change, and a host
that resolved to a public address yesterday may resolve to 127.0.0.1 today).

The signature is Stripe's scheme: ``X-Photcal-Signature: t=<unix seconds>,v1=<hex>`` where
``<hex>`` is HMAC-SHA256, keyed with the observatory's webhook secret, of ``f"{t}.{body}"``
(the body's bytes exactly as sent). A receiver recomputes it, compares in constant time, and
refuses a ``t`` older than its tolerance (README, "Callbacks and subscriptions").
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.errors import ErrorCode
from shared.errors import BadInput

#: a URL longer than this is refused (a webhook URL is a host and a path, not a payload)
MAX_URL_CHARS = 2000


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTCAL_", extra="ignore")

    #: 1: callback and subscription URLs may reach loopback, private and link-local addresses
    #: (a test's receiver on 127.0.0.1, a TOM on the same private network); off in production
    callback_allow_private: bool = False


class RefusedUrl(BadInput):
    code = ErrorCode.CALLBACK_URL_REFUSED


def refused_address(address: str) -> str | None:
    """Why photcal must not POST to this IP address (None: a public unicast address, it may).

    Loopback, private (RFC 1918), link-local (169.254/16, the cloud metadata service's too),
    unique-local (fc00::/7), multicast, unspecified, reserved and shared (100.64/10) addresses
    are refused; an IPv4-mapped IPv6 address is judged as its IPv4 address.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") is not part of it
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for refused, why in (
        (ip.is_loopback, "a loopback"),
        (ip.is_link_local, "a link-local"),
        (ip.is_multicast, "a multicast"),
        (ip.is_unspecified, "the unspecified"),
        (isinstance(ip, ipaddress.IPv6Address) and ip in _UNIQUE_LOCAL, "a unique-local"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "a shared (carrier-grade NAT)"),
        (ip.is_private, "a private"),
        (ip.is_reserved, "a reserved"),
    ):
        if refused:
            return f"{ip} is {why} address"
    return None


_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def parse_url(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL; 400 ``callback_url_refused`` if it is not one."""
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise RefusedUrl(f"the URL is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl(f"{url[:200]!r} is not a URL: give https://host/path") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedUrl(f"{url[:200]!r} is not an http(s) URL: give https://host/path")
    if parts.username or parts.password:
        raise RefusedUrl("the URL carries a user name or password: photcal signs its POSTs instead")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_url(url: str, *, allow_private: bool) -> str:
    """``url`` if photcal may POST to it: http(s), and every address its host resolves to public.

    Raises 400 ``callback_url_refused`` saying which address is refused and why (or that the
    host does not resolve). ``allow_private`` (PHOTCAL_CALLBACK_ALLOW_PRIVATE) skips the
    address check, not the scheme's.
    """
    host, port = parse_url(url)
    if allow_private:
        return url.strip()
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedUrl(f"the host {host!r} does not resolve: give a public host name") from exc
    for info in infos:
        why = refused_address(str(info[4][0]))
        if why is not None:
            raise RefusedUrl(
                f"the host {host!r} resolves to {why}: only public addresses are called back "
                "(PHOTCAL_CALLBACK_ALLOW_PRIVATE=1 allows others)"
            )
    return url.strip()


class PublicResolver(AbstractResolver):
    """aiohttp's resolver keeping only public addresses: the connection goes where the check looked.

    Without it a host could resolve to a public address for :func:`check_url` and to a private one
    a moment later when aiohttp connects (DNS rebinding).
    """

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        found = await self._resolver.resolve(host, port, family)
        public: list[ResolveResult] = [entry for entry in found if refused_address(entry["host"]) is None]
        if not public:
            raise OSError(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self._resolver.close()


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Photcal-Signature`` value of ``body``: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """A receiver's check (README has the same in a snippet): the HMAC matches and ``t`` is recent.

    ``tolerance_s``: how old (or early: clocks differ) a signature may be, seconds.
    """
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = signature(secret, body, t).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
