"""The OpenAPI 3.1 document of photcal's HTTP API: what each route of the route table takes and answers.

One entry of :data:`ROUTE_DOCS` per documented row of ``shared/contracts/routes.py``, keyed by
``(method, path)`` as the row has them: a summary, the query parameters, the request body's model and
the response models by status, and how the caller is known (hashtag or the browser's session cookie).
Every ``/api/v1`` row and every CPCS row has an entry (a unit test fails otherwise); the CPCS rows are
tagged :data:`CPCS_TAG`.

Bodies are schemas of pydantic models (``model_json_schema``), named here by model name: the models
of ``shared/`` and the few that live in a service (the upload form, the datapoint detail) are handed
to :func:`build_document` by ``tools/openapi.py``, which writes the document the lightcurve service
serves (``services/lightcurve/static/openapi.json``); a unit test keeps that file equal to a fresh
build, so a model changed is a document to regenerate (``python -m tools.openapi``).

The models below describe answers whose handlers build them as plain dicts; they are the contract
those handlers keep.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.contracts.errors import ErrorCode
from shared.contracts.routes import ROUTES, Route

CPCS_TAG = "CPCS compatibility API"
API_TAG = "photcal API v1"
DOCS_TAG = "documentation"

#: the file part of an upload and the form fields beside the upload form's model
UPLOAD_FILE_FIELD = "sexCat"


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: ``message`` says what is wrong and how to fix it; ``error`` is the stable code."""

    message: str
    status: Literal["error"] = "error"
    error: ErrorCode
    #: an upload accepted before it failed or timed out (503/504): where its result will be
    upload_id: str | None = None
    #: ``duplicate_datapoint``: the point already stored for that event, observatory and MJD
    followup_id: int | None = None


class UploadQueued(BaseModel):
    """``?wait=0``: the upload was accepted; poll ``status_url`` for its result."""

    status: Literal["queued"]
    upload_id: str
    status_url: str
    message: str


class UploadStatus(BaseModel):
    """An upload's state; ``result`` is its calibration result (a CalibrationResult) once done or failed."""

    upload_id: str
    state: Literal["queued", "done", "failed"] | None
    result: dict[str, Any] | None = None
    #: an upload with a callback_url: its delivery's state (pending, delivered, failed), attempts, last answer
    callback: dict[str, Any] | None = None


class NewAlert(BaseModel):
    """A new alert (event): JSON or a form; ``EventID`` is taken for ``ivorn`` when that is absent."""

    ivorn: str = Field(description="the event's IVORN, e.g. ivo://photcal/alerts#Gaia24abc")
    ra: float = Field(description="right ascension, degrees (ICRS)")
    dec: float = Field(description="declination, degrees (ICRS)")
    url: str | None = Field(None, description="the event's page elsewhere")
    name: str | None = Field(None, description="a short name (default: the IVORN's fragment)")
    hashtag: str | None = Field(None, description="the observatory's hashtag (or the query parameter or cookie)")


class AlertCreated(BaseModel):
    status: Literal["ok"]
    message: str
    ivorn: str
    id: int
    warnings: list[str] = Field(default_factory=list)


class DeleteDatapoint(BaseModel):
    """The optional body of a delete: the reason is kept with the deleted datapoint."""

    reason: str | None = None
    hashtag: str | None = None


class DatapointDeleted(BaseModel):
    status: Literal["ok"]
    message: str
    followup_id: int
    ivorn: str


class Lightcurve(BaseModel):
    """An alert's light curve: ``points`` one per datapoint (``mjd`` in days, magnitudes in mag)."""

    name: str
    ivorn: str
    points: list[dict[str, Any]]

    model_config = {"extra": "allow"}


class AlertRow(BaseModel):
    """One alert of the list, with its datapoint count and last point (``mjd`` days, ``mag`` mag)."""

    ivorn: str
    name: str
    n_datapoints: int

    model_config = {"extra": "allow"}


