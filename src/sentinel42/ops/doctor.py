"""Health checks for ``sentinel42 doctor``: each a plain function returning one :class:`Check`.

Every check only reads: the store is opened read-only (never created or migrated), the model
registry is loaded without being changed, the Prefect server is asked for ``/health``.
:func:`check_store_integrity` is also what a trading run calls before it writes.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from sentinel42.errors import ConfigError, ModelError, StoreError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from sentinel42.settings import Settings

Status = Literal["OK", "WARN", "FAIL"]
PREFECT_HEALTH_TIMEOUT_S = 2.0
_QUICK_CHECK_ROWS = 3  # problems quoted from PRAGMA quick_check (it can list thousands)
# Below this much free space on the data folder's disk, `data-dir` fails: a refresh, a trading
# run's transaction, a backup set (about the store's size again) or a migration may not fit.
DATA_DIR_MIN_FREE_BYTES = 256 * 2**20


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict.

    Attributes:
        name: ``settings``, ``data-dir``, ``store``, ``migrations``, ``model``, ``prefect``.
        status: OK, WARN (works, but look at it) or FAIL (something will not work).
        message: what was found and, unless OK, what to do; one line.
    """

    name: str
    status: Status
    message: str


def check_settings(**overrides: Any) -> tuple[Check, Settings | None]:
    """Load the settings as a flow would; on failure, still return them without the replay
    folder requirement where that alone was the problem, so the other checks can run."""
    from sentinel42.settings import load_settings

    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        try:
            fallback: Settings | None = load_settings(require_replay_dir=False, **overrides)
        except ConfigError:
            fallback = None
        return Check("settings", "FAIL", f"{exc}"), fallback
    return Check("settings", "OK", f"loaded (data source {settings.data_source})"), settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def check_data_dir(settings: Settings, *, min_free_bytes: int = DATA_DIR_MIN_FREE_BYTES) -> Check:
    """The data folder exists, is writable, has ``min_free_bytes`` free on its disk (what an
    unprivileged process may use), and only its owner can read it (and the store)."""
    from sentinel42.persistence.failures import sqlite_file

    folder = settings.data_dir
    if not folder.exists():
        return Check(
            "data-dir",
            "WARN",
            f"{folder} does not exist yet; the first command that writes (e.g. `sentinel42 "
            "refresh`) creates it, owner-only",
        )
    if not folder.is_dir():
        return Check("data-dir", "FAIL", f"{folder} is not a folder; fix SENTINEL42_DATA_DIR")
    if not os.access(folder, os.W_OK | os.X_OK, effective_ids=True):
        return Check(
            "data-dir",
            "FAIL",
            f"{folder} is not writable by this user: refresh, trading and training will fail; "
            "give the user running Sentinel42 write access (chown / chmod u+w)",
        )
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        return Check(
            "data-dir",
            "FAIL",
            f"{folder}: {_mib(free)} free on its disk, below the {_mib(min_free_bytes)} floor: "
            "refresh, trading and backups will fail with 'the disk is full'; free space "
            f"(`df -h {folder}`) or move SENTINEL42_DATA_DIR to a disk with room",
        )
    loose = [f"{folder} is mode {_mode(folder):04o}; run `chmod 700 {folder}`"]
    if not _mode(folder) & 0o077:
        loose = []
    store = sqlite_file(settings.store_url)
    if store is not None and store.is_file() and _mode(store) & 0o077:
        loose.append(f"{store} is mode {_mode(store):04o}; run `chmod 600 {store}*`")
    if loose:
        return Check("data-dir", "WARN", "readable by others: " + "; ".join(loose))
    return Check("data-dir", "OK", f"{folder}: writable, owner-only, {_mib(free)} free")


def _open_readonly(settings: Settings) -> Engine:
    from sentinel42.persistence.db import make_engine

    return make_engine(settings.store_url, readonly=True)


def _quick_check(engine: Engine) -> str | None:
    """None when the store reads back whole; else the first problems SQLite (or the server)
    reports, one line."""
    from sqlalchemy import text

    with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            conn.execute(text("SELECT 1")).scalar_one()
            return None
        rows = [str(r[0]) for r in conn.execute(text("PRAGMA quick_check")).fetchall()]
    if rows == ["ok"]:
        return None
    problems = " | ".join(" ".join(r.split()) for r in rows[:_QUICK_CHECK_ROWS])
    more = f" (+{len(rows) - _QUICK_CHECK_ROWS} more)" if len(rows) > _QUICK_CHECK_ROWS else ""
    return problems + more


def check_store_integrity(settings: Settings) -> str | None:
    """One line saying why the store must not be written, or None when it reads back whole.

    SQLite: ``PRAGMA quick_check`` (reads every page once: about a second per few hundred MB);
    PostgreSQL: a trivial query. A store that does not exist yet is not corrupt (None). Call it
    before a run writes, and stop (and alert) on a line.
    """
    error = store_integrity_error(settings)
    return None if error is None else str(error)


