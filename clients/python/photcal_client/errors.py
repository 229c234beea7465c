"""Exceptions carrying photcal's stable error code (README's "Error codes") and the HTTP status.

Every failure the server answers is a :class:`PhotcalError` with ``code`` (e.g.
``"too_few_stars"``, ``"unknown_event"``), ``status`` (the HTTP status; None when
no answer came) and ``message`` (the server's sentence: what is wrong and how to
fix it). Catch a subclass for a kind of failure, or compare ``code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from photcal_client.results import UploadResult


class PhotcalError(Exception):
    """A request photcal refused or could not answer."""

    def __init__(
        self,
        code: str,
        status: int | None,
        message: str,
        *,
        upload_id: str | None = None,
        result: UploadResult | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code} ({status}): {message}" if status is not None else f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        #: the upload this failure belongs to, when the server had accepted one
        self.upload_id = upload_id
        #: a refused calibration's whole answer (its candidates, plot link, warnings)
        self.result = result
        #: the JSON body as the server sent it
        self.body = body or {}


class ClientError(PhotcalError):
    """4xx: the request, the file or the caller is at fault; sending it again as it is will not help."""


class AuthenticationError(ClientError):
    """401/403: no hashtag, an unknown one, or an observatory that may not do this."""


class NotFound(ClientError):
    """404: no such event, upload, datapoint."""


class Conflict(ClientError):
    """409: e.g. ``duplicate_datapoint``, the same event, observatory and MJD already stored."""


class CalibrationRefused(ClientError):
    """The upload was read but no honest calibration could be made (``too_few_stars``, ``poor_fit``...).

    ``result`` holds the whole answer, ``result.image_link`` the plot of the best failing fit.
    """


class RateLimited(ClientError):
    """429 after the client's retries: ``retry_after`` is the server's Retry-After, seconds."""

    def __init__(self, code: str, status: int | None, message: str, *, retry_after: float = 1.0, **kw: Any) -> None:
        super().__init__(code, status, message, **kw)
        self.retry_after = retry_after


class ServerError(PhotcalError):
    """5xx: photcal or a service behind it failed; trying later may work."""


class Unavailable(ServerError):
    """503: a backend (NATS, the database, the catalogue service) is not answering."""


class PhotcalTimeout(PhotcalError):
    """No answer in time: the server's (504) or the client's own timeout."""


class StillCalibrating(PhotcalTimeout):
    """The upload was accepted but its result is not ready yet; ``upload_id`` is where to look.

    ``Client.result(err.upload_id)`` waits for it.
    """


class ConnectionFailed(PhotcalError):
    """The server could not be reached (refused, DNS, reset): ``status`` is None."""


#: HTTP status -> the exception class of an answer that carries it (others by their hundred)
_BY_STATUS: dict[int, type[PhotcalError]] = {
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
    503: Unavailable,
    504: PhotcalTimeout,
}


def error_class(
    status: int, code: str, *, calibration: bool = False, upload_id: str | None = None
) -> type[PhotcalError]:
    """The class of an error answer: by status; a 504 with an upload id is :class:`StillCalibrating`."""
    if status == 504 and upload_id:
        return StillCalibrating
    if calibration and 400 <= status < 500 and status not in _BY_STATUS:
        return CalibrationRefused
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ClientError if 400 <= status < 500 else ServerError
