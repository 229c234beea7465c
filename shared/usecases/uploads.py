"""List an observatory's uploads with their state and, for a failure, its reason (issue 19, "failures visible").

``GET /api/v1/uploads`` (services/ingest/uploads.py, JSON) and the "my uploads" page ``/uploads``
(services/lightcurve/web/uploads.py) both call :func:`list_uploads` and show its :class:`UploadList`.
Every upload that reached the queue is there: stored ones, dry runs and refusals by the calibration
(which stored nothing); an upload the gateway refused at once (a bad hashtag, an unreadable file) was
never queued and is not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymongo.errors import PyMongoError

from shared.contracts.errors import ErrorCode
from shared.db import Database
from shared.db import uploads as records
from shared.db.client import unavailable
from shared.db.observatories import Observatory
from shared.errors import BadInput, Forbidden

#: ``state=any``: every state
STATE_CHOICES = ("any", *records.UPLOAD_STATES)
DEFAULT_LIMIT, MAX_LIMIT = 50, 500


class UploadSummary(BaseModel):
    """One upload as its observatory's list shows it; the answer's fields once the worker answered.

    ``mjd`` (days), ``mag``, ``mag_err``, ``limit_mag`` (mag); ``error`` and ``message`` say why a
    failed upload failed; ``image_link`` is the calibration plot (a failed one's too, when the failure
    came after the stars matched), ``followup_id`` the stored datapoint.
    """

    upload_id: str
    state: Literal["queued", "done", "failed"]
    queued_at: datetime | None = None
    finished_at: datetime | None = None
    ivorn: str | None = None
    alert_name: str | None = None
    observatory: str | None = None
    filename: str | None = None
    dry_run: bool | None = None
    mjd: float | None = None
    error: str | None = None
    message: str | None = None
    stored: bool = False
    followup_id: int | None = None
    image_link: str | None = None
    survey: str | None = None
    filter: str | None = None
    mag: float | None = None
    mag_err: float | None = None
    limit_mag: float | None = None
    detected: bool | None = None


class UploadList(BaseModel):
    """A page of uploads, newest first: ``total`` of the selection, ``skip`` and ``limit`` as asked."""

    observatory: str | None = Field(None, description="whose uploads (None: every observatory's)")
    state: str
    total: int
    skip: int
    limit: int
    uploads: list[UploadSummary]


def _utc(value: Any) -> datetime | None:
    """A stored date as UTC: the embedded database returns one written by ``$set`` as naive text."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def summary_of(record: dict[str, Any]) -> UploadSummary:
    """A stored upload record (shared/db/uploads.py) as its list row."""
    result = record.get("result") or {}
    mine = {k: record.get(k) for k in ("ivorn", "alert_name", "observatory", "filename", "dry_run", "mjd")}
    answered = {
        k: result.get(k)
        for k in ("error", "followup_id", "image_link", "survey", "filter", "mag", "mag_err", "limit_mag", "detected")
    }
    for k in ("ivorn", "alert_name", "observatory", "mjd", "dry_run"):
        if mine.get(k) is None and result.get(k) is not None:
            mine[k] = result[k]  # records written before the gateway recorded these: the answer has them
    state = record.get("state") or "queued"
    return UploadSummary.model_validate(
        {
            "upload_id": str(record["upload_id"]),
            "state": state,
            "queued_at": _utc(record.get("queued_at")),
            "finished_at": _utc(record.get("finished_at")),
            "message": (result.get("message") or None) if state == "failed" else None,
            "stored": bool(result.get("stored")),
        }
        | mine
        | answered
    )


def parse_paging(query: dict[str, str]) -> tuple[str, int, int]:
    """``state``, ``limit``, ``skip`` of a listing request, each checked (400 ``bad_field`` saying what is wrong)."""
    state = (query.get("state") or "any").strip().lower()
    if state not in STATE_CHOICES:
        raise BadInput(f"state must be one of {', '.join(STATE_CHOICES)}, not {state[:30]!r}", code=ErrorCode.BAD_FIELD)

    def number(name: str, default: int, low: int, high: int) -> int:
        text = query.get(name)
        if text in (None, ""):
            return default
        try:
            value = int(text)
        except ValueError:
            raise BadInput(f"{name} must be a whole number, not {text[:30]!r}", code=ErrorCode.BAD_FIELD) from None
        if not low <= value <= high:
            raise BadInput(f"{name} must be between {low} and {high}", code=ErrorCode.BAD_FIELD)
        return value

    return state, number("limit", DEFAULT_LIMIT, 1, MAX_LIMIT), number("skip", 0, 0, 10**7)


async def list_uploads(
    db: Database,
    caller: Observatory,
    *,
    mine: bool,
    state: str = "any",
    skip: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> UploadList:
    """The caller's observatory's uploads (``mine``), or every observatory's (administrators only: 403
    ``not_admin`` for others), newest first."""
    if not mine and not caller.is_admin:
        raise Forbidden(
            "only an administrator may list every observatory's uploads: ask for your own with mine=1",
            code=ErrorCode.NOT_ADMIN,
        )
    owner = caller.observatory_id if mine else None
    only = None if state == "any" else state
    try:
        total = await records.count_uploads(db, observatory_id=owner, state=only)
        docs = await records.list_uploads(db, observatory_id=owner, state=only, skip=skip, limit=limit)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
    return UploadList(
        observatory=caller.name if mine else None,
        state=state,
        total=total,
        skip=skip,
        limit=limit,
        uploads=[summary_of(d) for d in docs],
    )