class FollowupRow(BaseModel):
    """One recent datapoint of the follow-up list (``mjd`` days, magnitudes in mag)."""

    model_config = {"extra": "allow"}


class RecalibrationAccepted(BaseModel):
    """A recalibration job's answer to create, apply or resume: its id, state, size and where to look."""

    status: str = "ok"
    job_id: str
    state: str
    total: int
    links: dict[str, str]
    message: str | None = None
    #: resume: how many tasks were queued again
    queued: int | None = None


class RecalibrationReport(BaseModel):
    """A recalibration job: its request, state, progress (items per state) and, once computed, its summary."""

    job_id: str
    state: str
    total: int
    progress: dict[str, int]
    summary: dict[str, Any] | None = None
    links: dict[str, str]

    model_config = {"extra": "allow"}


class RecalibrationItems(BaseModel):
    """A page of a job's per-point diff: each item's old and new calibration, dmag, state and reason."""

    job_id: str
    skip: int
    limit: int
    items: list[dict[str, Any]]
    #: the next page's URL, null on the last
    next: str | None = None


class SchemaEntry(BaseModel):
    """A message outside programs may subscribe to (NATS user ``subscriber``), and where its JSON Schema is."""

    subject: str = Field(description="the NATS subject, e.g. photcal.calibrated.v1")
    model: str = Field(description="the message model's name, e.g. CalibrationResult")
    stream: str = Field(description="the JetStream stream that keeps it, for replay")
    schema_url: str = Field(description="GET it: the message's JSON Schema (2020-12)")


class SchemaIndex(BaseModel):
    schemas: list[SchemaEntry]


class VoEventAccepted(BaseModel):
    """A VOEvent taken in: the event it created (201) or found (200: ``changed`` says whether it was updated)."""

    status: Literal["ok"]
    message: str
    ivorn: str
    id: int = Field(description="the event's integer id (CPCS's alert_id)")
    created: bool
    changed: bool
    warnings: list[str] = Field(default_factory=list)


class CpcsForm(BaseModel):
    """A CPCS call's POST form (urlencoded or multipart): the fields its query parameters list, as CPCS took them."""

    hashtag: str | None = None

    model_config = {"extra": "allow"}


#: models of shared/ named by the entries below; a service's models are handed to build_document
SHARED_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        ErrorBody,
        UploadQueued,
        UploadStatus,
        NewAlert,
        AlertCreated,
        DeleteDatapoint,
        DatapointDeleted,
        Lightcurve,
        AlertRow,
        FollowupRow,
        RecalibrationAccepted,
        RecalibrationReport,
        RecalibrationItems,
        CpcsForm,
        SchemaIndex,
        VoEventAccepted,
    )
}


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Body:
    """A response (or request) body: a model by name, a list of them, or a media type without a model."""

    model: str | None = None
    description: str = ""
    media: str = "application/json"
    many: bool = False
    #: other models the body may be instead (oneOf)
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class RouteDoc:
    summary: str
    tag: str = API_TAG
    query: tuple[Param, ...] = ()
    #: a model name for JSON; ``multipart`` for the upload form with its file part
    request: str | None = None
    #: the body also as a form (application/x-www-form-urlencoded)
    request_form: bool = False
    multipart: bool = False
    #: a body that is a document of this media type, not a model (a VOEvent's XML)
    request_media: str | None = None
    responses: Mapping[int, Body] = field(default_factory=dict)
    #: how the caller is known; None: anyone
    auth: Literal["hashtag", "hashtag_or_session"] | None = None
    description: str = ""


HASHTAG_QUERY = Param("hashtag", "the observatory's hashtag (or a form field, or the hashtag cookie)")
WAIT = Param(
    "wait",
    "0: answer 202 with an upload id at once instead of waiting for the calibration",
    {"type": "string", "enum": ["0", "1"], "default": "1"},
)
_ERRORS = {
    400: Body("ErrorBody", "the request cannot be used as sent: the message says what to fix"),
}
_AUTH_ERRORS = {401: Body("ErrorBody", "no hashtag, or an unknown one"), 403: Body("ErrorBody", "not yours")}
_RATE = {429: Body("ErrorBody", "too many requests: retry after Retry-After seconds")}
_DB = {503: Body("ErrorBody", "the database does not answer: retry later")}

