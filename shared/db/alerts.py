"""Alerts (events): the transients observers follow up, keyed by ivorn.

The collection ``alerts`` (``shared.contracts.collections.ALERTS``); one document is an
:class:`Alert` plus its name keys (``name_key``, ``fragment_key``, indexed).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from shared.contracts.errors import ErrorCode
from shared.contracts.messages import utcnow
from shared.db.client import Database
from shared.db.counters import is_marked, mark, next_id
from shared.errors import (
    BadInput,
    Conflict,
)
from shared.validation import (
    alert_name_key,
    validate_alert_name,
    validate_event_url,
    validate_ivorn,
)

#: another event within this distance of a new one is named in a warning (the same transient
#: under another name?), arcsec
SAME_POSITION_ARCSEC = 5.0


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


def fragment_of(ivorn: str) -> str:
    """The short name an ivorn carries: ``Gaia21eeo`` of ``ivo://gaia/alerts#Gaia21eeo`` (else its last path part)."""
    return ivorn.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


def _name_keys(alert: Alert) -> dict[str, str | None]:
    """Stored with every alert, indexed: the name and ivorn fragment (NFC) that names are compared by."""
    return {
        "name_key": alert_name_key(alert.name) if alert.name else None,
        "fragment_key": alert_name_key(fragment_of(alert.ivorn)),
    }


#: databases whose alerts all carry their name keys (see :func:`ensure_name_keys`)
_KEYED: weakref.WeakSet[Database] = weakref.WeakSet()

#: the counters document that says every alert has its name keys
_KEYS_MARKER = "alert_name_keys"


async def ensure_name_keys(db: Database) -> None:
    """Give the alerts stored before the name keys existed theirs, once per database (then a marker says so).

    Run by ``Database.ensure_indexes`` at every start (a lookup of the marker
    when done); about 5 s for 10,000 old alerts, the first time only.
    """
    if db in _KEYED:
        return
    if not await is_marked(db, _KEYS_MARKER):
        # read them all first: no write while the cursor is open
        docs = [
            d async for d in db.alerts.find({"fragment_key": {"$exists": False}}, {"_id": 1, "ivorn": 1, "name": 1})
        ]
        for first in range(0, len(docs), 1000):
            updates = []
            for doc in docs[first : first + 1000]:
                name = doc.get("name")
                keys = {
                    "name_key": alert_name_key(name) if isinstance(name, str) and name else None,
                    "fragment_key": alert_name_key(fragment_of(str(doc.get("ivorn", "")))),
                }
                updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": keys}))
            await db.alerts.bulk_write(updates, ordered=False)
        await mark(db, _KEYS_MARKER)
    _KEYED.add(db)


async def _alerts_named(db: Database, name: str, limit: int = 10) -> list[dict]:
    """Alerts whose name or ivorn fragment is ``name``, by alert_id; one indexed query per key.

    The exact ``name`` too: it finds an alert stored without its keys (by an older
    version, or written directly) that has that name.
    """
    key = alert_name_key(name)
    found: dict[Any, dict] = {}
    queries = [{"name": name}, {"name_key": key}, {"fragment_key": key}]
    for query in queries:
        async for doc in db.alerts.find(query).limit(limit):
            found.setdefault(doc["_id"], doc)
    return sorted(found.values(), key=lambda d: d.get("alert_id") or 0)


async def _check_names_free(db: Database, alert: Alert) -> None:
    """Refuse an alert whose name or ivorn fragment another alert already has (``alert_name_taken``).

    Both count: ``alert_name`` matches either, so an observatory that names its
    event ``Gaia99zzz`` would otherwise serve its points for the real
    ``ivo://gaia/alerts#Gaia99zzz``.
    """
    await ensure_name_keys(db)
    for name in dict.fromkeys(n for n in (alert.name, fragment_of(alert.ivorn)) if n):
        others = [d for d in await _alerts_named(db, name) if d.get("ivorn") != alert.ivorn]
        if others:
            raise Conflict(
                f"the name {name} is taken by {others[0].get('ivorn')}: choose another name (or fix EventID)",
                code=ErrorCode.ALERT_NAME_TAKEN,
            )


def _checked_name(alert: Alert) -> Alert:
    try:
        name = validate_alert_name(alert.name)
    except ValueError as exc:
        raise BadInput(str(exc), code=ErrorCode.BAD_ALERT_NAME) from None
    return alert if name == alert.name else alert.model_copy(update={"name": name})


def _separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0


async def alerts_near(
    db: Database, ra: float, dec: float, radius_arcsec: float = SAME_POSITION_ARCSEC
) -> list[tuple[Alert, float]]:
    """Alerts within the radius of (ra, dec), nearest first, with their distance in arcsec.

    A declination range on the indexed ``dec`` (nx-27017 has no ``$geoWithin``),
    then the true angular distance: right across RA 0/360 and at the poles.
    """
    r_deg = radius_arcsec / 3600.0
    out = []
    async for doc in db.alerts.find({"dec": {"$gte": dec - r_deg, "$lte": dec + r_deg}}).limit(1000):
        try:
            other = Alert.model_validate(doc)
        except ValueError:
            continue
        sep = _separation_arcsec(ra, dec, other.ra, other.dec)
        if sep <= radius_arcsec:
            out.append((other, sep))
    return sorted(out, key=lambda pair: pair[1])


