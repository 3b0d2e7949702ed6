"""Store failures are one line naming the store and what to do, never a traceback.

Read-only files and folders are real: the commands run in a subprocess that cannot override file
permissions (as root, without CAP_DAC_OVERRIDE and friends). A full disk is a file-size limit
(``RLIMIT_FSIZE``) in a subprocess. A lock is a real EXCLUSIVE transaction.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import sqlite3
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.domain import Action, Decision
from sentinel42.errors import StoreError, is_retryable
from sentinel42.persistence import make_engine, migrate, open_store
from sentinel42.persistence.failures import translate
from tests.helpers import RUN_CLI, run_cli

AT = datetime(2026, 11, 27, 17, 45, tzinfo=UTC)
WRITE = """
import sys
from datetime import UTC, datetime
import typer
from sentinel42.cli.common import user_errors
from sentinel42.persistence import open_store
try:
    with user_errors(), open_store(url=sys.argv[1]) as store:
        for i in range(int(sys.argv[2])):
            store.record_event("probe", None, {"pad": "x" * 4000, "i": i}, datetime.now(UTC))
except typer.Exit as exc:
    sys.exit(exc.exit_code)
"""
_PR_CAPBSET_DROP = 24
_DAC_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def _without_dac_override() -> None:  # runs in the child between fork and exec
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run(code_or_args: list[str], env: dict[str, str], preexec=None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-c", *code_or_args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=preexec,
        )
    except subprocess.SubprocessError as exc:  # prctl refused: no way to honour permissions
        pytest.skip(f"cannot drop the permission override here: {exc}")


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and " WARNING " not in line]
    errors = [line for line in lines if line.startswith("error: ")]
    assert "Traceback" not in stderr, stderr
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture
def store_path(tmp_path) -> Path:
    """A store at the head with one decision and a few hundred KB of events, cleanly closed."""
    path = tmp_path / "store" / "sentinel42.db"
    with open_store(url=f"sqlite:///{path}") as store:
        decided_at = AT.replace(hour=18, minute=2)  # the bar's end plus the trading delay
        decision = Decision("AAPL", AT, Action.BUY, 0.7, "r", {}, {}, decided_at)
        store.save_decisions([decision], run_id="a")
        for i in range(150):
            store.record_event("pad", "AAPL", {"i": i, "pad": f"{i:x}" * 500}, AT)
    assert not path.with_name(path.name + "-wal").exists()
    return path


def _env(path: Path) -> dict[str, str]:
    return {"SENTINEL42_DATA_DIR": str(path.parent), "SENTINEL42_DATABASE_URL": f"sqlite:///{path}"}


# --- read-only ----------------------------------------------------------------------------------
@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_read_only_store_serves_status_and_refuses_writes_in_one_line(store_path, read_only):
    target = store_path if read_only == "file" else store_path.parent
    mode = target.stat().st_mode
    target.chmod(0o444 if read_only == "file" else 0o555)
    try:
        # `status` in both cases, `decisions` (the same read-only open) where it is hardest.
        command = "status" if read_only == "file" else "decisions"
        read = _run([RUN_CLI, command, "--json"], _env(store_path), _without_dac_override)
        write = _run([WRITE, f"sqlite:///{store_path}", "1"], {}, _without_dac_override)
    finally:
        target.chmod(stat.S_IMODE(mode))
    assert read.returncode == 0, read.stderr
    document = json.loads(read.stdout)
    if command == "status":
        assert document["tickers"]
    else:
        assert [d["ticker"] for d in document] == ["AAPL"]
    assert write.returncode == 1
    line = _one_error_line(write.stderr)
    assert f"store {store_path} is read-only" in line
    assert ("file is read-only" if read_only == "file" else "folder") in line


# --- missing store, typos, old schema -----------------------------------------------------------
# Every command that reads, or writes only what it derives from stored data (issue 18 item 4).
@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["decisions"],
        ["portfolio"],
        ["news"],
        ["validate"],
        ["prune"],
        ["model", "evaluate"],
    ],
    ids=lambda c: "-".join(c),
)
def test_a_read_mostly_command_on_a_typo_url_creates_nothing(tmp_path, command):
    typo = tmp_path / "data" / "sentinel24.db"
    env = {
        "SENTINEL42_DATA_DIR": str(tmp_path / "data"),
        "SENTINEL42_DATABASE_URL": f"sqlite:///{typo}",
    }
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 2, result.output
    assert f"error: no store at {typo}; run `sentinel42 refresh`" in result.stderr
    assert result.stderr.count("error:") == 1
    assert list(tmp_path.iterdir()) == []  # no store, no folder, no lock file


def test_a_command_that_writes_on_purpose_says_it_created_the_store(tmp_path, replay_env):
    store = tmp_path / "new" / "sentinel42.db"
    env = {
        **os.environ,
        "SENTINEL42_DATA_DIR": str(tmp_path / "data"),
        "SENTINEL42_DATABASE_URL": f"sqlite:///{store}",
    }
    result = run_cli("refresh", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(f"created a new store at {store}") == 1
    assert store.is_file()
    again = run_cli("refresh", env=env)
    assert again.returncode == 0 and "created a new store" not in again.stderr


def test_read_only_open_refuses_an_older_schema(tmp_path):
    path = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine, "0003")
    engine.dispose()
    result = CliRunner().invoke(app, ["status"], env=_env(path))
    assert result.exit_code == 2
    assert "has schema 0003, older than this code's" in result.stderr


# --- corruption ---------------------------------------------------------------------------------
def _scribble(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(bytes((i * 151 + 7) % 256 for i in range(4096)))  # 4 KB of noise


def test_corrupted_middle_pages_are_found_by_the_integrity_check(store_path):
    from sentinel42.ops.doctor import check_store_integrity
    from sentinel42.settings import load_settings

    size = store_path.stat().st_size
    _scribble(store_path, (size // 2) // 4096 * 4096)
    settings = load_settings(data_dir=store_path.parent, database_url=f"sqlite:///{store_path}")
    problem = check_store_integrity(settings)
    assert problem is not None and "\n" not in problem
    # quick_check lists the broken pages, or fails outright where the damage is in its path.
    assert problem.startswith(f"store {store_path} is corrupted (")
    assert "restore the newest backup" in problem


def test_a_file_that_is_not_a_database_is_one_line(store_path):
    _scribble(store_path, 0)
    result = CliRunner().invoke(app, ["status"], env=_env(store_path))
    assert result.exit_code == 1
    assert f"error: store {store_path} is corrupted (file is not a database)" in result.stderr
    assert result.stderr.count("\n") == 1


# --- drivers and servers ------------------------------------------------------------------------
def _absent_driver_url() -> tuple[str, str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "postgresql+psycopg://sentinel:s3cret@127.0.0.1:1/sentinel", "psycopg[binary]"
    return "postgresql+nosuchdriver://sentinel:s3cret@127.0.0.1:1/sentinel", "nosuchdriver"


@pytest.mark.parametrize("command", ["status", "refresh"])
def test_missing_driver_is_one_line_naming_the_package(tmp_path, command, replay_env):
    url, package = _absent_driver_url()
    env = {"SENTINEL42_DATA_DIR": str(tmp_path), "SENTINEL42_DATABASE_URL": url}
    result = CliRunner().invoke(app, [command], env=env)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: store postgresql+")
    assert package in line and "s3cret" not in line and "***" in line


def test_plain_postgresql_url_means_psycopg(tmp_path):
    try:
        import psycopg  # noqa: F401
    except ImportError:
        with pytest.raises(StoreError, match=r"psycopg\[binary\]") as caught:
            make_engine("postgresql://u:pw@127.0.0.1:1/db")
        assert caught.value.kind == "driver"
    else:
        assert make_engine("postgresql://u:pw@127.0.0.1:1/db").dialect.driver == "psycopg"


class _ServerError(Exception):
    """Stands in for a database server driver's error (its module is not sqlite3)."""


