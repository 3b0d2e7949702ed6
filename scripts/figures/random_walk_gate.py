"""How often the promotion gate promotes a model trained on pure random walks (nothing to learn).

uv run --frozen python scripts/figures/random_walk_gate.py [--sweep small|default ...]
    [--runs N] [--first-seed S] [--quick] [--detail]

Each run draws random-walk bars (``sentinel42.synthetic.synthetic_bars(pattern="random_walk")``),
trains through ``train_and_register`` in a fresh registry and judges the registered model by
the old gate (validation block) and by the test-block gate at 0.95 and 0.99 (see ``_gate_runs``).

Sweeps (both by default):

- ``small``: the model tests' small settings (window 8 or 16, hidden 16, at most 15 epochs,
  patience 3, learning rate 0.01, batch 64, model seed 7); run ``i`` takes seed
  ``first_seed + i`` (default 1000), which also draws its shape: 1-6 tickers, 30, 40, 50 or 63
  sessions, sigma 0.05 %, 0.2 % or 1 % per bar, horizon 1 or 4, 1 or 3 folds. 150 runs.
- ``default``: the default model settings (window 32, horizon 4, hidden 32, at most 30 epochs),
  2 or 3 tickers, 63 sessions, sigma 0.2 %, 3 folds; seeds from ``first_seed + 5000``. 62 runs.

A run whose history is too short for its folds (``ModelError``) is counted apart, not judged.
``--quick``: 6 small runs and 1 default run. Markdown on stdout, one progress line per run on
stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from _gate_runs import LEVELS, Judged, judge, progress, summary_rows

from sentinel42.errors import ModelError
from sentinel42.synthetic import synthetic_bars

NAMES = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")
SMALL_MODEL = {"model_hidden_size": 16, "model_epochs": 15, "model_patience": 3,
               "model_learning_rate": 0.01, "model_batch_size": 64, "model_seed": 7}  # fmt: skip
FULL_RUNS = {"small": 150, "default": 62}
QUICK_RUNS = {"small": 6, "default": 1}
DEFAULT_SEED_OFFSET = 5000


@dataclass(frozen=True)
class Shape:
    seed: int
    tickers: int
    sessions: int
    sigma: float
    horizon: int
    window: int
    folds: int


def shape(sweep: str, seed: int) -> Shape:
    """The run's data and settings, drawn from its seed (so one seed is one run)."""
    rng = np.random.default_rng(seed)
    if sweep == "default":
        return Shape(seed, int(rng.integers(2, 4)), 63, 0.002, 4, 32, 3)
    return Shape(
        seed, int(rng.integers(1, 7)), int(rng.choice([30, 40, 50, 63])),
        float(rng.choice([0.0005, 0.002, 0.01])), int(rng.choice([1, 4])),
        int(rng.choice([8, 16])), int(rng.choice([1, 3])),
    )  # fmt: skip


def run_one(sweep: str, s: Shape) -> Judged:
    bars = synthetic_bars(NAMES[: s.tickers], s.sessions, pattern="random_walk", seed=s.seed,
                          sigma=s.sigma)  # fmt: skip
    model: dict[str, Any] = {"model_horizon": s.horizon, "model_window": s.window}
    if sweep == "small":
        model.update(SMALL_MODEL)
    return judge(bars, n_folds=s.folds, daily=None, **model)


def report(sweep: str, runs: list[tuple[Shape, Judged | None]], detail: bool) -> str:
    judged = [j for _, j in runs if j is not None]
    short = len(runs) - len(judged)
    seeds = f"seeds {runs[0][0].seed}..{runs[-1][0].seed}" if runs else "no seeds"
    lines = [f"### Random walks, {sweep} settings ({len(runs)} runs, {seeds})", "",
             f"| gate | promoted (of {len(judged)} trained) |", "|---|---:|"]  # fmt: skip
    lines += [f"| {name} | {count} |" for name, count in summary_rows(judged)]
    lines.append("")
    lines.append(f"Trained {len(judged)} of {len(runs)}; {short} had too little history.")
    if judged:
        shape_, best = max(((s, j) for s, j in runs if j is not None),
                           key=lambda sj: sj[1].lower[LEVELS[0]])  # fmt: skip
        lines.append(
            f"Highest {LEVELS[0]:.0%} lower bound: {best.lower[LEVELS[0]]:+.4f} "
            f"(seed {shape_.seed}, edge {best.edge:+.4f}, {best.n} deciding windows)."
        )
    if detail:
        lines += ["", "| seed | tickers | sessions | sigma | horizon | window | folds | n | edge "
                  "| 95% lower | 99% lower | old gate |", "|" + "---:|" * 12]  # fmt: skip
        for s, j in runs:
            head = (f"| {s.seed} | {s.tickers} | {s.sessions} | {s.sigma:g} | {s.horizon} | "
                    f"{s.window} | {s.folds} |")  # fmt: skip
            lines.append(
                head + " too little history |" if j is None else
                head + f" {j.n} | {j.edge:+.4f} | {j.lower[0.95]:+.4f} | {j.lower[0.99]:+.4f} | "
                f"{'promoted' if j.old_gate else 'refused'} |"
            )  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", nargs="+", choices=("small", "default"),
                        default=["small", "default"])  # fmt: skip
    parser.add_argument("--runs", type=int, help="runs per sweep (default: 150 small, 62 default)")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="6 small runs, 1 default run")
    parser.add_argument("--detail", action="store_true", help="also print one row per run")
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    for sweep in args.sweep:
        n = args.runs or (QUICK_RUNS if args.quick else FULL_RUNS)[sweep]
        first = args.first_seed + (DEFAULT_SEED_OFFSET if sweep == "default" else 0)
        runs: list[tuple[Shape, Judged | None]] = []
        for i in range(n):
            s = shape(sweep, first + i)
            start = time.perf_counter()
            try:
                j: Judged | None = run_one(sweep, s)
            except ModelError as exc:
                j = None
                progress(f"{sweep} {i + 1}/{n} {s}: {exc}")
            else:
                assert j is not None
                bounds = ", ".join(f"{level}: {j.lower[level]:+.4f}" for level in LEVELS)
                seconds = time.perf_counter() - start
                progress(f"{sweep} {i + 1}/{n} {s}: edge {j.edge:+.4f}, lower bounds {bounds}, "
                         f"old gate {j.old_gate} ({seconds:.1f} s)")  # fmt: skip
            runs.append((s, j))
        sys.stdout.write(report(sweep, runs, args.detail) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