def store_integrity_error(settings: Settings) -> StoreError | None:
    """:func:`check_store_integrity` as the error to raise: ``kind="corrupt"`` (not retryable)
    for a store that does not read back whole; a locked or unreachable store keeps the kind and
    retryability its translation gave it, so a run retries those."""
    from sqlalchemy.exc import DBAPIError

    from sentinel42.persistence.failures import store_label, translate

    try:
        engine = _open_readonly(settings)
    except StoreError as exc:
        return None if exc.kind == "missing" else exc
    try:
        problem = _quick_check(engine)
    except DBAPIError as exc:
        translated = translate(exc, settings.store_url)
        return translated or StoreError(f"store check failed: {exc}", kind="check")
    finally:
        engine.dispose()
    if problem is None:
        return None
    return StoreError(
        f"store {store_label(settings.store_url)} is corrupted (quick_check: {problem}); stop "
        "the flows and restore the newest backup (docs/operations.md, 'Store errors and doctor')",
        kind="corrupt",
    )


def check_store(settings: Settings) -> Check:
    """The store opens read-only and reads back whole (integrity)."""
    from sentinel42.persistence.failures import store_label

    label = store_label(settings.store_url)
    try:
        _open_readonly(settings).dispose()
    except StoreError as exc:
        if exc.kind == "missing":
            return Check("store", "WARN", f"{exc}")
        return Check("store", "FAIL", str(exc))
    problem = check_store_integrity(settings)
    if problem is not None:
        return Check("store", "FAIL", problem)
    return Check("store", "OK", f"{label}: integrity ok")


def check_migrations(settings: Settings) -> Check:
    """The store's schema revision against this code's head."""
    from sqlalchemy.exc import DBAPIError

    from sentinel42.persistence.db import current_revision, head_revision, known_revisions
    from sentinel42.persistence.failures import translate

    head = head_revision()
    try:
        engine = _open_readonly(settings)
    except StoreError as exc:
        if exc.kind == "missing":
            return Check("migrations", "WARN", f"no store yet; it is created at {head}")
        return Check("migrations", "FAIL", str(exc))
    try:
        found = current_revision(engine)
    except DBAPIError as exc:
        translated = translate(exc, settings.store_url)
        return Check("migrations", "FAIL", str(translated or exc).splitlines()[0])
    finally:
        engine.dispose()
    if found == head:
        return Check("migrations", "OK", f"schema at head {head}")
    if found is None:
        return Check(
            "migrations",
            "FAIL",
            "the store has no Sentinel42 schema (empty or another application's database); "
            "check SENTINEL42_DATABASE_URL",
        )
    if found in known_revisions():
        return Check(
            "migrations",
            "WARN",
            f"schema {found}, head is {head}: the next command that writes (e.g. `sentinel42 "
            "refresh`) migrates it; read-only commands refuse it until then",
        )
    return Check(
        "migrations",
        "FAIL",
        f"schema {found} is unknown to this code (head {head}): made by a newer Sentinel42? "
        "upgrade this checkout",
    )


def check_model(settings: Settings) -> Check:
    """The ``current`` pointer resolves and its checkpoint loads (weights match their sha256)."""
    from sentinel42.model.registry import CURRENT_FILE
    from sentinel42.model.storage import open_registry

    registry = open_registry(settings.models_location)
    pointer = registry.models_dir / CURRENT_FILE
    if not pointer.is_file():
        return Check(
            "model",
            "WARN",
            "no model promoted yet (decisions use the news alone); train one with "
            "`sentinel42 model train`",
        )
    try:
        named = pointer.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return Check("model", "FAIL", f"cannot read {pointer}: {exc.strerror}; fix permissions")
    version = registry.current_version()
    if version is None:
        return Check(
            "model",
            "FAIL",
            f"{pointer} names {named!r}, which has no checkpoint; retrain "
            "(`sentinel42 model train`) or write an existing version (`sentinel42 model list`) "
            "into it",
        )
    try:
        registry.load(version)
    except ModelError as exc:
        return Check("model", "FAIL", f"{exc}; retrain (`sentinel42 model train`)")
    return Check("model", "OK", f"current model {version} loads; weights match their sha256")


def check_prefect(
    api_url: str,
    *,
    timeout_s: float = PREFECT_HEALTH_TIMEOUT_S,
    client: httpx.Client | None = None,
) -> Check:
    """``GET <api_url>/health``; a server that is not running is a warning (the CLI works
    without it; the schedules do not run)."""
    url = api_url.rstrip("/") + "/health"
    try:
        if client is not None:
            response = client.get(url, timeout=timeout_s)
        else:
            response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Check(
            "prefect",
            "WARN",
            f"no Prefect server answers at {api_url} ({type(exc).__name__}); the schedules do "
            "not run until it does: `make prefect-start`",
        )
    if response.status_code != 200:
        return Check(
            "prefect",
            "WARN",
            f"{url} answered HTTP {response.status_code}; check `make prefect-status` and "
            "the server log (<data dir>/logs/server.log)",
        )
    return Check("prefect", "OK", f"server healthy at {api_url}")


def run_checks(
    prefect_api_url: str, *, min_free_bytes: int = DATA_DIR_MIN_FREE_BYTES, **overrides: Any
) -> list[Check]:
    """Every check, in order; a check that cannot run without the settings is left out.

    Args:
        prefect_api_url: the API asked for ``/health``.
        min_free_bytes: the free-space floor of the data folder's disk.
        overrides: settings, as :func:`~sentinel42.settings.load_settings` takes them.
    """
    settings_check, settings = check_settings(**overrides)
    checks = [settings_check]
    if settings is not None:
        checks += [
            check_data_dir(settings, min_free_bytes=min_free_bytes),
            check_store(settings),
            check_migrations(settings),
            check_model(settings),
        ]
    checks.append(check_prefect(prefect_api_url))
    return checks
