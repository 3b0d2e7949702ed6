"""The user's path, end to end, through a real Prefect server, work pool, deployments and worker.

Starts everything with scripts/start_prefect.sh on a free port with a temporary data folder and a
generated replay set, triggers the trading deployment with and without force, reads the decisions
with the CLI, then stops everything with scripts/stop_prefect.sh and checks nothing is left.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from tests.e2e import conftest as e2e
from tests.e2e.conftest import ROOT, TICKERS, _free_port, _run, expected_action

pytestmark = pytest.mark.e2e


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    env = e2e.stack_env(base, _free_port(), SENTINEL42_MODEL_EPOCHS="8")
    e2e.generate_replay_set(base, env)
    with e2e.prefect_stack(env) as (started, startup_s):
        yield {
            "env": env,
            "base": base,
            "run_dir": base / "data" / "run",
            "startup_s": startup_s,
            "start": started,
        }


def test_start_is_idempotent_and_lists_the_deployments(system):
    again = _run(["bash", "scripts/start_prefect.sh"], system["env"], 60)
    assert again.returncode == 0
    assert "already running" in again.stdout
    listing = _run(
        [str(ROOT / ".venv/bin/prefect"), "deployment", "ls"],
        system["env"] | {"COLUMNS": "250"},
        60,
    )
    assert listing.returncode == 0, listing.stderr
    for name in (
        "data-refresh-flow/data-refresh-production",
        "trading-flow/trading-production",
        "full-system-flow/full-system-production",
    ):
        assert name in listing.stdout


def test_trading_outside_the_session_records_nothing(system):
    # 16:20 New York: past the 16:02 run that decides the session's last bar.
    after_the_close = {"SENTINEL42_REPLAY_AS_OF": "2026-11-25T16:20:00-05:00"}
    run = _run(
        [
            str(ROOT / ".venv/bin/prefect"),
            "deployment",
            "run",
            "trading-flow/trading-production",
            "--job-variable",
            "env=" + json.dumps(after_the_close),
            "--watch",
            "--watch-timeout",
            "240",
        ],
        system["env"],
        300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Completed" in run.stdout
    decisions = _run([str(ROOT / ".venv/bin/sentinel42"), "decisions", "--json"], system["env"], 60)
    assert json.loads(decisions.stdout) == []


def test_forced_trading_run_records_one_decision_per_ticker(system):
    t0 = time.monotonic()
    run = _run(
        [
            str(ROOT / ".venv/bin/prefect"),
            "deployment",
            "run",
            "trading-flow/trading-production",
            "--param",
            "force=true",
            "--watch",
            "--watch-timeout",
            "400",
        ],
        system["env"],
        450,
    )
    elapsed = time.monotonic() - t0
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Completed" in run.stdout
    out = _run([str(ROOT / ".venv/bin/sentinel42"), "decisions", "--json"], system["env"], 60)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert sorted(r["ticker"] for r in rows) == TICKERS
    for row in rows:  # each ticker's first decision: from flat, by the bands
        assert row["action"] == expected_action(row["inputs"]), row
        assert row["reason"].startswith(f"{row['action']}: "), row["reason"]
        assert "close" in row["inputs"] and "fused" in row["inputs"]
        assert "lstm" in row["models"]
    status = json.loads(
        _run([str(ROOT / ".venv/bin/sentinel42"), "status", "--json"], system["env"], 60).stdout
    )
    assert all(t["newest_bar_ts"] for t in status["tickers"])
    print(f"startup {system['startup_s']:.1f} s, forced trading run {elapsed:.1f} s")


def test_full_system_bootstrap_trains_a_model_and_decides(system):
    run = _run(
        [
            str(ROOT / ".venv/bin/prefect"),
            "deployment",
            "run",
            "full-system-flow/full-system-production",
            "--watch",
            "--watch-timeout",
            "500",
        ],
        system["env"],
        560,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Completed" in run.stdout
    listed = _run(
        [str(ROOT / ".venv/bin/sentinel42"), "model", "list", "--json"], system["env"], 60
    )
    models = json.loads(listed.stdout)
    assert len(models["models"]) == 1  # trained, then promoted or refused with its numbers
    model = models["models"][0]
    assert model["reason"]
    rows = json.loads(
        _run([str(ROOT / ".venv/bin/sentinel42"), "decisions", "--json"], system["env"], 60).stdout
    )
    assert sorted(r["ticker"] for r in rows) == TICKERS
    if models["current"]:
        assert all(r["models"]["lstm"] == models["current"] for r in rows)
        assert all(r["models"]["lstm_validated_accuracy"] is not None for r in rows)


def test_a_forced_run_decides_with_the_promoted_model(system):
    """The model the bootstrap above trained, promoted in the store's registry (by hand: its
    gate may have refused it): a forced trading run through the server and worker decides with
    it, and each of its decisions names that version and carries its prediction."""
    env, sentinel42 = system["env"], str(ROOT / ".venv/bin/sentinel42")
    models = json.loads(_run([sentinel42, "model", "list", "--json"], env, 60).stdout)["models"]
    version = models[0]["version"]
    promote = (
        "import sys; from sentinel42.model.registry import ModelRegistry; "
        "from sentinel42.settings import load_settings; "
        "ModelRegistry(load_settings().models_location).promote(sys.argv[1])"
    )
    promoted = _run([str(ROOT / ".venv/bin/python"), "-c", promote, version], env, 120)
    assert promoted.returncode == 0, promoted.stderr
    listed = json.loads(_run([sentinel42, "model", "list", "--json"], env, 60).stdout)
    assert listed["current"] == version, listed
    run = _run(
        [
            str(ROOT / ".venv/bin/prefect"), "deployment", "run", "trading-flow/trading-production",
            "--param", "force=true", "--watch", "--watch-timeout", "400",
        ],
        env,
        450,
    )  # fmt: skip
    assert run.returncode == 0 and "Completed" in run.stdout, run.stdout + run.stderr
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
    assert run_id, run.stdout
    args = [sentinel42, "decisions", "--all-revisions", "--limit", "100", "--json"]
    stored = json.loads(_run(args, env, 60).stdout)
    rows = [r for r in stored if r["run_id"] == f"flow-{run_id.group(1)}"]
    assert sorted(r["ticker"] for r in rows) == TICKERS, stored
    for row in rows:
        assert row["models"]["lstm"] == version, row["models"]
        p_up = row["inputs"]["p_up"]
        assert 0.0 < p_up < 1.0, row["inputs"]
        assert row["inputs"]["model_signal"] == pytest.approx(2 * p_up - 1, abs=1e-5)
        assert f"LSTM {version}" in row["reason"] and f"P(up)={p_up:.3f}" in row["reason"]
        assert "no promoted model" not in row["reason"], row["reason"]


def test_stop_leaves_no_process_behind(system):
    pids = [
        int((system["run_dir"] / f"{n}.pid").read_text()) for n in ("server", "worker", "metrics")
    ]
    assert all(_pid_alive(p) for p in pids)
    stopped = _run(["bash", "scripts/stop_prefect.sh"], system["env"], 120)
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(1)
    assert not any(_pid_alive(p) for p in pids)
    assert not list(system["run_dir"].glob("*.pid"))
