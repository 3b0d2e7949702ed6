"""Prefect's own cost per task: N no-op tasks mapped over items against one task doing the same.

uv run --frozen python scripts/figures/prefect_task_overhead.py [--items N] [--repeats R]
    [--quick]

Inside one ``prefect_test_harness()`` (a temporary local server and database, as the tests use),
runs two flows ``--repeats`` times each (default 3), alternately:

- ``mapped``: ``work.map(items)``, one task run per item (Prefect's default thread-pool task
  runner), waiting for every result;
- ``one task``: ``work_all(items)``, one task run doing the same work for every item.

The work per item is nothing (it returns its item), so the difference is what Prefect spends per
task run (creating it, its state round trips with the server). Each flow times its task runs from
inside its body (the flow run's own start and end are left out). Prints those wall seconds per
flow call and the cost per extra task run, ``(mapped - one task) / (items - 1)``, as markdown on
stdout; the harness start and progress on stderr. ``--quick``: 50 items, 1 repeat. The
harness's start (about 13 s here) is not in the figures.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from _cli import Size, parse_sizes
from prefect import flow, task
from prefect.testing.utilities import prefect_test_harness

SIZES = (
    Size("--items", "items (task runs when mapped)", full=500, quick=50, minimum=2),
    Size("--repeats", "flow calls of each kind", full=3, quick=1),
)


@task
def work(item: int) -> int:
    return item


@task
def work_all(items: list[int]) -> list[int]:
    return [item for item in items]


# Each flow times its task runs from inside, so the flow run's own start and end (a wait of up to
# a second for Prefect's heartbeat thread) are not in the figures.
@flow
def mapped_flow(items: list[int]) -> tuple[int, float]:
    start = time.perf_counter()
    done = len(work.map(items).result())
    return done, time.perf_counter() - start


@flow
def one_task_flow(items: list[int]) -> tuple[int, float]:
    start = time.perf_counter()
    done = len(work_all(items))
    return done, time.perf_counter() - start


def timed(fn: object, items: list[int]) -> float:
    done, seconds = fn(items)  # type: ignore[operator]
    if done != len(items):
        raise RuntimeError(f"{fn} returned {done} results for {len(items)} items")
    return float(seconds)


def main(argv: list[str] | None = None) -> int:
    n, repeats = parse_sizes(__doc__.splitlines()[0], SIZES, argv)
    items = list(range(n))
    start = time.perf_counter()
    with prefect_test_harness():
        print(f"harness started in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        timed(one_task_flow, items[:2])  # the first flow run pays one-off imports and caches
        mapped: list[float] = []
        single: list[float] = []
        for r in range(repeats):
            mapped.append(timed(mapped_flow, items))
            single.append(timed(one_task_flow, items))
            print(f"repeat {r + 1}/{repeats}: mapped {mapped[-1]:.2f} s, one task "
                  f"{single[-1]:.2f} s", file=sys.stderr, flush=True)  # fmt: skip
    per_task = [(m - s) / (n - 1) * 1000 for m, s in zip(mapped, single, strict=True)]
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"### Prefect task overhead ({n} items, {repeats} repeat(s), load {load})\n")
    print("| flow | task runs | task wall s (each call) | median s |\n|---|---:|---|---:|")
    for name, runs, walls in (("mapped", n, mapped), ("one task", 1, single)):
        each = ", ".join(f"{w:.3f}" for w in walls)
        print(f"| {name} | {runs} | {each} | {statistics.median(walls):.3f} |")
    print(f"\nCost per extra task run: {min(per_task):.1f}-{max(per_task):.1f} ms "
          f"(median {statistics.median(per_task):.1f} ms).")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
