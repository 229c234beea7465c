from shared.settings import CommonSettings


class CalibrateSettings(CommonSettings):
    calibrate_port: int | None = None
    #: uploads worked on at once by one worker process
    calibrate_concurrency: int = 2
    #: recalibration tasks (photcal.recalibrate.v1) worked on at once by one worker process, beside the
    #: uploads: a job of thousands of points must not take every slot from the observers' uploads
    recalibrate_concurrency: int = 1
    #: a message that fails this many times with an unexpected error is dead-lettered
    max_deliver: int = 5
    #: seconds JetStream waits for an ack before redelivering
    ack_wait: float = 60.0
    #: seconds to wait before retrying when a backend (database, catalog) is down
    retry_delay: float = 2.0
    #: seconds from an upload's received_at during which a backend outage is retried; then the upload
    #: fails (``catalog_unavailable``, 503...). Restarts and rolling updates take seconds to a minute;
    #: five minutes rides them out, and an observer still gets an answer while the frame matters.
    outage_retry_limit: float = 300.0
    #: largest field radius asked of the catalogue (deg); wider frames are cut
    max_field_radius_deg: float = 1.0
    #: seconds a cone answer is reused for uploads of the same field
    cone_cache_ttl: float = 120.0
    cone_cache_size: int = 64
    #: memory the cached cone answers may take, MB (a dense field's reference stars are ~20 MB)
    cone_cache_mb: int = 256
    #: reference stars asked per survey: this many per source of the frame, at least cone_min_stars
    #: (services/calibrate/cone.py brightest_for says why that is safe); 0: every star in the cone
    cone_stars_per_source: float = 10.0
    cone_min_stars: int = 20_000
    #: public base URL of the gateway, for image_link
    public_url: str | None = None

    @property
    def port(self) -> int:
        return self.calibrate_port or self.service_port(1)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")
