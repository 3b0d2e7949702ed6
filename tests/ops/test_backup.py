"""Backups and restore: consistent while a writer runs, pruned to N sets, owner-only, safe on a
full disk, and a restore that refuses rather than replace a store it should not.

The full disk is a file-size limit (``RLIMIT_FSIZE``) in a subprocess, as in
tests/persistence/test_store_errors.py; the concurrent writer is another process.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.errors import StoreError
from sentinel42.model.registry import ModelRegistry
from sentinel42.ops.backup import BackupError, backup, prefect_database, restore, verify
from sentinel42.persistence import open_store
from sentinel42.persistence.db import RESTORING_GENERATION
from sentinel42.persistence.tables import EventRow
from sentinel42.settings import load_settings

AT = datetime(2026, 11, 27, 23, 45, tzinfo=UTC)
STAMP = "20261127T234500Z"
RUN_CLI = "from sentinel42.cli import main; main()"
WAL_SHM = ("-wal", "-shm")  # left by the read-only connections of _rows


@pytest.fixture(autouse=True)
def _prefect_home(monkeypatch, tmp_path):
    """Never the developer's Prefect database: PREFECT_HOME is a folder of the test's own."""
    for key in (
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
        "PREFECT_API_DATABASE_CONNECTION_URL",
        "PREFECT_SERVER_DATABASE_DRIVER",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))


@pytest.fixture
def settings(tmp_path):
    return load_settings(data_dir=tmp_path / "data", backup_keep=7)


def _fill(url: str, kind: str, n: int, pad: int = 1000) -> None:
    with open_store(url=url) as store, store.session() as session:  # one transaction
        session.add_all(
            EventRow(kind=kind, ticker=None, details={"i": i, "pad": "x" * pad}, at=AT)
            for i in range(n)
        )


@pytest.fixture
def store(settings) -> Path:
    """A store with 300 ``seed`` events (~0.4 MB), cleanly closed."""
    _fill(settings.store_url, "seed", 300)
    return settings.data_dir / "sentinel42.db"


def _model(settings) -> None:
    registry = ModelRegistry(settings.models_dir)
    folder = settings.models_dir / "v1"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / "metadata.json").write_text("{}", encoding="utf-8")
    registry.promote("v1")


def _rows(path: Path, kind: str) -> list[int]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        query = "SELECT json_extract(details, '$.i') FROM events WHERE kind = ? ORDER BY 1"
        return [row[0] for row in connection.execute(query, (kind,))]
    finally:
        connection.close()


def _integrity(path: Path) -> str:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def _keep_writing(url: str, stop, written) -> None:
    """Another process: one committed event at a time until told to stop."""
    with open_store(url=url) as store:
        i = 0
        while not stop.is_set():
            store.record_event("tick", None, {"i": i, "pad": "y" * 500}, AT)
            written.value = i  # committed: record_event's session has closed
            i += 1


# --- (1) consistent while another process writes ------------------------------------------------
def test_backup_while_another_process_writes_restores_every_row_committed_before_it(
    settings, store, tmp_path
):
    _fill(settings.store_url, "bulk", 3000)  # a few MB: the copy takes a while
    context = multiprocessing.get_context("spawn")
    stop, written = context.Event(), context.Value("q", -1)
    writer = context.Process(target=_keep_writing, args=(settings.store_url, stop, written))
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while written.value < 50:
            assert writer.is_alive() and time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.01)
        committed_before = written.value
        report = backup(settings, AT)
        during = written.value
        while written.value < during + 20:  # the writer is not blocked by the backup
            assert writer.is_alive() and time.monotonic() < deadline, "the writer stopped"
            time.sleep(0.01)
    finally:
        stop.set()
        writer.join(30)
    assert writer.exitcode == 0

    copy = report["store"]
    assert copy == settings.backups_dir / f"sentinel42-{STAMP}.db"
    assert verify(copy)
    assert _integrity(copy) == "ok"
    fresh = load_settings(data_dir=tmp_path / "fresh" / "data")
    restored = restore(fresh, copy, as_of=AT)
    assert restored["replaced"] is None and restored["sha256"] == report["sha256"]
    target = fresh.data_dir / "sentinel42.db"
    assert _integrity(target) == "ok"
    ticks = _rows(target, "tick")
    # One snapshot: every row committed before the backup began, and no gap after it.
    assert ticks == list(range(len(ticks)))
    assert len(ticks) > committed_before
    assert len(_rows(target, "bulk")) == 3000
    with open_store(fresh) as reopened:  # the restored store opens and takes writes
        reopened.record_event("after-restore", None, {}, AT)


# --- (2) keep N ---------------------------------------------------------------------------------
def test_backup_keeps_the_newest_n_sets_and_deletes_older_ones(settings, store):
    settings = settings.model_copy(update={"backup_keep": 2})
    _model(settings)
    folder = settings.backups_dir
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    reports = [backup(settings, AT + timedelta(days=d)) for d in range(4)]

    stamps = sorted({p.name.split("-", 1)[1].split(".")[0] for p in folder.glob("*-2026*")})
    assert stamps == [reports[2]["stamp"], reports[3]["stamp"]]
    for stamp in stamps:
        names = {p.name for p in folder.glob(f"*-{stamp}*")}
        assert names == {
            f"sentinel42-{stamp}.db",
            f"sentinel42-{stamp}.db.sha256",
            f"models-{stamp}.tar",
        }
    assert reports[3]["kept"] == 2
    assert reports[2]["deleted"] == [
        f"models-{reports[0]['stamp']}.tar",
        f"sentinel42-{reports[0]['stamp']}.db",
        f"sentinel42-{reports[0]['stamp']}.db.sha256",
    ]
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"


# --- (3) restore refusals -----------------------------------------------------------------------
@pytest.mark.parametrize("refusal", ["live worker pid", "checksum mismatch"])
def test_restore_refuses_a_running_worker_or_a_bad_checksum_and_replaces_nothing(
    settings, store, refusal
):
    copy = backup(settings, AT)["store"]
    _fill(settings.store_url, "later", 5)
    before = store.read_bytes()
    if refusal == "live worker pid":
        run = settings.data_dir / "run"
        run.mkdir()
        (run / "worker.pid").write_text(f"{os.getpid()}\n", encoding="utf-8")
        (run / "server.pid").write_text("999999999\n", encoding="utf-8")  # stale: no such pid
    else:
        data = bytearray(copy.read_bytes())
        data[-100] ^= 0xFF
        copy.write_bytes(bytes(data))

    result = CliRunner().invoke(app, ["restore", str(copy), "--yes"])

    assert result.exit_code == 1, result.output
    line = _one_error_line(result.stderr)
    if refusal == "live worker pid":
        assert (
            f"worker started by `make prefect-start` is running (worker pid {os.getpid()}" in line
        )
        assert "make prefect-stop" in line and "server" not in line.split("running")[0]
    else:
        assert f"backup {copy} does not match its checksum" in line
        assert "nothing was replaced" in line
    assert store.read_bytes() == before
    leftovers = {p.name for p in store.parent.iterdir()} - {"sentinel42.db", "models", "run"}
    assert not [name for name in leftovers if "replaced" in name or "partial" in name]
    assert _rows(store, "later") == [0, 1, 2, 3, 4]


# --- (4) the replaced store is kept -------------------------------------------------------------
_CRASHED_WRITER = """
import os, sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA wal_autocheckpoint=0")
connection.execute(
    "INSERT INTO events (kind, details, at) VALUES ('unflushed', '{\\"i\\": 0}', '2026-11-28')"
)
os._exit(0)  # killed: the row is only in the -wal, never checkpointed
"""


def test_restore_keeps_the_replaced_store_with_the_rows_of_its_wal(settings, store):
    copy = backup(settings, AT)["store"]
    _fill(settings.store_url, "later", 3)
    subprocess.run([sys.executable, "-c", _CRASHED_WRITER, str(store)], check=True, timeout=60)
    assert store.with_name("sentinel42.db-wal").exists()
    inode = store.stat().st_ino

    report = restore(settings, copy, as_of=AT + timedelta(hours=1))

    kept = store.with_name("sentinel42.db.replaced-20261128T004500Z")
    assert report["replaced"] == kept and report["moved_aside"] == []
    # Restored in place: a process that has the store open never holds a file set aside.
    assert store.stat().st_ino == inode
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    # The restored store has the backup's rows only; the kept one (one file) has them all.
    assert _rows(store, "later") == [] and _rows(store, "unflushed") == []
    assert len(_rows(store, "seed")) == 300
    assert _rows(kept, "later") == [0, 1, 2] and _rows(kept, "unflushed") == [0]
    assert _integrity(store) == "ok" and _integrity(kept) == "ok"


_WRITER = """
import sys
from datetime import UTC, datetime
from sentinel42.persistence import open_store

