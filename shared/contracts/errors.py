"""Every stable error code photcal answers, with its usual HTTP status and what it means.

An error body is ``{"message": ..., "status": "error", "error": <code>}``
(``shared/http_errors.py``); a failed calibration's result carries the same
code in ``CalibrationResult.error``. The codes are stable: clients branch on
them, so a code is added here and never renamed. ``ErrorCode`` is a
``StrEnum``: a member is its string, so JSON bodies hold the bare code.

``http_status`` is the status a code is usually answered with; a few codes
are also met with another (``too_large`` is 400 for an oversized form on a
CPCS read, where 413 would make BHTOM retry). README's "Error codes" table is
generated from this catalogue (``python -m shared.contracts.errors``) and a
unit test keeps the two equal.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class ErrorCode(StrEnum):
    """A stable error code; ``.http_status`` and ``.meaning`` say when it is answered."""

    http_status: int
    meaning: str

    def __new__(cls, value: str, http_status: int, meaning: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.http_status = http_status
        member.meaning = meaning
        return member

    # -- the request as sent (400)
    BAD_INPUT = "bad_input", 400, "the request cannot be used as sent"
    BAD_REQUEST = "bad_request", 400, "the request could not be read (or a cone request is not one)"
    BAD_FIELD = "bad_field", 400, "a field's value is out of range or of the wrong kind"
    MISSING_FIELD = "missing_field", 400, "a required field is absent"
    BAD_FORM = "bad_form", 400, "the form (multipart or urlencoded) cannot be read"
    BAD_JSON = "bad_json", 400, "the body is not the JSON object the endpoint takes"
    BAD_PATH = "bad_path", 400, "the path has a '.' or '..' segment"
    BAD_UPLOAD_ID = "bad_upload_id", 400, "not the hexadecimal id an upload answered"
    BAD_ALERT_NAME = "bad_alert_name", 400, "an event name is not 1-100 printable characters"
    BAD_FORCE_FILTER = "bad_force_filter", 400, "forceFilter is neither 'no' nor SURVEY/BAND"
    FORCE_FILTER_UNAVAILABLE = (
        "force_filter_unavailable",
        400,
        "the survey or band forceFilter asks for is not served, or not in this field",
    )
    MISSING_CATALOGUE = "missing_catalogue", 400, "the upload has no sexCat file"
    # -- the uploaded catalogue (400, shared.errors.BadCatalogue; services/ingest/parsing.py)
    BAD_CATALOGUE = "bad_catalogue", 400, "the uploaded source catalogue cannot be read or used"
    EMPTY_FILE = "empty_file", 400, "the uploaded file is empty"
    NOT_A_CATALOGUE = "not_a_catalogue", 400, "the file is not a SExtractor catalogue (compressed, binary, an image)"
    BAD_FITS = "bad_fits", 400, "the FITS file is truncated or corrupt"
    BAD_HEADER = "bad_header", 400, "the catalogue's column header cannot be read"
    NO_HEADER = "no_header", 400, "the ASCII catalogue has no column header and is not in the default layout"
    MISSING_COLUMNS = "missing_columns", 400, "the catalogue lacks MAG_AUTO, MAGERR_AUTO, ALPHA_J2000 or DELTA_J2000"
    NO_ROWS = "no_rows", 400, "the catalogue has no rows"
    BAD_VALUES = "bad_values", 400, "the rows cannot be read as numbers"
    NO_USABLE_SOURCES = "no_usable_sources", 400, "no source has a usable magnitude and position"
    # -- the uploaded FITS frame (400; services/ingest/parsing/image.py, services/photometry/imaging)
    NOT_AN_IMAGE = "not_an_image", 400, "the FITS file's image is not 2-D (NAXIS is not 2)"
    IMAGE_CUBE = "image_cube", 400, "the FITS image is a cube (NAXIS3 > 1): upload one plane, a 2-D frame"
    NO_MJD = "no_mjd", 400, "neither the form (MJD) nor the frame's header (MJD-OBS, DATE-OBS) gives the date"
    BAD_IMAGE = "bad_image", 400, "the frame's pixels cannot be photometered (all NaN, blank, unreadable)"
    NO_STARS = "no_stars", 400, "the frame shows no star: a dark or flat, out of focus, clouded out, shutter closed"
    IMAGE_NOT_SOLVED = "image_not_solved", 400, "the frame has no celestial WCS and could not be plate-solved"
    WRONG_WCS = "wrong_wcs", 400, "the frame's WCS puts its stars away from the reference stars"
    # -- the calibration (400, shared.errors.CalibrationFailed; services/calibrate/core)
    CALIBRATION_FAILED = "calibration_failed", 400, "no honest calibration can be made from this catalogue"
    FIELD_NOT_COVERED = "field_not_covered", 400, "no reference survey covers the field"
    NO_STARS_MATCHED = "no_stars_matched", 400, "no source matched a reference star (WCS, matchDist)"
    TOO_FEW_STARS = "too_few_stars", 400, "too few calibration stars in the field"
    BAD_ASTROMETRY = "bad_astrometry", 400, "matched stars show no photometric relation: the WCS is likely wrong"
    POOR_FIT = "poor_fit", 400, "the best calibration is too poor to trust"
    TARGET_OUTSIDE_FRAME = "target_outside_frame", 400, "the event's position is outside the frame's sources"
    # -- the catalogue service and its loaders (400 to an operator's command)
    BAD_CONE = "bad_cone", 400, "a cone request the catalogue cannot answer (radius, position)"
    UNKNOWN_SURVEY = "unknown_survey", 400, "no such reference survey"
    BAD_EXTRACT = "bad_extract", 400, "a catalogue extract file cannot be read"
    BAD_CATALOGUE_SOURCE = "bad_catalogue_source", 400, "a catalogue source to load cannot be used"
    BAD_COLUMN_MAP = "bad_column_map", 400, "a catalogue column mapping is not valid"
    NO_CATALOGUE = "no_catalogue", 400, "no catalogue of that survey is loaded or attached"
    BAD_ALERTS_CSV = "bad_alerts_csv", 400, "the Gaia alerts CSV cannot be read"
    UNKNOWN_CATALOGUE_VERSION = (
        "unknown_catalogue_version",
        400,
        "no catalogue of that survey has that version on disk (`photcal catalog list`)",
    )
    BAD_SELECTION = (
        "bad_selection",
        400,
        "a recalibration's selection names an unknown event or observatory",
    )
    # -- who is asking (401, 403)
    BAD_HASHTAG = "bad_hashtag", 401, "the hashtag is not an observatory's"
    MISSING_HASHTAG = "missing_hashtag", 401, "no hashtag (field, query or cookie) and no login"
    SESSION_ENDED = "session_ended", 401, "the login cookie's session was logged out"
    FORBIDDEN = "forbidden", 403, "this observatory may not do that"
    NOT_ADMIN = "not_admin", 403, "this takes an administrator's hashtag"
    CSRF_FAILED = "csrf_failed", 403, "a write with the login cookie but without the page's token or same origin"
    # -- what is not there (404)
    NOT_FOUND = "not_found", 404, "no such page or thing"
    UNKNOWN_EVENT = "unknown_event", 404, "no event has that ivorn, name or id"
    UNKNOWN_UPLOAD = "unknown_upload", 404, "no upload has that id"
    UNKNOWN_DATAPOINT = "unknown_datapoint", 404, "no datapoint has that followup_id (or it is not this observatory's)"
    UNKNOWN_PLOT = "unknown_plot", 404, "no plot has that name"
    UNKNOWN_RECALIBRATION = "unknown_recalibration", 404, "no recalibration job has that id"
    # -- method, body, time (405, 408, 413, 429)
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "this path does not take that method"
    SLOW_BODY = "slow_body", 408, "the request body arrived too slowly"
    TOO_LARGE = "too_large", 413, "the upload or body is larger than the server accepts"
    TOO_MANY_ROWS = "too_many_rows", 413, "the catalogue has more rows than the server accepts"
    TOO_MANY_LINES = "too_many_lines", 413, "the file has far more lines than rows plus a header"
    IMAGE_TOO_LARGE = "image_too_large", 413, "the FITS frame is larger (decompressed) than the server accepts"
    RATE_LIMITED = "rate_limited", 429, "too many requests: wait Retry-After seconds"
    FRAMES_BUSY = "frames_busy", 429, "the server holds as many FITS frames as it can: send again after Retry-After"
    # -- what is already there (409)
    CONFLICT = "conflict", 409, "the request conflicts with what is stored"
    RECALIBRATION_NOT_READY = (
        "recalibration_not_ready",
        409,
        "the recalibration job is not ready to apply (still computing, applying, or failed)",
    )
    ALERT_EXISTS = "alert_exists", 409, "that ivorn is already an event"
    ALERT_NAME_TAKEN = "alert_name_taken", 409, "another event has that name (or it as its ivorn's fragment)"
    AMBIGUOUS_ALERT_NAME = "ambiguous_alert_name", 409, "several events answer to that name: give the ivorn"
    DUPLICATE_DATAPOINT = "duplicate_datapoint", 409, "that event, observatory and MJD already has a datapoint"
    OBSERVATORY_EXISTS = "observatory_exists", 409, "an observatory has that name"
    # -- our side (500, 502, 503, 504)
    INTERNAL_ERROR = "internal_error", 500, "an unexpected failure on our side; the operators have been told"
    HTTP_ERROR = "http_error", 500, "any other HTTP error the framework raised"
    CATALOG_ERROR = "catalog_error", 502, "the catalogue service failed on this cone"
    CATALOG_REFUSED = "catalog_refused", 502, "the catalogue service refused this cone"
    CATALOG_REPLY_MALFORMED = "catalog_reply_malformed", 502, "the catalogue service's reply could not be read"
    CONE_TOO_LARGE = "cone_too_large", 502, "the cone holds more reference stars than a reply can carry"
    BACKEND_UNAVAILABLE = "backend_unavailable", 503, "NATS, the database or a peer service is down: try later"
    CATALOG_UNAVAILABLE = "catalog_unavailable", 503, "the catalogue service did not answer: try later"
    DATABASE_UNAVAILABLE = "database_unavailable", 503, "the database did not answer: try later"
    NATS_UNAVAILABLE = "nats_unavailable", 503, "the message broker (NATS) did not answer: try later"
    TIMEOUT = "timeout", 504, "still calibrating: ask /api/v1/uploads/{X-Upload-ID} later"
    # -- issue 22: the messages' schemas, VOEvent intake
    UNKNOWN_SCHEMA = "unknown_schema", 404, "no message schema of that name: GET /api/v1/schemas lists them"
    BAD_VOEVENT = "bad_voevent", 400, "the body is not a well-formed VOEvent 2.0 XML document"
    VOEVENT_INCOMPLETE = (
        "voevent_incomplete",
        400,
        "the VOEvent lacks what an event needs: its ivorn and a WhereWhen position (decimal degrees)",
    )
    # -- callbacks and subscriptions (issue 22)
    CALLBACK_URL_REFUSED = (
        "callback_url_refused",
        400,
        "the callback or subscription URL is not a public http(s) URL (loopback, private, link-local, "
        "unique-local and multicast addresses are refused)",
    )
    UNKNOWN_SUBSCRIPTION = "unknown_subscription", 404, "this observatory has no subscription with that id"


def markdown_table() -> str:
    """README's "Error codes" table, one row a code, in catalogue order."""
    rows = ["| code | HTTP | meaning |", "|---|---|---|"]
    rows += [f"| `{code}` | {code.http_status} | {code.meaning} |" for code in ErrorCode]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
