"""One exception hierarchy for the whole system.

Every error a user can cause or meet carries a stable machine-readable
``code`` (one of :class:`shared.contracts.errors.ErrorCode`, the catalogue) and a
short human ``message`` saying what is wrong and how to fix it.
The gateway maps each class to an HTTP status (``http_status``); consumers map
``retryable`` to NAK (try again later) versus dead-letter/terminal answer.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.errors import ErrorCode


class PhotcalError(Exception):
    """Base of every error photcal raises on purpose."""

    code: str = ErrorCode.INTERNAL_ERROR
    http_status: int = 500
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        #: machine-readable facts beside the message (e.g. the stored point's ``followup_id`` of a duplicate)
        self.details = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        # "message" first: BHTOM shows short bodies to its users verbatim.
        return {"message": self.message, "status": "error", "error": self.code} | self.details


class BadInput(PhotcalError):
    """The request or file cannot be used as sent (HTTP 400)."""

    code = ErrorCode.BAD_INPUT
    http_status = 400


class BadCatalogue(BadInput):
    """The uploaded source catalogue cannot be read or used."""

    code = ErrorCode.BAD_CATALOGUE


class CalibrationFailed(BadInput):
    """The catalogue was read but no honest calibration can be made from it."""

    code = ErrorCode.CALIBRATION_FAILED


class Unauthorized(PhotcalError):
    code = ErrorCode.BAD_HASHTAG
    http_status = 401


class Forbidden(PhotcalError):
    code = ErrorCode.FORBIDDEN
    http_status = 403


class NotFound(PhotcalError):
    code = ErrorCode.NOT_FOUND
    http_status = 404


class Conflict(PhotcalError):
    code = ErrorCode.CONFLICT
    http_status = 409


class PayloadTooLarge(PhotcalError):
    code = ErrorCode.TOO_LARGE
    http_status = 413


class RateLimited(PhotcalError):
    code = ErrorCode.RATE_LIMITED
    http_status = 429

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendUnavailable(PhotcalError):
    """NATS, the database or a peer service is down; try again later."""

    code = ErrorCode.BACKEND_UNAVAILABLE
    http_status = 503
    retryable = True


class CalibrationTimeout(PhotcalError):
    code = ErrorCode.TIMEOUT
    http_status = 504
    retryable = True
