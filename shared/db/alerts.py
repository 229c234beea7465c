"""Alerts (events): the transients observers follow up, keyed by ivorn."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.db.client import Database
from shared.errors import Conflict
from shared.models import utcnow
from shared.validation import validate_event_url, validate_ivorn


class Alert(BaseModel):
    ivorn: str
    name: str | None = None
    ra: float = Field(ge=0.0, lt=360.0)
    dec: float = Field(ge=-90.0, le=90.0)
    url: str | None = None
    alert_id: int | None = None
    created: datetime | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    #: bumped whenever one of its datapoints is stored or deleted: a light curve read at
    #: one value is still the light curve while the alert has it (the pages' cache)
    data_version: int = 0

    _check_ivorn = field_validator("ivorn")(classmethod(lambda cls, v: validate_ivorn(v)))
    _check_url = field_validator("url")(classmethod(lambda cls, v: validate_event_url(v)))

    @property
    def display_name(self) -> str:
        return self.name or self.ivorn.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


async def add_alert(db: Database, alert: Alert) -> Alert:
    """Store a new alert; the same ivorn twice is refused (409)."""
    if await db.alerts.find_one({"ivorn": alert.ivorn}, {"_id": 1}):
        raise Conflict(f"alert {alert.ivorn} already exists", code="alert_exists")
    stored = alert.model_copy(update={"alert_id": await db.next_id("alerts"), "created": utcnow()})
    try:
        await db.alerts.insert_one(stored.model_dump())
    except DuplicateKeyError as exc:
        raise Conflict(f"alert {alert.ivorn} already exists", code="alert_exists") from exc
    return stored


async def upsert_alert(db: Database, alert: Alert) -> tuple[Alert, bool]:
    """Create or update by ivorn (imports); returns (alert, created)."""
    existing = await db.alerts.find_one({"ivorn": alert.ivorn})
    if existing is None:
        try:
            return await add_alert(db, alert), True
        except Conflict:
            pass  # a concurrent import won: update it below
    fields = alert.model_dump(exclude={"alert_id", "created", "data_version"}, exclude_none=True)
    doc = await db.alerts.find_one_and_update(
        {"ivorn": alert.ivorn}, {"$set": fields}, return_document=ReturnDocument.AFTER
    )
    return Alert.model_validate(doc), False


async def bump_data_version(db: Database, ivorn: str) -> None:
    """A datapoint of this alert was stored or deleted."""
    await db.alerts.update_one({"ivorn": ivorn}, {"$inc": {"data_version": 1}})


async def get_alert(db: Database, ivorn: str) -> Alert | None:
    doc = await db.alerts.find_one({"ivorn": ivorn})
    return Alert.model_validate(doc) if doc else None


async def get_alert_by_id(db: Database, alert_id: int) -> Alert | None:
    doc = await db.alerts.find_one({"alert_id": alert_id})
    return Alert.model_validate(doc) if doc else None


async def find_alert(db: Database, key: str) -> Alert | None:
    """By ivorn, or by name (CPCS clients send either)."""
    alert = await get_alert(db, key)
    if alert is None:
        doc = await db.alerts.find_one({"name": key})
        alert = Alert.model_validate(doc) if doc else None
    return alert


async def list_alerts(db: Database, limit: int = 10_000) -> list[Alert]:
    return [Alert.model_validate(d) async for d in db.alerts.find({}).sort("alert_id", -1).limit(limit)]
