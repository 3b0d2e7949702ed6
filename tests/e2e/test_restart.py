"""Stops, restarts and crashes with a trading run in flight, through the real scripts.

One system (server, worker, exporter) on a free port, with a temporary data folder, a two-ticker
replay set and a password on the API (``PREFECT_SERVER_API_AUTH_STRING``, so every part must send
it). A run is held by a FIFO it opens and the test alone may write to (only that run gets it, as
a job variable), so "in flight" is a state the test waits for, not a race it hopes to win: the
stop test holds a run inside its ``data-refresh-flow`` subflow (its replay folder's news file is
the FIFO); the kill test holds one inside its decision write, one row written and none committed
(``SENTINEL42_TEST_HOLD_DECISIONS`` names the FIFO), and kills it there.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel42.persistence.decisions import HOLD_DECISIONS_ENV
from tests.e2e.conftest import stack_env
from tests.e2e.test_prefect_end_to_end import ROOT, _free_port, _pid_alive, _run

pytestmark = pytest.mark.e2e
TICKERS = ["AAPL", "MSFT"]
SENTINEL42 = str(ROOT / ".venv/bin/sentinel42")
PREFECT = str(ROOT / ".venv/bin/prefect")
TRADING = "trading-flow/trading-production"
AUTH = "sentinel42:restart-test-password"


def _env(base: Path, port: int) -> dict[str, str]:
    return stack_env(
        base,
        port,
        PREFECT_SERVER_API_AUTH_STRING=AUTH,
        PREFECT_API_AUTH_STRING=AUTH,
        PREFECT_WORKER_QUERY_SECONDS="2",
        SENTINEL42_TICKERS=",".join(TICKERS),
    )


def _scripts(env: dict[str, str]) -> dict[str, str]:
    """The scripts get the server's password only: prefect_env.sh hands it to the clients."""
    return {k: v for k, v in env.items() if k != "PREFECT_API_AUTH_STRING"}


def _start(env: dict[str, str]) -> str:
    started = _run(["make", "-s", "prefect-start"], _scripts(env), 300)
    assert started.returncode == 0, started.stdout + started.stderr
    # Only the runs the tests start: no scheduled refresh competes for the two cores.
    paused = _run([PREFECT, "deployment", "schedule", "pause", "--all"], env, 60)
    assert paused.returncode == 0, paused.stdout + paused.stderr
    return started.stdout


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("restart")
    port = _free_port()
    env = _env(base, port)
    generate = [SENTINEL42, "replay", "generate", "--out", str(base / "replay")]
    gen = _run([*generate, "--end", "2026-11-25", "--sessions", "5", "--json"], env, 120)
    assert gen.returncode == 0, gen.stderr
    # The held replay folder: the same prices, and a news file that blocks whoever opens it.
    hold = base / "hold"
    (hold / "news").mkdir(parents=True)
    for part in ("prices", "daily"):
        if (base / "replay" / part).exists():
            (hold / part).symlink_to(base / "replay" / part)
    os.mkfifo(hold / "news" / "held.jsonl")
    os.mkfifo(base / "hold-decisions")
    start_output = _start(env)
    try:
        yield {
            "env": env,
            "base": base,
            "hold": hold,
            "hold_decisions": base / "hold-decisions",
            "run_dir": base / "data" / "run",
            "api": f"http://127.0.0.1:{port}/api",
            "start": start_output,
        }
    finally:
        stopped = _run(["make", "-s", "prefect-stop"], _scripts(env), 180)
        print(stopped.stdout, stopped.stderr)


