"""Validation of bar frames at the adapter edge, the same for every source.

Rejected bars are dropped; suspicious bars are kept and flagged. Every rejection and flag is
counted and logged with its reason, and no value is ever changed. A price is rejected when it is
missing, not finite (``inf``) or not positive, or when high/low do not bound open and close; a
volume when it is missing, not finite or negative (:func:`bar_rules`, which the replay reader
applies too, so that a bad row of a file is reported with its line number).

A bar is flagged as a range spike when its high-low range exceeds ``spike_threshold`` times the
median range of a trailing window: the bar itself and up to ``SPIKE_LOOKBACK`` bars before it
(stored ``context`` bars included), with at least ``MIN_NEIGHBOURS`` earlier bars. No check
looks at a later bar: a bar's flag, and whether it is kept, are decided by the bar and the
bars before it alone, so they never change when later bars arrive, and an incremental refresh
(a few new bars after the stored ones) flags a bar exactly as validating the whole history
would. (Until issue 17 the window was centred, five bars each side, so a bar's flag depended on
the five bars after it.)
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from sentinel42.domain import BAR_COLUMNS
from sentinel42.errors import DataError
from sentinel42.market.base import daily_bar_ends

if TYPE_CHECKING:
    from sentinel42.market.calendar import NyseCalendar

logger = logging.getLogger(__name__)

# Earlier bars whose ranges, with the bar's own, make the median a bar is compared with (never a
# later bar); at least MIN_NEIGHBOURS earlier bars are needed before anything is called a spike
# (a lone bar has no neighbourhood).
SPIKE_LOOKBACK = 10
MIN_NEIGHBOURS = 4
PRICE_COLUMNS = ("open", "high", "low", "close")
OHLC_REASON = "inconsistent OHLC (low > open/close or high < open/close)"


@dataclass
class ValidationResult:
    """What validation kept and why it dropped or flagged the rest.

    Attributes:
        frame: the kept bars (domain columns plus ``flagged`` bool and ``flag_reason`` str).
        rejected: reason -> number of bars dropped.
        flagged: reason -> number of bars kept but flagged.
        forming: bars dropped because they had not ended by ``as_of`` (not final, not errors).
    """

    frame: pd.DataFrame
    rejected: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)
    forming: int = 0

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    @property
    def n_flagged(self) -> int:
        return sum(self.flagged.values())


def normalize_index(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with a tz-aware UTC nanosecond index named ``ts``.

    Raises:
        DataError: the index is not datetimes or has no timezone.
    """
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"bar index must be datetimes, got {type(index).__name__}")
    if index.tz is None:
        raise DataError("bar index is naive; expected tz-aware timestamps")
    out = frame.copy()
    out.index = index.tz_convert(UTC).as_unit("ns").rename("ts")
    return out