@pytest.mark.parametrize(
    ("message", "kind", "retryable", "says"),
    [
        ('connection to server at "10.0.0.9", port 5432 failed: Connection refused\n\tIs the '
         "server running", "unreachable", True, "cannot reach store"),
        ('FATAL:  password authentication failed for user "s"', "unreachable", False, "login"),
        ('FATAL:  database "sentinal" does not exist', "missing", False, "createdb"),
        ("could not extend file: No space left on device", "full", False, "free space"),
        ("cannot execute INSERT in a read-only transaction", "read-only", False, "read-only"),
    ],
)  # fmt: skip
def test_server_errors_are_one_line(message, kind, retryable, says):
    error = sa_exc.OperationalError("SELECT 1", {}, _ServerError(message))
    translated = translate(error, "postgresql+psycopg://s:pw@db.example:5432/sentinel")
    assert translated is not None
    assert (translated.kind, translated.retryable) == (kind, retryable)
    assert says in str(translated) and "\n" not in str(translated) and "pw@" not in str(translated)
    assert "s:***@db.example" in str(translated)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (sqlite3.OperationalError("database or disk is full"), "full"),
        (OSError(errno.ENOSPC, "No space left on device"), "full"),
        (sqlite3.DatabaseError("database disk image is malformed"), "corrupt"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
    ],
)
def test_sqlite_and_os_errors_are_one_line(tmp_path, error, kind):
    wrapped = error if isinstance(error, OSError) else sa_exc.OperationalError("x", {}, error)
    translated = translate(wrapped, f"sqlite:///{tmp_path / 's.db'}")
    assert translated is not None and translated.kind == kind
    assert str(tmp_path / "s.db") in str(translated)


def test_unknown_errors_keep_their_traceback():
    assert translate(ValueError("a bug"), "sqlite:///x.db") is None
    integrity = sa_exc.IntegrityError("x", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert translate(integrity, "sqlite:///x.db") is None


# --- locked -------------------------------------------------------------------------------------
def test_a_lock_held_past_the_busy_timeout_is_one_retryable_line(store_path, capsys):
    from sentinel42.cli.common import user_errors

    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with (
            pytest.raises(StoreError) as caught,
            open_store(url=f"sqlite:///{store_path}", busy_timeout_s=0.2) as store,
        ):
            store.record_event("blocked", None, {}, AT)
        assert caught.value.kind == "locked" and is_retryable(caught.value)
        assert f"store {store_path} stayed locked by another process past the 0.2 s" in str(
            caught.value
        )
        with pytest.raises(Exception, match="1"), user_errors():  # typer.Exit(1)
            raise caught.value
        assert capsys.readouterr().err.count("\n") == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()


# --- disk full ----------------------------------------------------------------------------------
def test_a_full_disk_is_one_line(store_path):
    limit = store_path.stat().st_size + 64 * 1024

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = _run([WRITE, f"sqlite:///{store_path}", "400"], {}, small_disk)
    assert result.returncode == 1, result.stderr
    line = _one_error_line(result.stderr)
    assert line.startswith(f"error: store {store_path}: cannot write, ")
    assert f"free space on {store_path.parent}" in line


# --- permissions --------------------------------------------------------------------------------
def test_a_fresh_store_is_owner_only(tmp_path):
    path = tmp_path / "fresh" / "data" / "sentinel42.db"
    with open_store(url=f"sqlite:///{path}") as store:
        store.record_event("x", None, {}, AT)
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
