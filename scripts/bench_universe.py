"""Time load_universe_bars on a fresh SQLite store: the first load, then a second (nothing new).

uv run python scripts/bench_universe.py REPLAY_DIR {intraday,daily} [--db PATH]

REPLAY_DIR is a replay folder (e.g. symlinks to ../shared/data/universe/*.csv.gz under prices/
or daily/); the universe is `all` of it, the clock the replay data's end.
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from pathlib import Path

from sentinel42.clock import resolve_as_of
from sentinel42.factory import build_calendar, build_price_source
from sentinel42.market.universe import load_universe_bars, resolve_universe
from sentinel42.persistence import open_store
from sentinel42.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("replay_dir", type=Path)
    parser.add_argument("kind", choices=["intraday", "daily"])
    parser.add_argument("--db", type=Path, help="SQLite file (replaced); default: a temp file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        db.unlink(missing_ok=True)
        start = time.perf_counter()
        settings = load_settings(
            data_source="replay",
            replay_dir=args.replay_dir,
            universe="all",
            database_url=f"sqlite:///{db}",
        )
        as_of = resolve_as_of(settings)
        universe = resolve_universe(settings)
        print(
            f"clock {as_of.isoformat()}, universe of {len(universe.tickers)} tickers "
            f"({len(universe.problems)} problems), resolved in {time.perf_counter() - start:.1f} s"
        )
        inputs = {"source": build_price_source(settings), "calendar": build_calendar(settings)}
        with open_store(settings) as store:
            for run in ("first", "second"):
                wall, cpu = time.perf_counter(), time.process_time()
                bars = load_universe_bars(
                    settings, universe.tickers, args.kind, as_of, store=store, **inputs
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(
                    f"{run} {args.kind} load: {len(bars)} tickers, "
                    f"{sum(len(f) for f in bars.values())} bars, {wall:.1f} s wall, "
                    f"{cpu:.1f} s CPU, {store.count_bars()} bars stored"
                )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
