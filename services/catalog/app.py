"""The catalogue service: answers cone searches from the HATS reference catalogues."""

from __future__ import annotations

import asyncio

from services.catalog.handlers import make_cone_handler, make_cone_v2_handler, make_versions_handler
from services.catalog.settings import CatalogSettings
from services.catalog.store import CatalogStore
from shared.contracts.subjects import QUEUE_CATALOG, SUBJECT_CATALOG_VERSIONS, SUBJECT_CONE, SUBJECT_CONE_V2
from shared.runtime import Runtime, ServiceSpec


def spec(settings: CatalogSettings) -> ServiceSpec:
    async def setup(rt: Runtime) -> None:
        store = await asyncio.to_thread(
            CatalogStore,
            settings.data_dir,
            cache_partitions=settings.catalog_cache_partitions,
            disk_cache_bytes=settings.catalog_disk_cache_mb << 20,
        )
        max_stars = settings.catalog_cone_max_stars
        sub = await rt.nats().subscribe(SUBJECT_CONE, queue=QUEUE_CATALOG, cb=make_cone_handler(store, max_stars))
        rt.on_cleanup(sub.drain)
        sub_v2 = await rt.nats().subscribe(
            SUBJECT_CONE_V2, queue=QUEUE_CATALOG, cb=make_cone_v2_handler(store, rt.nats(), max_stars)
        )
        rt.on_cleanup(sub_v2.drain)
        sub_versions = await rt.nats().subscribe(
            SUBJECT_CATALOG_VERSIONS, queue=QUEUE_CATALOG, cb=make_versions_handler(store)
        )
        rt.on_cleanup(sub_versions.drain)

    return ServiceSpec("catalog", settings, settings.port, setup, uses_db=False)