def bar_rules(values: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The value rules every bar must pass, in the order they are applied.

    Args:
        values: ``[bars, 5]`` float64 in ``BAR_COLUMNS`` order (open, high, low, close, volume).

    Returns:
        One ``(reason, bad, cells)`` per rule: ``bad`` ``[bars]`` marks the bars breaking it and
        ``cells`` ``[bars, 5]`` the values at fault (so a file reader can quote them). A bar
        breaking several rules counts under the first.
    """
    prices = values[:, :4]
    o, h, lo, c, v = (values[:, i] for i in range(5))
    n = len(values)

    def only(col: int, mask: np.ndarray) -> np.ndarray:
        cells = np.zeros((n, 5), dtype=bool)
        cells[:, col] = mask
        return cells

    def price_cells(mask: np.ndarray) -> np.ndarray:
        return np.concatenate([mask, np.zeros((n, 1), dtype=bool)], axis=1)

    with np.errstate(invalid="ignore"):
        nan_price = np.isnan(prices)
        inf_price = np.isinf(prices)
        low_price = prices <= 0
        bad_ohlc = (lo > np.minimum(o, c)) | (h < np.maximum(o, c)) | (lo > h)
        ohlc_cells = np.zeros((n, 5), dtype=bool)
        ohlc_cells[:, :4] = bad_ohlc[:, None]
        return [
            ("missing price (NaN)", nan_price.any(axis=1), price_cells(nan_price)),
            ("non-finite price (inf)", inf_price.any(axis=1), price_cells(inf_price)),
            ("non-positive price", low_price.any(axis=1), price_cells(low_price)),
            (OHLC_REASON, bad_ohlc, ohlc_cells),
            ("missing volume (NaN)", np.isnan(v), only(4, np.isnan(v))),
            ("non-finite volume (inf)", np.isinf(v), only(4, np.isinf(v))),
            ("negative volume", v < 0, only(4, v < 0)),
        ]


def _reject(
    keep: np.ndarray, bad: np.ndarray, reason: str, counts: Counter[str], index: pd.Index, who: str
) -> None:
    newly = keep & bad
    n = int(newly.sum())
    if n:
        counts[reason] += n
        first = index[np.argmax(newly)]
        logger.warning("%s: rejected %d bar(s): %s (first at %s)", who, n, reason, first)
        keep &= ~bad


def validate_bars(
    frame: pd.DataFrame,
    *,
    ticker: str,
    interval_minutes: int,
    calendar: NyseCalendar,
    as_of: datetime,
    prepost: bool = False,
    spike_threshold: float = 8.0,
    context: pd.DataFrame | None = None,
    daily: bool = False,
) -> ValidationResult:
    """Check a bar frame; drop invalid bars, flag suspicious ones, count and log both.

    Args:
        frame: domain bar frame, tz-aware index of bar starts (any timezone).
        ticker: for the log lines.
        interval_minutes: bar length (ignored for daily bars).
        calendar: decides which bars lie inside a regular session.
        as_of: tz-aware; a bar that ends after it is still forming and is dropped.
        prepost: keep pre- and post-market bars.
        spike_threshold: a bar whose high-low range exceeds this many times the median range of
            itself and the ``SPIKE_LOOKBACK`` bars before it is flagged (past bars only).
        context: already stored bars just before ``frame`` (the earlier bars of the spike
            check of ``frame``'s first bars; never returned). Its last ``SPIKE_LOOKBACK`` bars
            before ``frame`` make the flags equal to those of validating both at once.
        daily: the frame holds daily bars (indexed by New York midnight).

    Returns:
        The kept bars, sorted, with ``flagged`` and ``flag_reason`` columns, and the counts.

    Raises:
        DataError: the frame lacks a domain column or its index is not tz-aware.
    """
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{ticker}: bar frame lacks column(s) {', '.join(missing)}")
    idx, values, names = _bar_arrays(frame)
    who = f"{ticker} {'1d' if daily else f'{interval_minutes}m'}"
    rejected: Counter[str] = Counter()
    keep = np.ones(len(idx), dtype=bool)

    # Not final yet: the bar is still forming at as_of. Dropped, but not an error.
    step_ns = interval_minutes * 60_000_000_000
    ends_ns = daily_bar_ends(idx).asi8 if daily else idx.asi8 + step_ns
    forming_mask = ends_ns > pd.Timestamp(as_of).as_unit("ns").value
    forming = int(forming_mask.sum())
    if forming:
        logger.debug("%s: %d bar(s) not final at %s (still forming)", who, forming, as_of)
    keep &= ~forming_mask

    # Duplicates: the vendor's last word wins, the earlier copies are counted as rejected.
    dup = idx.duplicated(keep="last")
    _reject(keep, dup, "duplicate timestamp", rejected, idx, who)

    for reason, bad, _cells in bar_rules(values):
        _reject(keep, bad, reason, rejected, idx, who)

    if daily:
        days = idx.tz_convert("America/New_York").date
        sessions = {d: calendar.is_session(d) for d in set(days.tolist())}
        not_session = np.array([not sessions[d] for d in days.tolist()], dtype=bool)
        _reject(keep, not_session, "not a trading day", rejected, idx, who)
    elif not prepost:
        outside = ~calendar.session_mask(idx, interval_minutes)
        _reject(keep, outside, "outside the regular session", rejected, idx, who)

    # The rows a boolean mask of every row keeps are the frame itself, index (and freq) included.
    kept_idx = idx if keep.all() else idx.take(np.flatnonzero(keep))
    kept_values = values[keep]
    flags, flagged = _spikes(kept_idx, kept_values, context, spike_threshold, who)
    # What ``pd.Series(None, dtype="object")`` holds: NaN where a bar is not flagged.
    reasons = np.full(len(kept_idx), np.nan, dtype=object)
    reasons[flags] = "spike"
    columns = {name: kept_values[:, j] for j, name in enumerate(BAR_COLUMNS)}
    kept = pd.DataFrame(
        {**columns, "flagged": flags, "flag_reason": pd.Series(reasons, dtype="object")}
    )
    kept.index = kept_idx
    kept.columns = names.insert(len(names), "flagged").insert(len(names) + 1, "flag_reason")
    return ValidationResult(kept, rejected, flagged, forming)


def _bar_arrays(frame: pd.DataFrame) -> tuple[pd.DatetimeIndex, np.ndarray, pd.Index]:
    """The bars' index (UTC, ns, ``ts``), ``[bars, 5]`` float64 values sorted by time, and the
    names of the five columns as ``frame[list(BAR_COLUMNS)]`` has them (its columns' dtype).

    The common frame (unique float64 columns, a tz-aware index already in order) is read
    straight into numpy; any other goes through :func:`normalize_index`, ``astype`` and a stable
    sort, which is also where a bad index raises.
    """
    index = frame.index
    columns = frame.columns
    if (
        isinstance(index, pd.DatetimeIndex)
        and index.tz is not None
        and columns.is_unique
        and (columns.dtype == object or isinstance(columns.dtype, pd.StringDtype))
        and all(frame[c].dtype == np.float64 for c in BAR_COLUMNS)
    ):
        idx = index.tz_convert(UTC).as_unit("ns").rename("ts")
        if idx.is_monotonic_increasing:
            values = np.column_stack([frame[c].to_numpy() for c in BAR_COLUMNS])
            return idx, values, pd.Index(list(BAR_COLUMNS), dtype=columns.dtype)
    bars = normalize_index(frame[list(BAR_COLUMNS)]).astype("float64")
    if not bars.index.is_monotonic_increasing:
        # Reordering changes no value; vendors occasionally deliver out of order.
        bars = bars.sort_index(kind="stable")
    return cast("pd.DatetimeIndex", bars.index), bars.to_numpy(), bars.columns


def _spikes(
    index: pd.DatetimeIndex,
    values: np.ndarray,
    context: pd.DataFrame | None,
    threshold: float,
    who: str,
) -> tuple[np.ndarray, Counter[str]]:
    """Flag bars (``index``, ``values`` ``[bars, 5]``) whose range is far outside the median
    range of the trailing window (the bar and the ``SPIKE_LOOKBACK`` bars before it, the last of
    ``context`` included)."""
    flagged: Counter[str] = Counter()
    n = len(index)
    if n == 0:
        return np.zeros(0, dtype=bool), flagged
    rng = values[:, 1] - values[:, 2]
    n_ctx = 0
    if context is not None and len(context):
        before = context.index < index[0]
        if context.columns.is_unique and all(
            context[c].dtype == np.float64 for c in ("high", "low")
        ):
            rows = np.flatnonzero(before)[-SPIKE_LOOKBACK:]
            ctx_rng = context["high"].to_numpy()[rows] - context["low"].to_numpy()[rows]
        else:
            ctx = context.loc[before].tail(SPIKE_LOOKBACK)
            ctx_rng = (ctx["high"] - ctx["low"]).to_numpy(dtype="float64")
        n_ctx = len(ctx_rng)
        rng = np.concatenate([ctx_rng, rng])
    if len(rng) < MIN_NEIGHBOURS + 1:
        return np.zeros(n, dtype=bool), flagged
    med = _trailing_median(rng, n_ctx)
    with np.errstate(invalid="ignore"):
        spike = (med > 0) & (rng > threshold * med)
    spike = spike[n_ctx:]
    count = int(spike.sum())
    if count:
        flagged[f"spike: range > {threshold:g}x the trailing median range"] = count
        logger.warning(
            "%s: flagged %d suspicious bar(s) (range spike), first at %s",
            who,
            count,
            index[np.argmax(spike)],
        )
    return spike, flagged


def _trailing_median(values: np.ndarray, start: int) -> np.ndarray:
    """Median of each value's trailing window (the value and the ``SPIKE_LOOKBACK`` before it),
    NaN where the window holds fewer than ``MIN_NEIGHBOURS + 1`` values; only positions from
    ``start`` matter. Position ``j`` depends on ``values[: j + 1]`` alone.

    An incremental refresh checks one or two new bars per ticker: a direct numpy median of those
    few windows avoids pandas' rolling machinery (about 1 ms per ticker, 500 tickers a refresh).
    """
    n = len(values)
    window = SPIKE_LOOKBACK + 1
    if n - start > 32:
        return pd.Series(values).rolling(window, min_periods=MIN_NEIGHBOURS + 1).median().to_numpy()
    med = np.full(n, np.nan)
    for j in range(start, n):
        lo = max(0, j + 1 - window)
        if j + 1 - lo >= MIN_NEIGHBOURS + 1:
            med[j] = np.median(values[lo : j + 1])
    return med
