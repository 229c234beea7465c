"""Delete a datapoint: a soft delete with a reason, only by the observatory that uploaded it.

``DELETE /api/v1/datapoints/{id}`` (services/ingest/handlers.py), CPCS
``cgi/delpoint`` (services/ingest/cpcs.py) and the web's delete button
(services/lightcurve/web) each translate their request into one call of
:func:`delete_datapoint`; the datapoint stays in the history with its reason.
"""

from __future__ import annotations

from pymongo.errors import PyMongoError

from shared.db import Database, datapoints
from shared.db.client import unavailable
from shared.db.observatories import Observatory

MAX_REASON = 500


async def delete_datapoint(
    db: Database, followup_id: int, observatory: Observatory, reason: str, *, via: str | None = None
) -> datapoints.Datapoint:
    """Delete it (404 ``unknown_datapoint``, 403 if another observatory's; 503 if the database is away).

    ``reason``'s first :data:`MAX_REASON` characters are kept; ``via`` (an entry point that does not
    carry the hashtag itself, e.g. ``"web"``) adds who deleted it where: ``"... (by NAME, web)"``.
    """
    kept = reason[:MAX_REASON]
    if via:
        kept = f"{kept} (by {observatory.name}, {via})"
    try:
        return await datapoints.delete_datapoint(db, followup_id, observatory.observatory_id, kept)
    except PyMongoError as exc:
        raise unavailable(exc) from exc
