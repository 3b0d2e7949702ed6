"""``sentinel42 runs ...``: flow runs left in flight by a stop or a crash (registered by the CLI).

``make prefect-start`` runs ``runs cleanup`` before it starts the worker; ``make prefect-stop``
runs ``runs processes`` and ``runs cleanup --stopping``. Heavy imports stay inside commands.
"""

from __future__ import annotations

import os

import typer

from sentinel42.cli.common import emit_json, fail, to_jsonable

runs_app = typer.Typer(
    help="Flow runs left in flight by a stop or a crash: end them, free their slots.",
    no_args_is_help=True,
)


def _api_url() -> str:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        fail("PREFECT_API_URL is not set: point it at the server (http://127.0.0.1:4200/api)")
    return url


@runs_app.command("cleanup")
def cleanup(
    stopping: bool = typer.Option(
        False,
        "--stopping",
        help="Everything is being stopped: end every run in flight as Cancelled, live or not.",
    ),
    wait_seconds: float = typer.Option(
        0.0,
        "--wait-seconds",
        min=0,
        help="With --stopping: first ask the worker to cancel the runs (it stops their "
        "processes gracefully) and wait this long for them to end.",
    ),
    grace_seconds: float = typer.Option(
        60.0,
        "--grace-seconds",
        min=0,
        help="Leave runs that entered their state less than this ago (a worker may be starting "
        "them). The start script passes 0: no worker runs then.",
    ),
    crash_gone: bool = typer.Option(
        False,
        "--crash-gone",
        help="With --stopping, before anything was stopped: a run whose process is already "
        "gone ends Crashed, not Cancelled.",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """End Sentinel42 runs left Pending, Running or Cancelling, and free their concurrency slots.

    A run of a Sentinel42 deployment (or a subflow run under one) with no flow-run process on
    this host becomes Crashed (a Cancelling one Cancelled); then each deployment's slots are set
    back to its runs still in flight. With --stopping (make prefect-stop), every run in flight
    ends Cancelled, except a subflow run whose parent run already ended (and, with
    --crash-gone, a run with no process): Crashed; with --wait-seconds, the worker is first
    asked to cancel them. Run it as the
    user the worker runs as: processes of other users cannot be examined. Talks to the server at
    PREFECT_API_URL.
    """
    from datetime import UTC, datetime, timedelta

    from sentinel42.ops.processes import flow_run_processes
    from sentinel42.ops.stale_runs import cancel_in_flight, end_runs

    api_url = _api_url()
    scan = flow_run_processes(api_url)
    if scan.unreadable and not stopping:
        typer.echo(
            f"warning: {scan.unreadable} Prefect flow-run process(es) of another user were not "
            "examined; their runs count as gone if they belong to this server",
            err=True,
        )
    try:
        cancelled = []
        if stopping and wait_seconds:
            cancelled = cancel_in_flight(
                wait=wait_seconds, live_run_ids=lambda: flow_run_processes(api_url).run_ids
            )
        report = end_runs(
            mode="cancelled" if stopping else "crashed",
            now=datetime.now(UTC),
            live_run_ids=() if stopping else scan.run_ids,
            grace=timedelta(0) if stopping else timedelta(seconds=grace_seconds),
            # Processes of other users cannot be seen: then no run counts as gone by its process.
            live_at_stop=scan.run_ids if stopping and crash_gone and not scan.unreadable else None,
        )
    except Exception as exc:  # the server is down or refused: one line, no traceback
        fail(f"cannot clean up the runs at {api_url}: {type(exc).__name__}: {exc}", 1)
    report.unreadable_processes = scan.unreadable
    if as_json:
        emit_json({"cancelled": cancelled, **to_jsonable(report)})
        return
    forced = {r.id: r for r in report.ended}
    for run in cancelled:  # its state before the stop, and the one it ended in
        final = forced.pop(run.id).new_state if run.id in forced else run.new_state
        typer.echo(f"{run.flow}/{run.deployment} run {run.name}: {run.state} -> {final}")
    for run in forced.values():
        where = f"{run.flow}/{run.deployment}" if run.deployment else f"{run.flow} (subflow)"
        typer.echo(f"{where} run {run.name}: {run.state} -> {run.new_state}")
    for run in report.left:
        typer.echo(f"{run.flow} run {run.name}: left {run.state} (its process runs, or it is new)")
    for slot in report.slots:
        typer.echo(
            f"{slot.deployment}: {slot.active_slots - slot.runs_in_flight} stale concurrency "
            f"slot(s) released ({slot.runs_in_flight} run(s) in flight)"
        )
    typer.echo(
        f"runs cleanup: {len({r.id for r in cancelled + report.ended})} ended, "
        f"{len(report.left)} left in flight, "
        f"{len(report.slots)} deployment slot(s) released"
    )


@runs_app.command("processes")
def processes(
    worker_pid: int | None = typer.Option(
        None, "--worker-pid", help="Also every descendant of this worker process."
    ),
    groups: bool = typer.Option(False, "--groups", help="Only the process group ids, one a line."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """This host's flow-run processes of the server at PREFECT_API_URL: pid, group, flow run.

    Reads /proc only (no server needed): a process counts when its environment names a flow run
    and this API, or when it descends from --worker-pid.
    """
    from sentinel42.ops.processes import flow_run_processes

    scan = flow_run_processes(_api_url(), worker_pid=worker_pid)
    if as_json:
        emit_json({"processes": scan.processes, "unreadable": scan.unreadable})
    elif groups:
        for pgid in scan.groups:
            typer.echo(str(pgid))
    else:
        for p in scan.processes:
            typer.echo(f"{p.pid} {p.pgid} {p.flow_run_id or '-'}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``runs`` to the root app."""
    app.add_typer(runs_app, name="runs")
