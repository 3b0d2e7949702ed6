"""Replay price source: recorded yfinance exports read from a folder.

Layout (see docs/market-data.md): ``prices/<TICKER>.csv`` holds intraday bars and
``daily/<TICKER>.csv`` daily bars, both in the shape of yfinance's
``Ticker.history(...).to_csv()``. The real-world variants are read too: the three-line header of
``yf.download(...).to_csv()``, a second "ticker" header row, lower-case headers, any UTC offset,
and extra columns (``Dividends``, ``Stock Splits``, ``Symbol``, ``Adj Close``, ``Capital Gains``),
which are ignored. A bar is served only once it has ended at or before the replay clock.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from sentinel42.domain import BAR_COLUMNS
from sentinel42.errors import DataError, PermanentSourceError, SourceError
from sentinel42.market.base import (
    DAILY,
    PriceBatch,
    daily_bar_end,
    empty_bars,
    interval_minutes,
)

logger = logging.getLogger(__name__)

_TIME_COLUMNS = ("datetime", "date", "price", "timestamp", "ts", "")
NY = "America/New_York"


def _header_rows(path: Path) -> tuple[list[str], int]:
    """Column names and how many header lines precede the data."""
    with path.open(encoding="utf-8-sig") as fh:
        lines = [fh.readline().rstrip("\r\n") for _ in range(3)]
    first = lines[0].split(",")
    second = lines[1].split(",") if lines[1] else []
    skip = 1
    # yf.download(...).to_csv() with a MultiIndex: "Price,Close,..." / "Ticker,AAPL,..." /
    # "Datetime,,,,," -- the time column's real name is on the third line.
    if second and second[0].strip().lower() == "ticker":
        skip = 2
        third = lines[2].split(",")
        if third and third[0].strip() and all(not x.strip() for x in third[1:]):
            skip = 3
            first[0] = third[0]
    # A mangled MultiIndex export: the second line repeats the ticker under each column.
    elif second and not second[0].strip() and any(x.strip() for x in second[1:]):
        skip = 2
    return [c.strip() for c in first], skip


def read_price_csv(path: Path) -> pd.DataFrame:
    """Read a yfinance CSV export of any of the known shapes into a domain bar frame.

    Args:
        path: the CSV file.

    Returns:
        Columns ``open, high, low, close, volume`` (float64), index ``ts`` of tz-aware UTC bar
        starts, sorted as in the file (validation sorts and checks). Date-only rows (daily bars
        without a time) are taken as New York midnight.

    Raises:
        DataError: the file lacks a price column or a timestamp has no UTC offset.
    """
    names, skip = _header_rows(path)
    raw = pd.read_csv(path, header=None, skiprows=skip, names=names, dtype=str)
    lower = {c: c.lower() for c in raw.columns}
    raw = raw.rename(columns=lower)
    time_col = next((c for c in raw.columns if c in _TIME_COLUMNS), raw.columns[0])
    missing = [c for c in BAR_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{path.name}: no column(s) {', '.join(missing)}")
    raw = raw[raw[time_col].notna() & (raw[time_col].str.strip() != "")]
    stamps = raw[time_col].str.strip()
    has_offset = stamps.str.contains(r"(?:[+-]\d{2}:?\d{2}|Z)$", regex=True)
    if has_offset.all():
        index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True, format="ISO8601"))
    elif not has_offset.any() and stamps.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all():
        index = pd.DatetimeIndex(pd.to_datetime(stamps, format="%Y-%m-%d")).tz_localize(NY)
    else:
        raise DataError(f"{path.name}: timestamps without a UTC offset (e.g. {stamps.iloc[0]!r})")
    frame = pd.DataFrame(
        {c: pd.to_numeric(raw[c], errors="coerce").to_numpy(dtype="float64") for c in BAR_COLUMNS},
        index=index.tz_convert(UTC).as_unit("ns").rename("ts"),
    )
    return frame


def write_price_csv(frame: pd.DataFrame, path: Path, *, time_column: str = "Datetime") -> None:
    """Write bars in the replay shape: ``Datetime,Open,High,Low,Close,Volume`` (UTC offsets).

    Args:
        frame: domain bar frame (extra columns such as ``flagged`` are not written).
        path: destination; its folder is created.
        time_column: ``Datetime`` for intraday bars, ``Date`` for daily bars.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    out = frame[list(BAR_COLUMNS)].copy()
    out.index = out.index.tz_convert(UTC).rename(time_column)
    out.columns = [c.capitalize() for c in BAR_COLUMNS]
    tmp = path.with_suffix(path.suffix + ".tmp")
    out.to_csv(tmp, date_format="%Y-%m-%d %H:%M:%S%z")
    tmp.replace(path)  # atomic: a reader never sees half a file


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

    def _load(self, path: Path) -> pd.DataFrame:
        stat = path.stat()
        return _read_cached(path.resolve(), stat.st_mtime_ns, stat.st_size)

    def _intraday_frame(self, ticker: str, interval: str) -> pd.DataFrame:
        path = self._find(ticker, interval)
        if path is None:
            raise PermanentSourceError(f"no replay file prices/{ticker}.csv")
        frame = self._load(path)
        found = _infer_interval(frame.index)
        if found is not None and found != interval_minutes(interval):
            raise PermanentSourceError(
                f"{path.name} holds {found}-minute bars, but the interval is {interval}"
            )
        return frame

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
                frame = self._intraday_frame(ticker, interval)
            except (SourceError, DataError, OSError, ValueError) as exc:
                batch.errors[ticker] = _as_source_error(exc)
                continue
            mask = frame.index + step <= clock
            start = since.get(ticker)
            if start is not None:
                mask &= frame.index >= pd.Timestamp(start)
            batch.frames[ticker] = frame[mask]
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
                frame = self._load(path)
            except (DataError, OSError, ValueError) as exc:
                batch.errors[ticker] = _as_source_error(exc)
                continue
            ends = pd.DatetimeIndex([daily_bar_end(ts) for ts in frame.index])
            mask = (ends <= pd.Timestamp(as_of)) & (frame.index >= pd.Timestamp(since))
            batch.frames[ticker] = frame[np.asarray(mask)] if len(frame) else empty_bars()
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
                frame = self._load(path)
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


@functools.lru_cache(maxsize=256)
def _read_cached(path: Path, mtime_ns: int, size: int) -> pd.DataFrame:
    """:func:`read_price_csv`, once per file version and process.

    The replay clock is resolved and the prices refreshed by different source instances (and
    flow tasks) in one run; keyed by mtime and size, a rewritten file is read again. Callers
    treat the frame as read-only.
    """
    return read_price_csv(path)
