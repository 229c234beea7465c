"""Every MongoDB collection photcal keeps, with its indexes: the one list (a contract: the data outlives the code).

Each collection's documents and the functions that read and write them live in
its own module (``shared.db.<module>``, named here); nothing else touches a
collection. ``Database`` hands out only the collections named here (a typo is
an ``AttributeError``, not a new collection), and ``Database.ensure_indexes``
creates exactly the indexes declared here, at every start.

Index names are the ones the deployed databases already have (``<field>_1``,
``expires_at_ttl``): a new name for the same key would be refused by MongoDB.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Index:
    """An ascending single-field index (the embedded nx-27017 serves those well; compound keys are one
    ``*_key`` field); ``expire_after_s``: a TTL index, documents dropped that many seconds after the field's date."""

    field: str
    unique: bool = False
    expire_after_s: int | None = None
    name: str = ""

    @property
    def index_name(self) -> str:
        return self.name or f"{self.field}_1"


@dataclass(frozen=True)
class Collection:
    name: str
    #: the module that owns it: its document model and every query
    module: str
    indexes: tuple[Index, ...] = ()
    #: one document, in a sentence
    holds: str = ""


ALERTS = Collection(
    "alerts",
    "shared.db.alerts",
    (
        Index("ivorn", unique=True),
        Index("alert_id", unique=True),
        Index("name"),
        Index("name_key"),
        Index("fragment_key"),
        Index("dec"),
    ),
    "an event (transient) observers follow up, keyed by ivorn",
)
DATAPOINTS = Collection(
    "datapoints",
    "shared.db.datapoints",
    (
        Index("dedupe_key", unique=True),
        Index("upload_id", unique=True),
        Index("followup_id", unique=True),
        Index("ivorn"),
    ),
    "one calibrated magnitude or limit of an alert by an observatory",
)
CALIBRATIONS = Collection(
    "calibrations",
    "shared.db.calibrations",
    (Index("upload_id", unique=True),),
    "the full calibration of a stored upload: its fit, candidates and plot columns",
)
UPLOADS = Collection(
    "uploads",
    "shared.db.uploads",
    # an observatory's uploads, newest first: (observatory_id, queued_at) as one key (single-field indexes only)
    (Index("upload_id", unique=True), Index("observatory_queued_key"), Index("queued_key")),
    "the state of an upload (queued, done, failed), its answer and its crash count",
)
UPLOAD_SOURCES = Collection(
    "upload_sources",
    "shared.db.upload_sources",
    (),  # keyed by _id (the upload_id), always indexed
    "the parsed source table of a stored upload, for recalibration",
)
RECALIBRATION_JOBS = Collection(
    "recalibration_jobs",
    "shared.db.recalibrations",
    (),  # keyed by _id, the job id
    "a recalibration job: its selection, change, state and summary",
)
RECALIBRATIONS = Collection(
    "recalibrations",
    "shared.db.recalibrations",
    # keyed by _id "<job_id>|<followup_id>"; job_state_key "<job_id>|<state>" counts a job's progress
    (Index("job_id"), Index("job_state_key"), Index("followup_id")),
    "one datapoint of a recalibration job: its old and new calibration, the diff, its state",
)
OBSERVATORIES = Collection(
    "observatories",
    "shared.db.observatories",
    (Index("hashtag_hash", unique=True), Index("name", unique=True), Index("observatory_id", unique=True)),
    "an observatory and its hashtag's keyed hash",
)
REVOKED_SESSIONS = Collection(
    "revoked_sessions",
    "shared.db.sessions",
    (Index("expires_at", expire_after_s=0, name="expires_at_ttl"),),
    "a logged-out browser session, until its cookie would have expired",
)
COUNTERS = Collection(
    "counters",
    "shared.db.counters",
    (),  # keyed by _id (the counter's name)
    "an integer id sequence (alert_id, followup_id) or a one-off migration's marker",
)

SUBSCRIPTIONS = Collection(
    "subscriptions",
    "shared.db.subscriptions",
    # scope_key: "all", "alert|<ivorn>" or "mine|<observatory_id>" (the events a subscription matches)
    (Index("subscription_id", unique=True), Index("observatory_id"), Index("scope_key")),
    "an observatory's webhook URL subscribed to an alert, to every alert or to its own uploads",
)
DELIVERIES = Collection(
    "deliveries",
    "shared.db.deliveries",
    # due_key: the ISO time a pending delivery is next due (absent once delivered or failed)
    # expires_key: ISO text, set once delivered or failed (PHOTCAL_NOTIFY_KEEP_FOR later); the notify service
    # deletes the ones past it (not a TTL index: the embedded database's $set of a date stores text)
    (
        Index("delivery_id", unique=True),
        Index("due_key"),
        Index("subscription_id"),
        Index("upload_id"),
        Index("expires_key"),
    ),
    "one webhook POST to make (an upload's callback or a subscription's): its body, attempts and outcome",
)
WEBHOOK_SECRETS = Collection(
    "webhook_secrets",
    "shared.db.webhook_secrets",
    (),  # keyed by _id, the observatory_id
    "the secret an observatory's webhook deliveries are signed with",
)

COLLECTIONS: tuple[Collection, ...] = (
    ALERTS,
    DATAPOINTS,
    CALIBRATIONS,
    UPLOADS,
    UPLOAD_SOURCES,
    RECALIBRATION_JOBS,
    RECALIBRATIONS,
    OBSERVATORIES,
    REVOKED_SESSIONS,
    COUNTERS,
    SUBSCRIPTIONS,
    DELIVERIES,
    WEBHOOK_SECRETS,
)

BY_NAME: dict[str, Collection] = {c.name: c for c in COLLECTIONS}