_UPLOAD = RouteDoc(
    "upload a SExtractor catalogue or a FITS frame of an event, calibrated against the reference surveys",
    multipart=True,
    query=(WAIT,),
    responses={
        200: Body("CalibrationResult", "the calibration result (outputFormat=json; html: the result page)"),
        202: Body("UploadQueued", "?wait=0: accepted, queued"),
        400: Body(
            "ErrorBody",
            "the form or the file cannot be used, or the calibration failed (then its CalibrationResult, with "
            "error and message): the message says what to fix",
            also=("CalibrationResult",),
        ),
        **_AUTH_ERRORS,
        404: Body("ErrorBody", "unknown event"),
        409: Body("ErrorBody", "that event, observatory and MJD already has a datapoint"),
        413: Body("ErrorBody", "the catalogue or frame is too large"),
        **_RATE,
        502: Body("ErrorBody", "the catalogue service failed", also=("CalibrationResult",)),
        **_DB,
        504: Body(
            "ErrorBody", "still calibrating: ask /api/v1/uploads/{X-Upload-ID} later", also=("CalibrationResult",)
        ),
    },
    auth="hashtag_or_session",
)

_CPCS_FAILED = (
    "the form or the file cannot be used, or the calibration failed: the message (under 100 characters) says "
    "what; the whole result is at /api/v1/uploads/{X-Upload-ID}"
)
_CPCS_UPLOAD = RouteDoc(
    "CPCS upload: a SExtractor catalogue (or FITS frame) of an event; errors in CPCS's short form",
    tag=CPCS_TAG,
    multipart=True,
    # a failed calibration answers the short error body here (under 100 characters, as BHTOM shows it); the
    # whole result is at /api/v1/uploads/{X-Upload-ID}
    responses={
        status: Body(body.model, _CPCS_FAILED if status == 400 else body.description) if status >= 400 else body
        for status, body in _UPLOAD.responses.items()
        if status != 202
    },
    auth="hashtag_or_session",
)


OUTPUT_FORMAT = Param(
    "outputFormat",
    "json or html (also as format; absent: the call's CPCS default)",
    {"type": "string", "enum": ["json", "html"]},
)


def _cpcs_read(summary: str, *fields: Param, auth: bool) -> RouteDoc:
    """A CPCS call: its fields in the query (GET) or the same as a form (POST), as CPCS took them."""
    return RouteDoc(
        summary,
        tag=CPCS_TAG,
        query=(*fields, OUTPUT_FORMAT, *((HASHTAG_QUERY,) if auth else ())),
        request="CpcsForm",
        request_form=True,
        responses={200: Body(description="as CPCS answered it"), **_ERRORS, **_AUTH_ERRORS},
        auth="hashtag" if auth else None,
    )


