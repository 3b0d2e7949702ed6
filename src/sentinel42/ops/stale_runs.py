"""Flow runs that a stop or a crash left in flight: their states and their concurrency slots.

A run whose process dies without reporting stays Running for good, and so do its subflow runs
(they run inside the same process). Each Sentinel42 deployment has ``concurrency_limit=1``: the
server keeps it as a global concurrency limit named
``deployment:<id>``, takes a slot when a run goes Pending and gives it back when the run leaves
Pending/Running/Cancelling. The lease behind the slot lives in the server's memory (Prefect's
default lease storage), so a slot taken before a server restart is never reclaimed by the server:
every later run of that deployment waits in ``AwaitingConcurrencySlot``. Hence:

- :func:`end_runs` ends the in-flight runs of Sentinel42's deployments and their subflow runs
  through the API (``force``; leaving Running releases the slot) and then sets each deployment's
  ``active_slots`` back to the number of its runs still in flight. Which runs still have a
  process is :func:`sentinel42.ops.processes.flow_run_processes`'s to say.
- :func:`cancel_in_flight` asks the worker to cancel them first, as a stop does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.objects import FlowRun

logger = logging.getLogger(__name__)

TAG = "sentinel42"  # flows/deployments.py tags every Sentinel42 deployment with it
ACTIVE_TYPES = ("PENDING", "RUNNING", "CANCELLING")  # the states that hold a deployment's slot
PAGE = 200
MAX_PAGES = 5
MAX_DEPTH = 10  # subflow nesting followed up to the root run
CRASHED_MESSAGE = (
    "Its process is gone (the worker or the machine stopped without ending it); "
    "marked Crashed by sentinel42 runs cleanup"
)
STOPPED_MESSAGE = "Stopped while in flight (make prefect-stop: sentinel42 runs cleanup --stopping)"
_DIED_MESSAGE = (
    "Its process was gone before the stop (its run ended, or it had no process); marked "
    "Crashed by sentinel42 runs cleanup --stopping"
)


@dataclass(frozen=True)
class RunRecord:
    """A flow run as the cleanup saw it."""

    id: str
    name: str
    flow: str
    deployment: str  # "" for a subflow run
    parent_id: str | None  # the flow run that called this subflow
    state: str  # before the cleanup
    new_state: str | None = None  # after it; None when left alone


@dataclass(frozen=True)
class SlotRelease:
    deployment: str
    limit_name: str
    active_slots: int  # before
    runs_in_flight: int  # what active_slots was set to


@dataclass
class CleanupReport:
    ended: list[RunRecord] = field(default_factory=list)
    left: list[RunRecord] = field(default_factory=list)  # a live process or too recent
    slots: list[SlotRelease] = field(default_factory=list)
    unreadable_processes: int = 0


Mode = Literal["crashed", "cancelled"]


def end_runs(
    *,
    mode: Mode,
    now: datetime,
    live_run_ids: Iterable[str] = (),
    grace: timedelta = timedelta(0),
    message: str | None = None,
    client: SyncPrefectClient | None = None,
    live_at_stop: Iterable[str] | None = None,
) -> CleanupReport:
    """End the in-flight runs of Sentinel42's deployments, then release their stale slots.

    In flight: Pending, Running or Cancelling, for a run of a deployment tagged ``sentinel42``
    or a subflow run under one. Runs whose root run has a live process (``live_run_ids``) or
    that entered their state less than ``grace`` before ``now`` are left alone. The others are
    set (``force``) Crashed (``mode="crashed"``: their process is gone) or Cancelled
    (``mode="cancelled"``: a stop is ending them on purpose); a Cancelling run always becomes
    Cancelled. A stop does not cancel what had already died: a run whose root run has ended
    other than Cancelled (the worker marks a flow run Crashed when its process dies, leaving its
    subflow runs Running), or whose root run was Running with no process when the stop began (not in
    ``live_at_stop``, when given), becomes Crashed. Subflow runs are ended before their parents.

    Then each deployment's concurrency limit (``deployment:<id>``) whose ``active_slots``
    exceeds its runs still in flight is set to that number. Call this while no worker can start
    a run of these deployments (the start and stop scripts do): a run that takes a slot between
    the count and the update would not be counted.

    Args:
        mode: The state given to a Pending or Running run.
        now: The time ``grace`` is measured back from (tz-aware).
        live_run_ids: Flow-run ids that have a live process (:func:`flow_run_processes`).
        grace: Leave runs younger than this in their state (a worker may be starting them).
        message: The state message; a default says who set it and why.
        client: A Prefect client (default: one for ``PREFECT_API_URL``).
        live_at_stop: With ``mode="cancelled"``: the flow-run ids that had a live process when
            the stop began (before it ended any); None when unknown.
    """
    with _client(client) as client:
        live = set(live_run_ids)
        alive_at_stop = None if live_at_stop is None else set(live_at_stop)
        deployments, flight = _ours_in_flight(client)
        report = CleanupReport()
        for run, chain, record in flight:
            root = chain[-1]
            started = run.state.timestamp if run.state else None
            if str(root.id) in live or (started is not None and now - started < grace):
                report.left.append(record)
                continue
            effective: Mode = mode
            why: str | None = message
            if mode == "cancelled" and _died_before_the_stop(root, alive_at_stop):
                effective, why = "crashed", message or _DIED_MESSAGE
            new_state = _end(client, run, effective, why)
            report.ended.append(replace(record, new_state=new_state))
        report.slots = _release_slots(client, deployments)
        return report


def cancel_in_flight(
    *,
    wait: float,
    live_run_ids: Callable[[], set[str]] | None = None,
    client: SyncPrefectClient | None = None,
    poll: float = 1.0,
) -> list[RunRecord]:
    """Ask the worker to cancel each Pending or Running run of Sentinel42's deployments.

    The run goes Cancelling, as with the dashboard's Cancel button: the worker that runs it sends
    its process SIGTERM with a cancel intent, and the run ends Cancelled, its slot given back.
    Subflow runs are not asked (they run inside their parent's process). Waits up to ``wait``
    seconds for the asked runs to end, or for their processes to be gone (``live_run_ids``
    tells which still have one: the worker may take a while more to record Cancelled);
    :func:`end_runs` deals with whatever is left.

    Returns:
        The runs asked, each with its state after the wait in ``new_state``.
    """
    with _client(client) as client:
        from prefect.states import Cancelling

        _, flight = _ours_in_flight(client)
        asked = [
            (run, record)
            for run, chain, record in flight
            if len(chain) == 1
            and run.state_type is not None
            and run.state_type.value != "CANCELLING"
        ]
        for run, _ in asked:
            client.set_flow_run_state(run.id, Cancelling(message=STOPPED_MESSAGE))
        deadline = time.monotonic() + wait
        while True:
            current = {str(run.id): client.read_flow_run(run.id) for run, _ in asked}
            live = live_run_ids() if live_run_ids else set(current)
            waiting = [i for i, r in current.items() if _in_flight(r) and i in live]
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(poll)
        return [
            replace(record, new_state=current[record.id].state_name or "") for _, record in asked
        ]


@contextmanager
def _client(client: SyncPrefectClient | None) -> Iterator[SyncPrefectClient]:
    """``client``, or one of our own for ``PREFECT_API_URL`` (closed afterwards) when None."""
    if client is not None:
        yield client
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as own:
        yield own


def _in_flight(run: FlowRun) -> bool:
    return run.state_type is not None and run.state_type.value in ACTIVE_TYPES


def _died_before_the_stop(root: FlowRun, alive_at_stop: set[str] | None) -> bool:
    """The root run's process was gone before a stop began: its root run has ended other than
    Cancelled (a stop's own cancel ends it Cancelled), or it was Running with no process then."""
    if not _in_flight(root):
        return root.state_type is not None and root.state_type.value != "CANCELLED"
    running = root.state_type is not None and root.state_type.value == "RUNNING"
    return running and alive_at_stop is not None and str(root.id) not in alive_at_stop


def _ours_in_flight(
    client: SyncPrefectClient,
) -> tuple[dict[str, Any], list[tuple[FlowRun, list[FlowRun], RunRecord]]]:
    """Our deployments, and their in-flight runs with subflow runs: (run, chain to root, record).

    Deepest first: a subflow run comes before the run that called it.
    """
    deployments = _deployments(client)
    flows = _flow_names(client, {d.flow_id for d in deployments.values()})
    runs = _active_runs(client, set(flows))
    chains = {run_id: _chain(client, run, runs) for run_id, run in runs.items()}
    flight = []
    for run_id in sorted(chains, key=lambda r: -len(chains[r])):
        chain = chains[run_id]
        root = chain[-1]
        if root.deployment_id is None or str(root.deployment_id) not in deployments:
            continue  # an ad hoc run of one of our flows: not ours to end
        run = runs[run_id]
        flight.append((run, chain, _record(run, flows, deployments, chain)))
    return deployments, flight


def _deployments(client: SyncPrefectClient) -> dict[str, Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    found = client.read_deployments(
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[TAG])), limit=PAGE
    )
    return {str(d.id): d for d in found}


def _flow_names(client: SyncPrefectClient, flow_ids: set[Any]) -> dict[str, str]:
    if not flow_ids:
        return {}
    from prefect.client.schemas.filters import FlowFilter, FlowFilterId

    found = client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=list(flow_ids))))
    return {str(f.id): f.name for f in found}


