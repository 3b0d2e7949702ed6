"""Replay price source: recorded yfinance exports read from a folder.

Layout (see docs/market-data.md): ``prices/<TICKER>.csv`` holds intraday bars and
``daily/<TICKER>.csv`` daily bars, both in the shape of yfinance's
``Ticker.history(...).to_csv()``. The real-world variants are read too: the three-line header of
``yf.download(...).to_csv()``, a second "ticker" header row, lower-case headers, any UTC offset,
and extra columns (``Dividends``, ``Stock Splits``, ``Symbol``, ``Adj Close``, ``Capital Gains``),
which are ignored. A bar is served only once it has ended at or before the replay clock.

A bad row loses only itself: it is skipped and reported (``PriceBatch.rejected``) with its file,
line and reason when the fetched range covers it; rows whose time is unknown (a garbage line, a
timestamp without an offset) are reported when a fetch reads the whole file.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from sentinel42.errors import DataError, PermanentSourceError, SourceError
from sentinel42.market.base import (
    DAILY,
    PriceBatch,
    RejectedRow,
    daily_bar_end,
    empty_bars,
    interval_minutes,
)
from sentinel42.market.price_csv import PriceFile, read_price_csv, read_price_file, write_price_csv

logger = logging.getLogger(__name__)


def _infer_interval(index: pd.DatetimeIndex) -> int | None:
    """Most common spacing (minutes) between consecutive bars within a day."""
    if len(index) < 3:
        return None
    diffs = np.diff(index.sort_values().asi8) // 60_000_000_000
    diffs = diffs[(diffs > 0) & (diffs < 24 * 60)]
    if len(diffs) == 0:
        return None
    values, counts = np.unique(diffs, return_counts=True)
    return int(values[counts.argmax()])


class ReplayPriceSource:
    """Serves recorded bars up to the replay clock; the same interface as the live source.

    Args:
        replay_dir: folder with ``prices/<TICKER>.csv`` and optionally ``daily/<TICKER>.csv``.
            For recordings named like the yfinance exports in the wild, a single
            ``prices/<TICKER>_<interval>_*.csv`` (or ``_1d_`` for daily) is accepted too.
        interval: the intraday interval the files hold (checked against the data).
    """

    name = "replay"

    def __init__(self, replay_dir: Path, interval: str = "15m") -> None:
        self.replay_dir = Path(replay_dir)
        self.interval = interval

    # --- files ---------------------------------------------------------------------------
    def _find(self, ticker: str, interval: str) -> Path | None:
        folder = "daily" if interval == DAILY else "prices"
        exact = self.replay_dir / folder / f"{ticker}.csv"
        if exact.is_file():
            return exact
        matches = sorted(
            p
            for sub in (folder, "prices")
            for p in (self.replay_dir / sub).glob(f"{ticker}_{interval}_*.csv")
        )
        return matches[0] if len(set(matches)) == 1 else None

    def _load(self, path: Path) -> PriceFile:
        stat = path.stat()
        return _read_cached(path.resolve(), stat.st_mtime_ns, stat.st_size, _label(path))

    def _intraday_file(self, ticker: str, interval: str) -> PriceFile:
        path = self._find(ticker, interval)
        if path is None:
            raise PermanentSourceError(f"no replay file prices/{ticker}.csv")
        held = self._load(path)
        found = _infer_interval(held.frame.index)
        if found is not None and found != interval_minutes(interval):
            raise PermanentSourceError(
                f"{path.name} holds {found}-minute bars, but the interval is {interval}"
            )
        return held

    # --- PriceSource -------------------------------------------------------------------------
    def fetch_intraday(
        self,
        tickers: Sequence[str],
        interval: str,
        since: Mapping[str, datetime | None],
        as_of: datetime,
    ) -> PriceBatch:
        """All held bars from ``since[t]`` that ended at or before ``as_of`` (no 60-day limit)."""
        batch = PriceBatch()
        step = pd.Timedelta(minutes=interval_minutes(interval))
        clock = pd.Timestamp(as_of)
        for ticker in tickers:
            try:
                held = self._intraday_file(ticker, interval)
            except (SourceError, DataError, OSError, ValueError) as exc:
                batch.errors[ticker] = _as_source_error(exc)
                continue
            frame = held.frame
            mask = frame.index + step <= clock
            start = since.get(ticker)
            if start is not None:
                mask &= frame.index >= pd.Timestamp(start)
            batch.frames[ticker] = frame[mask]
            due = _due(held, start, lambda ts: ts + step <= clock)
            if due:
                batch.rejected[ticker] = due
        return batch

    def fetch_daily(self, tickers: Sequence[str], since: datetime, as_of: datetime) -> PriceBatch:
        """Daily bars from ``since`` whose session ended (16:00 New York) by ``as_of``."""
        batch = PriceBatch()
        for ticker in tickers:
            path = self._find(ticker, DAILY)
            if path is None:
                batch.errors[ticker] = PermanentSourceError(f"no replay file daily/{ticker}.csv")
                continue
            try:
                held = self._load(path)
            except (DataError, OSError, ValueError) as exc:
                batch.errors[ticker] = _as_source_error(exc)
                continue
            frame = held.frame
            ends = pd.DatetimeIndex([daily_bar_end(ts) for ts in frame.index])
            mask = (ends <= pd.Timestamp(as_of)) & (frame.index >= pd.Timestamp(since))
            batch.frames[ticker] = frame[np.asarray(mask)] if len(frame) else empty_bars()
            due = _due(held, since, lambda ts: daily_bar_end(ts) <= as_of)
            if due:
                batch.rejected[ticker] = due
        return batch

    def data_end(self) -> datetime | None:
        """End (start + interval) of the newest intraday bar held, over every file."""
        folder = self.replay_dir / "prices"
        if not folder.is_dir():
            return None
        step = pd.Timedelta(minutes=interval_minutes(self.interval))
        newest: pd.Timestamp | None = None
        for path in sorted(folder.glob("*.csv")):
            stem = path.stem
            if "_" in stem and f"_{self.interval}_" not in stem:
                continue  # a recording of another interval
            try:
                frame = self._load(path).frame
            except (DataError, OSError, ValueError) as exc:
                logger.warning("replay: cannot read %s: %s", path, exc)
                continue
            if len(frame):
                end = frame.index.max() + step
                newest = end if newest is None or end > newest else newest
        return newest.to_pydatetime().astimezone(UTC) if newest is not None else None


def _as_source_error(exc: BaseException) -> SourceError:
    if isinstance(exc, SourceError):
        return exc
    err = PermanentSourceError(f"unreadable replay file: {exc}")
    err.__cause__ = exc
    return err


def _label(path: Path) -> str:
    """How rejections name a file: ``prices/AAPL.csv`` (its folder and name)."""
    return f"{path.parent.name}/{path.name}"


def _due(
    held: PriceFile, start: datetime | None, ended: Callable[[datetime], bool]
) -> list[RejectedRow]:
    """The rejected rows a fetch from ``start`` reports.

    A row with a readable time is reported when it lies in the fetched range (from ``start``,
    ended by the clock: ``ended(ts)``), as its bar would have been served; a row without one
    when the fetch reads the whole file, so an incremental refresh does not repeat it.
    """
    frame = held.frame
    whole = start is None or not len(frame) or pd.Timestamp(start) <= frame.index.min()
    return [
        row
        for row in held.rejected
        if (row.ts is None and whole)
        or (row.ts is not None and (start is None or row.ts >= start) and ended(row.ts))
    ]


@functools.lru_cache(maxsize=256)
def _read_cached(path: Path, mtime_ns: int, size: int, label: str) -> PriceFile:
    """:func:`read_price_file`, once per file version and process (its rejections logged once).

    The replay clock is resolved and the prices refreshed by different source instances (and
    flow tasks) in one run; keyed by mtime and size, a rewritten file is read again. Callers
    treat the frame as read-only.
    """
    return read_price_file(path, label=label)


__all__ = ["ReplayPriceSource", "read_price_csv", "read_price_file", "write_price_csv"]
