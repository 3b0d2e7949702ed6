"""``sentinel42 bench refresh``: CPU cost of validating and storing one refresh (no network).

Synthetic bars from an in-memory source (the network is excluded by design) go through the
real :func:`~sentinel42.market.refresh.refresh_prices` into a fresh SQLite store: first a
backfill of ``days`` sessions for every ticker, then an incremental refresh one bar later. The
CLI runs it in a fresh process (:func:`sentinel42.bench.measure.run_isolated`), so its peak RSS
is this benchmark's own.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sentinel42.bench.measure import peak_rss_mb
from sentinel42.domain import BAR_COLUMNS
from sentinel42.market.base import PriceBatch, empty_bars, interval_minutes
from sentinel42.market.calendar import NyseCalendar

if TYPE_CHECKING:
    from sentinel42.settings import Settings

# A fixed, ordinary stretch of sessions, so figures do not depend on the day the bench runs.
BENCH_END = datetime(2026, 11, 20, 20, 30, tzinfo=UTC)  # Friday 15:30 New York


class SyntheticPriceSource:
    """Random-walk regular-session bars for any ticker, generated once per source."""

    name = "synthetic"

    def __init__(self, calendar: NyseCalendar, start: datetime, end: datetime, seed: int = 7):
        self._calendar = calendar
        self._index = self._session_index(start, end)
        self._rng = np.random.default_rng(seed)
        self._cache: dict[str, pd.DataFrame] = {}

    def _session_index(self, start: datetime, end: datetime) -> pd.DatetimeIndex:
        parts = [
            pd.date_range(o, c, freq="15min", inclusive="left")
            for o, c in self._calendar.sessions_between(start, end)
        ]
        return pd.DatetimeIndex(np.concatenate([p.as_unit("ns").asi8 for p in parts])).tz_localize(
            UTC
        )

    def _frame(self, ticker: str) -> pd.DataFrame:
        if ticker not in self._cache:
            n = len(self._index)
            close = 100 * np.exp(np.cumsum(self._rng.normal(0, 0.002, n)))
            open_ = np.concatenate([[close[0]], close[:-1]])
            wiggle = np.abs(self._rng.normal(0, 0.001, (2, n))) * close
            self._cache[ticker] = pd.DataFrame(
                {
                    "open": open_,
                    "high": np.maximum(open_, close) + wiggle[0],
                    "low": np.minimum(open_, close) - wiggle[1],
                    "close": close,
                    "volume": self._rng.integers(1_000, 100_000, n).astype("float64"),
                },
                index=self._index.rename("ts"),
            )
        return self._cache[ticker]

    def fetch_intraday(
        self,
        tickers: Sequence[str],
        interval: str,
        since: Mapping[str, datetime | None],
        as_of: datetime,
    ) -> PriceBatch:
        step = pd.Timedelta(minutes=interval_minutes(interval))
        batch = PriceBatch()
        for t in tickers:
            frame = self._frame(t)
            mask = frame.index + step <= pd.Timestamp(as_of)
            if since.get(t) is not None:
                mask &= frame.index >= pd.Timestamp(since[t])
            batch.frames[t] = frame[mask]
        return batch

    def fetch_daily(self, tickers: Sequence[str], since: datetime, as_of: datetime) -> PriceBatch:
        # Daily bars are not what this bench measures: nothing new for any ticker.
        empty = empty_bars()
        return PriceBatch(frames=dict.fromkeys(tickers, empty))

    def data_end(self) -> datetime | None:
        return None


def _phase(
    settings: Settings,
    source: SyntheticPriceSource,
    store: Any,
    calendar: NyseCalendar,
    as_of: datetime,
    *,
    naive: bool = False,
) -> dict[str, Any]:
    """Run one refresh, splitting CPU time between validation and the store.

    ``naive``: the same refresh one ticker at a time (a one-ticker watchlist per call: one
    fetch, one context read and one upsert transaction per ticker), as a loop over tickers
    would do it.
    """
    import sentinel42.market.refresh as refresh_mod

    spent = {"validate": 0.0}
    real_validate = refresh_mod.validate_bars

    def timed_validate(*args: Any, **kwargs: Any) -> Any:
        t0 = time.process_time()
        try:
            return real_validate(*args, **kwargs)
        finally:
            spent["validate"] += time.process_time() - t0

    # Instrumentation only: the same function runs, its CPU time is added up.
    refresh_mod.validate_bars = timed_validate  # type: ignore[assignment]
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if naive:
            rows = [
                row
                for t in settings.tickers
                for row in refresh_mod.refresh_prices(
                    settings.model_copy(update={"tickers": [t]}), source, store, calendar, as_of
                ).tickers
            ]
        else:
            rows = refresh_mod.refresh_prices(settings, source, store, calendar, as_of).tickers
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        refresh_mod.validate_bars = real_validate  # type: ignore[assignment]
    bars = sum(t.bars_new + t.bars_updated for t in rows)
    return {
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "peak_rss_mb": peak_rss_mb(),  # the process's high-water mark so far
        "validate_cpu_s": round(spent["validate"], 3),
        "store_cpu_s": round(cpu - spent["validate"], 3),
        "bars": bars,
        "bars_new": sum(t.bars_new for t in rows),
    }


def bench_refresh(
    n_tickers: int = 500, days: int = 60, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Backfill ``days`` of 15-minute bars for ``n_tickers``, then refresh one new bar, then
    another new bar the naive way (one refresh per ticker), in the same run.

    Returns:
        ``{"tickers": n, "days": d, "phases": {"backfill": {...}, "incremental": {...},
        "incremental_naive": {...}}}`` with CPU seconds (``time.process_time``), wall seconds,
        bars stored and the process's peak RSS at the end of each phase.
    """
    from sentinel42.persistence import open_store
    from sentinel42.settings import load_settings

    say = progress or (lambda _m: None)
    calendar = NyseCalendar()
    tickers = [ticker_name(i) for i in range(n_tickers)]
    first_open = calendar.sessions_between(BENCH_END - timedelta(days=days * 2), BENCH_END)
    start = first_open[-days][0] if len(first_open) >= days else first_open[0][0]
    source = SyntheticPriceSource(calendar, start, BENCH_END + timedelta(hours=1))
    for t in tickers:  # generate outside the timed phases
        source._frame(t)
    with tempfile.TemporaryDirectory(prefix="sentinel42-bench-") as tmp:
        settings = load_settings(
            tickers=tickers, data_dir=Path(tmp), data_source="live", daily_history_days=30
        )
        with open_store(settings) as store:
            say(f"backfill: {n_tickers} tickers x {days} sessions of 15m bars")
            backfill = _phase(settings, source, store, calendar, BENCH_END)
            say(f"incremental: {n_tickers} tickers x 1 new bar")
            incremental = _phase(
                settings, source, store, calendar, BENCH_END + timedelta(minutes=15)
            )
            say(f"incremental, naive: {n_tickers} tickers x 1 new bar, one refresh per ticker")
            naive = _phase(
                settings, source, store, calendar, BENCH_END + timedelta(minutes=30), naive=True
            )
    return {
        "tickers": n_tickers,
        "days": days,
        "columns": list(BAR_COLUMNS),
        "phases": {"backfill": backfill, "incremental": incremental, "incremental_naive": naive},
    }


def ticker_name(i: int) -> str:
    """Distinct valid ticker symbols: A, B, ..., Z, AA, AB, ..."""
    letters = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        letters = chr(65 + r) + letters
    return letters
