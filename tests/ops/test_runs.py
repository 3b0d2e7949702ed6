"""Runs left in flight: finding their processes in /proc, ending them and freeing their slots."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from sentinel42.ops import processes
from sentinel42.ops import stale_runs as runs
from sentinel42.ops.processes import RUN_ID_VAR as RUN

API = "http://127.0.0.1:4321/api"
OTHER_API = "http://127.0.0.1:9999/api"


# --- /proc ---------------------------------------------------------------------------------------


def _process(
    proc: Path,
    pid: int,
    ppid: int,
    pgid: int,
    env: dict[str, str] | None,
    cmdline: str = "python",
    comm: str = "python",
) -> None:
    d = proc / str(pid)
    d.mkdir(parents=True)
    (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pgid} {pgid} 0 -1 4194560 0 0")
    (d / "cmdline").write_bytes(cmdline.replace(" ", "\0").encode() + b"\0")
    if env is not None:
        (d / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    proc = tmp_path / "proc"
    engine = "python -m prefect.engine"
    _process(proc, 1, 0, 1, {})
    _process(proc, 100, 1, 100, {"PREFECT_API_URL": API}, "prefect worker start")  # the worker
    # A flow run: its own session (supervisor and engine), started by the worker.
    _process(proc, 200, 100, 200, {"PREFECT_API_URL": API, RUN: "run-a"}, engine)
    _process(proc, 201, 200, 200, {"PREFECT_API_URL": API + "/", RUN: "run-a"}, engine)
    # Another Prefect server's flow run on the same host: not ours.
    _process(proc, 300, 1, 300, {"PREFECT_API_URL": OTHER_API, RUN: "run-x"}, engine)
    # A helper the worker started, without a run in its environment; a comm with ") " in it.
    _process(proc, 400, 100, 100, {}, "sh -c true", comm="odd) name")
    # A flow run whose worker died (reparented to init).
    _process(proc, 600, 1, 600, {"PREFECT_API_URL": API, RUN: "run-b"}, engine)
    # Another user's flow-run process: its environment cannot be read.
    _process(proc, 700, 1, 700, None, engine)
    _process(proc, 800, 1, 800, None, "bash")  # another user's shell: not counted
    return proc


def test_flow_run_processes_finds_this_apis_runs_and_the_workers_descendants(fake_proc):
    scan = processes.flow_run_processes(API, worker_pid=100, proc=fake_proc)
    assert sorted(p.pid for p in scan.processes) == [200, 201, 400, 600]
    assert scan.run_ids == {"run-a", "run-b"}
    assert scan.groups == [100, 200, 600]
    assert scan.unreadable == 1


def test_flow_run_processes_without_a_worker_finds_orphans_by_their_environment(fake_proc):
    scan = processes.flow_run_processes(API, proc=fake_proc)
    assert sorted(p.pid for p in scan.processes) == [200, 201, 600]
    assert processes.flow_run_processes(OTHER_API, proc=fake_proc).run_ids == {"run-x"}


def test_flow_run_processes_never_lists_the_caller_or_its_group(fake_proc):
    me = os.getpid()
    _process(fake_proc, me, 1, os.getpgrp(), {"PREFECT_API_URL": API, RUN: "self"})
    scan = processes.flow_run_processes(API, worker_pid=100, proc=fake_proc)
    assert me not in {p.pid for p in scan.processes}
    assert os.getpgrp() not in scan.groups


def test_flow_run_processes_without_proc_finds_nothing(tmp_path):
    scan = processes.flow_run_processes(API, proc=tmp_path / "absent")
    assert scan.processes == [] and scan.unreadable == 0


# --- against a test server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def tag(harness, monkeypatch) -> str:
    """A tag of this test's own: end_runs sees only the deployments created here."""
    name = f"sentinel42-test-{uuid4().hex[:8]}"
    monkeypatch.setattr(runs, "TAG", name)
    return name


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _deployment(tag: str) -> tuple[object, object]:
    """A flow with a deployment tagged ``tag`` (concurrency_limit=1); returns (flow, id)."""
    from prefect import flow

    @flow(name=f"{tag}-trading")
    def trading() -> None:
        pass

    with _client() as client:
        flow_id = client.create_flow(trading)
        deployment_id = client.create_deployment(
            flow_id, f"{tag}-production", concurrency_limit=1, tags=[tag]
        )
    return trading, deployment_id


def _running_run(deployment_id, with_subflow: str | None = None):
    """A run of the deployment taken to Running (it holds the slot), with a Running subflow."""
    from prefect import flow, task
    from prefect.states import Pending, Running

    with _client() as client:
        run = client.create_flow_run_from_deployment(deployment_id)
        assert client.set_flow_run_state(run.id, Pending()).state.is_pending()
        assert client.set_flow_run_state(run.id, Running()).state.is_running()
        sub = None
        if with_subflow:

            @task(name="data-refresh-flow")
            def call() -> None:
                pass

            @flow(name=with_subflow)
            def refresh() -> None:
                pass

            parent_task = client.create_task_run(call, flow_run_id=run.id, dynamic_key="0")
            sub = client.create_flow_run(refresh, parent_task_run_id=parent_task.id)
            client.set_flow_run_state(sub.id, Running(), force=True)
    return run, sub


def _state(run_id) -> str:
    with _client() as client:
        return client.read_flow_run(run_id).state.name


def _slots(deployment_id) -> int:
    with _client() as client:
        return client.read_deployment(deployment_id).global_concurrency_limit.active_slots


def _now() -> datetime:
    return datetime.now(UTC)


