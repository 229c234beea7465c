from shared.settings import CommonSettings


class CatalogSettings(CommonSettings):
    #: partitions kept in memory, least recently used dropped first (each a few MB at most)
    catalog_cache_partitions: int = 64
    #: local disk copies of remote (attached http/s3) partitions, MB (under <data_dir>/cache/)
    catalog_disk_cache_mb: int = 4096
    catalog_port: int | None = None

    @property
    def port(self) -> int:
        return self.catalog_port or self.service_port(2)
