"""Asking the catalogue service for a field's reference stars, with a short-lived cache.

The question goes to ``photcal.catalog.cone.v2``; the answer comes back in
parts to a fresh inbox and is put together here (shared/conewire.py). What
can go wrong, and what the worker does with it (shared/decisions.py):

- no answer, no responders, or the answer stops half way: the service is
  down or restarting -> :class:`CatalogUnavailable`, retried (bounded in time);
- an answer that is not a cone reply -> :class:`CatalogReplyMalformed`;
- the service refused the cone (too many stars, a request it cannot serve)
  -> :class:`CatalogRefused`;
- the service failed on this field (an exception there) -> :class:`CatalogFailed`.

The last three are not outages: asking again gets the same answer, so the
upload is answered with the reason and dead-lettered instead of retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict

import numpy as np
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from shared.arrays import SourceTable
from shared.conewire import MalformedConeReply, PartAssembler, decode_reply
from shared.contracts.errors import ErrorCode
from shared.contracts.messages import ConeReply, ConeRequestV2
from shared.contracts.subjects import SUBJECT_CONE_V2
from shared.errors import BackendUnavailable, CalibrationFailed, PhotcalError
from shared.natsio import headers
from shared.sky import enclosing_cone

ARCMIN = 1.0 / 60.0
#: NATS's status for "nobody subscribes to this subject"
_NO_RESPONDERS = "503"


class CatalogUnavailable(BackendUnavailable):
    """The catalogue service did not answer (down, restarting, or it stopped half way): retry later."""

    code = ErrorCode.CATALOG_UNAVAILABLE


class CatalogReplyProblem(PhotcalError):
    """The catalogue service answered, and asking again would get the same answer: no retry."""

    http_status = 502
    #: not an error result of the upload: the worker dead-letters it at once (shared/decisions.py)
    failure = "permanent"


class CatalogReplyMalformed(CatalogReplyProblem):
    code = ErrorCode.CATALOG_REPLY_MALFORMED


class CatalogRefused(CatalogReplyProblem):
    code = ErrorCode.CATALOG_REFUSED


class CatalogFailed(PhotcalError):
    """The catalogue service raised on this cone: retried a few times (it may be passing), then dead-lettered."""

    code = ErrorCode.CATALOG_ERROR
    http_status = 502
    #: the worker retries it up to max_deliver times, then dead-letters it (shared/decisions.py)
    failure = "crash"


def field_of(sources: SourceTable, max_radius_deg: float) -> tuple[float, float, float]:
    """Centre (ra, dec) and radius (deg) of the cone that holds the frame's sources."""
    ok = np.isfinite(sources.ra) & np.isfinite(sources.dec)
    if not ok.any():
        raise CalibrationFailed("no source in the catalogue has a valid position", code=ErrorCode.NO_USABLE_SOURCES)
    ra_c, dec_c, radius = enclosing_cone(sources.ra[ok], sources.dec[ok])
    return ra_c, dec_c, float(min(radius + ARCMIN, max_radius_deg))


def reply_bytes(reply: ConeReply) -> int:
    """Memory the reply's columns take (float64 in memory)."""
    return sum(
        s.ra.nbytes + s.dec.nbytes + sum(a.nbytes for a in s.mags.values()) + sum(a.nbytes for a in s.errs.values())
        for s in reply.stars.values()
    )


