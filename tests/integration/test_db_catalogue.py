"""Every collection photcal uses is in shared/contracts/collections.py with its indexes; no other can be reached.

On the MongoDB-protocol server the tests use: the indexes the catalogue declares are the ones made at
start-up, and the writes of every shared/db module land only in catalogued collections.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from shared.contracts.collections import COLLECTIONS
from shared.db import Database, connect_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def test_the_database_hands_out_only_catalogued_collections(mongo_proc):
    db = connect_database(mongo_proc.url, "catalogue")
    try:
        typo = "alrets"  # a typo is an error, not a new collection
        with pytest.raises(AttributeError):
            getattr(db, typo)
        accessors = {name for name, value in vars(Database).items() if isinstance(value, property)}
        assert accessors == {c.name for c in COLLECTIONS}
        for spec in COLLECTIONS:
            assert getattr(db, spec.name).name == spec.name
    finally:
        await db.close()


def test_each_collection_names_the_module_that_owns_it():
    for spec in COLLECTIONS:
        module = importlib.import_module(spec.module)
        assert module.__file__ is not None  # a package module, never a namespace
        assert f"db.{spec.name}." in Path(module.__file__).read_text(), spec


def test_every_collection_the_code_reaches_is_catalogued():
    """``db.<collection>`` anywhere in the code is a catalogued name; ``db.db[...]`` only inside shared/db."""
    names = {c.name for c in COLLECTIONS}
    methods = {"db", "client", "command", "ping", "close", "ensure_indexes", "collection"}
    used: dict[str, set[str]] = {}
    for folder in ("services", "shared", "photcal_cli", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for match in re.finditer(r"(?<!shared\.)\bdb\.([a-z_]+)\b", text):
                if match.group(1) not in methods:
                    used.setdefault(match.group(1), set()).add(str(path.relative_to(ROOT)))
            if "db.db[" in text:
                assert path.is_relative_to(ROOT / "shared" / "db"), path
    assert used and set(used) <= names, {k: v for k, v in used.items() if k not in names}
    outside = {k: sorted(p for p in v if not p.startswith("shared/db/")) for k, v in used.items()}
    assert not any(outside.values()), f"collections queried outside shared/db: {outside}"


async def test_start_up_makes_exactly_the_declared_indexes(mongo_proc):
    db = connect_database(mongo_proc.url, "indexes")
    try:
        await db.ensure_indexes()
        await db.ensure_indexes()  # every start: the same indexes, no error
        for spec in COLLECTIONS:
            info = await getattr(db, spec.name).index_information()
            # by what they index (the embedded server names indexes its own way)
            made = {
                (tuple(tuple(k) for k in v["key"]), bool(v.get("unique")), v.get("expireAfterSeconds"))
                for v in info.values()
            } - {((("_id", 1),), False, None)}
            declared = {(((i.field, 1),), i.unique, i.expire_after_s) for i in spec.indexes}
            assert made == declared, spec.name
    finally:
        await db.close()
