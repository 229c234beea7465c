from services.ingest.cache import CacheSettings
from services.ingest.ratelimit import RateLimitSettings
from shared.http_server import HttpServerSettings
from shared.settings import CommonSettings
from shared.webhooks import WebhookSettings


class IngestSettings(RateLimitSettings, CacheSettings, HttpServerSettings, WebhookSettings, CommonSettings):
    """Everything the gateway reads; the rate-limit, DB-outage cache and HTTP server settings live beside their code."""

    #: largest upload accepted (bytes); CPCS users send catalogues of a few MB
    max_upload_bytes: int = 20 * 1024 * 1024
    #: largest FITS frame accepted (bytes, as sent and once decompressed): frames are larger than catalogues;
    #: the multipart reader lets a file part grow to this only when its first bytes are FITS
    max_image_bytes: int = 200 * 1024 * 1024
    #: largest FITS frame accepted (pixels, NAXIS1 x NAXIS2): 16k x 16k
    max_image_pixels: int = 16384 * 16384
    #: FITS frames the gateway holds at once (received, stored, waiting for their answer): with the byte
    #: limit, the gateway's memory bound for frames (4 x 200 MB); one more is 429 frames_busy
    max_frames_in_flight: int = 4
    max_catalogue_rows: int = 200_000
    #: seconds the synchronous upload waits for its calibration before 504
    upload_timeout: float = 30.0
    #: seconds the gateway waits for JetStream's ack before answering 503 (NATS down: fail fast)
    publish_timeout: float = 2.0
    #: parsed tables larger than this go to the JetStream object store
    inline_table_bytes: int = 600_000
    #: where the lightcurve service listens (the gateway forwards reads to it)
    lightcurve_url: str | None = None

    @property
    def port(self) -> int:
        return self.http_port

    @property
    def lightcurve_base(self) -> str:
        return (self.lightcurve_url or f"http://{self.http_host}:{self.service_port(3)}").rstrip("/")