def test_cleanup_crashes_a_run_without_process_and_its_subflow_and_frees_the_slot(tag):
    _, deployment_id = _deployment(tag)
    run, sub = _running_run(deployment_id, with_subflow=f"{tag}-trading")
    assert _slots(deployment_id) == 1

    report = runs.end_runs(mode="crashed", now=_now())

    assert [r.id for r in report.ended] == [str(sub.id), str(run.id)]  # the subflow first
    assert _state(run.id) == _state(sub.id) == "Crashed"
    assert report.ended[0].parent_id == str(run.id)
    assert report.ended[1].deployment == f"{tag}-production"
    assert _slots(deployment_id) == 0  # released by the server's own rule, nothing left to reset
    assert report.slots == []
    again = runs.end_runs(mode="crashed", now=_now())
    assert again.ended == again.left == again.slots == []


def test_cleanup_leaves_a_run_whose_process_lives_and_recent_runs(tag):
    _, deployment_id = _deployment(tag)
    run, sub = _running_run(deployment_id, with_subflow=f"{tag}-trading")

    live = runs.end_runs(mode="crashed", now=_now(), live_run_ids={str(run.id)})
    recent = runs.end_runs(mode="crashed", now=_now(), grace=timedelta(minutes=5))

    assert {r.id for r in live.left} == {r.id for r in recent.left} == {str(run.id), str(sub.id)}
    assert live.ended == recent.ended == []
    assert _state(run.id) == "Running" and _slots(deployment_id) == 1
    runs.end_runs(mode="crashed", now=_now())  # leave nothing in flight


def test_stopping_cancels_the_runs_in_flight(tag):
    _, deployment_id = _deployment(tag)
    run, sub = _running_run(deployment_id, with_subflow=f"{tag}-trading")

    report = runs.end_runs(mode="cancelled", now=_now())

    assert {r.new_state for r in report.ended} == {"Cancelled"}
    assert _state(run.id) == _state(sub.id) == "Cancelled"
    assert _slots(deployment_id) == 0


def test_a_cancelling_run_ends_cancelled(tag):
    from prefect.states import Cancelling

    _, deployment_id = _deployment(tag)
    run, _ = _running_run(deployment_id)
    with _client() as client:
        client.set_flow_run_state(run.id, Cancelling(), force=True)

    runs.end_runs(mode="crashed", now=_now())

    assert _state(run.id) == "Cancelled"
    assert _slots(deployment_id) == 0


def test_a_stale_slot_with_no_run_in_flight_is_released(tag):
    """What a server restart leaves: the slot counted, its lease gone, no run in flight."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
    from prefect.states import Pending

    trading, deployment_id = _deployment(tag)
    with _client() as client:
        client.update_global_concurrency_limit(
            f"deployment:{deployment_id}", GlobalConcurrencyLimitUpdate(active_slots=1)
        )
        blocked = client.create_flow_run_from_deployment(deployment_id)
        assert client.set_flow_run_state(blocked.id, Pending()).state.name == (
            "AwaitingConcurrencySlot"
        )
        adhoc = client.create_flow_run(trading)  # an ad hoc run of the flow: not ours to end
        client.set_flow_run_state(adhoc.id, Pending(), force=True)

    report = runs.end_runs(mode="crashed", now=_now())

    assert report.ended == []
    assert [(s.deployment, s.active_slots, s.runs_in_flight) for s in report.slots] == [
        (f"{tag}-production", 1, 0)
    ]
    assert _slots(deployment_id) == 0
    assert _state(adhoc.id) == "Pending"
    with _client() as client:  # the next run gets the slot
        assert client.set_flow_run_state(blocked.id, Pending()).state.is_pending()
    runs.end_runs(mode="crashed", now=_now())


def test_cli_cleanup_reports_in_json(tag, monkeypatch):
    from typer.testing import CliRunner

    from sentinel42.cli import app

    _, deployment_id = _deployment(tag)
    run, sub = _running_run(deployment_id, with_subflow=f"{tag}-trading")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # the harness's URL, from the settings

    out = CliRunner().invoke(app, ["runs", "cleanup", "--grace-seconds", "0", "--json"])

    assert out.exit_code == 0, out.output
    document = json.loads(out.stdout)
    assert [(r["id"], r["state"], r["new_state"]) for r in document["ended"]] == [
        (str(sub.id), "Running", "Crashed"),
        (str(run.id), "Running", "Crashed"),
    ]
    assert document["left"] == [] and document["slots"] == []


def test_cancel_in_flight_asks_the_root_runs_and_end_runs_finishes_what_is_left(tag):
    _, deployment_id = _deployment(tag)
    run, sub = _running_run(deployment_id, with_subflow=f"{tag}-trading")

    t0 = datetime.now(UTC)
    asked = runs.cancel_in_flight(wait=1.5, live_run_ids=lambda: {str(run.id)}, poll=0.2)
    waited = datetime.now(UTC) - t0

    assert [(r.id, r.state) for r in asked] == [(str(run.id), "Running")]  # not the subflow
    assert asked[0].new_state in {"Cancelling", "Cancelled"}
    assert waited >= timedelta(seconds=1.5)  # its process "lives": waited for the worker
    gone = runs.cancel_in_flight(wait=30, live_run_ids=set, poll=0.2)
    assert gone == []  # nothing left to ask
    report = runs.end_runs(mode="cancelled", now=_now())
    assert _state(run.id) == _state(sub.id) == "Cancelled"
    assert str(sub.id) in {r.id for r in report.ended}
    assert _slots(deployment_id) == 0