at = datetime(2026, 11, 27, 23, 45, tzinfo=UTC)
with open_store(url=sys.argv[1]) as store:
    for i in range(5):
        store.record_event("before", None, {"i": i}, at)
    print("ready", flush=True)
    sys.stdin.readline()  # the restore runs now
    for i in range(5):
        store.record_event("after", None, {"i": i}, at)
print("done", flush=True)
"""


def test_a_writer_that_had_the_store_open_during_restore_loses_nothing(settings, store):
    """Issue 18 item 3: a writer running during `restore --yes` never writes into the replaced
    store; its rows end in the restored store, or it exits non-zero saying why."""
    copy = backup(settings, AT)["store"]
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, settings.store_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
        restored = CliRunner().invoke(app, ["restore", str(copy), "--yes"])
        assert restored.exit_code == 0, restored.output
        out, err = writer.communicate("go\n", timeout=120)
    finally:
        if writer.poll() is None:
            writer.kill()
    kept = [p for p in store.parent.glob("sentinel42.db.replaced-*") if p.name[-4:] not in WAL_SHM]
    assert len(kept) == 1
    # What it wrote before the restore is in the kept store, and nothing after the swap began.
    assert _rows(kept[0], "before") == [0, 1, 2, 3, 4]
    assert _rows(kept[0], "after") == []
    assert len(_rows(store, "seed")) == 300 and _rows(store, "before") == []
    if writer.returncode == 0:
        assert _rows(store, "after") == [0, 1, 2, 3, 4]
    else:
        assert "done" not in out
        assert "was restored from a backup while this process had it open" in err
        assert _rows(store, "after") == []
    with open_store(settings) as reopened:  # a process opened after the restore writes
        reopened.record_event("after-restore", None, {"i": 0}, AT)
    assert _rows(store, "after-restore") == [0] and _integrity(store) == "ok"


def test_a_writer_refuses_a_store_whose_restore_was_interrupted(settings, store):
    connection = sqlite3.connect(store, isolation_level=None)
    try:
        connection.execute(f"PRAGMA user_version = {RESTORING_GENERATION}")
    finally:
        connection.close()
    with pytest.raises(StoreError) as caught, open_store(settings) as opened:
        opened.record_event("lost", None, {"i": 0}, AT)
    assert "is being restored from a backup" in str(caught.value)
    assert caught.value.retryable and _rows(store, "lost") == []


def _damage(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(data)


@pytest.mark.parametrize(("offset", "in_place"), [(40 * 4096, True), (0, False)])
def test_restore_replaces_a_damaged_store(settings, store, offset, in_place):
    """A damaged page mid-file is restored in place (kept byte for byte, for `.recover`); a
    damaged header, which SQLite cannot open, is renamed aside instead."""
    copy = backup(settings, AT)["store"]
    _damage(store, offset, b"\xa5" * 4096)
    try:
        damaged = _integrity(store)
    except sqlite3.DatabaseError as exc:
        damaged = str(exc)
    assert damaged != "ok"

    report = restore(settings, copy, as_of=AT)

    assert report["replaced"] == store.with_name(f"sentinel42.db.replaced-{STAMP}")
    assert (report["moved_aside"] == []) is in_place
    assert _integrity(store) == "ok" and len(_rows(store, "seed")) == 300
    assert report["replaced"].read_bytes()[offset : offset + 4096] == b"\xa5" * 4096


# --- (5) a full disk ----------------------------------------------------------------------------
def test_a_full_disk_while_writing_a_backup_keeps_the_previous_set_and_the_store(
    settings, store, tmp_path
):
    _fill(settings.store_url, "bulk", 1500)
    _model(settings)
    previous = backup(settings, AT)
    folder = settings.backups_dir
    before = sorted(p.name for p in folder.iterdir())
    limit = store.stat().st_size // 2  # room for the models tar, not for the store's copy

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "backup"],
        env={**os.environ, "SENTINEL42_DATA_DIR": str(settings.data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_disk,
    )

    assert result.returncode == 1, result.stderr
    line = _one_error_line(result.stderr)
    assert f"error: backup in {folder} failed: cannot write" in line
    assert "earlier backups and the store are untouched" in line
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing new, no .partial
    assert verify(previous["store"]) and _integrity(previous["store"]) == "ok"
    assert _integrity(store) == "ok"
    assert len(_rows(store, "bulk")) == 1500


# --- (6) owner-only -----------------------------------------------------------------------------
def test_backup_files_are_owner_only_in_an_owner_only_folder(settings, store, tmp_path):
    _model(settings)
    prefect_home = tmp_path / "prefect"
    prefect_home.mkdir()
    prefect_db = sqlite3.connect(prefect_home / "prefect.db")
    prefect_db.execute("PRAGMA journal_mode=WAL")
    prefect_db.execute("CREATE TABLE flow_run (id TEXT)")
    prefect_db.execute("INSERT INTO flow_run VALUES ('r1')")
    prefect_db.commit()  # left open: the Prefect server holds its database while we copy it
    old_umask = os.umask(0o022)
    try:
        report = backup(settings, AT, to=tmp_path / "elsewhere" / "backups")
    finally:
        os.umask(old_umask)
        prefect_db.close()

    folder = tmp_path / "elsewhere" / "backups"
    assert report["dir"] == folder
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert files == [
        f"models-{STAMP}.tar",
        f"prefect-{STAMP}.db",
        f"sentinel42-{STAMP}.db",
        f"sentinel42-{STAMP}.db.sha256",
    ]
    for name in files:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    copy = sqlite3.connect(folder / f"prefect-{STAMP}.db")
    assert copy.execute("SELECT id FROM flow_run").fetchall() == [("r1",)]
    copy.close()
    checksum = (folder / f"sentinel42-{STAMP}.db.sha256").read_text(encoding="utf-8")
    assert checksum == f"{report['sha256']}  sentinel42-{STAMP}.db\n"  # sha256sum -c format


# --- (7) the CLI round trip ---------------------------------------------------------------------
def test_backup_then_restore_round_trips_through_the_cli(settings, store):
    runner = CliRunner()
    made = runner.invoke(app, ["backup", "--json"])
    assert made.exit_code == 0, made.output
    report = json.loads(made.stdout)
    copy = Path(report["store"])
    assert copy.parent == settings.backups_dir and copy.is_file()
    assert report["models"] is None and report["notes"]

    _fill(settings.store_url, "later", 4)
    declined = runner.invoke(app, ["restore", str(copy)], input="n\n")
    assert declined.exit_code == 1 and _rows(store, "later") == [0, 1, 2, 3]

    restored = runner.invoke(app, ["restore", str(copy), "--yes"])

    assert restored.exit_code == 0, restored.output
    assert f"restored {store} from {copy}" in restored.stdout
    assert _rows(store, "later") == [] and len(_rows(store, "seed")) == 300
    kept = [p for p in store.parent.glob("sentinel42.db.replaced-*") if p.name[-4:] not in WAL_SHM]
    assert len(kept) == 1 and _rows(kept[0], "later") == [0, 1, 2, 3]


# --- PostgreSQL and Prefect's database ----------------------------------------------------------
def test_a_postgresql_store_is_refused_with_the_pg_dump_commands(tmp_path):
    settings = load_settings(
        data_dir=tmp_path / "data", database_url="postgresql://u:secret@db.example/sentinel"
    )
    for attempt in (lambda: backup(settings, AT), lambda: restore(settings, tmp_path / "x.db")):
        with pytest.raises(BackupError) as caught:
            attempt()
        message = str(caught.value)
        assert "pg_dump -Fc" in message and "pg_restore" in message and "\n" not in message
        assert "secret" not in message
    assert not (tmp_path / "data" / "backups").exists()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PREFECT_HOME": "{tmp}/home"}, "{tmp}/home/prefect.db"),
        (
            {"PREFECT_SERVER_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:///{tmp}/p.db"},
            "{tmp}/p.db",
        ),
        ({"PREFECT_API_DATABASE_CONNECTION_URL": "sqlite+aiosqlite:///{tmp}/a.db"}, "{tmp}/a.db"),
        ({}, "{tmp}/data/prefect/prefect.db"),  # where scripts/prefect_env.sh puts it
        ({"PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u:pw@h/p"}, None),
        ({"PREFECT_HOME": "{tmp}/empty"}, None),
    ],
)
def test_prefect_database_is_found_as_the_scripts_configure_it(settings, tmp_path, env, expected):
    for name in ("home/prefect.db", "p.db", "a.db", "data/prefect/prefect.db"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    environ = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    path, note = prefect_database(settings, environ)
    if expected is None:
        assert path is None and note
        assert "pw" not in note
    else:
        assert path == Path(expected.format(tmp=tmp_path)) and note is None
