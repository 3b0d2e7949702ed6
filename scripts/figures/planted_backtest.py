"""The planted-pattern backtest of docs/backtest.md, with the ranking target at the fill and, for
comparison, at the bar after the decided one (the target before the fill lag).

uv run --frozen python scripts/figures/planted_backtest.py [--seed 30] [--lag 1 --lag 0]

Writes tests/test_backtest_ranking.py's generated universe (40 names, 20 sessions of 15-minute
bars, 2026-03-02 .. 03-27, a pattern planted) into a temporary replay folder and backtests
2026-03-25 .. 03-26 bar by bar with one walk-forward training of the ``intraday`` kind, as the
test does. ``--lag 0`` sets ``model.ranking.features.INTRADAY_FILL_LAG`` to 0 in this process
only: the target is then the move of the bar that began before the decision, which no fill can
trade (what the code did before the lag). Prints a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=30, help="the generated universe's seed")
    parser.add_argument("--planted", type=float, default=0.6, help="the pattern's strength")
    parser.add_argument("--lag", type=int, action="append", choices=(0, 1),
                        help="fill lag(s) of the target to run (default: 1 then 0)")  # fmt: skip
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    for key in [k for k in os.environ if k.startswith("SENTINEL42_")]:
        del os.environ[key]  # the defaults, as the test runs it
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentinel42.model.ranking import features
    from tests import test_backtest_ranking as planted

    print(
        "| target lag | gate | rank IC (test block) | total_return | market_return "
        "| excess vs market | turnover | n_trades | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for lag in args.lag or [1, 0]:
        features.INTRADAY_FILL_LAG = lag
        with tempfile.TemporaryDirectory(prefix="sentinel42-planted-") as tmp:
            replay = planted._write_replay(Path(tmp) / "replay", planted=args.planted,
                                           seed=args.seed)  # fmt: skip
            began = time.perf_counter()
            summary = planted._run(replay, Path(tmp) / "work").summary
            (training,) = summary["trainings"]
            print(
                f"| {lag} | {'promoted' if training['promoted'] else 'refused'} "
                f"| {training['rank_ic_mean']:+.4f} | {summary['total_return']:+.4f} "
                f"| {summary['market_return']:+.4f} | {summary['excess_return_vs_market']:+.4f} "
                f"| {summary['turnover']:.1f} | {summary['n_trades']} "
                f"| {time.perf_counter() - began:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
