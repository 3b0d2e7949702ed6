"""The store: SQLAlchemy 2 over SQLite (WAL) or PostgreSQL, migrated with Alembic."""

from sentinel42.persistence.db import current_revision, make_engine, migrate
from sentinel42.persistence.store import SavedDecisions, Store, UpsertCounts, open_store

__all__ = [
    "SavedDecisions",
    "Store",
    "UpsertCounts",
    "current_revision",
    "make_engine",
    "migrate",
    "open_store",
]
