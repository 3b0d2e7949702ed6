"""This host's flow-run processes of one Prefect API, read from Linux's ``/proc``.

A process work pool starts each flow run in a process session of its own, so a signal to the
worker's process group misses it, and a flow run whose worker died goes on as an orphan. The
worker puts the run's id in the process's environment (``PREFECT__FLOW_RUN_ID``) beside
``PREFECT_API_URL``: that names the run and the server it reports to. Elsewhere than Linux no
process is found.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RUN_ID_VAR = "PREFECT__FLOW_RUN_ID"  # set by the worker in each flow-run process's environment


@dataclass(frozen=True)
class RunProcess:
    """A process of a flow run on this host."""

    pid: int
    pgid: int
    flow_run_id: str | None  # None: a descendant of the worker without a run in its environment


@dataclass(frozen=True)
class ProcessScan:
    processes: list[RunProcess]
    unreadable: int  # Prefect flow-run processes whose environment this user cannot read
    protected_groups: frozenset[int] = frozenset()  # this process's and its ancestors' groups

    @property
    def run_ids(self) -> set[str]:
        return {p.flow_run_id for p in self.processes if p.flow_run_id}

    @property
    def groups(self) -> list[int]:
        """Process groups to signal: each flow-run process leads a session of its own."""
        return sorted({p.pgid for p in self.processes} - self.protected_groups - {0, 1})


def _stat(proc: Path, pid: int) -> tuple[int, int] | None:
    """(ppid, pgid) of ``pid``, or None when it is gone."""
    try:
        raw = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    fields = raw.rsplit(")", 1)[-1].split()
    try:
        return int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def _environ(proc: Path, pid: int) -> dict[str, str] | None:
    """The process's environment at exec time; None when it cannot be read."""
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _is_flow_run_command(proc: Path, pid: int) -> bool:
    try:
        cmdline = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return b"prefect.engine" in cmdline or b"prefect.runner." in cmdline


def _same_api(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def flow_run_processes(
    api_url: str,
    *,
    worker_pid: int | None = None,
    proc: Path = Path("/proc"),
) -> ProcessScan:
    """This host's processes that execute a flow run for ``api_url``.

    A process counts when its environment holds ``PREFECT__FLOW_RUN_ID`` and ``PREFECT_API_URL``
    is ``api_url`` (other servers' runs on the same host are left alone), or when it descends from
    ``worker_pid``. This process and its ancestors never count.

    Args:
        api_url: The Prefect API the runs report to, e.g. ``http://127.0.0.1:4200/api``.
        worker_pid: The worker, whose descendants are taken whatever their environment.
        proc: The proc file system (tests pass a fake one).
    """
    pids = sorted(int(p.name) for p in _listdir(proc) if p.name.isdigit())
    stats = {pid: st for pid in pids if (st := _stat(proc, pid)) is not None}
    mine = set(_ancestors(os.getpid(), stats))
    descendants = set(_descendants(worker_pid, stats)) if worker_pid else set()
    found: list[RunProcess] = []
    unreadable = 0
    for pid, (_, pgid) in stats.items():
        if pid in mine:
            continue
        env = _environ(proc, pid)
        if env is None:
            if pid not in descendants and _is_flow_run_command(proc, pid):
                unreadable += 1
            continue
        run_id = env.get(RUN_ID_VAR) or None
        ours = run_id is not None and _same_api(env.get("PREFECT_API_URL", ""), api_url)
        if ours or pid in descendants:
            found.append(RunProcess(pid=pid, pgid=pgid, flow_run_id=run_id))
    protected = frozenset(stats[pid][1] for pid in mine if pid in stats)
    return ProcessScan(processes=found, unreadable=unreadable, protected_groups=protected)


def _listdir(path: Path) -> Iterator[Path]:
    try:
        yield from path.iterdir()
    except OSError:
        return


def _ancestors(pid: int, stats: dict[int, tuple[int, int]]) -> Iterator[int]:
    seen: set[int] = set()
    while pid > 0 and pid not in seen:
        seen.add(pid)
        yield pid
        pid = stats.get(pid, (0, 0))[0]


def _descendants(root: int, stats: dict[int, tuple[int, int]]) -> Iterator[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        yield pid
        stack.extend(children.get(pid, []))
