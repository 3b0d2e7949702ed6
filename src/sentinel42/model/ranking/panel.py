"""A universe's bars as one panel: aligned ``[time, ticker]`` arrays, with the defects flagged.

The cross-sectional models see every ticker at every timestamp at once, so the per-ticker bar
frames of the store are aligned on the union of their timestamps. A ticker without a bar at a
timestamp holds NaN there. Defects that survived the readers are flagged, never trained on:

- a close-to-close move beyond :data:`JUMP_LOG_RETURN` (about -39 % / +65 %) between
  consecutive bars of a ticker: on the shared S&P 500 daily file these are the unadjusted
  corporate actions (EBAY's PayPal, BAX's Baxalta and NI's spin-offs, DISCA/DISCK's share-class
  split) and LNT's bad 2016-05-19 close; no window or target may touch the flagged bar. The
  flag looks only at the bar and the one before it (never ahead), so it drops no sample by its
  outcome. Smaller unadjusted actions (ARNC's 2016 split at -34 %) pass as ordinary moves;

- a bar the refresh flagged as suspect (its ``flagged`` column: a range spike against the
  trailing bars) is kept out of every input window (``suspect``) but not out of targets: its
  close may be real, and dropping the samples whose outcome holds an extreme bar would select
  them by their outcome;
- a bar whose open is missing (the open-based features are then unknown) or whose high and low
  do not bound its open and close (the readers reject those rows; a frame built by other code
  may still carry them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.errors import ModelError
from sentinel42.market.calendar import SESSION_TZ

KINDS: tuple[str, ...] = ("intraday", "daily")
JUMP_LOG_RETURN = 0.5  # |log(close / previous close)| above this is flagged, not learnt from
_NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class Panel:
    """Bars of many tickers on one clock.

    Attributes:
        kind: ``intraday`` (one row per bar start) or ``daily`` (one row per session).
        tickers: column order.
        ts: [T] int64 ns, UTC bar start (daily: the bar's own timestamp), increasing.
        session: [T] int64, New York session day (days since 1970-01-01) of each row.
        open, high, low, close, volume: [T, N] float64, NaN where a ticker has no bar.
        flagged: [T, N] bool, defects: no window or target may touch them.
        suspect: [T, N] bool, bars the refresh flagged: no input window may hold them.
        flag_counts: defect name -> bars flagged, for the report.
    """

    kind: str
    tickers: tuple[str, ...]
    ts: np.ndarray
    session: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    flagged: np.ndarray
    flag_counts: dict[str, int]
    suspect: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.ts.shape[0]), len(self.tickers))

    def slot(self) -> np.ndarray:
        """[T] int: the row's place within its session (0 for the first bar of the day)."""
        starts = np.r_[True, self.session[1:] != self.session[:-1]]
        first = np.maximum.accumulate(np.where(starts, np.arange(self.ts.shape[0]), 0))
        return np.arange(self.ts.shape[0]) - first

    def minutes_of_day(self) -> np.ndarray:
        """[T] float: minutes since midnight New York of each row's bar start."""
        local = _local_ns(self.ts)
        return (local % _NS_PER_DAY) / 60e9

    def sessions(self) -> int:
        return int(np.unique(self.session).shape[0])

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tickers": len(self.tickers),
            "periods": int(self.ts.shape[0]),
            "sessions": self.sessions(),
            "start": pd.Timestamp(int(self.ts[0]), tz="UTC").isoformat() if len(self.ts) else None,
            "end": pd.Timestamp(int(self.ts[-1]), tz="UTC").isoformat() if len(self.ts) else None,
            "bars": int(np.isfinite(self.close).sum()),
            "flagged": dict(self.flag_counts),
        }


def _local_ns(ts: np.ndarray) -> np.ndarray:
    index = pd.DatetimeIndex(ts.astype("datetime64[ns]"), tz="UTC")
    return np.asarray(index.tz_convert(SESSION_TZ).tz_localize(None).as_unit("ns").asi8)


def build_panel(bars: Mapping[str, pd.DataFrame], kind: str) -> Panel:
    """Align ticker bar frames (domain shape: UTC ``ts`` index, OHLCV columns) into a panel.

    Raises:
        ModelError: an unknown kind, or no ticker with bars.
    """
    if kind not in KINDS:
        raise ModelError(f"unknown model kind {kind!r}; use one of {', '.join(KINDS)}")
    tickers = tuple(sorted(t for t, f in bars.items() if f is not None and len(f) > 0))
    if not tickers:
        raise ModelError(f"no {kind} bars for any ticker of the universe")
    stamps = [pd.DatetimeIndex(bars[t].index).as_unit("ns").asi8 for t in tickers]
    if kind == "daily":
        # One row per New York session day, whatever time of day the source stamps it with.
        stamps = [_local_ns(s) // _NS_PER_DAY * _NS_PER_DAY for s in stamps]
    all_ts = np.unique(np.concatenate(stamps))
    n_t, n = all_ts.shape[0], len(tickers)
    arrays = {c: np.full((n_t, n), np.nan) for c in ("open", "high", "low", "close", "volume")}
    stored_flags = np.zeros((n_t, n), dtype=bool)
    for j, (t, s) in enumerate(zip(tickers, stamps, strict=True)):
        rows = np.searchsorted(all_ts, s)
        frame = bars[t]
        for c, arr in arrays.items():
            arr[rows, j] = frame[c].to_numpy(dtype=np.float64)
        if "flagged" in frame.columns:  # the refresh's own checks (spikes, gaps)
            stored_flags[rows, j] = frame["flagged"].fillna(False).to_numpy(dtype=bool)
    if kind == "daily":
        session = all_ts // _NS_PER_DAY
        ts = all_ts  # midnight of the session day, as UTC nanoseconds of the naive date
    else:
        ts = all_ts
        session = _local_ns(all_ts) // _NS_PER_DAY
    flagged, counts = _defects(arrays, session, kind)
    counts["stored_flag"] = int(stored_flags.sum())
    return Panel(kind, tickers, ts, session, flag_counts=counts, flagged=flagged,
                 suspect=stored_flags, **arrays)  # fmt: skip


def _defects(
    a: dict[str, np.ndarray], session: np.ndarray, kind: str
) -> tuple[np.ndarray, dict[str, int]]:
    o, h, low, c = a["open"], a["high"], a["low"], a["close"]
    present = np.isfinite(c)
    missing_open = present & ~np.isfinite(o)
    with np.errstate(invalid="ignore"):
        ohlc = (
            present
            & np.isfinite(o)
            & ((h < np.fmax(o, c)) | (low > np.fmin(o, c)) | (low <= 0) | (c <= 0))
        )
    jump = np.zeros_like(present)
    # The previous close of the same ticker, however many rows back it is.
    prev = pd.DataFrame(c).ffill().shift(1).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(np.log(c / prev))
    jump = present & np.isfinite(r) & (r > JUMP_LOG_RETURN)
    flagged = missing_open | ohlc | jump
    counts = {
        "missing_open": int(missing_open.sum()),
        "ohlc_break": int(ohlc.sum()),
        "jump": int(jump.sum()),
    }
    return flagged, counts
