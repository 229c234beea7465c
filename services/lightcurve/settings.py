from shared.session import CookieSettings
from shared.settings import CommonSettings


class LightcurveSettings(CookieSettings, CommonSettings):
    """``cookie_secure`` (CookieSettings): the login cookie this service sets is always Secure."""

    lightcurve_port: int | None = None

    @property
    def port(self) -> int:
        return self.lightcurve_port or self.service_port(3)
