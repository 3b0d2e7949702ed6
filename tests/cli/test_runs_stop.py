"""``make prefect-stop`` ends what it stops Cancelled, and what had already died Crashed
(issue 18 item 5), against a test Prefect server (the helpers of tests/ops/test_runs.py)."""

from __future__ import annotations

from sentinel42.ops import stale_runs as runs
from tests.ops.test_runs import _deployment, _now, _running_run, _state, harness, tag

__all__ = ["harness", "tag"]  # the fixtures, imported for pytest


def test_stopping_crashes_a_subflow_whose_parent_process_died_and_cancels_a_stopped_one(tag):
    from prefect.states import Cancelled, Crashed

    from tests.ops.test_runs import _client

    _, deployment_id = _deployment(tag)
    died, died_sub = _running_run(deployment_id, with_subflow=f"{tag}-trading")
    with _client() as client:  # what the worker records when the flow-run process is killed
        client.set_flow_run_state(died.id, Crashed(message="process exited -9"), force=True)
    stopped, stopped_sub = _running_run(deployment_id, with_subflow=f"{tag}-trading")
    with _client() as client:  # the worker ended this one on the stop's cancel
        client.set_flow_run_state(stopped.id, Cancelled(), force=True)

    report = runs.end_runs(mode="cancelled", now=_now())

    assert {r.id: r.new_state for r in report.ended} == {
        str(died_sub.id): "Crashed",
        str(stopped_sub.id): "Cancelled",
    }
    assert _state(died_sub.id) == "Crashed" and _state(stopped_sub.id) == "Cancelled"


def test_stopping_crashes_a_running_run_that_had_no_process_when_the_stop_began(tag):
    _, deployment_id = _deployment(tag)
    gone, gone_sub = _running_run(deployment_id, with_subflow=f"{tag}-trading")

    report = runs.end_runs(mode="cancelled", now=_now(), live_at_stop=set())

    assert {r.id: r.new_state for r in report.ended} == {
        str(gone.id): "Crashed",
        str(gone_sub.id): "Crashed",
    }
    alive, alive_sub = _running_run(deployment_id, with_subflow=f"{tag}-trading")
    stopped = runs.end_runs(mode="cancelled", now=_now(), live_at_stop={str(alive.id)})
    assert _state(alive.id) == _state(alive_sub.id) == "Cancelled"
    assert {r.new_state for r in stopped.ended} == {"Cancelled"}
