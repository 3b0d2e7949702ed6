"""Replay price source: recorded yfinance exports read from a folder.

Layout (see docs/market-data.md): ``prices/<TICKER>.csv`` holds intraday bars and
``daily/<TICKER>.csv`` daily bars, both in the shape of yfinance's
``Ticker.history(...).to_csv()``. The real-world variants are read too: the three-line header of
``yf.download(...).to_csv()``, a second "ticker" header row, lower-case headers, any UTC offset,
and extra columns (``Dividends``, ``Stock Splits``, ``Symbol``, ``Adj Close``, ``Capital Gains``),
which are ignored. A bar is served only once it has ended at or before the replay clock.

A folder may also hold files of many tickers: a CSV (or ``.csv.gz``) whose header has a
``ticker``, ``symbol`` or ``Name`` column and whose name is not a ticker's
(``prices/sp500.csv.gz``). Such a file is read once per version and serves each ticker's
rows exactly as a per-ticker file would. A file named for a ticker (``AAPL.csv``,
``AAPL_15m_*.csv``) is that ticker's, whatever columns it has; it wins over a multi-ticker
file, and of several multi-ticker files holding a ticker, the first by name serves it.

A bad row loses only itself: it is skipped and reported (``PriceBatch.rejected``) with its file,
line and reason when the fetched range covers it; rows whose time is unknown (a garbage line, a
timestamp without an offset) are reported when a fetch reads the whole file.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.errors import DataError, PermanentSourceError, SourceError
from sentinel42.market.base import (
    DAILY,
    PriceBatch,
    RejectedRow,
    daily_bar_end,
    daily_bar_ends,
    empty_bars,
    interval_minutes,
)
from sentinel42.market.price_csv import (
    MultiPriceFile,
    PriceFile,
    read_header,
    read_multi_price_file,
    read_price_csv,
    read_price_file,
    ticker_column,
    write_price_csv,
)

logger = logging.getLogger(__name__)

SUFFIXES = (".csv", ".csv.gz")
# A file named for a ticker: ``AAPL.csv`` or a yfinance export ``AAPL_15m_<anything>.csv``.
_NAMED = re.compile(
    r"^(?P<ticker>\^?[A-Z]{1,5}(?:[.-][A-Z]{1,2})?)(?:_(?P<interval>\d+[a-z]+)_.*)?$"
)


def price_stem(path: Path) -> str | None:
    """The name of a price file without ``.csv`` / ``.csv.gz``; None for any other file."""
    name = path.name
    for suffix in (".csv.gz", ".csv"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def named_ticker(path: Path) -> tuple[str, str | None] | None:
    """``(ticker, interval or None)`` of a file named for a ticker, else None."""
    stem = price_stem(path)
    match = _NAMED.match(stem) if stem is not None else None
    return (match.group("ticker"), match.group("interval")) if match else None


def _price_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if price_stem(p) is not None and p.is_file())


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
        # A fetch reads each folder's listing once for all its tickers (None: outside a fetch).
        self._listings: dict[str, dict[str, bool]] | None = None

    def _names(self, folder: str) -> dict[str, bool]:
        """``folder``'s listing (see :func:`_listing`), once per fetch."""
        if self._listings is None:
            return _listing(self.replay_dir / folder)
        if folder not in self._listings:
            self._listings[folder] = _listing(self.replay_dir / folder)
        return self._listings[folder]

    # --- files ---------------------------------------------------------------------------
    def _find(self, ticker: str, interval: str) -> Path | None:
        """The file named for ``ticker`` (``<T>.csv[.gz]``, else one ``<T>_<interval>_*``).

        Looked up in each folder's listing, read once per version of the folder (a backtest
        asks for every ticker at every step)."""
        folder = "daily" if interval == DAILY else "prices"
        own = self._names(folder)
        for suffix in SUFFIXES:
            if own.get(f"{ticker}{suffix}") is True:
                return self.replay_dir / folder / f"{ticker}{suffix}"
        prefix = f"{ticker}_{interval}_"
        matches = sorted(
            {
                self.replay_dir / sub / name
                for sub in (folder, "prices")
                for name in self._names(sub)
                if name.startswith(prefix)
                and any(name.endswith(s) and len(name) >= len(prefix) + len(s) for s in SUFFIXES)
            }
        )
        return matches[0] if len(matches) == 1 else None

    def _load(self, path: Path) -> PriceFile:
        stat = path.stat()
        return _read_cached(path.resolve(), stat.st_mtime_ns, stat.st_size, _label(path))

    def _load_multi(self, path: Path) -> MultiPriceFile:
        stat = path.stat()
        return _read_multi_cached(path.resolve(), stat.st_mtime_ns, stat.st_size, _label(path))

    def multi_ticker_files(self, folder: str) -> list[Path]:
        """The files of many tickers in ``prices`` or ``daily``: not named for a ticker, with a
        ticker column; in name order (the first holding a ticker serves it)."""
        out = []
        for path in _price_files(self.replay_dir / folder):
            if named_ticker(path) is None and self._has_ticker_column(path):
                out.append(path)
        return out

    def _has_ticker_column(self, path: Path) -> bool:
        stat = path.stat()
        return _ticker_column_cached(path.resolve(), stat.st_mtime_ns, stat.st_size)

    def _index(self, folder: str) -> dict[str, tuple[Path, MultiPriceFile]]:
        """ticker -> the multi-ticker file of ``folder`` that serves it, and what it holds."""
        index: dict[str, tuple[Path, MultiPriceFile]] = {}
        for path in self.multi_ticker_files(folder):
            try:
                held = self._load_multi(path)
            except (DataError, OSError, ValueError) as exc:
                logger.warning("replay: cannot read %s: %s", _label(path), exc)
                continue
            for ticker in held.files:
                index.setdefault(ticker, (path, held))
        return index

    def _held(
        self, ticker: str, interval: str, index: Mapping[str, tuple[Path, MultiPriceFile]]
    ) -> tuple[Path, PriceFile] | None:
        """The file serving ``ticker`` and its rows: its own file, else a multi-ticker file."""
        path = self._find(ticker, interval)
        if path is not None:
            return path, self._load(path)
        if ticker in index:
            path, held = index[ticker]
            return path, held.files[ticker]
        return None

    def _intraday_file(
        self, ticker: str, interval: str, index: Mapping[str, tuple[Path, MultiPriceFile]]
    ) -> PriceFile:
        found_file = self._held(ticker, interval, index)
        if found_file is None:
            raise PermanentSourceError(
                f"no replay file prices/{ticker}.csv (nor {ticker} in a multi-ticker file)"
            )
        path, held = found_file
        found = _timeline(held).interval
        if found is not None and found != interval_minutes(interval):
            raise PermanentSourceError(
                f"{path.name} holds {found}-minute bars for {ticker}, but the interval is "
                f"{interval}"
            )
        return held

    def held_tickers(self) -> tuple[list[str], list[str]]:
        """Every ticker a price file holds, and a line for each file that cannot be attributed.

        Counted: files named for a ticker in ``prices/`` (of the configured interval or daily)
        and ``daily/``, and every ticker of their multi-ticker files. A file neither named for a
        ticker nor with a ticker column is reported and left out.
        """
        tickers: set[str] = set()
        problems: list[str] = []
        for folder in ("prices", "daily"):
            for path in _price_files(self.replay_dir / folder):
                named = named_ticker(path)
                if named is not None:
                    ticker, interval = named
                    if interval in (None, self.interval, DAILY):
                        tickers.add(ticker)
                    continue
                if not self._has_ticker_column(path):
                    problems.append(
                        f"{_label(path)}: no ticker column (ticker, symbol or Name) and its "
                        "name is not a ticker; whose bars it holds is unknown, file ignored"
                    )
                    continue
                try:
                    held = self._load_multi(path)
                except (DataError, OSError, ValueError) as exc:
                    problems.append(f"{_label(path)}: unreadable: {exc}")
                    continue
                tickers.update(held.files)
                problems += [f"{row}" for row in held.unattributed]
        return sorted(tickers), problems

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
        index = self._index("prices")
        self._listings = {}
        try:
            self._fetch_intraday(batch, tickers, interval, since, clock, step, index)
        finally:
            self._listings = None
        return batch

    def _fetch_intraday(
        self,
        batch: PriceBatch,
        tickers: Sequence[str],
        interval: str,
        since: Mapping[str, datetime | None],
        clock: pd.Timestamp,
        step: pd.Timedelta,
        index: Mapping[str, tuple[Path, MultiPriceFile]],
    ) -> None:
        for ticker in tickers:
            try:
                held = self._intraday_file(ticker, interval, index)
            except (SourceError, DataError, OSError, ValueError) as exc:
                batch.errors[ticker] = _as_source_error(exc)
                continue
            start = since.get(ticker)
            batch.frames[ticker] = _timeline(held).between(start, clock - step)
            due = _due(held, start, lambda ts: ts + step <= clock)
            if due:
                batch.rejected[ticker] = due

    def fetch_daily(self, tickers: Sequence[str], since: datetime, as_of: datetime) -> PriceBatch:
        """Daily bars from ``since`` whose session ended (16:00 New York) by ``as_of``."""
        batch = PriceBatch()
        index = self._index("daily")
        clock = pd.Timestamp(as_of)
        for ticker in tickers:
            try:
                found = self._held(ticker, DAILY, index)
            except (DataError, OSError, ValueError) as exc:
                batch.errors[ticker] = _as_source_error(exc)
                continue
            if found is None:
                batch.errors[ticker] = PermanentSourceError(
                    f"no replay file daily/{ticker}.csv (nor {ticker} in a multi-ticker file)"
                )
                continue
            held = found[1]
            frame = held.frame
            mask = (daily_bar_ends(frame.index) <= clock) & (frame.index >= pd.Timestamp(since))
            batch.frames[ticker] = frame[np.asarray(mask)] if len(frame) else empty_bars()
            due = _due(held, since, lambda ts: daily_bar_end(ts) <= as_of)
            if due:
                batch.rejected[ticker] = due
        return batch

    def data_end(self) -> datetime | None:
        """End (start + interval) of the newest intraday bar held, over every file.

        A folder without intraday bars (only ``daily/``) ends when its newest daily bar's
        session does (16:00 New York), so a replay of daily files alone has a clock too.
        """
        step = pd.Timedelta(minutes=interval_minutes(self.interval))
        newest = self._newest("prices", self.interval)
        if newest is not None:
            return (newest + step).to_pydatetime().astimezone(UTC)
        newest = self._newest("daily", DAILY)
        return daily_bar_end(newest) if newest is not None else None

    def _newest(self, folder: str, interval: str) -> pd.Timestamp | None:
        """Start of the newest bar of ``folder``'s files (named ones of ``interval`` only)."""
        newest: pd.Timestamp | None = None
        for path in _price_files(self.replay_dir / folder):
            stem = price_stem(path) or ""
            named = named_ticker(path)
            try:
                if named is not None or not self._has_ticker_column(path):
                    if "_" in stem and f"_{interval}_" not in stem and folder == "prices":
                        continue  # a recording of another interval
                    frames = [self._load(path).frame]
                else:
                    frames = [held.frame for held in self._load_multi(path).files.values()]
            except (DataError, OSError, ValueError) as exc:
                logger.warning("replay: cannot read %s: %s", path, exc)
                continue
            for frame in frames:
                if len(frame):
                    top = frame.index.max()
                    newest = top if newest is None or top > newest else newest
        return newest


