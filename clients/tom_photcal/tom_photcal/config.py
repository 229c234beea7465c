"""The plug-in's settings (``DATA_SERVICES["photcal"]``), the photcal client they make, the target's alert."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from photcal_client import Client

from tom_photcal.photometry import ALERT_FIELD, SOURCE_NAME

#: an upload waits for its calibration: longer than the server's own wait (PHOTCAL_UPLOAD_TIMEOUT, 60 s)
DEFAULT_TIMEOUT_S = 120.0


class PhotcalProcessingError(Exception):
    """photcal refused a data product or could not be asked; ``code`` is photcal's stable error code."""

    def __init__(self, message: str, code: str = "", status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code
        self.status = status


def photcal_settings() -> dict[str, Any]:
    """``settings.DATA_SERVICES["photcal"]``: ``url`` (required), ``hashtag`` (uploads), ``timeout`` (s)."""
    services = getattr(settings, "DATA_SERVICES", None) or {}
    config = services.get(SOURCE_NAME)
    if not isinstance(config, dict) or not config.get("url"):
        raise ImproperlyConfigured(
            'photcal is not configured: add DATA_SERVICES = {"photcal": {"url": "https://photcal.example.org", '
            '"hashtag": "<your observatory hashtag>"}} to settings.py'
        )
    return config


def photcal_client(*, need_hashtag: bool) -> Client:
    """A client of the configured server; ``need_hashtag`` for uploads (pulls are anonymous reads)."""
    config = photcal_settings()
    hashtag = config.get("hashtag") or None
    if need_hashtag and not hashtag:
        raise ImproperlyConfigured(
            'sending data products to photcal needs your observatory\'s hashtag: DATA_SERVICES["photcal"]["hashtag"]'
        )
    return Client(str(config["url"]), hashtag, timeout=float(config.get("timeout", DEFAULT_TIMEOUT_S)))


def alert_of(target: Any) -> str:
    """The target's photcal alert: its ``photcal_alert`` extra field (an ivorn or a name), else its name."""
    extra = target.targetextra_set.filter(key=ALERT_FIELD).first()
    value = (extra.value if extra is not None else "") or ""
    return value.strip() or str(target.name)


def ivorn_of(client: Client, alert: str) -> str:
    """The ivorn of ``alert`` (an ivorn is kept; a name must match exactly one alert's name)."""
    if "://" in alert:
        return alert
    exact = [a for a in client.alerts(alert) if (a.name or "").lower() == alert.lower()]
    if len(exact) != 1:
        raise PhotcalProcessingError(
            f"no single photcal alert is named {alert!r}"
            + (f" ({len(exact)} are)" if exact else "")
            + f": set the target's {ALERT_FIELD!r} extra field to the alert's ivorn",
            code="unknown_event",
        )
    return exact[0].ivorn
