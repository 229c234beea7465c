from shared.session import CookieSettings
from shared.settings import CommonSettings
from shared.webhooks import WebhookSettings


class LightcurveSettings(CookieSettings, WebhookSettings, CommonSettings):
    """``cookie_secure`` (CookieSettings): the login cookie this service sets is always Secure;
    ``callback_allow_private`` (WebhookSettings): the subscriptions page checks URLs as the API does."""

    lightcurve_port: int | None = None

    @property
    def port(self) -> int:
        return self.lightcurve_port or self.service_port(3)
