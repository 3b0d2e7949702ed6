"""Engine creation and schema migration (Alembic, run programmatically on first use).

Several processes may open a fresh store at once (a flow run, a CLI command, a second worker):
migrations run under a lock (a ``<db>.migrate.lock`` file lock beside a SQLite database, a
transaction-scoped advisory lock on PostgreSQL), and a store already at the head skips them.
A new SQLite store is created owner-only: its folder ``0700``, the file ``0600`` (SQLite gives
the ``-wal`` and ``-shm`` files the database file's mode).

A restore (:func:`sentinel42.ops.backup.restore`) rewrites a SQLite store in place and changes its
generation (``PRAGMA user_version``). Every write transaction of an engine checks, once it holds
the write lock, that the generation is still the one the engine first saw: a process that had the
store open before a restore fails with one line instead of writing rows the restore then drops.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url

from sentinel42.errors import StoreError
from sentinel42.paths import secure_dir
from sentinel42.persistence.failures import (
    DEFAULT_BUSY_TIMEOUT_S,
    sqlite_file,
    store_label,
    translate,
)

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
HEAD = "head"
MIGRATION_LOCK_TIMEOUT_S = 300.0
# Any constant shared by every Sentinel42 process: the key of the PostgreSQL advisory lock.
_PG_MIGRATION_LOCK_KEY = 0x5E471E42
# ``PRAGMA user_version`` of a SQLite store while `sentinel42 restore` replaces its contents
# (the store's generation otherwise; Alembic does not use the field).
RESTORING_GENERATION = 0x52535452


def _normalized(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # SQLAlchemy's default is psycopg2; we ship psycopg 3
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _readonly_sqlite(path: Path) -> URL:
    # A WAL database in a folder we cannot write can only be read when its -wal file is absent
    # (a clean shutdown) and SQLite is told nothing will change it underneath (immutable=1).
    folder_writable = os.access(path.parent, os.W_OK, effective_ids=True)
    wal = path.with_name(path.name + "-wal")
    query = {"mode": "ro", "uri": "true"}
    if not folder_writable and not wal.exists():
        query["immutable"] = "1"
    return URL.create("sqlite", database=f"file:{quote(str(path))}", query=query)


def make_engine(
    url: str, *, readonly: bool = False, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and enforced foreign keys.

    WAL lets the dashboard-side readers (CLI, status) read while a flow run writes.

    Args:
        url: SQLAlchemy URL; ``postgresql://`` means ``postgresql+psycopg://``.
        readonly: open without writing anything: a missing SQLite file is refused (never
            created); PostgreSQL sessions default to read-only transactions.
        busy_timeout_s: how long a SQLite write waits for another writer's lock.

    Raises:
        StoreError: missing driver, unusable URL, a missing store (``readonly``), a folder or
            file that cannot be created.
    """
    try:
        return _make_engine(url, readonly=readonly, busy_timeout_s=busy_timeout_s)
    except StoreError:
        raise
    except Exception as exc:
        translated = translate(exc, url, busy_timeout_s=busy_timeout_s)
        if translated is None:
            raise
        raise translated from exc


def _ensure_wal(cursor: Any, busy_timeout_s: float) -> None:
    """Put the store in WAL mode, waiting out other processes doing the same.

    Several processes opening a fresh store at once all convert it: the conversion needs the
    exclusive lock, and SQLite answers "database is locked" at once (not after the busy
    timeout) to a connection that would deadlock waiting for it. Retry until the mode is WAL or
    the busy timeout has passed; a store already in WAL mode is only read.
    """
    deadline = time.monotonic() + busy_timeout_s
    delay = 0.01
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _make_engine(url: str, *, readonly: bool, busy_timeout_s: float) -> Engine:
    parsed = _normalized(url)
    kwargs: dict[str, Any] = {"future": True}
    path = sqlite_file(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        kwargs["connect_args"] = {"timeout": busy_timeout_s}
        if path is not None and readonly:
            if not path.is_file():
                raise StoreError(
                    f"no store at {path}; run `sentinel42 refresh` (or `make prefect-start` and "
                    "let the flows run) first, or fix SENTINEL42_DATA_DIR / "
                    "SENTINEL42_DATABASE_URL",
                    kind="missing",
                )
            parsed = _readonly_sqlite(path)
        elif path is not None and not path.exists():
            secure_dir(path.parent)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            logger.info("created a new store at %s", path)
    elif readonly and parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on"}
    engine = create_engine(parsed, **kwargs)
    if sqlite:
        busy_ms = int(busy_timeout_s * 1000)
        # The generation this engine first saw (None until its first connection).
        seen: dict[str, int | None] = {"generation": None}

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            if not readonly:
                _ensure_wal(cursor, busy_timeout_s)
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            if not readonly and path is not None and seen["generation"] is None:
                seen["generation"] = int(cursor.execute("PRAGMA user_version").fetchone()[0])
            cursor.close()
            if not readonly:
                # We open transactions ourselves (below), so the driver must not.
                dbapi_conn.isolation_level = None

        if not readonly:

            @event.listens_for(engine, "begin")
            def _begin_immediate(conn: Any) -> None:
                # A deferred transaction that reads, then writes after another process wrote,
                # gets "database is locked" at once: SQLite cannot wait for it (the snapshot it
                # read is stale), so the busy timeout never applies. Taking the write lock at
                # BEGIN makes concurrent writers queue for up to the busy timeout instead.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                if path is not None:
                    _check_generation(conn, path, seen["generation"])

    return engine


def _check_generation(conn: Any, path: Path, expected: int | None) -> None:
    """Refuse to write (the write lock held) into a store a restore replaced or is replacing."""
    found = int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())
    if found == expected and found != RESTORING_GENERATION:
        return
    conn.exec_driver_sql("ROLLBACK")
    if found == RESTORING_GENERATION:
        message = (
            f"store {path} is being restored from a backup (or a restore was interrupted); "
            "nothing was written; run this again once `sentinel42 restore` has finished"
        )
    else:
        message = (
            f"store {path} was restored from a backup while this process had it open; "
            "nothing more was written, so that no row is lost with the replaced store; "
            "run this again (it then writes into the restored store)"
        )
    raise StoreError(message, kind="replaced", retryable=True)


