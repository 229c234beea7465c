"""A cone's catalogue versions (a recalibration's ``catalogue_versions``) over a real nats-server: they reach
the store, are part of the worker's cache key, and a version not on disk comes back as its own error."""

from __future__ import annotations

import nats
import pytest

from services.calibrate.cone import CatalogRefused, ConeClient
from shared.contracts.errors import ErrorCode
from shared.errors import BadInput
from tests.integration.test_cone_v2_nats import FakeStore, serve

pytestmark = pytest.mark.integration


async def test_the_versions_reach_the_store_and_an_unknown_one_is_refused_by_name(nats_proc):
    store = FakeStore(100)
    server = await serve(nats_proc.url, store)
    nc = await nats.connect(nats_proc.url)
    try:
        client = ConeClient(nc, timeout=5.0, ttl=60.0, size=4)
        await client.cone(120.0, -5.0, 0.3)
        await client.cone(120.0, -5.0, 0.3, versions={"PS1": "v1"})  # not the live cone's cache entry
        assert [a.get("versions") for a in store.asked] == [None, {"PS1": "v1"}]

        refusing = FakeStore(0, BadInput("PS1 has no version v9", code=ErrorCode.UNKNOWN_CATALOGUE_VERSION))
        other = await serve(nats_proc.url, refusing)
        await server.close()  # only the refusing store answers now
        with pytest.raises(CatalogRefused) as refused:
            await ConeClient(nc, timeout=5.0, ttl=60.0, size=4).cone(120.0, -5.0, 0.3, versions={"PS1": "v9"})
        assert refused.value.code == ErrorCode.UNKNOWN_CATALOGUE_VERSION and "v9" in refused.value.message
        await other.close()
    finally:
        await nc.close()