def brightest_for(n_sources: int | None, stars_per_source: float, min_stars: int) -> int | None:
    """How many stars per survey a frame of ``n_sources`` can use: ``stars_per_source`` times its
    sources, at least ``min_stars``, rounded up to 5,000 (so similar frames share a cached cone).

    Why it is safe: the cone (a circle around the square frame) is ~1.8 times the frame's area,
    so a factor 10 keeps ~5 stars in the frame per source -- with star counts rising ~2x per
    magnitude, every band complete to ~1.5-2.5 mag beyond the frame's limit, more than the
    completeness limit (core/limits.py ``reference_completeness_inst``) looks at. The floor
    (20,000 per survey) is above any field of ordinary density: there nothing changes.
    None (every star) if ``stars_per_source`` is 0 or the count is unknown.
    """
    if not n_sources or stars_per_source <= 0:
        return None
    wanted = max(int(min_stars), math.ceil(stars_per_source * n_sources))
    return -(-wanted // 5000) * 5000


class ConeClient:
    def __init__(
        self,
        nc: NATS,
        timeout: float,
        ttl: float,
        size: int,
        max_bytes: int = 256 << 20,
        stars_per_source: float = 10.0,
        min_stars: int = 20_000,
    ) -> None:
        self.nc, self.timeout, self.ttl, self.size, self.max_bytes = nc, timeout, ttl, size, max_bytes
        self.stars_per_source, self.min_stars = stars_per_source, min_stars
        self._cache: OrderedDict[tuple, tuple[float, ConeReply, int]] = OrderedDict()
        self._cached_bytes = 0
        #: the last answer's size on the wire and time from request to whole reply (for the bench)
        self.last_wire_bytes = 0
        self.last_seconds = 0.0

    async def cone(
        self,
        ra: float,
        dec: float,
        radius: float,
        surveys: list[str] | None = None,
        n_sources: int | None = None,
        versions: dict[str, str] | None = None,
    ) -> ConeReply:
        """The reference stars of the cone; with ``n_sources``, only as many per survey as such a frame can use;
        ``versions``: survey -> the catalogue version to read instead of the live one (a recalibration)."""
        brightest = brightest_for(n_sources, self.stars_per_source, self.min_stars)
        # rounding to ~4" makes repeated uploads of one field share an entry
        pinned = tuple(sorted((versions or {}).items()))
        key = (round(ra, 3), round(dec, 3), round(radius, 3), tuple(surveys or ()), brightest, pinned)
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            self._cache.move_to_end(key)
            return hit[1]
        request = ConeRequestV2(
            ra=ra % 360.0,
            dec=dec,
            radius_deg=radius,
            surveys=surveys or [],
            brightest=brightest,
            versions=versions or {},
        )
        reply = await self._ask(request)
        self._remember(key, reply)
        return reply

    def _remember(self, key: tuple, reply: ConeReply) -> None:
        """Cache the reply, bounded by entries and by bytes (a dense field's stars are ~20 MB in memory)."""
        old = self._cache.pop(key, None)
        if old is not None:
            self._cached_bytes -= old[2]
        size = reply_bytes(reply)
        if size > self.max_bytes:
            return
        self._cache[key] = (time.monotonic(), reply, size)
        self._cached_bytes += size
        while self._cache and (len(self._cache) > self.size or self._cached_bytes > self.max_bytes):
            _, (_, _, dropped) = self._cache.popitem(last=False)
            self._cached_bytes -= dropped

    async def _ask(self, request: ConeRequestV2) -> ConeReply:
        started = time.perf_counter()
        body, wire = await self._receive(request)
        try:
            reply = await asyncio.to_thread(decode_reply, body) if len(body) > 1 << 20 else decode_reply(body)
        except MalformedConeReply as exc:
            raise CatalogReplyMalformed(f"the reference catalogue service answered an unreadable reply: {exc}") from exc
        self.last_wire_bytes, self.last_seconds = wire, time.perf_counter() - started
        if reply.ok:
            return reply
        if reply.error == ErrorCode.CATALOG_ERROR:
            raise CatalogFailed(f"the reference catalogue service failed on this field: {reply.message}")
        if reply.error == ErrorCode.CONE_TOO_LARGE:
            raise CatalogRefused(f"reference catalogue: {reply.message}", code=ErrorCode.CONE_TOO_LARGE)
        if reply.error == ErrorCode.UNKNOWN_CATALOGUE_VERSION:  # a recalibration's catalogue_versions
            raise CatalogRefused(
                f"unknown catalogue version: {reply.message}", code=ErrorCode.UNKNOWN_CATALOGUE_VERSION
            )
        # the request itself was refused (a bad cone, an unknown survey): asking again cannot help
        raise CatalogRefused(f"the reference catalogue refused the field: {reply.error}: {reply.message}")

    async def _receive(self, request: ConeRequestV2) -> tuple[bytes, int]:
        """The whole reply body and its bytes on the wire; CatalogUnavailable if it does not come."""
        inbox = self.nc.new_inbox()
        # a dense reply is tens of MB: let the subscription hold all its parts
        sub = await self.nc.subscribe(inbox, pending_bytes_limit=512 << 20)
        assembler = PartAssembler()
        try:
            await self.nc.publish(SUBJECT_CONE_V2, request.model_dump_json().encode(), reply=inbox, headers=headers())
            while True:
                try:
                    # the timeout is per part: a big reply may take longer than one timeout in all
                    msg = await sub.next_msg(timeout=self.timeout)
                except NatsTimeout as exc:
                    raise CatalogUnavailable(
                        f"the reference catalogue service is not answering ({assembler.progress()} "
                        f"of its reply in {self.timeout:g} s)"
                    ) from exc
                if msg.headers and msg.headers.get("Status") == _NO_RESPONDERS and not msg.data:
                    raise CatalogUnavailable("the reference catalogue service is not running (no responders)")
                try:
                    body = assembler.add(msg.headers, msg.data)
                except MalformedConeReply as exc:
                    raise CatalogReplyMalformed(
                        f"the reference catalogue service answered an unreadable reply: {exc}"
                    ) from exc
                if body is not None:
                    return body, assembler.bytes_received
        except NoRespondersError as exc:
            raise CatalogUnavailable("the reference catalogue service is not running (no responders)") from exc
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