def _api(system: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    token = base64.b64encode(AUTH.encode()).decode()
    response = httpx.request(
        method,
        system["api"] + path,
        json=body,
        headers={"Authorization": f"Basic {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def _trigger(system: dict[str, Any], job_env: dict[str, str]) -> str:
    args = [PREFECT, "deployment", "run", TRADING, "--param", "force=true"]
    args += ["--job-variable", "env=" + json.dumps(job_env)]
    out = _run(args, system["env"], 120)
    assert out.returncode == 0, out.stdout + out.stderr
    found = re.search(r"UUID: ([0-9a-f-]{36})", out.stdout)
    assert found, out.stdout
    return found.group(1)


def _run_and_watch(system: dict[str, Any]) -> tuple[str, str]:
    """A forced trading run, watched to its end: (flow run id, output)."""
    args = [PREFECT, "deployment", "run", TRADING, "--param", "force=true"]
    out = _run([*args, "--watch", "--watch-timeout", "400"], system["env"], 450)
    found = re.search(r"UUID: ([0-9a-f-]{36})", out.stdout)
    assert found, out.stdout + out.stderr
    return found.group(1), out.stdout + out.stderr


def _state(system: dict[str, Any], run_id: str) -> str:
    return str(_api(system, "GET", f"/flow_runs/{run_id}")["state_name"])


def _subflows(system: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}
    return list(_api(system, "POST", "/flow_runs/filter", body))


def _wait_until_held(system: dict[str, Any], run_id: str, timeout: float = 240) -> str:
    """Wait until the run and its data-refresh subflow are Running; the subflow's id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        subs = _subflows(system, run_id)
        if _state(system, run_id) == "Running" and subs and subs[0]["state_name"] == "Running":
            return str(subs[0]["id"])
        time.sleep(1)
    pytest.fail(f"run {run_id} not held in its subflow after {timeout} s: {_state(system, run_id)}")


def _wait_until_deciding(system: dict[str, Any], run_id: str, timeout: float = 240) -> int:
    """Wait until the run's decision write has opened the FIFO (so it holds the transaction,
    one row written); the FIFO's write end, which the caller keeps open to keep it there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return os.open(system["hold_decisions"], os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:  # ENXIO: nobody has it open for reading yet
            if error.errno != errno.ENXIO:
                raise
        time.sleep(0.5)
    pytest.fail(f"run {run_id} not held in its decision write after {timeout} s: "
                f"{_state(system, run_id)}")  # fmt: skip


def _trading_slots(system: dict[str, Any]) -> int:
    deployment = _api(system, "GET", f"/deployments/name/{TRADING}")
    return int(deployment["global_concurrency_limit"]["active_slots"])


def _flow_run_processes(system: dict[str, Any]) -> list[dict[str, Any]]:
    out = _run([SENTINEL42, "runs", "processes", "--json"], system["env"], 60)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout)["processes"])


def _decisions_per_run(system: dict[str, Any]) -> dict[str, int]:
    """Stored decisions per flow run id (the store's run_id is "flow-<flow run id>")."""
    db = system["base"] / "data" / "sentinel42.db"
    if not db.exists():
        return {}
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT run_id, COUNT(*) FROM decisions GROUP BY run_id").fetchall()
    return {str(run_id).removeprefix("flow-"): int(n) for run_id, n in rows}


def test_stop_and_start_with_a_run_in_flight(system):
    t0 = time.monotonic()
    first = _trigger(system, {"SENTINEL42_REPLAY_DIR": str(system["hold"])})
    first_sub = _wait_until_held(system, first)
    assert _trading_slots(system) == 1
    flow_runs = [p for p in _flow_run_processes(system) if p["flow_run_id"] == first]
    assert flow_runs, "the held run has no flow-run process on this host"
    pids = [int((system["run_dir"] / f"{n}.pid").read_text()) for n in ("server", "worker")]
    pids += [p["pid"] for p in flow_runs]

    t_stop = time.monotonic()
    stopped = _run(["make", "-s", "prefect-stop"], _scripts(system["env"]), 180)
    stop_s = time.monotonic() - t_stop
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "Running -> Cancelled" in stopped.stdout, stopped.stdout
    time.sleep(1)
    assert [p for p in pids if _pid_alive(p)] == []
    assert not list(system["run_dir"].glob("*.pid"))

    t_start = time.monotonic()
    _start(system["env"])
    start_s = time.monotonic() - t_start
    assert _state(system, first) == "Cancelled"
    assert _state(system, first_sub) == "Cancelled"
    assert _trading_slots(system) == 0

    second, output = _run_and_watch(system)
    assert "Completed" in output, output
    assert _decisions_per_run(system).get(second) == len(TICKERS)
    print(
        f"stop {stop_s:.1f} s, start {start_s:.1f} s, whole test {time.monotonic() - t0:.1f} s; "
        f"stop said:\n{stopped.stdout}"
    )


