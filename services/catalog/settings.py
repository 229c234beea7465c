from shared.settings import CommonSettings


class CatalogSettings(CommonSettings):
    #: partitions kept in memory, least recently used dropped first (each a few MB at most)
    catalog_cache_partitions: int = 64
    #: local disk copies of remote (attached http/s3) partitions, MB (under <data_dir>/cache/)
    catalog_disk_cache_mb: int = 4096
    catalog_port: int | None = None
    #: most reference stars one cone may return (all surveys): ~56 bytes each on the wire (cone.v2),
    #: so 1,000,000 is ~56 MB; a cone beyond it is refused with ``cone_too_large``
    catalog_cone_max_stars: int = 1_000_000

    @property
    def port(self) -> int:
        return self.catalog_port or self.service_port(2)
