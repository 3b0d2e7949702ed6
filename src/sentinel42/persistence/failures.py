"""Store failures as one line: which store, what went wrong, what to do.

Driver and OS errors (sqlite3, psycopg, ``OSError``) are translated into
:class:`~sentinel42.errors.StoreError` at the store's boundary (:func:`open_store
<sentinel42.persistence.store.open_store>`, :func:`~sentinel42.persistence.db.make_engine`,
:func:`~sentinel42.persistence.db.migrate`) and, for anything that still escapes, by the CLI's
``user_errors``. An error this module does not recognize is left as it is: a bug should keep its
traceback.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from urllib.parse import unquote

from sentinel42.errors import StoreError

DEFAULT_BUSY_TIMEOUT_S = 30.0

# The PyPI package that provides each DBAPI module SQLAlchemy may ask for.
_DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "asyncpg": "asyncpg",
    "pg8000": "pg8000",
    "pymysql": "pymysql",
    "MySQLdb": "mysqlclient",
}
_UNREACHABLE = (
    "could not connect",
    "connection refused",
    "connection failed",
    "connection timed out",
    "timeout expired",
    "could not translate host name",
    "name or service not known",
    "no route to host",
    "server closed the connection",
    "network is unreachable",
    "connection to server",
)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (``file:`` URIs included); None for memory or others."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL is reported by make_engine
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database.startswith("file:"):
        database = unquote(database.removeprefix("file:").split("?", 1)[0])
    if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
        return None
    return Path(database)


def store_label(url: str) -> str:
    """How messages name a store: its file for SQLite, else the URL with the password masked."""
    path = sqlite_file(url)
    if path is not None:
        return str(path)
    return mask_url(url)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs and messages)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable store URL>"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _read_only(label: str, path: Path | None) -> StoreError:
    if path is not None:
        folder = path.parent
        if not folder.is_dir():
            return StoreError(
                f"store {label}: its folder {folder} cannot be created (permission denied); "
                "create it, or point SENTINEL42_DATA_DIR / SENTINEL42_DATABASE_URL at a "
                "writable folder",
                kind="read-only",
            )
        if path.exists() and not os.access(path, os.W_OK, effective_ids=True):
            where = "the file is read-only"
        elif not os.access(folder, os.W_OK, effective_ids=True):
            where = (
                f"its folder {folder} is read-only (SQLite writes {path.name}-wal and "
                f"{path.name}-shm beside it)"
            )
        else:
            where = "the file or its folder is read-only"
        fix = (
            "give the user running Sentinel42 write access to the file and its folder, or use "
            "the read-only commands (status, decisions)"
        )
        return StoreError(f"store {label} is read-only: {where}; {fix}", kind="read-only")
    return StoreError(
        f"store {label} is read-only (a read-only transaction or replica); point "
        "SENTINEL42_DATABASE_URL at the primary, or use the read-only commands (status, decisions)",
        kind="read-only",
    )


def _full(label: str, path: Path | None, detail: str) -> StoreError:
    where = f" on {path.parent}" if path is not None else " on the database server"
    check = f" (`df -h {path.parent}`)" if path is not None else ""
    return StoreError(
        f"store {label}: cannot write, {detail}; free space{where}{check} and retry",
        kind="full",
    )


def _corrupt(label: str, detail: str) -> StoreError:
    return StoreError(
        f"store {label} is corrupted ({detail}); stop the flows, run `sentinel42 doctor`, and "
        "restore the newest backup (docs/operations.md, 'Store errors and doctor')",
        kind="corrupt",
    )


def _locked(label: str, busy_timeout_s: float) -> StoreError:
    return StoreError(
        f"store {label} stayed locked by another process past the {busy_timeout_s:g} s busy "
        "timeout (a long write, a backup, or a stuck run); retry, and if it persists find the "
        "other writer (`make prefect-status`, `fuser` on the file)",
        kind="locked",
        retryable=True,
    )


def _driver(label: str, module: str | None, detail: str) -> StoreError:
    package = _DRIVER_PACKAGES.get(module or "", module or "the driver")
    return StoreError(
        f"store {label}: its database driver is not installed ({detail}); install it with "
        f"`uv pip install '{package}'` (or `uv sync` in a checkout that lists it), or fix the "
        "driver in SENTINEL42_DATABASE_URL (e.g. postgresql+psycopg://...)",
        kind="driver",
    )


def _translate_os_error(exc: OSError, label: str, path: Path | None) -> StoreError | None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return _full(label, path, f"{os.strerror(exc.errno)}")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return _read_only(label, path)
    return None


def _translate_sqlite(
    orig: BaseException, label: str, path: Path | None, busy: float
) -> StoreError | None:
    name = str(getattr(orig, "sqlite_errorname", "") or "")
    text = str(orig).lower()
    if name.startswith("SQLITE_READONLY") or "readonly database" in text:
        return _read_only(label, path)
    if name.startswith("SQLITE_BUSY") or "database is locked" in text:
        return _locked(label, busy)
    if name == "SQLITE_FULL" or "database or disk is full" in text:
        return _full(label, path, "the disk is full")
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
        return _full(label, path, "a disk I/O error (disk full, a file-size limit, a failing disk)")
    if name == "SQLITE_NOTADB" or "file is not a database" in text:
        return _corrupt(label, "file is not a database")
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text:
        return _corrupt(label, "database disk image is malformed")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open database file" in text:
        return StoreError(
            f"store {label} cannot be opened: its folder is missing or not accessible; check "
            "SENTINEL42_DATA_DIR / SENTINEL42_DATABASE_URL and the folder's permissions",
            kind="missing",
        )
    return None


def _translate_server(orig: BaseException, label: str, busy: float) -> StoreError | None:
    text = str(orig).lower()
    detail = _first_line(orig)
    if "read-only transaction" in text or "read only transaction" in text:
        return _read_only(label, None)
    if "no space left" in text or "could not extend file" in text or "disk full" in text:
        return _full(label, None, f"the server's disk is full ({detail})")
    if "lock timeout" in text or "deadlock detected" in text:
        return _locked(label, busy)
    if "does not exist" in text and "database" in text:
        return StoreError(
            f"store {label}: the database does not exist ({detail}); create it "
            "(`createdb`) or fix SENTINEL42_DATABASE_URL",
            kind="missing",
        )
    if "authentication failed" in text or "password" in text:
        return StoreError(
            f"store {label} refused the login ({detail}); fix the user or password in "
            "SENTINEL42_DATABASE_URL",
            kind="unreachable",
        )
    if any(marker in text for marker in _UNREACHABLE):
        return StoreError(
            f"cannot reach store {label} ({detail}); is the database server running and the "
            "host and port in SENTINEL42_DATABASE_URL right? Retry once it is up",
            kind="unreachable",
            retryable=True,
        )
    return None


def translate(
    exc: BaseException, url: str | None, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> StoreError | None:
    """The one-line :class:`StoreError` for a driver or OS error, or None if not recognized.

    Args:
        exc: what the driver, SQLAlchemy or the OS raised.
        url: the store's URL (None: the message says "the store").
        busy_timeout_s: the busy timeout the store was opened with (named in "locked").
    """
    if isinstance(exc, StoreError):
        return exc
    from sqlalchemy import exc as sa_exc

    label = store_label(url) if url else "(the configured store)"
    path = sqlite_file(url) if url else None
    if isinstance(exc, sa_exc.NoSuchModuleError):
        return _driver(label, None, _first_line(exc))
    if isinstance(exc, ModuleNotFoundError):
        return _driver(label, exc.name, _first_line(exc))
    if isinstance(exc, sa_exc.ArgumentError):
        return StoreError(
            f"SENTINEL42_DATABASE_URL: {mask_url(url or '')} is not a usable SQLAlchemy URL "
            f"({_first_line(exc)}); e.g. sqlite:///path/sentinel42.db",
            kind="other",
        )
    if isinstance(exc, OSError):
        return _translate_os_error(exc, label, path)
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    orig = exc.orig if exc.orig is not None else exc
    if isinstance(orig, OSError):
        return _translate_os_error(orig, label, path)
    backend = "sqlite" if type(orig).__module__.startswith("sqlite3") else "server"
    if backend == "sqlite":
        return _translate_sqlite(orig, label, path, busy_timeout_s)
    return _translate_server(orig, label, busy_timeout_s)