def test_killed_worker_and_flow_run_end_crashed_and_the_next_run_completes(system):
    t0 = time.monotonic()
    before = _decisions_per_run(system)
    run = _trigger(system, {HOLD_DECISIONS_ENV: str(system["hold_decisions"])})
    hold = _wait_until_deciding(system, run)
    try:
        # Inside the transaction: one decision written, none visible to anyone else.
        assert _state(system, run) == "Running"
        assert run not in _decisions_per_run(system)
        worker = int((system["run_dir"] / "worker.pid").read_text())
        groups = {p["pgid"] for p in _flow_run_processes(system) if p["flow_run_id"] == run}
        assert groups
        # The worker and its flow-run process die at once (kill -9, the OOM killer) in the
        # middle of the decision write: nothing is left to report the run's end.
        for group in (worker, *groups):
            os.killpg(group, signal.SIGKILL)
    finally:
        os.close(hold)
    time.sleep(3)
    sub = str(_subflows(system, run)[0]["id"])  # its data refresh completed before the write
    assert _state(system, run) == "Running" and _state(system, sub) == "Completed"
    assert _trading_slots(system) == 1

    cleanup_args = [SENTINEL42, "runs", "cleanup", "--grace-seconds", "0", "--json"]
    cleanup = _run(cleanup_args, system["env"], 120)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    ended = {r["id"]: r["new_state"] for r in json.loads(cleanup.stdout)["ended"]}
    assert ended.get(run) == "Crashed" and sub not in ended, ended
    assert _state(system, run) == "Crashed"
    assert _trading_slots(system) == 0

    restarted = _start(system["env"])  # the server is up; the worker starts again
    assert "runs cleanup: 0 ended" in restarted, restarted
    nxt, output = _run_and_watch(system)
    assert "Completed" in output, output
    after = _decisions_per_run(system)
    # Killed in the middle of its decision write (one row written): none of its decisions
    # were stored. One transaction per run (DecisionStore.save_decisions): all or nothing.
    assert run not in after, after
    assert after.get(nxt) == len(TICKERS)
    assert set(after.values()) == {len(TICKERS)}, after
    assert {k: v for k, v in after.items() if k in before} == before
    print(f"kill, cleanup, restart and the next run: {time.monotonic() - t0:.1f} s")


def test_the_api_asks_for_the_password_and_every_part_sends_it(system):
    refused = httpx.post(system["api"] + "/flow_runs/filter", json={}, timeout=10)
    assert refused.status_code == 401
    metrics_port = system["env"]["SENTINEL42_METRICS_PORT"]
    scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).text
    assert "sentinel42_prefect_up 1.0" in scrape  # the exporter sent it
    # The worker and the flow runs sent it too: the runs above completed.


def test_start_refuses_an_open_api_without_a_password(tmp_path):
    port = _free_port()
    env = _env(tmp_path, port) | {"SENTINEL42_PREFECT_HOST": "0.0.0.0"}
    del env["PREFECT_SERVER_API_AUTH_STRING"], env["PREFECT_API_AUTH_STRING"]
    refused = _run(["bash", "scripts/start_prefect.sh"], env, 120)
    assert refused.returncode == 2
    assert refused.stdout == ""
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SENTINEL42_PREFECT_HOST=0.0.0.0 "), lines
    assert "PREFECT_SERVER_API_AUTH_STRING" in lines[0]
    assert not list((tmp_path / "data" / "run").glob("*.pid"))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
