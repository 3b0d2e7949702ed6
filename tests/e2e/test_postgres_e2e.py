"""Scale-out, end to end: Prefect and the store on PostgreSQL, two workers on one pool.

A Prefect server whose database is PostgreSQL, the Sentinel42 store on PostgreSQL (each a fresh
database made through ``SENTINEL42_TEST_POSTGRES_URL``'s role, dropped afterwards), the pool and
deployments from scripts/start_prefect.sh, and a second worker on ``sentinel-pool``. In waves,
a forced trading run and a refresh run are triggered together (each deployment drops a run that
collides with its running one, so waves keep one of each in flight) and the workers claim them:
in the first wave the second worker is stopped (SIGSTOP), so the first must run it; in the
second the first is stopped; in the last both race. Every run must be executed by one worker
exactly once, each worker must have run the wave the other sat out, and the decisions the trading
runs record must be numbered without gaps (one standing decision per ticker and bar, then one
revision per later run), while the refresh runs write the same store.

Skips where ``SENTINEL42_TEST_POSTGRES_URL`` is unset (fails with
``SENTINEL42_TEST_POSTGRES_REQUIRED=1``, as in CI).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest
from sqlalchemy import create_engine, inspect, select, text

from sentinel42.persistence.tables import DecisionRow
from tests.e2e import conftest as e2e
from tests.e2e.conftest import ROOT, TICKERS, _free_port, _run
from tests.persistence.test_postgres import _psycopg, admin_url_or_skip, fresh_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

# Read at import: the autouse fixture in tests/conftest.py clears SENTINEL42_* for each test.
PREFECT_ADMIN_URL = os.environ.get("SENTINEL42_TEST_PREFECT_POSTGRES_URL")
TRADING = "trading-flow/trading-production"
REFRESH = "data-refresh-flow/data-refresh-production"
WAVES = 3
SECOND_WORKER = "sentinel42-second-worker"

# Run with the stack's environment. For each wave, creates its flow runs at once and waits for
# them; a run that must complete but was cancelled for finding its deployment busy (the
# deployments drop a colliding run: CANCEL_NEW) is created again. Then reports, as JSON, each
# run's state history, the worker that ran it and what the workers logged about it.
_PROBE = r"""
import asyncio, json, re, sys, time
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

waves, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
SUBMITTING = re.compile(r"Worker '([^']+)' submitting")


async def main():
    async with get_client() as client:
        created, started = [], time.monotonic()
        for wave in waves:
            pending = []
            for name, params, must_complete in wave:
                deployment = await client.read_deployment_by_name(name)
                pending.append([name, deployment.id, params, must_complete, 3])
            active = []
            for entry in pending:
                run = await client.create_flow_run_from_deployment(entry[1], parameters=entry[2])
                created.append((entry[0], run.id))
                active.append((entry, run.id))
            while active:
                if time.monotonic() - started > timeout:
                    raise SystemExit(f"runs still in flight after {timeout} s: {active}")
                await asyncio.sleep(2)
                still = []
                for entry, run_id in active:
                    run = await client.read_flow_run(run_id)
                    if run.state is None or not run.state.is_final():
                        still.append((entry, run_id))
                    elif run.state.is_cancelled() and entry[3] and entry[4] > 0:
                        entry[4] -= 1
                        again = await client.create_flow_run_from_deployment(
                            entry[1], parameters=entry[2]
                        )
                        created.append((entry[0], again.id))
                        still.append((entry, again.id))
                active = still
        waited = time.monotonic() - started
        await asyncio.sleep(3)  # the workers send their log lines in batches
        report = {}
        for name, run_id in created:
            run = await client.read_flow_run(run_id)
            states = sorted(await client.read_flow_run_states(run_id), key=lambda s: s.timestamp)
            logs = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200
            )
            messages = [log.message for log in logs]
            report[str(run_id)] = {
                "deployment": name,
                "state": run.state.type.value if run.state else None,
                "history": [s.name for s in states],
                "running": sum(s.type.value == "RUNNING" for s in states),
                "worker": (run.labels or {}).get("prefect.worker.name"),
                "claimed_by": [m for msg in messages for m in SUBMITTING.findall(msg)],
                "submitted": sum("submitted to infrastructure" in msg for msg in messages),
            }
        workers = await client.read_workers_for_work_pool("sentinel-pool")
        print(json.dumps({
            "waited_s": waited,
            "runs": report,
            "workers": {w.name: (w.status.value if w.status else None) for w in workers},
        }))

