"""The store: SQLAlchemy 2 over SQLite (WAL) or PostgreSQL, migrated with Alembic."""

from sentinel42.persistence.db import current_revision, make_engine, migrate
from sentinel42.persistence.store import Store, UpsertCounts, open_store, text_hash

__all__ = [
    "Store",
    "UpsertCounts",
    "current_revision",
    "make_engine",
    "migrate",
    "open_store",
    "text_hash",
]