def require_existing(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist (for commands that must not create one).

    Raises:
        StoreError: ``kind="missing"``.
    """
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        raise StoreError(
            f"no store at {path}; run `sentinel42 refresh` (or `make prefect-start` and let the "
            "flows run) first, or fix SENTINEL42_DATA_DIR / SENTINEL42_DATABASE_URL",
            kind="missing",
        )


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest schema revision this code knows."""
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None  # the package ships its migrations
    return head


def known_revisions() -> set[str]:
    """Every schema revision this code knows (a store at another one is from newer code)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(None))
    return {r.revision for r in script.walk_revisions()}


@contextmanager
def _file_lock(path: Path, timeout_s: float) -> Iterator[None]:
    lock = path.with_name(path.name + ".migrate.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(
                        f"store {path}: another process has been migrating it for over "
                        f"{timeout_s:g} s (it holds {lock.name}); wait for it, or stop it and "
                        "retry",
                        kind="locked",
                        retryable=True,
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (unlinking it would race)


def migrate(
    engine: Engine,
    revision: str = HEAD,
    *,
    lock_timeout_s: float = MIGRATION_LOCK_TIMEOUT_S,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
) -> None:
    """Bring the schema to ``revision`` (default: the newest). Safe to call on every start.

    Safe when several processes open a fresh store at once: one migrates, the others wait for
    it and then find nothing to do.

    Raises:
        StoreError: the store cannot be written or locked (one line; see
            :mod:`sentinel42.persistence.failures`).
    """
    url = engine.url.render_as_string(hide_password=False)
    try:
        if revision == HEAD and current_revision(engine) == head_revision():
            return
        _migrate(engine, revision, lock_timeout_s)
    except StoreError:
        raise
    except Exception as exc:
        translated = translate(exc, url, busy_timeout_s=busy_timeout_s)
        if translated is None:
            raise
        raise translated from exc


def _migrate(engine: Engine, revision: str, lock_timeout_s: float) -> None:
    from alembic import command

    path = sqlite_file(engine.url.render_as_string(hide_password=False))
    if path is not None:
        with _file_lock(path, lock_timeout_s), engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)
        return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Held until this transaction commits: a second process waits, then sees the head.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
            )
        command.upgrade(_alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the store, or None for an empty database."""
    if not inspect(engine).has_table("alembic_version"):
        return None
    with engine.connect() as connection:
        from alembic.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Refuse to read a store whose schema is not this code's head (read-only opens).

    Raises:
        StoreError: ``kind="schema"`` (older or newer schema) or ``"corrupt"`` (no schema).
    """
    label = store_label(engine.url.render_as_string(hide_password=False))
    found = current_revision(engine)
    head = head_revision()
    if found == head:
        return
    if found is None:
        raise StoreError(
            f"store {label} has no Sentinel42 schema (an empty or foreign database); check "
            "SENTINEL42_DATABASE_URL, or run `sentinel42 refresh` to create the store",
            kind="schema",
        )
    if found in known_revisions():
        raise StoreError(
            f"store {label} has schema {found}, older than this code's {head}; run a command "
            "that writes (e.g. `sentinel42 refresh`) to migrate it, then retry",
            kind="schema",
        )
    raise StoreError(
        f"store {label} has schema {found}, which this code does not know (made by a newer "
        "Sentinel42?); upgrade this checkout",
        kind="schema",
    )
