"""One exception hierarchy for the whole system.

Every error a user can cause or meet carries a stable machine-readable
``code`` and a short human ``message`` saying what is wrong and how to fix it.
The gateway maps each class to an HTTP status (``http_status``); consumers map
``retryable`` to NAK (try again later) versus dead-letter/terminal answer.
"""

from __future__ import annotations

#: codes of the events (alerts) entry points, shared by the gateway, the web pages and the CLI
CODE_ALERT_EXISTS = "alert_exists"  # 409: that ivorn is already an event
CODE_ALERT_NAME_TAKEN = "alert_name_taken"  # 409: another event has that name (or it as its ivorn's fragment)
CODE_AMBIGUOUS_ALERT_NAME = "ambiguous_alert_name"  # 409: a name several events answer to; give the ivorn
CODE_BAD_ALERT_NAME = "bad_alert_name"  # 400: not 1-100 printable characters


class PhotcalError(Exception):
    """Base of every error photcal raises on purpose."""

    code: str = "internal_error"
    http_status: int = 500
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        # "message" first: BHTOM shows short bodies to its users verbatim.
        return {"message": self.message, "status": "error", "error": self.code}


class BadInput(PhotcalError):
    """The request or file cannot be used as sent (HTTP 400)."""

    code = "bad_input"
    http_status = 400


class BadCatalogue(BadInput):
    """The uploaded source catalogue cannot be read or used."""

    code = "bad_catalogue"


class CalibrationFailed(BadInput):
    """The catalogue was read but no honest calibration can be made from it."""

    code = "calibration_failed"


class Unauthorized(PhotcalError):
    code = "bad_hashtag"
    http_status = 401


class Forbidden(PhotcalError):
    code = "forbidden"
    http_status = 403


class NotFound(PhotcalError):
    code = "not_found"
    http_status = 404


class Conflict(PhotcalError):
    code = "conflict"
    http_status = 409


class PayloadTooLarge(PhotcalError):
    code = "too_large"
    http_status = 413


class RateLimited(PhotcalError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendUnavailable(PhotcalError):
    """NATS, the database or a peer service is down; try again later."""

    code = "backend_unavailable"
    http_status = 503
    retryable = True


class CalibrationTimeout(PhotcalError):
    code = "timeout"
    http_status = 504
    retryable = True
