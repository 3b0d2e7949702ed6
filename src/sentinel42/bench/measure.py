"""Measuring helpers shared by every benchmark: stages, peak RSS, a fresh process per case.

- :class:`Stages` times named stages: wall seconds (``time.perf_counter``), CPU seconds of the
  whole process (``time.process_time``: every thread, so torch's intra-op threads count and CPU
  may exceed wall) and the process's peak RSS when the stage ended.
- Peak RSS is ``ru_maxrss`` of the measuring process itself, a high-water mark that never goes
  down, so a stage's figure is the peak *so far*. Only a fresh process per measured case gives a
  peak that belongs to that case alone: :func:`run_isolated` runs one function in a new
  interpreter and returns what it returned plus that process's peak RSS.
- :func:`machine` describes where figures came from (cores, CPU model, load average).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sentinel42.errors import Sentinel42Error

__all__ = ["Stages", "attributed", "machine", "peak_rss_mb", "run_isolated"]
_MISSING = object()


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own memory.
    (``ru_maxrss`` is not used there: a child started by a big parent inherits the parent's
    figure across fork and exec.) Elsewhere ``ru_maxrss`` (macOS reports bytes).
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


class Stages:
    """Named stages in the order they ran, each ``{"wall_s", "cpu_s", "peak_rss_mb"}``."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}

    @contextmanager
    def stage(self, name: str, **extra: Any) -> Iterator[dict[str, Any]]:
        """Time the block; the yielded dict takes extra figures (counts) for the stage."""
        row: dict[str, Any] = {"wall_s": None, "cpu_s": None, "peak_rss_mb": None, **extra}
        self.figures[name] = row  # the caller may add to it after the block, too
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            yield row
        finally:
            row["wall_s"] = round(time.perf_counter() - wall0, 3)
            row["cpu_s"] = round(time.process_time() - cpu0, 3)
            row["peak_rss_mb"] = peak_rss_mb()

    def total(self, key: str = "wall_s") -> float:
        return round(sum(float(f[key]) for f in self.figures.values()), 3)


@contextmanager
def attributed(spots: Mapping[str, tuple[Any, str]]) -> Iterator[dict[str, dict[str, Any]]]:
    """Add up the wall and CPU seconds spent in calls to ``owner.attribute`` for each spot.

    Instrumentation only: the same function runs, wrapped, and is put back on exit. Calls made
    from inside another wrapped call count in both (``load_bars`` inside ``load_model`` ...).
    """
    figures: dict[str, dict[str, Any]] = {
        label: {"wall_s": 0.0, "cpu_s": 0.0, "calls": 0} for label in spots
    }
    restore: list[tuple[Any, str, Any]] = []

    def wrap(real: Callable[..., Any], row: dict[str, Any]) -> Callable[..., Any]:
        @functools.wraps(real)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            try:
                return real(*args, **kwargs)
            finally:
                row["wall_s"] += time.perf_counter() - wall0
                row["cpu_s"] += time.process_time() - cpu0
                row["calls"] += 1

        return timed

    try:
        for label, (owner, name) in spots.items():
            # A class may inherit the method: remember whether it was its own.
            if isinstance(owner, type):
                own = owner.__dict__.get(name, _MISSING)
            else:
                own = getattr(owner, name)
            restore.append((owner, name, own))
            setattr(owner, name, wrap(getattr(owner, name), figures[label]))
        yield figures
    finally:
        for owner, name, own in reversed(restore):
            if own is _MISSING:
                delattr(owner, name)  # it was inherited: uncover the base class's again
            else:
                setattr(owner, name, own)
        for row in figures.values():
            row["wall_s"], row["cpu_s"] = round(row["wall_s"], 3), round(row["cpu_s"], 3)


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and the 1/5/15-minute load average at the time of the call."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb: float | None = None
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory_gb = round(pages * size / 1024**3, 1)
    except (OSError, ValueError):
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gb": memory_gb,
        "load_avg_1_5_15": load,
        "python": platform.python_version(),
        # Without a bytecode cache every process compiles each module it imports (seconds for
        # torch + transformers): PYTHONDONTWRITEBYTECODE=1 and no .pyc files, as on this machine.
        "dont_write_bytecode": bool(sys.flags.dont_write_bytecode),
        "pycache_prefix": sys.pycache_prefix is not None,
    }


def run_isolated(target: str, kwargs: dict[str, Any], *, timeout_s: float = 1800) -> dict[str, Any]:
    """Run ``module:function(**kwargs)`` in a fresh interpreter; its JSON result plus peak RSS.

    The child's stderr (logs, progress) passes through; its result travels in a temp file, so a
    library printing to stdout cannot corrupt it. ``kwargs`` must be JSON-able.

    Returns:
        The function's result (a dict) with ``process`` added: ``peak_rss_mb`` (the child's own
        ``ru_maxrss``) and ``wall_s`` from the child's start to its exit (interpreter start and
        imports included).

    Raises:
        Sentinel42Error: the child failed (its exit status; its traceback went to stderr).
    """
    with tempfile.TemporaryDirectory(prefix="sentinel42-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "sentinel42.bench.measure", target, str(result_path)],
            input=json.dumps(kwargs),
            text=True,
            timeout=timeout_s,
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0 or not result_path.is_file():
            raise Sentinel42Error(
                f"benchmark case {target} failed with exit status {done.returncode} "
                "(its traceback is above)"
            )
        result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    result.setdefault("process", {})["wall_s"] = round(wall, 3)
    return result


def _resolve(target: str) -> Callable[..., dict[str, Any]]:
    module, _, name = target.partition(":")
    if not module.startswith("sentinel42."):
        raise ValueError(f"{target!r}: only sentinel42 functions run as benchmark cases")
    fn: Callable[..., dict[str, Any]] = getattr(importlib.import_module(module), name)
    return fn


def _child_main(argv: list[str]) -> int:
    target, result_path = argv
    kwargs = json.loads(sys.stdin.read() or "{}")
    fn = _resolve(target)
    if "progress" in inspect.signature(fn).parameters and "progress" not in kwargs:
        kwargs["progress"] = lambda line: print(line, file=sys.stderr, flush=True)
    result = dict(fn(**kwargs))
    result["process"] = {"peak_rss_mb": peak_rss_mb()}
    Path(result_path).write_text(json.dumps(result, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    raise SystemExit(_child_main(sys.argv[1:]))
