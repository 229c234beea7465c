"""The cone v2 handler and client over a real nats-server, with a stand-in store.

A reply of any size arrives whole (in parts below max_payload); a cone over
the service's star limit, or one the store refuses, is answered with the
reason, and the client raises the error the worker turns into the upload's
answer (shared/decisions.py).
"""

from __future__ import annotations

import nats
import numpy as np
import pytest

from services.calibrate.cone import CatalogFailed, CatalogRefused, ConeClient
from services.catalog.handlers import make_cone_handler, make_cone_v2_handler
from shared.contracts.messages import ConeReply, ConeRequest, SurveyStars
from shared.contracts.subjects import QUEUE_CATALOG, SUBJECT_CONE, SUBJECT_CONE_V2
from shared.errors import BadInput

pytestmark = pytest.mark.integration


class FakeStore:
    """Answers ``n`` PS1-like stars, or raises what it is told to."""

    def __init__(self, n: int, raises: Exception | None = None) -> None:
        self.n, self.raises = n, raises
        self.asked: list[dict] = []

    def cone(self, ra, dec, radius, surveys=None, **options) -> ConeReply:
        self.asked.append(options)
        if self.raises is not None:
            raise self.raises
        rng = np.random.default_rng(0)
        mags = {b: rng.uniform(12, 22, self.n).astype(np.float32) for b in "grizy"}
        stars = SurveyStars(
            survey="PS1",
            ra=ra + rng.uniform(-radius, radius, self.n),
            dec=dec + rng.uniform(-radius, radius, self.n),
            mags=mags,
            errs={b: (m * 0.01).astype(np.float32) for b, m in mags.items()},
        )
        return ConeReply(covered=["PS1"], stars={"PS1": stars})


async def serve(url: str, store, **options):
    nc = await nats.connect(url)
    await nc.subscribe(SUBJECT_CONE_V2, queue=QUEUE_CATALOG, cb=make_cone_v2_handler(store, nc, **options))
    await nc.subscribe(SUBJECT_CONE, queue=QUEUE_CATALOG, cb=make_cone_handler(store, options.get("max_stars", 10**6)))
    await nc.flush()
    return nc


async def test_a_reply_of_any_size_arrives_whole(nats_proc):
    store = FakeStore(150_000)
    server = await serve(nats_proc.url, store)
    nc = await nats.connect(nats_proc.url)
    try:
        client = ConeClient(nc, timeout=20.0, ttl=60.0, size=4)
        reply = await client.cone(120.0, -5.0, 0.3, n_sources=4_000)
        assert client.last_wire_bytes > 5 * nc.max_payload  # many parts
        want = store.cone(120.0, -5.0, 0.3).stars["PS1"]
        got = reply.stars["PS1"]
        np.testing.assert_array_equal(got.ra, want.ra)
        for band in "grizy":
            np.testing.assert_array_equal(got.mags[band], want.mags[band].astype(np.float64))
        assert store.asked[0] == {"brightest": 40_000, "float32": True}
        # the same field again comes from the worker's cache
        assert await client.cone(120.0, -5.0, 0.3, n_sources=4_000) is reply
        # v1 of the same cone: an error that says so, not silence
        msg = await nc.request(
            SUBJECT_CONE, ConeRequest(ra=120.0, dec=-5.0, radius_deg=0.3).model_dump_json().encode(), timeout=20
        )
        v1 = ConeReply.model_validate_json(msg.data)
        assert (v1.ok, v1.error) == (False, "cone_too_large")
    finally:
        await nc.close()
        await server.close()


@pytest.mark.parametrize(
    "store, options, error, code",
    [
        (FakeStore(5_000), {"max_stars": 1_000}, CatalogRefused, "cone_too_large"),
        (FakeStore(0, BadInput("bad cone radius 9", code="bad_cone")), {}, CatalogRefused, "catalog_refused"),
        (FakeStore(0, OSError("partition file vanished")), {}, CatalogFailed, "catalog_error"),
    ],
)
async def test_a_refused_or_failed_cone_is_answered_with_the_reason(nats_proc, store, options, error, code):
    server = await serve(nats_proc.url, store, **options)
    nc = await nats.connect(nats_proc.url)
    try:
        with pytest.raises(error) as raised:
            await ConeClient(nc, timeout=10.0, ttl=0.0, size=0).cone(10.0, 20.0, 0.2)
        assert raised.value.code == code and raised.value.message
    finally:
        await nc.close()
        await server.close()