class _Timeline:
    """A held file's bar starts as int64 nanoseconds, and its interval, computed once.

    ``between`` serves exactly ``frame[(index >= start) & (index <= last)]``: by binary search
    when the index is sorted (every file as written), by the mask otherwise."""

    __slots__ = ("frame", "interval", "sorted", "stamps")

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        index = pd.DatetimeIndex(frame.index)
        self.stamps = index.as_unit("ns").asi8
        self.sorted = bool(index.is_monotonic_increasing)
        self.interval = _infer_interval(index)

    def between(self, start: datetime | None, last: pd.Timestamp) -> pd.DataFrame:
        high = pd.Timestamp(last).as_unit("ns").value
        low = None if start is None else pd.Timestamp(start).as_unit("ns").value
        if not self.sorted:
            mask = self.stamps <= high
            if low is not None:
                mask &= self.stamps >= low
            return self.frame[mask]
        lo = 0 if low is None else int(np.searchsorted(self.stamps, low, side="left"))
        hi = int(np.searchsorted(self.stamps, high, side="right"))
        return self.frame.iloc[lo : max(lo, hi)].copy()


# id(PriceFile) -> (the PriceFile, kept so its id is not reused, and its timeline)
_TIMELINES: dict[int, tuple[PriceFile, _Timeline]] = {}
_MAX_TIMELINES = 8192


