"""Files and checks shared by backup and restore (:mod:`sentinel42.ops.backup`).

Every file is created owner-only (``0600``) and fsynced before it is renamed into place; a failed
write (a full disk above all) becomes one :class:`BackupError` line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from sentinel42.errors import Sentinel42Error
from sentinel42.persistence.failures import mask_url, sqlite_file, translate

if TYPE_CHECKING:
    from sentinel42.settings import Settings

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_CHUNK = 1 << 20
PARTIAL = ".partial"  # the suffix of a file not yet complete
_PG_HINT = (
    "back it up with `pg_dump -Fc -f sentinel42-<stamp>.dump <database URL>` and restore with "
    "`pg_restore --clean --if-exists -d <database URL> <file>` (docs/operations.md, 'Backups and "
    "restore')"
)


class BackupError(Sentinel42Error):
    """A backup or restore could not be made; earlier backups and the store are untouched."""


def stamp_of(as_of: datetime) -> str:
    """The UTC stamp of a backup set, e.g. ``20261127T174500Z``.

    Raises:
        ValueError: ``as_of`` is naive.
    """
    if as_of.tzinfo is None:
        raise ValueError("as_of must be tz-aware")
    return as_of.astimezone(UTC).strftime(STAMP_FORMAT)


def sqlite_store(settings: Settings, command: str) -> Path:
    """The store's SQLite file; a PostgreSQL (or in-memory) store is refused in one line.

    Args:
        settings: gives ``store_url``.
        command: ``"backup"`` or ``"restore"``, for the message.

    Raises:
        BackupError: the store is not a SQLite file.
    """
    path = sqlite_file(settings.store_url)
    if path is not None:
        return path
    label = mask_url(settings.store_url)
    if label.startswith("postgresql"):
        raise BackupError(
            f"store {label} is PostgreSQL, which `sentinel42 {command}` does not handle; {_PG_HINT}"
        )
    raise BackupError(f"store {label} is not a SQLite file: `sentinel42 {command}` needs one")


def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection: it never checkpoints or otherwise writes the live database."""
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)


def sqlite_copy(source: Path, partial: Path, label: str) -> None:
    """Copy ``source`` with SQLite's online backup, then ``PRAGMA integrity_check`` the copy."""
    create_owner_only(partial)
    src = None
    try:
        src = connect_ro(source)
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        from sqlalchemy.exc import OperationalError

        if src is not None:
            src.close()
        store_error = translate(OperationalError("backup", None, exc), f"sqlite:///{source}")
        raise (store_error or BackupError(f"{label} cannot be read ({exc})")) from exc
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # one step: one snapshot of the source, writers go on meanwhile
            # A self-contained file: no -wal beside the copy when it is opened later.
            dst.execute("PRAGMA journal_mode=DELETE").fetchone()
            result = [row[0] for row in dst.execute("PRAGMA integrity_check").fetchall()]
        finally:
            dst.close()
    finally:
        src.close()
    if result != ["ok"]:
        raise BackupError(
            f"the backup of {label} failed PRAGMA integrity_check ({result[0]}); the copy was "
            "deleted and earlier backups are untouched; run `sentinel42 doctor`"
        )
    fsync(partial)


def expected_digest(file: Path) -> str:
    """The sha256 recorded in ``<file>.sha256`` (``sha256sum`` format).

    Raises:
        BackupError: the checksum file is missing or not a sha256sum line.
    """
    checksum = file.with_name(file.name + ".sha256")
    try:
        first = checksum.read_text(encoding="utf-8").split()
    except OSError:
        raise BackupError(
            f"no checksum {checksum.name} beside {file}; nothing was replaced, restore a "
            "complete backup set"
        ) from None
    if not first or not re.fullmatch(r"[0-9a-f]{64}", first[0].lower()):
        raise BackupError(f"{checksum} is not a sha256sum line; nothing was replaced")
    return first[0].lower()


# --- files -----------------------------------------------------------------------------------
@contextlib.contextmanager
def write_failures(action: str, folder: Path, untouched: str) -> Iterator[None]:
    """Turn a failed write (a full disk above all) into one :class:`BackupError` line."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        code = getattr(exc, "errno", None)
        name = str(getattr(exc, "sqlite_errorname", ""))
        text = str(exc).lower()
        if code in (errno.ENOSPC, errno.EDQUOT) or name == "SQLITE_FULL" or "is full" in text:
            why = "the disk is full"
        elif code == errno.EFBIG:
            why = "a file-size limit was reached"
        elif name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
            why = "a disk I/O error (a full disk, a file-size limit, a failing disk)"
        else:
            raise BackupError(f"{action} in {folder} failed ({exc}); {untouched}") from exc
        raise BackupError(
            f"{action} in {folder} failed: cannot write, {why}; {untouched}; free space "
            f"(`df -h {folder}`) and retry"
        ) from exc


def create_owner_only(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` (an earlier file of that name is removed)."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new owner-only file and fsync it."""
    create_owner_only(path)
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def copy_hashing(source: Path, dest: Path) -> str:
    """Copy ``source`` to a new owner-only ``dest``, fsync it; return the sha256 of the bytes."""
    digest = hashlib.sha256()
    create_owner_only(dest)
    with source.open("rb") as src, dest.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(file: Path) -> bool:
    """True when ``file`` matches the ``.sha256`` beside it (``sha256sum -c``)."""
    try:
        return sha256_of(file) == expected_digest(file)
    except (OSError, BackupError):
        return False


def fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Flush a folder: renames into it survive a power cut only once it is synced."""
    fsync(folder)