def _active_runs(client: SyncPrefectClient, flow_ids: set[str]) -> dict[str, FlowRun]:
    """In-flight runs of these flows (deployment runs and subflow runs alike)."""
    if not flow_ids:
        return {}
    from uuid import UUID

    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    flow_filter = FlowFilter(id=FlowFilterId(any_=[UUID(f) for f in flow_ids]))
    flow_run_filter = FlowRunFilter(
        state=FlowRunFilterState(
            type=FlowRunFilterStateType(any_=[StateType(t) for t in ACTIVE_TYPES])
        ),
    )
    runs: dict[str, FlowRun] = {}
    for page in range(MAX_PAGES):
        batch = client.read_flow_runs(
            flow_filter=flow_filter, flow_run_filter=flow_run_filter, limit=PAGE, offset=page * PAGE
        )
        runs.update((str(r.id), r) for r in batch)
        if len(batch) < PAGE:
            break
    return runs


def _chain(client: SyncPrefectClient, run: FlowRun, known: dict[str, FlowRun]) -> list[FlowRun]:
    """The run, its parent run, ... up to its root run (a subflow's parent task run leads there)."""
    chain = [run]
    while chain[-1].parent_task_run_id is not None and len(chain) < MAX_DEPTH:
        try:
            task_run = client.read_task_run(chain[-1].parent_task_run_id)
            if task_run.flow_run_id is None:
                break
            parent_id = str(task_run.flow_run_id)
            chain.append(known.get(parent_id) or client.read_flow_run(task_run.flow_run_id))
        except Exception as exc:  # a parent pruned by the vacuum: this run is its own root
            logger.debug("parent of flow run %s not found: %s", chain[-1].id, exc)
            break
    return chain


