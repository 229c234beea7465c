"""MongoDB access: one module per collection, all on pymongo's native async API.

``shared.contracts.collections`` lists every collection with its indexes and the
module that owns it (its document model and every query on it); nothing
outside this package touches a collection.

Only operations that real MongoDB and the embedded nx-27017 server both
serve well are used: equality or range on one indexed field, unique
indexes (compound keys are stored as one ``*_key`` field), upserts,
find_one_and_update. See docs/toolchain.md.
"""

from shared.db.client import Database, connect_database

__all__ = ["Database", "connect_database"]