async def add_alert(db: Database, alert: Alert) -> Alert:
    """Store a new alert.

    Refused: a name that is not 1-100 printable characters (400 ``bad_alert_name``),
    the same ivorn twice (409 ``alert_exists``), a name or ivorn fragment another
    alert has (409 ``alert_name_taken``).
    """
    alert = _checked_name(alert)
    if await db.alerts.find_one({"ivorn": alert.ivorn}, {"_id": 1}):
        raise Conflict(f"alert {alert.ivorn} already exists", code=ErrorCode.ALERT_EXISTS)
    await _check_names_free(db, alert)
    stored = alert.model_copy(update={"alert_id": await next_id(db, "alerts"), "created": utcnow()})
    try:
        await db.alerts.insert_one(stored.model_dump() | _name_keys(stored))
    except DuplicateKeyError as exc:
        raise Conflict(f"alert {alert.ivorn} already exists", code=ErrorCode.ALERT_EXISTS) from exc
    return stored


async def register_alert(db: Database, alert: Alert) -> tuple[Alert, list[str]]:
    """Add an event, as every entry point does (JSON API, CPCS ``cgi/newevent``, the web form, the CLI).

    :func:`add_alert`'s checks and refusals; then the warnings the answer carries:
    each other event within :data:`SAME_POSITION_ARCSEC` (the same transient under
    another name?), e.g. ``"ivo://gaia/alerts#Gaia23abc is 0.4 arcsec away"``.
    """
    near = await alerts_near(db, alert.ra, alert.dec)
    stored = await add_alert(db, alert)
    warnings = [f"{other.ivorn} is {sep:.1f} arcsec away" for other, sep in near if other.ivorn != stored.ivorn]
    return stored, warnings


async def upsert_alert(db: Database, alert: Alert) -> tuple[Alert, bool]:
    """Create or update by ivorn (imports); returns (alert, created). The name checks of :func:`add_alert`."""
    alert = _checked_name(alert)
    existing = await db.alerts.find_one({"ivorn": alert.ivorn})
    if existing is None:
        try:
            return await add_alert(db, alert), True
        except Conflict as exc:
            if exc.code != ErrorCode.ALERT_EXISTS:
                raise
            # a concurrent import won: update it below
    await _check_names_free(db, alert)
    fields = alert.model_dump(exclude={"alert_id", "created", "data_version"}, exclude_none=True)
    keys = {k: v for k, v in _name_keys(alert).items() if v is not None}
    doc = await db.alerts.find_one_and_update(
        {"ivorn": alert.ivorn}, {"$set": fields | keys}, return_document=ReturnDocument.AFTER
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
    """By ivorn, or by name (CPCS clients send either): a name or ivorn fragment, case folded.

    A name that several alerts answer to is refused (409 ``ambiguous_alert_name``,
    listing their ivorns): serving one of them would be guessing, and a guess an
    impostor can steer.
    """
    alert = await get_alert(db, key)
    if alert is not None:
        return alert
    if not key or len(key) > 1000:
        return None
    docs = await _alerts_named(db, key)
    if len(docs) > 1:
        listed = ", ".join(str(d.get("ivorn")) for d in docs[:5])
        raise Conflict(
            f"{len(docs)} events answer to {key[:100]}: give the ivorn of the one you mean ({listed})",
            code=ErrorCode.AMBIGUOUS_ALERT_NAME,
        )
    return Alert.model_validate(docs[0]) if docs else None


async def list_alerts(db: Database, limit: int = 10_000) -> list[Alert]:
    return [Alert.model_validate(d) async for d in db.alerts.find({}).sort("alert_id", -1).limit(limit)]


async def get_alert_url(db: Database, ivorn: str) -> str | None:
    """The event page an alert links to, as stored (not validated: an old record's is shown as text)."""
    doc = await db.alerts.find_one({"ivorn": ivorn}, {"_id": 0, "url": 1})
    return (doc or {}).get("url")


#: the fields of an alert the alert list shows (a summary row: shared by the list and its cache)
#: (``extra``: what an import brought, e.g. the Gaia alerts.csv's Date, AlertMag, Class, Comment, TNSid)
SUMMARY_FIELDS = {
    "_id": 0,
    "ivorn": 1,
    "name": 1,
    "ra": 1,
    "dec": 1,
    "url": 1,
    "alert_id": 1,
    "created": 1,
    "extra": 1,
}


async def alert_summaries(db: Database, after_alert_id: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """Every alert's :data:`SUMMARY_FIELDS` (raw: 10,000 of them are read without the model), newest first;
    ``after_alert_id``: only those added after it."""
    if after_alert_id is None:
        cursor = db.alerts.find({}, SUMMARY_FIELDS).sort("alert_id", -1).batch_size(20_000)
    else:
        cursor = db.alerts.find({"alert_id": {"$gt": after_alert_id}}, SUMMARY_FIELDS).sort("alert_id", -1)
    async for doc in cursor:
        yield doc


async def newest_alert_id(db: Database) -> int | None:
    """The highest ``alert_id`` (alerts are only ever added, each with a new one); an index lookup."""
    doc = await db.alerts.find_one({}, {"_id": 0, "alert_id": 1}, sort=[("alert_id", -1)])
    return None if doc is None else doc.get("alert_id")


async def alerts_by_ivorn(db: Database, ivorns: list[str], batch: int = 500) -> dict[str, dict[str, Any]]:
    """The stored alerts among ``ivorns``, raw, by ivorn: a feed of 25,000 alerts compared in 50 queries,
    not 25,000 (``$in`` on the unique ``ivorn`` index)."""
    found: dict[str, dict[str, Any]] = {}
    for first in range(0, len(ivorns), batch):
        async for doc in db.alerts.find({"ivorn": {"$in": ivorns[first : first + batch]}}, {"_id": 0}):
            found[doc["ivorn"]] = doc
    return found