_CPCS_DOCS: dict[str, RouteDoc] = {
    "/cgi/upload": _CPCS_UPLOAD,
    "/cgi/newevent": _cpcs_read(
        "CPCS: add an event",
        Param("EventID", "the event's IVORN (or ivorn)", required=True),
        Param("ra", "right ascension, degrees (or sexagesimal hours)", required=True),
        Param("dec", "declination, degrees", required=True),
        Param("url", "the event's page elsewhere"),
        Param("name", "a short name"),
        auth=True,
    ),
    "/cgi/newuser": _cpcs_read(
        "CPCS: register an observatory (an administrator's hashtag); answers the new hashtag",
        Param("obsName", "the observatory's name, at most 100 characters", required=True),
        Param("lon", "longitude, degrees", {"type": "number"}),
        Param("lat", "latitude, degrees", {"type": "number"}),
        Param("allow_upload", "1 or 0", {"type": "string", "enum": ["0", "1"], "default": "1"}),
        Param("prefix", "up to 16 letters or digits, e.g. the observer's initials"),
        Param("filters", "the observatory's filters, comma-separated"),
        auth=True,
    ),
    "/cgi/delpoint": _cpcs_read(
        "CPCS: delete a datapoint (soft), only by the observatory that uploaded it",
        Param("followupid", "the datapoint's id (or followup_id)", {"type": "integer"}, required=True),
        Param("reason", "kept with the deleted datapoint (or comment)"),
        auth=True,
    ),
    "/get_alert_lc_data": _cpcs_read(
        "CPCS: an alert's light curve as parallel arrays (mjd, mag, magerr, caliberr, filter, catalog, observatory)",
        Param("alert_name", "the alert's name (or give alert_id)"),
        Param("alert_id", "the alert's id", {"type": "integer"}),
        auth=True,
    ),
    "/list_of_alerts": _cpcs_read(
        "CPCS: the list of alerts",
        Param("observed_only", "1: only alerts with datapoints", {"type": "string", "enum": ["0", "1"]}),
        Param("published", "accepted for CPCS clients; photcal holds only published alerts", {"type": "string"}),
        Param("num", "at most this many", {"type": "integer", "minimum": 0}),
        auth=True,
    ),
}