def _timeline(held: PriceFile) -> _Timeline:
    """The timeline of a held file (the cached readers hand out the same object each time)."""
    hit = _TIMELINES.get(id(held))
    if hit is not None and hit[0] is held:
        return hit[1]
    if len(_TIMELINES) >= _MAX_TIMELINES:
        _TIMELINES.clear()
    line = _Timeline(held.frame)
    _TIMELINES[id(held)] = (held, line)
    return line


def _listing(folder: Path) -> dict[str, bool]:
    """A folder's entries, name -> whether it is a file (symlinks followed); empty when it is
    not a folder. Read once per version of the folder (its mtime), unless that changed in the
    last two seconds: the file system's clock is coarser than its nanoseconds, so a file added
    right after a read could leave the mtime as it was."""
    try:
        stat = folder.stat()
    except OSError:
        return {}
    if time.time_ns() - stat.st_mtime_ns < 2_000_000_000:
        return _listing_cached.__wrapped__(folder, stat.st_mtime_ns)
    return _listing_cached(folder, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _listing_cached(folder: Path, mtime_ns: int) -> dict[str, bool]:
    import os

    try:
        with os.scandir(folder) as entries:
            return {e.name: _is_file(e) for e in entries}
    except (NotADirectoryError, FileNotFoundError):
        return {}


def _is_file(entry: Any) -> bool:
    try:
        return bool(entry.is_file())
    except OSError:
        return False


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
    if not held.rejected:
        return []
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


@functools.lru_cache(maxsize=8)
def _read_multi_cached(path: Path, mtime_ns: int, size: int, label: str) -> MultiPriceFile:
    """:func:`read_multi_price_file`, once per file version and process (a few large files)."""
    return read_multi_price_file(path, label=label)


@functools.lru_cache(maxsize=1024)
def _ticker_column_cached(path: Path, mtime_ns: int, size: int) -> bool:
    try:
        return ticker_column(read_header(path)) is not None
    except (OSError, EOFError) as exc:
        logger.warning("replay: cannot read %s: %s", path, exc)
        return False


__all__ = ["ReplayPriceSource", "read_price_csv", "read_price_file", "write_price_csv"]
