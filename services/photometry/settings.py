from shared.settings import CommonSettings


class PhotometrySettings(CommonSettings):
    photometry_port: int | None = None
    #: frames photometered at once by one process: a 4k x 4k frame takes ~0.5 GB while it is measured,
    #: so the service scales out in processes (KEDA, on the consumer's lag) rather than in here
    photometry_concurrency: int = 1
    #: a frame that crashes the photometry this many times is dead-lettered
    max_deliver: int = 3
    #: seconds JetStream waits for an ack before redelivering; the worker says "in progress" meanwhile
    photometry_ack_wait: float = 60.0
    #: seconds to wait before retrying when a backend (database, NATS) is down
    retry_delay: float = 2.0
    #: seconds from an upload's received_at during which a backend outage is retried
    outage_retry_limit: float = 300.0
    #: the largest frame measured (pixels); the gateway refuses larger ones (413) before they get here
    photometry_max_pixels: int = 64_000_000
    #: seconds astrometry.net may search for a solution of a frame without a WCS
    solve_timeout: float = 30.0
    #: how far (deg) the frame's centre may be from the alert when the header gives no pixel scale
    solve_radius_deg: float = 1.0
    #: forced S/N below which the target is a limit, not a magnitude
    snr_limit: float = 5.0
    #: a measured source table larger than this (bytes of JSON) goes through the object store
    inline_table_bytes: int = 600_000

    @property
    def port(self) -> int:
        return self.photometry_port or self.service_port(4)
