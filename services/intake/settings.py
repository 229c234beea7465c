from shared.settings import CommonSettings
from shared.usecases.alert_intake import GAIA_ALERTS_FEED


class IntakeSettings(CommonSettings):
    intake_port: int | None = None
    #: poll the alerts list at all (off by default: nothing reaches the internet unless asked to)
    alerts_feed_enabled: bool = False
    #: the Gaia Science Alerts list (alerts.csv), or a mirror of it
    alerts_feed_url: str = GAIA_ALERTS_FEED
    #: seconds between two readings of the list (BHTOM harvests it every few hours; it changes a few times a day)
    alerts_feed_interval: float = 3600.0
    #: seconds to wait after a failed reading before the next attempt (at most the interval)
    alerts_feed_retry: float = 300.0
    #: seconds one reading may take (the list is ~4 MB)
    alerts_feed_timeout: float = 120.0
    #: a body larger than this (bytes) is not the list
    alerts_feed_max_bytes: int = 64 * 1024**2

    @property
    def port(self) -> int:
        return self.intake_port or self.service_port(5)
