"""Rate limits per client IP and per hashtag: 429 JSON with ``Retry-After``.

Token buckets kept in the gateway's memory (one bucket per key, the least
recently used dropped beyond ``max_keys``, so that a flood of fresh keys
cannot grow memory). Each gateway replica limits on its own: with N replicas
a client gets at most N times the rate, which is what these limits are for
(stopping floods and guessing, not billing).

- per IP, writes: every POST and the like, and the CPCS ``cgi/`` endpoints
  whatever the method (CPCS clients add events and delete points by GET),
  before the body is read;
- per IP, reads: every other request (pages, API reads, CPCS reads, static
  files, health), with its own larger budget;
- per IP, refused hashtags: each 401 takes a token; once they are spent,
  every request from that address that carries a hashtag (or may, in a
  write's body) is refused before it is checked: guessing is slow;
- per hashtag: every request carrying a hashtag (form field, query or
  cookie; the query's of a write by GET), counted once per request, keyed by
  a hash of the hashtag (the hashtag itself is kept nowhere, logged nowhere).

Behind a proxy (Kubernetes ingress) every request comes from the proxy's
address: name the proxies in ``PHOTCAL_TRUSTED_PROXIES`` (addresses or CIDRs,
e.g. the ingress controller's pod CIDR) to key on the client address they
put in ``X-Forwarded-For`` (the right-most entry that is not one of them;
services/ingest/proxies.py). From any other peer the header is ignored, so a
client connecting directly cannot choose its own key. A rate of 0 turns a
limit off.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web
from prometheus_client import Counter
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.ingest.proxies import TrustedProxies
from shared.auth import ON_HASHTAG
from shared.errors import PhotcalError, RateLimited

REFUSED = Counter(
    "photcal_gateway_rate_limited_total",
    "Requests refused with 429, by limit (ip, read, auth_failures, hashtag)",
    ["limit"],
)

REQUEST_KEY = "photcal.ratelimit"
_COUNTED = "photcal.ratelimit.hashtag_counted"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RateLimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTCAL_", extra="ignore")

    #: sustained writes per second per client IP, and the burst above it
    rate_limit_ip_per_s: float = 10.0
    rate_limit_ip_burst: int = 200
    #: sustained reads (every request that is not a write) per second per client IP, and the burst
    rate_limit_read_per_s: float = 30.0
    rate_limit_read_burst: int = 600
    #: refused hashtags (401) per second per client IP, and the burst, before its hashtags are not even checked
    rate_limit_auth_failures_per_s: float = 0.1
    rate_limit_auth_failures_burst: int = 20
    #: sustained requests per second per hashtag, and the burst (a night's frames at once)
    rate_limit_hashtag_per_s: float = 5.0
    rate_limit_hashtag_burst: int = 120
    rate_limit_max_keys: int = 100_000
    #: proxies whose X-Forwarded-For/-Proto are believed: addresses or CIDRs, comma-separated
    trusted_proxies: str = ""
    #: obsolete: it trusted X-Forwarded-For from anyone; now ignored (a warning at start) for trusted_proxies
    trust_forwarded_for: bool = False

    @property
    def proxies(self) -> TrustedProxies:
        return TrustedProxies.from_text(self.trusted_proxies)


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; each request takes one."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.max_keys, self.clock = rate, max(1, burst), max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float:
        """0 if allowed (a token is taken), else the seconds until one is available."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return 0.0
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        return (1.0 - tokens) / self.rate

    def wait(self, key: str) -> float:
        """The seconds until ``key`` has a token (0: it has one now); nothing is taken."""
        if not self.enabled or key not in self._buckets:
            return 0.0
        tokens, last = self._buckets[key]
        tokens = min(float(self.burst), tokens + (self.clock() - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate


class Limiter:
    def __init__(self, settings: RateLimitSettings | None = None, clock: Callable[[], float] = time.monotonic):
        s = settings or RateLimitSettings()
        self.settings = s
        self.per_ip = TokenBucket(s.rate_limit_ip_per_s, s.rate_limit_ip_burst, s.rate_limit_max_keys, clock)
        self.per_hashtag = TokenBucket(
            s.rate_limit_hashtag_per_s, s.rate_limit_hashtag_burst, s.rate_limit_max_keys, clock
        )
        self.reads_per_ip = TokenBucket(s.rate_limit_read_per_s, s.rate_limit_read_burst, s.rate_limit_max_keys, clock)
        self.failures_per_ip = TokenBucket(
            s.rate_limit_auth_failures_per_s, s.rate_limit_auth_failures_burst, s.rate_limit_max_keys, clock
        )

    def client_ip(self, request: web.Request) -> str:
        return client_ip(request, self.settings.proxies)

    def check_ip(self, request: web.Request) -> None:
        wait = self.per_ip.take(self.client_ip(request))
        if wait:
            REFUSED.labels("ip").inc()
            raise _refused(wait, "from your address")

    def check_read(self, request: web.Request) -> None:
        wait = self.reads_per_ip.take(self.client_ip(request))
        if wait:
            REFUSED.labels("read").inc()
            raise _refused(wait, "from your address")

    def check_failures(self, request: web.Request) -> None:
        """Refuse while this address has spent its refused-hashtag budget (nothing is taken)."""
        wait = self.failures_per_ip.wait(self.client_ip(request))
        if wait:
            REFUSED.labels("auth_failures").inc()
            raise _refused(wait, "with unknown hashtags from your address")

    def failed(self, request: web.Request) -> None:
        """A hashtag from this address was refused (401)."""
        self.failures_per_ip.take(self.client_ip(request))

    def check_hashtag(self, hashtag: str) -> None:
        # keyed by a digest: the secret is not kept in memory longer than the request
        key = hashlib.blake2b(hashtag.encode("utf-8", "replace"), digest_size=16).hexdigest()
        wait = self.per_hashtag.take(key)
        if wait:
            REFUSED.labels("hashtag").inc()
            raise _refused(wait, "with this hashtag")


def _refused(wait: float, whom: str) -> RateLimited:
    seconds = max(1, math.ceil(wait))
    err = RateLimited(f"too many requests {whom}: try again in {seconds} s", retry_after=seconds)
    return err


def is_write(request: web.Request) -> bool:
    """POST and the like; and the CPCS ``cgi/`` endpoints whatever the method (shared.runtime counts them so too)."""
    return request.method in _WRITES or "/cgi/" in request.path


def middleware(settings: RateLimitSettings | None = None):
    """Per IP on every request (writes, reads), per IP on refused hashtags, per hashtag when one is read.

    A handler reading the hashtag (shared.auth.hashtag_of) counts it; a write by
    GET takes its hashtag from the query, counted here.
    """
    limiter = Limiter(settings)

    @web.middleware
    async def rate_limit(request: web.Request, handler):
        request[REQUEST_KEY] = limiter
        request[ON_HASHTAG] = check_hashtag
        write = is_write(request)
        if write:
            limiter.check_ip(request)
        else:
            limiter.check_read(request)
        query_hashtag = request.query.get("hashtag", "").strip()
        if write or query_hashtag or "hashtag" in request.cookies:
            limiter.check_failures(request)
        if write and request.method == "GET" and query_hashtag:
            check_hashtag(request, query_hashtag)
        try:
            response = await handler(request)
        except PhotcalError as exc:
            if exc.http_status == 401:
                limiter.failed(request)
            raise
        if response.status == 401:  # an HTML error page, or the lightcurve service's answer forwarded
            limiter.failed(request)
        return response

    return rate_limit


def client_ip(request: web.Request, proxies: TrustedProxies) -> str:
    """The client's address: the peer's, or what a trusted proxy forwarded for."""
    return proxies.client_address(request.remote, request.headers.get("X-Forwarded-For"))


def check_hashtag(request: web.Request, hashtag: str) -> None:
    """Count this request against its hashtag's limit (once per request)."""
    limiter: Limiter | None = request.get(REQUEST_KEY)
    if limiter is None or request.get(_COUNTED):
        return
    request[_COUNTED] = True
    limiter.check_hashtag(hashtag)
