"""``sentinel42 restore``: put a backup of the store back, without losing a concurrent write.

The backup ``file`` is copied into the store's folder and checked (its ``.sha256``, ``PRAGMA
integrity_check``, a schema this code knows) before anything is replaced. Then, under the store's
write lock, the current store is copied to ``<store>.replaced-<stamp>``, the store is marked as
being restored, and SQLite's backup API writes the checked copy into it in one transaction: the
file keeps its name and inode, and its generation (``PRAGMA user_version``) changes, so a process
that had the store open fails at its next write (:mod:`sentinel42.persistence.db`) instead of
writing rows into a file set aside. A PostgreSQL store is refused (``pg_restore``).
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel42.ops.backup_files import (
    PARTIAL,
    BackupError,
    copy_hashing,
    create_owner_only,
    expected_digest,
    fsync,
    fsync_dir,
    sqlite_store,
    stamp_of,
    write_failures,
)
from sentinel42.paths import secure_dir
from sentinel42.persistence.db import RESTORING_GENERATION, known_revisions
from sentinel42.persistence.failures import DEFAULT_BUSY_TIMEOUT_S

if TYPE_CHECKING:
    from sentinel42.settings import Settings

__all__ = ["restore", "running_prefect"]

logger = logging.getLogger(__name__)

# The pid files `make prefect-start` writes in <data dir>/run (scripts/prefect_env.sh).
RUN_PID_FILES = {"server": "server.pid", "worker": "worker.pid"}


def restore(
    settings: Settings,
    file: Path,
    *,
    as_of: datetime | None = None,
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
) -> dict[str, Any]:
    """Replace the store's contents with the backup ``file``, keeping a copy of what it replaces.

    Refuses while the Prefect server or worker of ``make prefect-start`` runs. Checks the
    ``.sha256`` beside ``file`` and ``PRAGMA integrity_check`` on a copy in the store's folder
    before anything is replaced. Then, under the store's write lock (waiting, up to
    ``busy_timeout_s``, for a writer's transaction in flight), it copies the current store to
    ``<store>.replaced-<stamp>`` and marks the store as being restored, and SQLite's backup API
    writes the checked copy into the store in one transaction. The file keeps its name and inode
    (so nothing is swapped under a process that has it open), and its generation changes: any
    process that opened the store before fails at its next write with one line
    (:mod:`sentinel42.persistence.db`) instead of writing rows the restore drops. A store that
    SQLite cannot open at all (a damaged header) is set aside by renaming instead (its ``-wal``
    and ``-shm`` beside it); no process can write into such a file.

    Args:
        settings: the store (``store_url``) and ``data_dir`` (its ``run/`` pid files).
        file: a ``sentinel42-<stamp>.db`` of a backup set.
        as_of: stamps the kept file's name (default: the pipeline clock).
        busy_timeout_s: how long to wait for another writer's transaction.

    Returns:
        ``restored`` (the store), ``from``, ``sha256``, ``revision`` (its schema), ``replaced``
        (the kept old store or None), ``moved_aside`` (its ``-wal``/``-shm`` when it was
        renamed), ``created`` (True when there was no store before) and ``generation``.

    Raises:
        BackupError: one line; nothing was replaced.
    """
    target = sqlite_store(settings, "restore")
    file = Path(file)
    if not file.is_file():
        raise BackupError(f"no backup at {file}")
    if target.exists() and file.resolve() == target.resolve():
        raise BackupError(f"{file} is the store itself; pick a file of a backup set")
    _refuse_while_running(settings)
    expected = expected_digest(file)
    if as_of is None:
        from sentinel42.clock import resolve_as_of

        as_of = resolve_as_of(settings)
    stamp = stamp_of(as_of)
    created = not target.exists()
    folder = secure_dir(target.parent)
    temp = folder / f".{target.name}.restore{PARTIAL}"
    aside: list[Path] = []
    with write_failures("restore", folder, "nothing was replaced"):
        try:
            digest = copy_hashing(file, temp)
            if digest != expected:
                raise BackupError(
                    f"backup {file} does not match its checksum (expected {expected[:12]}..., "
                    f"found {digest[:12]}...): it is damaged or was changed; nothing was "
                    "replaced, restore another backup"
                )
            revision = _check_restorable(temp, file)
            generation = _new_generation(temp)
            replaced = None
            if created:
                os.replace(temp, target)
                logger.info("created a new store at %s", target)
            else:
                replaced = _restore_in_place(
                    target, temp, _kept_name(target, stamp), busy_timeout_s
                )
                if replaced is None:  # SQLite cannot open the store: no one can write to it
                    replaced, aside = _set_aside(target, stamp)
                    os.replace(temp, target)
            fsync_dir(folder)
        finally:
            for leftover in folder.glob(f"{temp.name}*"):
                leftover.unlink(missing_ok=True)
    logger.info("restored %s from %s (old store kept as %s)", target, file, replaced)
    return {
        "restored": target,
        "from": file,
        "sha256": digest,
        "revision": revision,
        "replaced": replaced,
        "moved_aside": aside,
        "created": created,
        "generation": generation,
    }


def _new_generation(copy: Path) -> int:
    """Give the checked copy a new generation (``PRAGMA user_version``), unlike any before."""
    generation = RESTORING_GENERATION
    while generation in (RESTORING_GENERATION, 0):
        generation = secrets.randbits(31)
    connection = sqlite3.connect(copy, isolation_level=None)
    try:
        connection.execute(f"PRAGMA user_version = {generation}")
    finally:
        connection.close()
    return generation


def _restore_in_place(target: Path, copy: Path, kept: Path, busy_timeout_s: float) -> Path | None:
    """Keep ``target`` as ``kept``, then write ``copy`` into ``target``; None when SQLite cannot
    open ``target`` (then nothing was done).

    Raises:
        BackupError: the write lock stayed taken, or the copy could not be written (the store
            is then as it was).
    """
    live = sqlite3.connect(target, timeout=busy_timeout_s, isolation_level=None)
    try:
        try:
            # The write lock: a writer's transaction in flight commits first (into what is kept).
            live.execute("BEGIN IMMEDIATE")
            before = int(live.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            if _locked(exc):
                raise BackupError(
                    f"store {target} stayed locked by another writer past {busy_timeout_s:g} s; "
                    "nothing was replaced; stop the flows and the commands that write "
                    "(`make prefect-stop`), then restore"
                ) from exc
            logger.warning("store %s cannot be opened (%s): renaming it aside", target, exc)
            return None
        # SQLite's backup cannot read through the connection holding the write lock; a second
        # connection reads the same committed state (nothing can commit meanwhile).
        create_owner_only(kept)
        reader, keeper = sqlite3.connect(target, timeout=busy_timeout_s), sqlite3.connect(kept)
        try:
            reader.backup(keeper)  # every committed row, the WAL's included
        finally:
            keeper.close()
            reader.close()
        fsync(kept)
        # From here until the copy is in, every writer's next transaction refuses (db.py).
        live.execute(f"PRAGMA user_version = {RESTORING_GENERATION}")
        live.execute("COMMIT")
        source = sqlite3.connect(copy)
        try:
            source.backup(live)  # one step: one transaction under the write lock
        except sqlite3.Error as exc:
            live.execute(f"PRAGMA user_version = {before}")  # the store is as it was
            kept.unlink(missing_ok=True)
            if _locked(exc):
                raise BackupError(
                    f"store {target} stayed locked by another writer; nothing was replaced; "
                    "stop the flows (`make prefect-stop`), then restore"
                ) from exc
            raise
        finally:
            source.close()
        live.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        if live.in_transaction:
            live.execute("ROLLBACK")
        live.close()
    return kept


def _locked(exc: BaseException) -> bool:
    name = str(getattr(exc, "sqlite_errorname", ""))
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc).lower()


def running_prefect(settings: Settings) -> dict[str, int]:
    """The server and worker of ``make prefect-start`` that run now: role to pid."""
    running: dict[str, int] = {}
    for role, name in RUN_PID_FILES.items():
        try:
            pid = int((settings.data_dir / "run" / name).read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            continue
        if pid <= 0:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue  # a stale pid file
        except PermissionError:
            pass  # alive, another user's
        running[role] = pid
    return running


def _refuse_while_running(settings: Settings) -> None:
    running = running_prefect(settings)
    if running:
        which = ", ".join(f"{role} pid {pid}" for role, pid in running.items())
        raise BackupError(
            f"the Prefect {' and '.join(running)} started by `make prefect-start` "
            f"{'is' if len(running) == 1 else 'are'} running ({which}, pid files in "
            f"{settings.data_dir / 'run'}); stop them with `make prefect-stop`, then restore"
        )


def _check_restorable(copy: Path, file: Path) -> str:
    try:
        connection = sqlite3.connect(copy)
        try:
            result = [row[0] for row in connection.execute("PRAGMA integrity_check").fetchall()]
            has_schema = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
            ).fetchone()
            revision = (
                connection.execute("SELECT version_num FROM alembic_version").fetchone()
                if has_schema
                else None
            )
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        result = [str(exc)]
    if result != ["ok"]:
        raise BackupError(
            f"backup {file} failed PRAGMA integrity_check ({result[0]}); nothing was replaced, "
            "restore another backup"
        )
    if revision is None:
        raise BackupError(f"backup {file} is not a Sentinel42 store (no schema version)")
    if revision[0] not in known_revisions():
        raise BackupError(
            f"backup {file} has schema {revision[0]}, unknown to this code (made by a newer "
            "Sentinel42?); upgrade this checkout first. Nothing was replaced"
        )
    return str(revision[0])


def _kept_name(target: Path, stamp: str) -> Path:
    kept = target.with_name(f"{target.name}.replaced-{stamp}")
    n = 1
    while kept.exists():
        kept = target.with_name(f"{target.name}.replaced-{stamp}-{n}")
        n += 1
    return kept


def _set_aside(target: Path, stamp: str) -> tuple[Path | None, list[Path]]:
    if not target.exists():
        return None, []
    kept = _kept_name(target, stamp)
    try:
        os.link(target, kept)  # the store keeps its name until os.replace swaps the copy in
    except OSError:
        os.rename(target, kept)
    aside: list[Path] = []
    for suffix in ("-wal", "-shm"):
        side = target.with_name(target.name + suffix)
        if side.exists():
            # Beside the kept file under its name: SQLite applies that WAL to that file only.
            os.replace(side, kept.with_name(kept.name + suffix))
            aside.append(kept.with_name(kept.name + suffix))
    return kept, aside
