from shared.settings import CommonSettings


class CatalogSettings(CommonSettings):
    #: partitions kept in memory (each a few MB at most)
    catalog_cache_partitions: int = 64
    catalog_port: int | None = None

    @property
    def port(self) -> int:
        return self.catalog_port or self.service_port(2)