asyncio.run(main())
"""


def _stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """The worker needs a second SIGINT to stop promptly (docs/operations.md); then escalate."""
    for sig, wait in ((signal.SIGINT, 2), (signal.SIGINT, 10), (signal.SIGTERM, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pg_system(tmp_path_factory):
    admin = admin_url_or_skip()
    base = tmp_path_factory.mktemp("pg-e2e")
    with (
        fresh_database(admin, "s42e2e_store") as store_url,
        fresh_database(PREFECT_ADMIN_URL or admin, "s42e2e_prefect") as prefect_db,
    ):
        # Prefect's migrations create pg_trgm too; as the database's owner that works only
        # because pg_trgm is a trusted extension (PostgreSQL 13+), so say it here, once.
        owner = create_engine(_psycopg(prefect_db), isolation_level="AUTOCOMMIT")
        with owner.connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        owner.dispose()
        env = e2e.stack_env(
            base,
            _free_port(),
            SENTINEL42_DATABASE_URL=store_url.render_as_string(hide_password=False),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=prefect_db.set(
                drivername="postgresql+asyncpg"
            ).render_as_string(hide_password=False),
            PREFECT_WORKER_QUERY_SECONDS="2",
        )
        e2e.generate_replay_set(base, env)
        t0 = time.monotonic()
        upgrade = _run(
            [str(ROOT / ".venv/bin/prefect"), "server", "database", "upgrade", "-y"],
            env | {"PREFECT_HOME": str(base / "data" / "prefect")},
            300,
        )
        upgrade_s = time.monotonic() - t0
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        with e2e.prefect_stack(env, stop_timeout=180) as (_, startup_s):
            worker_log = base / "data" / "logs" / "second-worker.log"
            second = None
            try:
                with worker_log.open("ab") as log:
                    second = subprocess.Popen(
                        [
                            "bash",
                            "-c",
                            'source scripts/prefect_env.sh && exec "$PREFECT" worker start '
                            f'--pool "$POOL" --name {SECOND_WORKER}',
                        ],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                for _ in range(90):
                    if "started!" in worker_log.read_text(errors="replace"):
                        break
                    assert second.poll() is None, worker_log.read_text(errors="replace")
                    time.sleep(1)
                else:
                    pytest.fail(f"the second worker did not start: {worker_log.read_text()}")
                yield {
                    "env": env,
                    "base": base,
                    "second_pid": second.pid,
                    "store_url": store_url,
                    "prefect_db": prefect_db,
                    "upgrade_s": upgrade_s,
                    "startup_s": startup_s,
                }
            finally:
                if second is not None:
                    _stop_process_group(second)


def test_prefect_and_the_store_both_live_in_postgres(pg_system):
    prefect = create_engine(_psycopg(pg_system["prefect_db"]))
    store = create_engine(_psycopg(pg_system["store_url"]))
    try:
        assert {"flow_run", "deployment", "work_pool"} <= set(inspect(prefect).get_table_names())
        assert {"bars", "decisions", "alembic_version"} <= set(inspect(store).get_table_names())
    finally:
        prefect.dispose()
        store.dispose()
    data = pg_system["base"] / "data"
    assert not (data / "sentinel42.db").exists()
    assert not list((data / "prefect").glob("*.db"))  # no SQLite database in PREFECT_HOME
    print(
        f"prefect server database upgrade: {pg_system['upgrade_s']:.1f} s, "
        f"start_prefect.sh: {pg_system['startup_s']:.1f} s"
    )


def _decisions_by_bar(store_url) -> dict[tuple[str, object], list[tuple[int, str]]]:
    engine = create_engine(_psycopg(store_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    DecisionRow.ticker, DecisionRow.bar_ts, DecisionRow.revision, DecisionRow.run_id
                )
            ).all()
    finally:
        engine.dispose()
    by_bar: dict[tuple[str, object], list[tuple[int, str]]] = {}
    for ticker, bar_ts, revision, run_id in rows:
        by_bar.setdefault((ticker, bar_ts), []).append((revision, run_id))
    return by_bar


def test_two_workers_run_every_flow_run_once_and_revisions_have_no_gaps(pg_system):
    wave = [[TRADING, {"force": True}, True], [REFRESH, {}, False]]
    probe_file = pg_system["base"] / "probe.py"
    probe_file.write_text(_PROBE)
    first = int((pg_system["base"] / "data" / "run" / "worker.pid").read_text())
    first_name = f"sentinel42-{socket.gethostname()}"
    # Which worker sits each wave out (stopped, so it claims nothing): the second, the first,
    # then neither.
    sat_out = [(pg_system["second_pid"], first_name), (first, SECOND_WORKER), (None, None)]
    runs, waited_s = {}, 0.0
    for stopped, must_run in sat_out[:WAVES]:
        if stopped is not None:
            os.kill(stopped, signal.SIGSTOP)
        try:
            probe = _run(
                [str(ROOT / ".venv/bin/python"), str(probe_file), json.dumps([wave]), "300"],
                pg_system["env"],
                400,
            )
        finally:
            if stopped is not None:
                os.kill(stopped, signal.SIGCONT)
        assert probe.returncode == 0, probe.stdout + probe.stderr
        report = json.loads(probe.stdout.strip().splitlines()[-1])
        runs |= report["runs"]
        waited_s += report["waited_s"]
        ran = {r["worker"] for r in report["runs"].values() if r["state"] == "COMPLETED"}
        if must_run is not None:
            assert ran == {must_run}, (must_run, report["runs"])
    time.sleep(5)  # the stopped workers' heartbeats resume
    listed = _run(
        [str(ROOT / ".venv/bin/python"), str(probe_file), "[]", "60"], pg_system["env"], 120
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    workers = json.loads(listed.stdout.strip().splitlines()[-1])["workers"]

    assert workers.get(SECOND_WORKER) == "ONLINE" and workers.get(first_name) == "ONLINE"
    assert list(workers.values()).count("ONLINE") == 2
    for run_id, run in runs.items():
        # At most one worker ever started a process for a run, and it ran once.
        assert run["running"] <= 1 and run["submitted"] <= 1, (run_id, run)
        if run["state"] == "COMPLETED":
            assert run["running"] == 1 and run["submitted"] == 1, (run_id, run)
            assert run["worker"] in workers, (run_id, run)
        else:  # a refresh dropped for colliding with a scheduled one: it never ran
            assert run["state"] == "CANCELLED" and run["running"] == 0, (run_id, run)
    completed = {i: r for i, r in runs.items() if r["state"] == "COMPLETED"}
    trading_ids = {f"flow-{i}" for i, r in completed.items() if r["deployment"] == TRADING}
    assert len(trading_ids) == WAVES
    assert [r["deployment"] for r in completed.values()].count(REFRESH) >= 1

    by_bar = _decisions_by_bar(pg_system["store_url"])
    assert sorted({t for t, _ in by_bar}) == sorted(TICKERS)
    for key, found in by_bar.items():
        assert sorted(r for r, _ in found) == list(range(len(found))), key
        assert len({run for _, run in found}) == len(found), key
    # Every forced run decided each ticker at the replay's last bar: one standing, then revisions.
    newest = max(bar for _, bar in by_bar)
    for ticker in TICKERS:
        assert {run for _, run in by_bar[(ticker, newest)]} == trading_ids

    per_worker: dict[str, int] = {}
    for run in completed.values():
        per_worker[run["worker"]] = per_worker.get(run["worker"], 0) + 1
    histories = sorted({" > ".join(r["history"]) for r in runs.values()})
    # Both workers ran runs (each the wave the other sat out).
    assert set(per_worker) == {first_name, SECOND_WORKER}, per_worker
    print(
        f"{len(completed)} of {len(runs)} runs completed in {waited_s:.1f} s; "
        f"runs per worker: {per_worker}; state histories: {histories}"
    )