_DOCS: dict[tuple[str, str], RouteDoc] = {
    # CPCS's upload also at /upload (the GET is the upload page)
    ("POST", "/upload"): _CPCS_UPLOAD,
    ("POST", "/api/v1/uploads"): _UPLOAD,
    ("GET", "/api/v1/uploads/{upload_id}"): RouteDoc(
        "an upload's state and, once done, its calibration result",
        responses={200: Body("UploadStatus"), **_ERRORS, 404: Body("ErrorBody", "no such upload"), **_DB},
    ),
    ("GET", "/api/v1/uploads"): RouteDoc(
        "uploads newest first: the caller's observatory's (mine=1) or every observatory's (administrators)",
        query=(
            Param("mine", "1: only the caller's observatory's uploads", {"type": "string", "enum": ["0", "1"]}),
            Param(
                "state",
                "which uploads",
                {"type": "string", "enum": ["any", "queued", "done", "failed"], "default": "any"},
            ),
            Param("limit", "at most this many", {"type": "integer", "minimum": 1}),
            Param("skip", "skip this many first", {"type": "integer", "minimum": 0}),
            HASHTAG_QUERY,
        ),
        responses={200: Body("UploadList"), **_ERRORS, **_AUTH_ERRORS, **_DB},
        auth="hashtag_or_session",
    ),
    ("POST", "/api/v1/alerts"): RouteDoc(
        "add an alert (event) to follow up",
        request="NewAlert",
        request_form=True,
        responses={201: Body("AlertCreated"), **_ERRORS, **_AUTH_ERRORS, 409: Body("ErrorBody"), **_DB},
        auth="hashtag_or_session",
    ),
    ("DELETE", "/api/v1/datapoints/{followup_id}"): RouteDoc(
        "delete a datapoint (soft: it stays, marked deleted), only by the observatory that uploaded it",
        query=(Param("reason", "kept with the deleted datapoint"), HASHTAG_QUERY),
        request="DeleteDatapoint",
        request_form=True,
        responses={
            200: Body("DatapointDeleted"),
            **_ERRORS,
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "no such datapoint"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("GET", "/api/v1/lightcurves/{ivorn:.+}"): RouteDoc(
        "an alert's light curve, by IVORN or name",
        query=(
            Param(
                "format",
                "json (default), csv, votable, ecsv or aavso (the AAVSO Extended File Format)",
                {"type": "string", "enum": ["json", "csv", "votable", "ecsv", "aavso"]},
            ),
            Param("obscode", "format=aavso: your AAVSO observer code (default na)"),
        ),
        responses={
            200: Body(
                "Lightcurve",
                "the light curve (csv: text/csv; votable: application/x-votable+xml; ecsv, aavso: text/plain)",
            ),
            **_ERRORS,
            404: Body("ErrorBody", "no such alert"),
            **_DB,
        },
    ),
    ("GET", "/api/v1/alerts"): RouteDoc(
        "every alert, newest first, with its datapoint count and last point",
        query=(Param("with_data", "1: only alerts with datapoints", {"type": "string", "enum": ["0", "1"]}),),
        responses={200: Body("AlertRow", many=True), **_DB},
    ),
    ("GET", "/api/v1/followup"): RouteDoc(
        "the most recent datapoints (at most 1000), newest first",
        responses={200: Body("FollowupRow", many=True), **_DB},
    ),
    ("GET", "/api/v1/datapoints/{followup_id}"): RouteDoc(
        "a datapoint with its calibration, candidates, plot, cut-out, provenance and history",
        responses={200: Body("DatapointDetail"), **_ERRORS, 404: Body("ErrorBody", "no such datapoint"), **_DB},
    ),
    ("POST", "/api/v1/recalibrations"): RouteDoc(
        "start a recalibration job over a selection of stored datapoints (administrators): a dry run by default",
        query=(HASHTAG_QUERY,),
        request="RecalibrationRequest",
        responses={
            202: Body("RecalibrationAccepted", "the job, queued: follow links.self"),
            **_ERRORS,
            **_AUTH_ERRORS,
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("GET", "/api/v1/recalibrations/{job_id}"): RouteDoc(
        "a recalibration job: state, progress and, once computed, its summary (administrators)",
        query=(HASHTAG_QUERY,),
        responses={
            200: Body("RecalibrationReport"),
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "no such job"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("GET", "/api/v1/recalibrations/{job_id}/items"): RouteDoc(
        "a recalibration job's per-point diff, paged (administrators)",
        query=(
            Param("changed", "1: only the points that change; 0: only those that do not", {"type": "string"}),
            Param("state", "only items in these states (comma-separated: pending, computed, failed, skipped, applied)"),
            Param("skip", "skip this many first", {"type": "integer", "minimum": 0}),
            Param("limit", "at most this many (1000)", {"type": "integer", "minimum": 1, "maximum": 1000}),
            Param("result", "1: each point's whole new answer, provenance included", {"type": "string"}),
            HASHTAG_QUERY,
        ),
        responses={
            200: Body("RecalibrationItems"),
            **_ERRORS,
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "no such job"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("POST", "/api/v1/recalibrations/{job_id}/apply"): RouteDoc(
        "make a computed job's changed points current: versioned, the old values kept in their history",
        query=(HASHTAG_QUERY,),
        responses={
            202: Body("RecalibrationAccepted", "applying"),
            200: Body("RecalibrationAccepted", "applied already: nothing changed"),
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "no such job"),
            409: Body("ErrorBody", "the job is not ready (still computing, or failed)"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("POST", "/api/v1/recalibrations/{job_id}/resume"): RouteDoc(
        "queue again what a job still has to compute or apply (after a crash or an outage)",
        query=(HASHTAG_QUERY,),
        responses={
            202: Body("RecalibrationAccepted", "tasks queued again"),
            200: Body("RecalibrationAccepted", "nothing left to do"),
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "no such job"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("GET", "/api/v1/lightcurves"): RouteDoc(
        "several alerts' light curves as one table, with an alert column (at most 200 alerts)",
        query=(
            Param("alerts", "ivorns or names, URL-encoded, comma-separated", required=True),
            Param(
                "format",
                "json (default), csv, votable or ecsv",
                {"type": "string", "enum": ["json", "csv", "votable", "ecsv"]},
            ),
        ),
        responses={
            200: Body(description="the table (json: {alerts, points}; csv, VOTable or ECSV as asked)"),
            **_ERRORS,
            404: Body("ErrorBody", "an alert is not known"),
            **_DB,
        },
    ),
    ("GET", "/api/v1/openapi.json"): RouteDoc(
        "this document", tag=DOCS_TAG, responses={200: Body(description="an OpenAPI 3.1 document")}
    ),
    ("GET", "/api/docs"): RouteDoc(
        "this document as a page", tag=DOCS_TAG, responses={200: Body(media="text/html", description="a page")}
    ),
    ("GET", "/api/v1/schemas"): RouteDoc(
        "the messages published on NATS for outside subscribers, each with its JSON Schema's URL",
        tag=DOCS_TAG,
        responses={200: Body("SchemaIndex")},
    ),
    ("GET", "/api/v1/schemas/{name}.json"): RouteDoc(
        "a published message's JSON Schema (2020-12), generated from its model",
        tag=DOCS_TAG,
        responses={
            200: Body(media="application/schema+json", description="the JSON Schema"),
            404: Body("ErrorBody", "no message of that name is published"),
        },
    ),
    ("POST", "/api/v1/voevents"): RouteDoc(
        "create or update an event from a VOEvent 2.0 document (administrators)",
        query=(HASHTAG_QUERY,),
        request_media="application/xml",
        responses={
            201: Body("VoEventAccepted", "a new event"),
            200: Body("VoEventAccepted", "the event exists: updated if the document changed it"),
            **_ERRORS,
            **_AUTH_ERRORS,
            409: Body("ErrorBody", "the event's name is another event's"),
            413: Body("ErrorBody", "the document is too large"),
            **_DB,
        },
        auth="hashtag_or_session",
        description=(
            "The body is the VOEvent XML (Content-Type application/xml or text/xml). The event's ivorn is the "
            "VOEvent's ivorn attribute; its position WhereWhen's Position2D (decimal degrees, ICRS); its page "
            "the first Reference uri (else a URL in Description); its name the ivorn's fragment. The same "
            "document twice changes nothing."
        ),
    ),
    # webhooks (issue 22): services/ingest/subscriptions.py; the POSTs are the notify service's
    ("POST", "/api/v1/subscriptions"): RouteDoc(
        "subscribe a public http(s) URL to an alert's new datapoints, every alert's, or this observatory's uploads",
        description=(
            "Each delivery is a POST of the upload's CalibrationResult, signed: X-Photcal-Signature "
            "t=<unix>,v1=<hex HMAC-SHA256 of '<t>.<body>' with the observatory's webhook secret>; "
            "X-Photcal-Delivery and X-Photcal-Upload name it (de-duplicate by the upload id). Retried with "
            "back-off; a subscription that keeps failing is paused (GET says why)."
        ),
        query=(HASHTAG_QUERY,),
        request="SubscriptionRequest",
        responses={
            201: Body("Subscription"),
            400: Body("ErrorBody", "not a public http(s) URL (callback_url_refused), or a bad scope"),
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "scope alert: no such event"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("GET", "/api/v1/subscriptions"): RouteDoc(
        "this observatory's subscriptions, with their state",
        query=(HASHTAG_QUERY,),
        responses={200: Body("SubscriptionList"), **_AUTH_ERRORS, **_DB},
        auth="hashtag_or_session",
    ),
    ("GET", "/api/v1/subscriptions/{subscription_id}"): RouteDoc(
        "a subscription: active or paused, and why it was paused",
        query=(HASHTAG_QUERY,),
        responses={
            200: Body("Subscription"),
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "this observatory has no such subscription"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("DELETE", "/api/v1/subscriptions/{subscription_id}"): RouteDoc(
        "delete a subscription: nothing more is posted for it",
        query=(HASHTAG_QUERY,),
        responses={
            200: Body(description="deleted"),
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "this observatory has no such subscription"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("GET", "/api/v1/subscriptions/{subscription_id}/deliveries"): RouteDoc(
        "a subscription's deliveries, newest first: failed ones are its dead letters, held ones wait for a resume",
        query=(
            Param(
                "state",
                "only deliveries in this state",
                {"type": "string", "enum": ["pending", "held", "delivered", "failed"]},
            ),
            Param("skip", "skip this many first", {"type": "integer", "minimum": 0}),
            Param("limit", "at most this many (500)", {"type": "integer", "minimum": 1, "maximum": 500}),
            HASHTAG_QUERY,
        ),
        responses={
            200: Body("DeliveryList"),
            **_ERRORS,
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "this observatory has no such subscription"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("POST", "/api/v1/subscriptions/{subscription_id}/resume"): RouteDoc(
        "resume a paused subscription: its held and failed deliveries are posted again",
        query=(HASHTAG_QUERY,),
        responses={
            200: Body("Subscription", "active again, with released: how many deliveries"),
            **_AUTH_ERRORS,
            404: Body("ErrorBody", "this observatory has no such subscription"),
            **_DB,
        },
        auth="hashtag_or_session",
    ),
    ("GET", "/api/v1/webhook-secret"): RouteDoc(
        "the secret this observatory's callbacks and subscription deliveries are signed with",
        query=(HASHTAG_QUERY,),
        responses={200: Body("WebhookSecretView"), **_AUTH_ERRORS, **_DB},
        auth="hashtag_or_session",
    ),
    ("POST", "/api/v1/webhook-secret/rotate"): RouteDoc(
        "a new webhook secret: deliveries from now on are signed with it, the old one stops",
        query=(HASHTAG_QUERY,),
        responses={200: Body("WebhookSecretView"), **_AUTH_ERRORS, **_DB},
        auth="hashtag_or_session",
    ),
}


def cpcs_base(path: str) -> str | None:
    """The CPCS path a row serves (``/followup/cgi/upload/`` → ``/cgi/upload``), or None if it is no CPCS row."""
    for prefix in ("/followup", ""):
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            base = rest[:-1] if rest.endswith("/") else rest
            if base in _CPCS_DOCS:
                return base
    return None


def doc_of(route: Route) -> RouteDoc | None:
    """The entry documenting ``route``; None if it has none (only pages and internal endpoints may lack one)."""
    base = cpcs_base(route.path)
    if base is not None:
        return _CPCS_DOCS[base]
    return _DOCS.get((route.method, route.path))


def documented_routes() -> list[Route]:
    """The rows of the route table the document describes, in table order."""
    return [route for route in ROUTES if doc_of(route) is not None]


def must_be_documented(route: Route) -> bool:
    """Every /api/v1 row and every CPCS row."""
    return route.path.startswith("/api/") or cpcs_base(route.path) is not None


_PARAM = re.compile(r"\{(\w+)(?::(?:[^{}]|\{[^{}]*\})*)?\}")


def openapi_path(path: str) -> tuple[str, list[str]]:
    """An aiohttp pattern as an OpenAPI path (``{ivorn:.+}`` → ``{ivorn}``) and its path parameters."""
    names = _PARAM.findall(path)
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path), names


_PATH_PARAMS = {
    "upload_id": ("the upload's id (hexadecimal), as the upload answered", {"type": "string"}),
    "followup_id": ("the datapoint's id, as the upload answered", {"type": "integer", "minimum": 0}),
    "ivorn": ("the alert's IVORN (URL-encoded) or its name", {"type": "string"}),
    "job_id": ("the recalibration job's id (hexadecimal), as its creation answered", {"type": "string"}),
    "name": ("the message's NATS subject, e.g. photcal.calibrated.v1", {"type": "string"}),
    "subscription_id": ("the subscription's id (hexadecimal), as its creation answered", {"type": "string"}),
}


def build_document(service_models: Mapping[str, type[BaseModel]], *, version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented row.

    ``service_models``: the models that live in a service or elsewhere in shared/, by name (at least
    ``UploadForm``, ``CalibrationResult``, ``UploadList``, ``DatapointDetail``).
    """
    models = {**SHARED_MODELS, **service_models}
    schemas: dict[str, Any] = {}

    def ref(name: str) -> dict[str, str]:
        if name not in schemas:
            schema = models[name].model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    paths: dict[str, dict[str, Any]] = {}
    for route in documented_routes():
        doc = doc_of(route)
        assert doc is not None
        path, names = openapi_path(route.path)
        operation: dict[str, Any] = {
            "summary": doc.summary,
            "tags": [doc.tag],
            "operationId": _operation_id(route.method, path),
        }
        if doc.description:
            operation["description"] = doc.description
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": _PATH_PARAMS[name][0],
                "schema": _PATH_PARAMS[name][1],
            }
            for name in names
        ]
        parameters += [
            {"name": p.name, "in": "query", "required": p.required, "description": p.description, "schema": p.schema}
            for p in doc.query
        ]
        if parameters:
            operation["parameters"] = parameters
        if doc.multipart:
            operation["requestBody"] = _multipart_upload(ref)
        elif doc.request_media is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {doc.request_media: {"schema": {"type": "string"}}},
            }
        elif doc.request is not None and route.method != "GET":  # a GET's fields are its query parameters
            content = {"application/json": {"schema": ref(doc.request)}}
            if doc.request_form:
                content["application/x-www-form-urlencoded"] = {"schema": ref(doc.request)}
            operation["requestBody"] = {"required": route.method == "POST" and doc.tag != CPCS_TAG, "content": content}
        operation["responses"] = {
            str(status): _response(body, ref) for status, body in sorted(doc.responses.items())
        } or {"200": {"description": "ok"}}
        if doc.auth == "hashtag":
            operation["security"] = [{"hashtagQuery": []}, {"hashtagCookie": []}]
        elif doc.auth == "hashtag_or_session":
            operation["security"] = [{"hashtagQuery": []}, {"hashtagCookie": []}, {"session": []}]
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "photcal",
            "version": version,
            "description": (
                "Photometric calibration of follow-up observations: uploads, alerts, light curves. "
                "A hashtag identifies an observatory: as a form field, the hashtag query parameter or the "
                "hashtag cookie; a browser's login sets the photcal_session cookie instead. Every error "
                "answers {message, status, error} with a stable error code."
            ),
        },
        "tags": [
            {"name": API_TAG, "description": "photcal's JSON API"},
            {
                "name": CPCS_TAG,
                "description": "CPCS's endpoints, at the root and under /followup/, as CPCS clients call them",
            },
            {"name": DOCS_TAG, "description": "this description"},
        ],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "hashtagQuery": {"type": "apiKey", "in": "query", "name": "hashtag"},
                "hashtagCookie": {"type": "apiKey", "in": "cookie", "name": "hashtag"},
                "session": {"type": "apiKey", "in": "cookie", "name": "photcal_session"},
            },
        },
    }


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"
    # CPCS reads answer with and without a trailing slash: two operations
    slash = "_slash" if len(path) > 1 and path.endswith("/") else ""
    return f"{method.lower()}_{words}{slash}"


def _response(body: Body, ref) -> dict[str, Any]:
    out: dict[str, Any] = {"description": body.description or (body.model or "ok")}
    if body.model is not None:
        schema = ref(body.model)
        if body.also:
            schema = {"oneOf": [schema, *(ref(name) for name in body.also)]}
        out["content"] = {body.media: {"schema": {"type": "array", "items": schema} if body.many else schema}}
    elif body.media != "application/json":
        out["content"] = {body.media: {"schema": {"type": "string"}}}
    return out


def _multipart_upload(ref) -> dict[str, Any]:
    """The upload form's fields (the UploadForm model), the hashtag, and the file part."""
    form = ref("UploadForm")
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "allOf": [
                        form,
                        {
                            "type": "object",
                            "required": [UPLOAD_FILE_FIELD],
                            "properties": {
                                UPLOAD_FILE_FIELD: {
                                    "type": "string",
                                    "contentMediaType": "application/octet-stream",
                                    "description": "the SExtractor catalogue (text) or a FITS frame (plain, .gz, .fz)",
                                },
                                "hashtag": {"type": "string", "description": "the observatory's hashtag"},
                            },
                        },
                    ]
                },
                "encoding": {UPLOAD_FILE_FIELD: {"contentType": "application/octet-stream"}},
            }
        },
    }
