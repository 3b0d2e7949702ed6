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
(docs/operations.md, "Backups and restore"). The restore is :mod:`sentinel42.ops.restore`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import tarfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentinel42.ops.backup_files import (
    PARTIAL,
    BackupError,
    create_owner_only,
    fsync_dir,
    sha256_of,
    sqlite_copy,
    sqlite_store,
    stamp_of,
    verify,
    write_failures,
    write_file,
)
from sentinel42.ops.restore import restore, running_prefect
from sentinel42.paths import secure_dir
from sentinel42.persistence.db import require_existing
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

LOCK_FILE = ".backup.lock"
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
