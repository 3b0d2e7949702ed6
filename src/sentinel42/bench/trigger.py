"""``sentinel42 bench trigger``: a forced trading run through a running server and worker.

Starts nothing: it asks the server at ``PREFECT_API_URL`` for a run of the deployment, waits for
a terminal state and reads the run's state history back from the Prefect API. The intervals
between the state timestamps (the server's clock) say where the time goes:

- Scheduled -> Pending: the worker noticing the run (its poll interval,
  ``PREFECT_WORKER_QUERY_SECONDS``);
- Pending -> Running: the flow-run process starting (interpreter, imports of Prefect, the flows
  module and Sentinel42, the code pulled from the deployment's source);
- Running -> Completed: the flow itself (its task runs are listed with their own durations).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sentinel42.errors import ConfigError, Sentinel42Error

DEPLOYMENT = "trading-flow/trading-production"


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 3) if a is not None and b is not None else None


def _first(states: list[Any], type_name: str) -> datetime | None:
    stamps = [s.timestamp for s in states if s.type.value == type_name]
    return min(stamps) if stamps else None


def summarize_states(states: list[Any]) -> dict[str, Any]:
    """Intervals between a run's first Scheduled, Pending and Running states and its last state.

    Args:
        states: the run's states (``read_flow_run_states``), any order.
    """
    ordered = sorted(states, key=lambda s: s.timestamp)
    final = ordered[-1] if ordered else None
    scheduled = _first(ordered, "SCHEDULED")
    pending = _first(ordered, "PENDING")
    running = _first(ordered, "RUNNING")
    end = final.timestamp if final is not None and final.is_final() else None
    return {
        "final_state": final.name if final is not None else None,
        "final_type": final.type.value if final is not None else None,
        "scheduled_to_pending_s": _seconds(scheduled, pending),
        "pending_to_running_s": _seconds(pending, running),
        "scheduled_to_running_s": _seconds(scheduled, running),
        "running_to_completed_s": _seconds(running, end),
        "total_s": _seconds(scheduled, end),
        "states": [{"name": s.name, "type": s.type.value, "at": s.timestamp} for s in ordered],
    }


def bench_trigger(
    deployment: str = DEPLOYMENT,
    parameters: dict[str, Any] | None = None,
    *,
    timeout_s: float = 600.0,
    poll_s: float = 0.2,
) -> dict[str, Any]:
    """Create a run of ``deployment`` (default: the forced trading run), wait, report its timing.

    Returns:
        ``run_name``, ``flow_run_id``, ``final_state``, the intervals of
        :func:`summarize_states`, ``observed_s`` (this client's wall time from creating the run
        to seeing it final) and ``tasks`` (each task run's name, state and seconds).

    Raises:
        ConfigError: no API URL, no server answering there, or no such deployment.
        Sentinel42Error: the run did not end within ``timeout_s`` (it is left running).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError(
            "PREFECT_API_URL is not set: start the stack (make prefect-start) and point "
            "PREFECT_API_URL at it; this benchmark starts nothing itself"
        )
    params = {"force": True} if parameters is None else parameters
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
        if problem is not None:
            raise ConfigError(f"no Prefect server answers at {url}: {problem}")
        try:
            target = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise ConfigError(
                f"no deployment {deployment!r} on {url} (make prefect-start registers it)"
            ) from None
        started = time.perf_counter()
        run = client.create_flow_run_from_deployment(target.id, parameters=params)
        while run.state is None or not run.state.is_final():
            if time.perf_counter() - started > timeout_s:
                state = run.state.name if run.state else "no state"
                raise Sentinel42Error(
                    f"flow run {run.name} ({run.id}) still {state} after {timeout_s:.0f} s; "
                    "is a worker polling the pool?"
                )
            time.sleep(poll_s)
            run = client.read_flow_run(run.id)
        observed = time.perf_counter() - started
        states = client.read_flow_run_states(run.id)
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
    ordered = sorted(
        task_runs,
        key=lambda t: t.start_time.timestamp() if t.start_time is not None else float("inf"),
    )
    tasks = [
        {
            "name": t.name,
            "state": t.state.name if t.state else None,
            "start": t.start_time,
            "seconds": _seconds(t.start_time, t.end_time),
        }
        for t in ordered
    ]
    return {
        "deployment": deployment,
        "parameters": params,
        "api_url": url,
        "run_name": run.name,
        "flow_run_id": str(run.id),
        **summarize_states(list(states)),
        "observed_s": round(observed, 3),
        "tasks": tasks,
    }
