"""Backups of the store, the model registry and Prefect's database; restore of the store.

A backup set is the files of one UTC stamp (taken from ``as_of``) in the backups folder
(``settings.backups_dir``, default ``<data dir>/backups``)::

    sentinel42-<stamp>.db          the store: SQLite online backup, integrity-checked
    sentinel42-<stamp>.db.sha256   its checksum, in ``sha256sum -c`` format
    models-<stamp>.tar             the model registry (``<data dir>/models``), when there is one
    prefect-<stamp>.db             Prefect's database, when it is a SQLite file

Every file is written as ``<name>.partial`` beside its final name, fsynced, and renamed only once
the whole set is written and checked (the store file last: its presence marks a complete set), so
a full disk or a crash leaves the earlier sets as they were. The SQLite copies use
``sqlite3.Connection.backup`` over a read-only connection: one consistent snapshot while the flows
keep writing, and the live database is never written (no checkpoint on close). Never ``cp`` a live
WAL database. A PostgreSQL store is refused: ``pg_dump`` / ``pg_restore`` do that job
(docs/operations.md, "Backups and restore").
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import sqlite3
import tarfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel42.ops.backup_files import (
    BackupError,
    copy_hashing,
    create_owner_only,
    expected_digest,
    fsync_dir,
    sha256_of,
    sqlite_copy,
    sqlite_store,
    stamp_of,
    verify,
    write_failures,
    write_file,
)
from sentinel42.persistence.db import known_revisions, require_existing, secure_dir
from sentinel42.persistence.failures import mask_url, sqlite_file

if TYPE_CHECKING:
    from sentinel42.settings import Settings

__all__ = [
    "BackupError",
    "backup",
    "prefect_database",
    "restore",
    "running_prefect",
    "sqlite_store",
    "stamp_of",
    "verify",
]

logger = logging.getLogger(__name__)

PARTIAL = ".partial"
LOCK_FILE = ".backup.lock"
# The pid files `make prefect-start` writes in <data dir>/run (scripts/prefect_env.sh).
RUN_PID_FILES = {"server": "server.pid", "worker": "worker.pid"}
_SET_FILE = re.compile(
    r"^(?:sentinel42|models|prefect)-(?P<stamp>\d{8}T\d{6}Z)\.(?:db|db\.sha256|tar)$"
)
_UNTOUCHED = "earlier backups and the store are untouched"


# --- backup ----------------------------------------------------------------------------------
def backup(settings: Settings, as_of: datetime, to: Path | None = None) -> dict[str, Any]:
    """Write a backup set, then delete all but the newest ``settings.backup_keep`` sets.

    Args:
        settings: the store (``store_url``), ``models_dir``, ``backups_dir``, ``backup_keep``.
        as_of: names the set (its UTC stamp); tz-aware. A set of the same stamp is replaced.
        to: the folder (default ``settings.backups_dir``); created owner-only (``0700``).

    Returns:
        ``dir``, ``stamp``, ``store`` (the copy), ``sha256``, ``store_bytes``, ``models`` and
        ``prefect`` (paths, None when skipped), ``notes`` (why something was skipped),
        ``deleted`` (file names of pruned sets) and ``kept`` (sets now in the folder).

    Raises:
        BackupError: the store is not SQLite, a copy fails its integrity check, another backup
            is writing to the folder, or a write fails (a full disk): one line; nothing of the
            new set is left and earlier sets are untouched.
        StoreError: there is no store, or it cannot be read.
    """
    store = sqlite_store(settings, "backup")
    require_existing(settings.store_url)
    stamp = stamp_of(as_of)
    folder = Path(to) if to is not None else settings.backups_dir
    notes: list[str] = []
    with write_failures("backup", folder, _UNTOUCHED), _exclusive(secure_dir(folder)):
        _remove_partials(folder)
        staged: list[tuple[Path, Path]] = []
        try:
            tar = folder / f"models-{stamp}.tar"
            models = tar if _tar_models(settings.models_dir, _partial(tar)) else None
            if models is not None:
                staged.append((_partial(models), models))
            else:
                notes.append(f"no model registry at {settings.models_dir}: not in this set")
            prefect_db, note = prefect_database(settings)
            prefect = folder / f"prefect-{stamp}.db"
            if prefect_db is not None:
                sqlite_copy(prefect_db, _partial(prefect), f"Prefect's database {prefect_db}")
                staged.append((_partial(prefect), prefect))
            if note:
                notes.append(note)
            copy = folder / f"sentinel42-{stamp}.db"
            sqlite_copy(store, _partial(copy), f"store {store}")
            digest = sha256_of(_partial(copy))
            checksum = copy.with_name(copy.name + ".sha256")
            write_file(_partial(checksum), f"{digest}  {copy.name}\n".encode())
            staged += [(_partial(checksum), checksum), (_partial(copy), copy)]
            for partial, final in staged:
                os.replace(partial, final)
            for stale in set(folder.glob(f"*-{stamp}.*")) - {final for _, final in staged}:
                if _SET_FILE.match(stale.name):  # an earlier set of this stamp had it
                    stale.unlink()
            fsync_dir(folder)
        except BaseException:
            _remove_partials(folder)
            raise
        deleted, kept = _prune(folder, settings.backup_keep)
    for note in notes:
        logger.info("backup %s: %s", stamp, note)
    logger.info("backup %s written to %s (%d sets kept)", stamp, folder, kept)
    return {
        "dir": folder,
        "stamp": stamp,
        "store": copy,
        "sha256": digest,
        "store_bytes": copy.stat().st_size,
        "models": models,
        "prefect": prefect if prefect_db is not None else None,
        "notes": notes,
        "deleted": deleted,
        "kept": kept,
    }


def prefect_database(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> tuple[Path | None, str | None]:
    """Prefect's SQLite database file as the scripts configure it, or None and why not.

    Looks at ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` (or its older name
    ``PREFECT_API_DATABASE_CONNECTION_URL``), else ``$PREFECT_HOME/prefect.db``; without
    ``PREFECT_HOME``, ``<data dir>/prefect/prefect.db`` when it exists (where
    ``scripts/prefect_env.sh`` puts it), else Prefect's default ``~/.prefect/prefect.db``.
    """
    env = os.environ if environ is None else environ
    home = Path(env["PREFECT_HOME"]).expanduser() if env.get("PREFECT_HOME") else None
    url = env.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") or env.get(
        "PREFECT_API_DATABASE_CONNECTION_URL"
    )
    not_sqlite = "Prefect's database {} is not a SQLite file: back it up with pg_dump"
    if url:
        path = sqlite_file(url.replace("${PREFECT_HOME}", str(home or "~/.prefect")))
        if path is None:
            return None, not_sqlite.format(mask_url(url))
    elif env.get("PREFECT_SERVER_DATABASE_DRIVER", "").startswith("postgresql"):
        return None, not_sqlite.format("(PREFECT_SERVER_DATABASE_DRIVER=postgresql)")
    else:
        if home is None:
            scripts_home = settings.data_dir / "prefect"
            home = scripts_home if (scripts_home / "prefect.db").is_file() else Path("~/.prefect")
        path = home / "prefect.db"
    path = path.expanduser()
    if not path.is_file():
        return None, f"no Prefect database at {path}: not in this set"
    return path, None


def _partial(final: Path) -> Path:
    return final.with_name(final.name + PARTIAL)


def _remove_partials(folder: Path) -> None:
    # Under the folder's lock: any partial file is what a killed or failed backup left.
    for leftover in folder.glob(f"*{PARTIAL}*"):
        leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(
                f"another backup is writing to {folder}; wait for it to finish and retry"
            ) from None
        yield
    finally:
        os.close(fd)


def _tar_models(models_dir: Path, partial: Path) -> bool:
    if not models_dir.is_dir():
        return False
    create_owner_only(partial)
    with partial.open("wb") as fh, tarfile.open(fileobj=fh, mode="w") as tar:
        tar.add(models_dir, arcname="models", recursive=False)
        for root, dirs, files in os.walk(models_dir):
            # Dot names are the registry's staging folders and temp files: half-written.
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            base = Path(root)
            for name in [*dirs, *sorted(f for f in files if not f.startswith("."))]:
                with contextlib.suppress(FileNotFoundError):  # pruned meanwhile
                    arcname = Path("models") / (base / name).relative_to(models_dir)
                    tar.add(base / name, arcname=str(arcname), recursive=False)
        tar.close()
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _prune(folder: Path, keep: int) -> tuple[list[str], int]:
    sets: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        match = _SET_FILE.match(path.name)
        if match:
            sets.setdefault(match["stamp"], []).append(path)
    doomed = sorted(sets)[:-keep] if len(sets) > keep else []
    deleted: list[str] = []
    for stamp in doomed:
        for path in sorted(sets[stamp]):
            path.unlink(missing_ok=True)
            deleted.append(path.name)
    if deleted:
        fsync_dir(folder)
        logger.info("deleted %d old backup sets (%s)", len(doomed), ", ".join(doomed))
    return deleted, len(sets) - len(doomed)


# --- restore ---------------------------------------------------------------------------------
def restore(settings: Settings, file: Path, *, as_of: datetime | None = None) -> dict[str, Any]:
    """Replace the store with the backup ``file``, keeping the file it replaces.

    Refuses while the Prefect server or worker of ``make prefect-start`` runs. Checks the
    ``.sha256`` beside ``file`` and ``PRAGMA integrity_check`` on a copy in the store's folder
    before anything is replaced; the old store is kept as ``<store>.replaced-<stamp>`` (its
    ``-wal`` and ``-shm`` moved beside it, so they are not applied to the restored file); the
    copy then takes the store's name with ``os.replace``.

    Args:
        settings: the store (``store_url``) and ``data_dir`` (its ``run/`` pid files).
        file: a ``sentinel42-<stamp>.db`` of a backup set.
        as_of: stamps the kept file's name (default: the pipeline clock).

    Returns:
        ``restored`` (the store), ``from``, ``sha256``, ``revision`` (its schema), ``replaced``
        (the kept old store or None) and ``moved_aside`` (its ``-wal``/``-shm``).

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
        from sentinel42.pipeline import resolve_as_of

        as_of = resolve_as_of(settings)
    stamp = stamp_of(as_of)
    folder = secure_dir(target.parent)
    temp = folder / f".{target.name}.restore{PARTIAL}"
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
    }


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


def _set_aside(target: Path, stamp: str) -> tuple[Path | None, list[Path]]:
    if not target.exists():
        return None, []
    kept = target.with_name(f"{target.name}.replaced-{stamp}")
    n = 1
    while kept.exists():
        kept = target.with_name(f"{target.name}.replaced-{stamp}-{n}")
        n += 1
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
