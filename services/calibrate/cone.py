"""Asking the catalogue service for a field's reference stars, with a short-lived cache."""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError, TimeoutError as NatsTimeout

from shared.arrays import SourceTable
from shared.errors import BackendUnavailable, CalibrationFailed
from shared.models import SUBJECT_CONE, ConeReply, ConeRequest
from shared.natsio import headers

ARCMIN = 1.0 / 60.0


def field_of(sources: SourceTable, max_radius_deg: float) -> tuple[float, float, float]:
    """Centre (ra, dec) and radius (deg) of the cone that holds the frame's sources."""
    ok = np.isfinite(sources.ra) & np.isfinite(sources.dec)
    if not ok.any():
        raise CalibrationFailed("no source in the catalogue has a valid position", code="no_usable_sources")
    ra, dec = np.radians(sources.ra[ok]), np.radians(sources.dec[ok])
    xyz = np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    centre = xyz.mean(axis=0)
    centre /= np.linalg.norm(centre)
    radius = np.degrees(np.arccos(np.clip(xyz @ centre, -1, 1)).max()) + ARCMIN
    ra_c = float(np.degrees(np.arctan2(centre[1], centre[0])) % 360.0)
    dec_c = float(np.degrees(np.arcsin(centre[2])))
    return ra_c, dec_c, float(min(radius, max_radius_deg))


class ConeClient:
    def __init__(self, nc: NATS, timeout: float, ttl: float, size: int) -> None:
        self.nc, self.timeout, self.ttl, self.size = nc, timeout, ttl, size
        self._cache: OrderedDict[tuple, tuple[float, ConeReply]] = OrderedDict()

    async def cone(self, ra: float, dec: float, radius: float, surveys: list[str] | None = None) -> ConeReply:
        # rounding to ~4" makes repeated uploads of one field share an entry
        key = (round(ra, 3), round(dec, 3), round(radius, 3), tuple(surveys or ()))
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            self._cache.move_to_end(key)
            return hit[1]
        reply = await self._ask(ConeRequest(ra=ra % 360.0, dec=dec, radius_deg=radius, surveys=surveys or []))
        self._cache[key] = (time.monotonic(), reply)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return reply

    async def _ask(self, request: ConeRequest) -> ConeReply:
        try:
            msg = await self.nc.request(
                SUBJECT_CONE, request.model_dump_json().encode(), timeout=self.timeout, headers=headers()
            )
        except (NatsTimeout, NoRespondersError) as exc:
            raise BackendUnavailable("the reference catalogue service is not answering") from exc
        reply = ConeReply.model_validate_json(msg.data)
        if not reply.ok and reply.error == "catalog_error":
            raise BackendUnavailable(f"the reference catalogue service failed: {reply.message}")
        if not reply.ok:  # the request itself was refused: retrying cannot help
            raise CalibrationFailed(f"reference catalogue: {reply.message}", code="field_not_covered")
        return reply
