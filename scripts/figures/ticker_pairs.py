"""The promotion gate on each pair of the recorded 15-minute tickers (real bars, default model).

uv run --frozen python scripts/figures/ticker_pairs.py [--data DIR] [--pairs N] [--quick]
    [--no-daily]

Reads the regular-session 15-minute bars of every ``prices/<T>_15m_*_prepost.csv`` under
``--data`` (default ``../shared/data`` beside the checkout: AAPL, AMZN, MSFT, QQQ, SPY, TSLA,
60 sessions), and for each pair of tickers (15 for six) trains with the default model settings
(window 32, horizon 4, hidden 32, seed 42, 3 folds) through ``train_and_register`` in a fresh
registry, then judges the registered model by the old gate (validation block) and by the
test-block gate at 0.95 and 0.99 (see ``_gate_runs``).

The daily bars are passed as in the six-ticker run (``tests/model/test_real_data.py``), so a
pair whose two tickers both have a daily export trains with the daily features; a pair with QQQ
(no daily export) trains without them. ``--no-daily`` leaves them out for every pair.
``--pairs N`` takes the first N pairs in alphabetical order; ``--quick`` is ``--pairs 2``.
Exits 2 with one line when the recorded prices are absent. Markdown on stdout, one progress line
per pair on stderr.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import pandas as pd
from _gate_runs import LEVELS, Judged, judge, progress, summary_rows

from sentinel42.market.calendar import NyseCalendar
from sentinel42.market.replay import read_price_csv

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
QUICK_PAIRS = 2


def read_bars(prices: Path) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Regular-session 15-minute bars per ticker, and the daily bars of those that have them."""
    calendar = NyseCalendar()
    intraday: dict[str, pd.DataFrame] = {}
    days: dict[str, pd.DataFrame] = {}
    for path in sorted(prices.glob("*_15m_*_prepost.csv")):
        ticker = path.name.split("_", 1)[0]
        frame = read_price_csv(path).sort_index()
        frame = frame[~frame.index.duplicated()]
        intraday[ticker] = frame[calendar.session_mask(frame.index, 15)]
        for daily_path in sorted(prices.glob(f"{ticker}_1d_*.csv")):
            days[ticker] = read_price_csv(daily_path).sort_index()
    return intraday, days


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pairs", type=int, help="the first N pairs only (default: all)")
    parser.add_argument("--quick", action="store_true", help=f"--pairs {QUICK_PAIRS}")
    parser.add_argument("--no-daily", action="store_true", help="no daily features for any pair")
    args = parser.parse_args(argv)
    prices = args.data / "prices"
    intraday, days = read_bars(prices) if prices.is_dir() else ({}, {})
    if len(intraday) < 2:
        print(f"ticker_pairs: fewer than two 15-minute price files in {prices}", file=sys.stderr)
        return 2
    pairs = list(itertools.combinations(sorted(intraday), 2))
    limit = QUICK_PAIRS if args.quick and args.pairs is None else args.pairs
    if limit is not None:
        if limit < 1:
            parser.error("--pairs must be at least 1")
        pairs = pairs[:limit]
    results: list[tuple[tuple[str, str], Judged]] = []
    for i, pair in enumerate(pairs, start=1):
        start = time.perf_counter()
        bars = {t: intraday[t] for t in pair}
        judged = judge(bars, n_folds=3, daily=None if args.no_daily else days)
        results.append((pair, judged))
        progress(f"pair {i}/{len(pairs)} {'+'.join(pair)}: {judged.n} windows, edge "
                 f"{judged.edge:+.4f}, 95% lower {judged.lower[0.95]:+.4f}, old gate "
                 f"{judged.old_gate} ({time.perf_counter() - start:.1f} s)")  # fmt: skip
    all_judged = [j for _, j in results]
    windows = sorted({j.n for j in all_judged})
    print(f"### Ticker pairs ({len(results)} of {len(list(itertools.combinations(intraday, 2)))}"
          f" pairs of {', '.join(sorted(intraday))}; daily features "
          f"{'off' if args.no_daily else 'where both tickers have daily bars'})\n")  # fmt: skip
    print(f"| gate | pairs promoted (of {len(results)}) |\n|---|---:|")
    for name, count in summary_rows(all_judged):
        print(f"| {name} | {count} |")
    pair, best = max(results, key=lambda pj: pj[1].lower[LEVELS[0]])
    print(f"\nDeciding windows per pair: {', '.join(map(str, windows))}. Highest "
          f"{LEVELS[0]:.0%} lower bound: {best.lower[LEVELS[0]]:+.4f} ({'+'.join(pair)}, edge "
          f"{best.edge:+.4f}).\n")  # fmt: skip
    print("| pair | windows | edge | 95% lower | 99% lower | old gate |")
    print("|---|---:|---:|---:|---:|---|")
    for pair, j in results:
        print(f"| {'+'.join(pair)} | {j.n} | {j.edge:+.4f} | {j.lower[0.95]:+.4f} | "
              f"{j.lower[0.99]:+.4f} | {'promoted' if j.old_gate else 'refused'} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