def _record(
    run: FlowRun, flows: dict[str, str], deployments: dict[str, Any], chain: list[FlowRun]
) -> RunRecord:
    deployment = deployments.get(str(run.deployment_id)) if run.deployment_id else None
    return RunRecord(
        id=str(run.id),
        name=run.name,
        flow=flows.get(str(run.flow_id), ""),
        deployment=deployment.name if deployment else "",
        parent_id=str(chain[1].id) if len(chain) > 1 else None,
        state=run.state_name or "",
    )


def _end(client: SyncPrefectClient, run: FlowRun, mode: Mode, message: str | None) -> str:
    from prefect.client.schemas.objects import State, StateType
    from prefect.states import Cancelled, Crashed

    cancelling = run.state is not None and run.state.type is StateType.CANCELLING
    state: State[Any]
    if mode == "cancelled" or cancelling:
        state = Cancelled(message=message or STOPPED_MESSAGE)
    else:
        state = Crashed(message=message or CRASHED_MESSAGE)
    # force: the orchestration rules would refuse a Crashed proposed by someone else; the
    # transforms that release the deployment's slot still apply.
    result = client.set_flow_run_state(run.id, state, force=True)
    logger.info("flow run %s (%s): %s -> %s", run.name, run.id, run.state_name, state.name)
    return str(result.state.name if result.state else state.name)


def _release_slots(client: SyncPrefectClient, deployments: dict[str, Any]) -> list[SlotRelease]:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    released = []
    for deployment_id, deployment in deployments.items():
        # Read again: the runs just ended gave their slots back through the server's rules.
        current = client.read_deployments(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )
        limit = current[0].global_concurrency_limit if current else None
        if limit is None:
            continue
        in_flight = _count_in_flight(client, deployment_id)
        if limit.active_slots <= in_flight:
            continue
        client.update_global_concurrency_limit(
            limit.name, GlobalConcurrencyLimitUpdate(active_slots=in_flight)
        )
        logger.info(
            "%s: %d slot(s) held with %d run(s) in flight; set to %d",
            deployment.name,
            limit.active_slots,
            in_flight,
            in_flight,
        )
        released.append(
            SlotRelease(
                deployment=deployment.name,
                limit_name=limit.name,
                active_slots=limit.active_slots,
                runs_in_flight=in_flight,
            )
        )
    return released


def _count_in_flight(client: SyncPrefectClient, deployment_id: str) -> int:
    from uuid import UUID

    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    return len(
        client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[UUID(deployment_id)])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(
                    type=FlowRunFilterStateType(any_=[StateType(t) for t in ACTIVE_TYPES])
                )
            ),
            limit=PAGE,
        )
    )
