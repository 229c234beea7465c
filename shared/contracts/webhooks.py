"""The bodies of the callbacks and subscriptions API (issue 22): what a client sends and reads back.

A delivery's own body (the POST photcal makes) is the event as it was published: an upload's
``CalibrationResult`` on ``photcal.calibrated.v1``, or a datapoint's ``RecalibratedEvent`` on
``photcal.recalibrated.v1`` (shared/contracts/messages.py); the ``X-Photcal-Event`` header names
which. The headers are in :mod:`shared.contracts.subjects` (``HEADER_SIGNATURE``...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.subjects import SUBJECT_CALIBRATED, SUBJECT_RECALIBRATED

#: what a subscription receives: the datapoints of one alert, of every alert, or its own observatory's uploads
SubscriptionScope = Literal["alert", "all", "mine"]
SubscriptionState = Literal["active", "paused"]
#: what a subscription is posted: new results (``photcal.calibrated.v1``) and datapoints recalibrated
#: after they were stored (``photcal.recalibrated.v1``: a receiver's copy of a light curve follows them)
WebhookEvent = Literal["calibrated", "recalibrated"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("calibrated", "recalibrated")
#: the subject each event's body was published on: the ``X-Photcal-Event`` header of its deliveries
EVENT_SUBJECTS: dict[WebhookEvent, str] = {"calibrated": SUBJECT_CALIBRATED, "recalibrated": SUBJECT_RECALIBRATED}
#: a subscription stored before ``events`` existed (issue 22) asked for results only
EVENTS_BEFORE_RECALIBRATIONS: list[WebhookEvent] = ["calibrated"]
#: pending: to post (again) when due; held: its subscription is paused (posted once resumed);
#: delivered: a 2xx answer; failed: given up after the retry bound (a dead letter)
DeliveryState = Literal["pending", "held", "delivered", "failed"]
DELIVERY_STATES: tuple[str, ...] = ("pending", "held", "delivered", "failed")


class SubscriptionRequest(BaseModel):
    """``POST /api/v1/subscriptions``: a public http(s) ``url`` and what it receives.

    ``scope``: ``alert`` (each new datapoint of the event ``ivorn``, an ivorn or an event's name),
    ``all`` (each new datapoint of every event), ``mine`` (the result of each of this observatory's
    uploads, done or failed, dry runs too). ``events``: ``calibrated`` (those results) and
    ``recalibrated`` (a stored datapoint in the scope whose calibration a recalibration job replaced);
    both unless told.
    """

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000)
    scope: SubscriptionScope
    ivorn: str | None = Field(None, max_length=300)
    events: list[WebhookEvent] = Field(default_factory=lambda: list(WEBHOOK_EVENTS), min_length=1, max_length=2)


class Subscription(BaseModel):
    """A subscription as its owner reads it; ``paused_reason`` says why it is ``paused``."""

    subscription_id: str
    url: str
    scope: SubscriptionScope
    ivorn: str | None = None
    events: list[WebhookEvent] = Field(default_factory=lambda: list(EVENTS_BEFORE_RECALIBRATIONS))
    state: SubscriptionState = "active"
    paused_reason: str | None = None
    paused_at: datetime | None = None
    #: failed POSTs in a row (any of its deliveries); at PHOTCAL_NOTIFY_PAUSE_AFTER it is paused
    consecutive_failures: int = 0
    created_at: datetime
    links: dict[str, str] = Field(default_factory=dict)


class SubscriptionList(BaseModel):
    subscriptions: list[Subscription]


class Delivery(BaseModel):
    """One POST to make or made: a subscription's or an upload's callback; times UTC."""

    delivery_id: str
    kind: Literal["callback", "subscription"]
    #: what it posts: an upload's result, or a datapoint's recalibration (``job_id`` the job's)
    event: WebhookEvent = "calibrated"
    upload_id: str
    job_id: str | None = None
    subscription_id: str | None = None
    url: str
    state: DeliveryState
    attempts: int = 0
    created_at: datetime
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    #: the receiver's HTTP status of the last attempt (None: no answer)
    last_status: int | None = None
    last_error: str | None = None


class DeliveryList(BaseModel):
    """``GET /api/v1/subscriptions/{id}/deliveries``: newest first; ``failed`` ones are the dead letters."""

    subscription_id: str
    deliveries: list[Delivery]
    skip: int = 0
    limit: int = 50


class WebhookSecretView(BaseModel):
    """``GET /api/v1/webhook-secret``: the key the observatory's deliveries are signed with."""

    observatory: str
    secret: str
    created_at: datetime
    #: how to check a delivery: README, "Callbacks and subscriptions"
    signature_header: str = "X-Photcal-Signature"
