"""Counters: the integer id sequences (CPCS clients use integer alert and followup ids) and the markers
of one-off migrations (a document whose presence says "done")."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from pymongo import ReturnDocument

from shared.contracts.messages import utcnow
from shared.db.client import Database


class Counter(TypedDict, total=False):
    #: the sequence's name ("alerts", "datapoints") or the marker's
    _id: str
    #: the last id handed out (a sequence)
    value: int
    #: when the migration was done (a marker)
    done: datetime


async def next_id(db: Database, counter: str) -> int:
    """A new integer id of the sequence ``counter``: 1, 2, 3...; never handed out twice."""
    doc = await db.counters.find_one_and_update(
        {"_id": counter},
        {"$inc": {"value": 1}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert doc is not None  # an upsert that returns the document AFTER it always has one
    return int(doc["value"])


async def is_marked(db: Database, marker: str) -> bool:
    return await db.counters.find_one({"_id": marker}, {"_id": 1}) is not None


async def mark(db: Database, marker: str) -> None:
    await db.counters.update_one({"_id": marker}, {"$set": {"done": utcnow()}}, upsert=True)
