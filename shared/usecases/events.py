"""Add an event (alert): the fields every entry point takes, checked by one model, then stored once.

``POST /api/v1/alerts`` (services/ingest/handlers.py), CPCS ``cgi/newevent``
(services/ingest/cpcs.py) and the web form ``/events/new``
(services/lightcurve/web) translate their request into :class:`EventFields`,
call :func:`add_event` and translate the outcome; the checks, the refusals and
their codes are the same at every door.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator
from pymongo.errors import PyMongoError

from shared.contracts.errors import ErrorCode
from shared.db import Database
from shared.db.alerts import Alert, register_alert
from shared.db.client import unavailable
from shared.errors import BadInput
from shared.validation import (
    MAX_URL,
    validate_alert_name,
    validate_event_url,
    validate_ivorn,
)

#: what a field is called in messages
LABELS = {"ivorn": "ivorn", "ra": "RA", "dec": "Dec", "url": "URL", "name": "name"}
REQUIRED = ("ivorn", "ra", "dec")


def _degrees(value: Any, label: str, low: float, high: float, *, high_open: bool) -> float:
    """Decimal degrees from a number or its text (a decimal comma too: what observers type)."""
    bound = f"{low:g} ≤ {label} < {high:g}" if high_open else f"{low:g} ≤ {label} ≤ {high:g}"
    complaint = f"{label} is decimal degrees, {bound}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(complaint)
    try:
        number = float(value.replace(",", ".").strip()) if isinstance(value, str) else float(value)
    except (ValueError, OverflowError):
        raise ValueError(complaint) from None
    if not (math.isfinite(number) and low <= number and (number < high if high_open else number <= high)):
        raise ValueError(complaint)
    return number


class EventFields(BaseModel):
    """A new event as an observer gives it: ivorn, position (decimal degrees), optional web page and name."""

    ivorn: str
    #: right ascension, decimal degrees, 0 ≤ RA < 360
    ra: float
    #: declination, decimal degrees, -90 ≤ Dec ≤ 90
    dec: float
    url: str | None = None
    name: str | None = None

    @field_validator("ivorn", mode="before")
    @classmethod
    def _ivorn(cls, value: Any) -> str:
        return validate_ivorn(value if isinstance(value, str) else "")  # not text: refused with the rule

    @field_validator("ra", mode="before")
    @classmethod
    def _ra(cls, value: Any) -> float:
        return _degrees(value, "RA", 0.0, 360.0, high_open=True)

    @field_validator("dec", mode="before")
    @classmethod
    def _dec(cls, value: Any) -> float:
        return _degrees(value, "Dec", -90.0, 90.0, high_open=False)

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, value: Any) -> str | None:
        try:
            if value is not None and not isinstance(value, str):
                raise ValueError("not text")
            return validate_event_url(value)
        except ValueError:
            raise ValueError(
                f"URL is the event's web page, starting http:// or https:// (at most {MAX_URL} characters)"
            ) from None

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str | None:
        return validate_alert_name(value)


@dataclass(frozen=True)
class FieldProblem:
    """One field an entry point must ask again for: ``code`` missing_field, bad_alert_name or bad_field."""

    field: str
    code: str
    #: what is wrong, without the field's name (``"RA is decimal degrees, 0 ≤ RA < 360"`` names it itself)
    reason: str


def problems_of(exc: ValidationError) -> list[FieldProblem]:
    """The problems of :class:`EventFields`' refusal, in field order."""
    out = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "input"
        if error["type"] == "missing":
            out.append(FieldProblem(field, ErrorCode.MISSING_FIELD, f"{LABELS.get(field, field)} is missing"))
            continue
        reason = str(error["msg"]).removeprefix("Value error, ")
        out.append(FieldProblem(field, ErrorCode.BAD_ALERT_NAME if field == "name" else ErrorCode.BAD_FIELD, reason))
    order = list(EventFields.model_fields)
    return sorted(out, key=lambda p: order.index(p.field) if p.field in order else len(order))


def refusal(problems: list[FieldProblem], names: dict[str, str] | None = None) -> BadInput:
    """The one 400 an API answers for ``problems`` (a missing field first), naming each field as the API
    calls it (``names``: CPCS calls the ivorn ``EventID``)."""
    names = names or {}
    problem = next((p for p in problems if p.code == ErrorCode.MISSING_FIELD), problems[0])
    name = names.get(problem.field, problem.field)
    if problem.code == ErrorCode.MISSING_FIELD:
        needed = ", ".join(names.get(f, f) for f in REQUIRED)
        return BadInput(f"{name} is missing: a new event needs {needed} (decimal degrees)", code=problem.code)
    return BadInput(f"{name}: {problem.reason}", code=problem.code)


def event_fields(values: dict[str, Any]) -> tuple[EventFields | None, list[FieldProblem]]:
    """The fields checked (empty text is no value), or every problem with them."""
    given = {k: v for k, v in values.items() if k in EventFields.model_fields and v not in (None, "")}
    try:
        return EventFields.model_validate(given), []
    except ValidationError as exc:
        return None, problems_of(exc)


async def add_event(db: Database, fields: EventFields, *, created_by: str | None) -> tuple[Alert, list[str]]:
    """Store the event (``shared.db.alerts.register_alert``: its refusals, 409 ``alert_exists``,
    ``alert_name_taken``); returns it and the warnings about events near it. 503 if the database is away.

    ``created_by``: the observatory that added it (None: an administrator, by the CLI)."""
    extra = {"created_by": created_by} if created_by else {}
    alert = Alert(**fields.model_dump(), extra=extra)
    try:
        return await register_alert(db, alert)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
