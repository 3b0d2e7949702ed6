"""Leakage-free features and targets from 15-minute bars (numpy and pandas, no torch).

Every feature of a bar uses only that bar and earlier ones, so a window ending at bar ``t`` is
known when bar ``t`` closes. The target of a window ending at ``t`` is the log return from the
close of ``t`` to the close of ``t + horizon``, and only when both bars belong to the same New
York trading session: a target never spans the overnight gap (its size is driven by news the
bars cannot see), so the last ``horizon`` bars of a session end no training window. Input
windows may span a session boundary; the ``gap`` and ``session_start`` features say where.

All tickers are computed together in one concatenated table (vectorized), which keeps the
500-ticker inference batch fast.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.errors import ModelError
from sentinel42.market.calendar import SESSION_MINUTES, SESSION_OPEN_MINUTES, SESSION_TZ

logger = logging.getLogger(__name__)

FEATURE_SET_VERSION = 1
INTRADAY_FEATURES: tuple[str, ...] = (
    "ret_1",  # log(close / previous close); log(close / open) on a session's first bar
    "gap",  # overnight gap: log(open / previous session's last close) on a session's first bar
    "range",  # log(high / low): intrabar volatility
    "body",  # log(close / open)
    "vol_8",  # rolling std of ret_1 over 8 bars (about two hours)
    "mom_8",  # log return over the last 8 bars
    "volume_z",  # z-score of log1p(volume) against the ticker's last five sessions of bars
    "time_of_day",  # minutes since 09:30 New York / 390 (DST-proof; early closes end sooner)
    "session_start",  # 1.0 on the first bar of a session
)
DAILY_FEATURES: tuple[str, ...] = (
    "daily_ret_1",  # previous trading day's close-to-close log return (daily bars)
    "daily_vol_20",  # std of the 20 daily log returns before the session day
)
WARMUP_BARS = 8  # rolling features need this many bars before a window may start
VOLUME_SESSIONS = 5  # volume_z compares a bar's volume with this many sessions of bars
_NS_PER_DAY = 86_400 * 1_000_000_000
_NS_PER_MINUTE = 60 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """What the network sees: feature names, input window and target horizon (in bars)."""

    window: int
    horizon: int
    use_daily: bool = False
    version: int = FEATURE_SET_VERSION
    interval_minutes: int = 15  # bar length the model was trained on

    @property
    def bars_per_session(self) -> int:
        """Whole bars in a regular 6.5-hour session (26 at 15 minutes, 78 at 5, 6 at 60)."""
        return SESSION_MINUTES // self.interval_minutes

    @property
    def volume_lookback(self) -> int:
        """Bars of volume history behind ``volume_z``: five sessions at the model's interval."""
        return VOLUME_SESSIONS * self.bars_per_session

    @property
    def inference_bars(self) -> int:
        """Bars a ticker needs so its newest window's features equal those seen in training:
        the window, the rolling warm-up and the volume statistics behind its first bar."""
        return self.volume_lookback + self.window + WARMUP_BARS

    @property
    def names(self) -> tuple[str, ...]:
        return INTRADAY_FEATURES + (DAILY_FEATURES if self.use_daily else ())

    @property
    def min_history(self) -> int:
        """Bars a ticker needs before its newest bar can end a window."""
        return self.window + WARMUP_BARS

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "names": list(self.names),
            "window": self.window,
            "horizon": self.horizon,
            "use_daily": self.use_daily,
            "session_tz": SESSION_TZ,
            "interval_minutes": self.interval_minutes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Rebuild a spec from checkpoint metadata, refusing one this code cannot compute.

        Raises:
            ModelError: the metadata names other features, another feature-set version or
                another session timezone than this code produces.
        """
        try:
            spec = cls(
                window=int(data["window"]),
                horizon=int(data["horizon"]),
                use_daily=bool(data.get("use_daily", False)),
                version=int(data["version"]),
                # Checkpoints from before the field existed were all trained on 15-minute bars.
                interval_minutes=int(data.get("interval_minutes", 15)),
            )
            names = tuple(data["names"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"checkpoint feature spec is incomplete or malformed: {exc}") from exc
        if spec.version != FEATURE_SET_VERSION:
            raise ModelError(
                f"checkpoint feature set version {spec.version} does not match this code's "
                f"version {FEATURE_SET_VERSION}; retrain with `sentinel42 model train`"
            )
        if names != spec.names or data.get("session_tz", SESSION_TZ) != SESSION_TZ:
            raise ModelError(
                f"checkpoint features {list(names)} do not match the features this code "
                f"computes {list(spec.names)}; retrain with `sentinel42 model train`"
            )
        return spec


@dataclass(frozen=True, slots=True)
class FeatureTable:
    """Features of all tickers' bars, concatenated ticker by ticker, each in time order."""

    tickers: tuple[str, ...]
    ticker_index: np.ndarray  # [rows] int, position in ``tickers``
    ts: np.ndarray  # [rows] int64 ns since epoch, UTC bar start
    features: np.ndarray  # [rows, features] float64, unnormalized
    close: np.ndarray  # [rows] float64
    position: np.ndarray  # [rows] int, bar number within its ticker
    target: np.ndarray  # [rows] float64 log return to the close `horizon` bars later, NaN if none
    target_end: np.ndarray  # [rows] int64 ns start of the target's last bar, -1 if none
    usable: np.ndarray  # [rows] bool: enough history and no flagged bar in window or target


@dataclass(frozen=True, slots=True)
class Samples:
    """Windows that have a target: row ``ends[i]`` of a :class:`FeatureTable` ends window i."""

    ends: np.ndarray  # [samples] row index of the window's last bar
    ts: np.ndarray  # [samples] int64 ns, start of the window's last bar
    window_start: np.ndarray  # [samples] int64 ns, start of the window's first bar
    target_end: np.ndarray  # [samples] int64 ns, start of the target's last bar
    target: np.ndarray  # [samples] float64 log return

    def subset(self, mask: np.ndarray) -> Samples:
        return Samples(
            self.ends[mask],
            self.ts[mask],
            self.window_start[mask],
            self.target_end[mask],
            self.target[mask],
        )

    def __len__(self) -> int:
        return int(self.ends.shape[0])


def _rolling_sum(
    values: np.ndarray, first_row: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the last ``k`` values within each row's ticker (from ``first_row``)."""
    cs = np.concatenate(([0.0], np.cumsum(values)))
    rows = np.arange(values.shape[0])
    lo = np.maximum(rows - k + 1, first_row)
    return cs[rows + 1] - cs[lo], (rows - lo + 1).astype(np.float64)


def _rolling_std(
    values: np.ndarray, first_row: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rolling sample std (0 with fewer than two values) and mean within each ticker."""
    s1, n = _rolling_sum(values, first_row, k)
    s2, _ = _rolling_sum(values * values, first_row, k)
    mean = s1 / n
    var = np.maximum(s2 / n - mean * mean, 0.0)
    return np.where(n >= 2, np.sqrt(var * n / np.maximum(n - 1, 1)), 0.0), mean


def _daily_features(day: np.ndarray, frame: pd.DataFrame | None) -> np.ndarray:
    """[rows, 2] daily features for session days ``day`` (days since epoch, New York)."""
    out = np.zeros((day.shape[0], len(DAILY_FEATURES)))
    if frame is None or frame.empty:
        out[:] = np.nan
        return out
    idx = pd.DatetimeIndex(frame.index)
    local = idx.tz_convert(SESSION_TZ) if idx.tz is not None else idx
    dday = (local.tz_localize(None).normalize().as_unit("ns").asi8 // _NS_PER_DAY).astype(np.int64)
    close = frame["close"].to_numpy(dtype=np.float64)
    dret = np.concatenate(([np.nan], np.diff(np.log(close))))
    # Only daily bars strictly before the session day: today's daily bar holds today's close.
    pos = np.searchsorted(dday, day, side="left") - 1
    have = pos >= 1
    out[:, 0] = np.where(have, dret[np.clip(pos, 0, None)], np.nan)
    vol = pd.Series(dret).rolling(20, min_periods=5).std().to_numpy()
    out[:, 1] = np.where(pos >= 0, vol[np.clip(pos, 0, None)], np.nan)
    return out


def build_table(
    bars: Mapping[str, pd.DataFrame],
    spec: FeatureSpec,
    *,
    daily: Mapping[str, pd.DataFrame] | None = None,
    tail: int | None = None,
) -> FeatureTable:
    """Compute features and targets for every ticker.

    Args:
        bars: ticker -> domain bar frame (index ``ts``: tz-aware UTC bar start, sorted, unique).
            An optional bool ``flagged`` column excludes windows and targets touching such bars.
        spec: the feature spec (window, horizon, daily features or not).
        daily: ticker -> daily bar frame; required when ``spec.use_daily``.
        tail: keep only each ticker's last ``tail`` bars (inference needs only the newest window).

    Raises:
        ModelError: ``spec.use_daily`` without daily bars for a ticker.
    """
    tickers = tuple(t for t, f in bars.items() if f is not None and len(f) > 0)
    frames = [bars[t] if tail is None else bars[t].iloc[-tail:] for t in tickers]
    n_f = len(spec.names)
    if not frames:
        empty_i = np.zeros(0, dtype=np.int64)
        return FeatureTable(
            (), empty_i, empty_i, np.zeros((0, n_f)), np.zeros(0), empty_i, np.zeros(0),
            empty_i, np.zeros(0, dtype=bool),
        )  # fmt: skip
    lengths = np.array([len(f) for f in frames])
    ticker_index = np.repeat(np.arange(len(frames)), lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    first_row = starts[ticker_index]
    rows = np.arange(ticker_index.shape[0])
    position = rows - first_row
    index = pd.DatetimeIndex(
        np.concatenate([pd.DatetimeIndex(f.index).as_unit("ns").asi8 for f in frames])
    )
    ts = index.asi8.astype(np.int64)
    # Wall-clock New York time decides the session day and the time of day (DST-proof).
    local = (
        pd.DatetimeIndex(ts, tz="UTC").tz_convert(SESSION_TZ).tz_localize(None).as_unit("ns").asi8
    )
    day = local // _NS_PER_DAY
    minute = (local % _NS_PER_DAY) / _NS_PER_MINUTE

    def col(name: str) -> np.ndarray:
        return np.concatenate([f[name].to_numpy(dtype=np.float64) for f in frames])

    o, h, low, c, v = col("open"), col("high"), col("low"), col("close"), col("volume")
    prev_c = np.concatenate(([np.nan], c[:-1]))
    first = position == 0
    new_session = first | (day != np.concatenate(([-1], day[:-1])))
    with np.errstate(divide="ignore", invalid="ignore"):
        body = np.log(c / o)
        ret_1 = np.where(new_session, body, np.log(c / prev_c))
        gap = np.where(new_session & ~first, np.log(o / prev_c), 0.0)
        rng = np.log(h / low)
        lag = np.maximum(rows - 8, first_row)
        mom_8 = np.log(c / c[lag])
    vol_8, _ = _rolling_std(ret_1, first_row, 8)
    lv = np.log1p(np.maximum(v, 0.0))
    lv_std, lv_mean = _rolling_std(lv, first_row, spec.volume_lookback)
    volume_z = np.where(lv_std > 1e-9, (lv - lv_mean) / np.where(lv_std > 1e-9, lv_std, 1), 0.0)
    tod = (minute - SESSION_OPEN_MINUTES) / SESSION_MINUTES
    columns = [ret_1, gap, rng, body, vol_8, mom_8, volume_z, tod, new_session.astype(np.float64)]
    if spec.use_daily:
        block = np.zeros((ts.shape[0], len(DAILY_FEATURES)))
        for i, t in enumerate(tickers):
            frame = (daily or {}).get(t)
            if frame is None or frame.empty:
                raise ModelError(f"{t}: the model uses daily bars but none were given")
            sl = slice(starts[i], starts[i] + lengths[i])
            block[sl] = _daily_features(day[sl], frame)
        columns += [block[:, 0], block[:, 1]]
    features = np.column_stack(columns)
    finite = np.isfinite(features).all(axis=1)
    features = np.where(np.isfinite(features), features, 0.0)

    # Target: same ticker, same session, `horizon` bars ahead.
    k = spec.horizon
    ahead = rows + k
    ok = ahead < rows.shape[0]
    ahead_c = np.clip(ahead, 0, rows.shape[0] - 1)
    ok &= (ticker_index[ahead_c] == ticker_index) & (day[ahead_c] == day)
    with np.errstate(divide="ignore", invalid="ignore"):
        target = np.where(ok, np.log(c[ahead_c] / c), np.nan)
    target_end = np.where(ok, ts[ahead_c], -1)

    # A window is usable when its bars all have finite features, history covers the warm-up
    # and no flagged bar sits in the window or the target span.
    bad = (~finite).astype(np.float64)
    if any("flagged" in f.columns for f in frames):
        flagged = np.concatenate(
            [
                f["flagged"].fillna(False).to_numpy(dtype=bool)
                if "flagged" in f.columns
                else np.zeros(len(f), dtype=bool)
                for f in frames
            ]
        )
        bad_target, _ = _rolling_sum(flagged.astype(np.float64), first_row, k + 1)
        bad_target = np.concatenate((bad_target[k:], np.zeros(k)))  # flagged in (t, t+k]
        target = np.where(bad_target > 0, np.nan, target)
        bad = bad + flagged
    bad_window, _ = _rolling_sum(bad, first_row, spec.window)
    usable = (position >= spec.min_history - 1) & (bad_window == 0)
    return FeatureTable(
        tickers, ticker_index, ts, features, c, position, target, target_end, usable
    )


def samples(table: FeatureTable, spec: FeatureSpec) -> Samples:
    """Windows with a finite target, in time order across tickers (stable by ticker)."""
    ends = np.flatnonzero(table.usable & np.isfinite(table.target))
    order = np.argsort(table.ts[ends], kind="stable")
    ends = ends[order]
    return Samples(
        ends=ends,
        ts=table.ts[ends],
        window_start=table.ts[ends - spec.window + 1],
        target_end=table.target_end[ends],
        target=table.target[ends],
    )


def windows(features: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Stack windows ending at rows ``ends``: [samples, window, features] float32."""
    idx = ends[:, None] + np.arange(-window + 1, 1)[None, :]
    return features[idx].astype(np.float32)


@dataclass(frozen=True, slots=True)
class Normalizer:
    """Per-feature mean and std, plus the std of the target (for the return head)."""

    mean: np.ndarray
    std: np.ndarray
    target_std: float

    @classmethod
    def fit(cls, table: FeatureTable, train: Samples) -> Normalizer:
        """Fit on the training window only: bars up to the last training window's end.

        Later bars (validation, test, live) never inform these statistics; that would leak
        their scale into the training inputs.
        """
        rows = table.ts <= train.ts.max()
        x = table.features[rows & (table.position >= WARMUP_BARS)]
        std = x.std(axis=0)
        # Constant features (e.g. session_start on a synthetic series) stay unscaled.
        std = np.where(std > 1e-12, std, 1.0)
        target_std = float(np.std(train.target)) or 1.0
        return cls(x.mean(axis=0), std, target_std)

    def apply(self, features: np.ndarray) -> np.ndarray:
        return (features - self.mean) / self.std

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": [float(m) for m in self.mean],
            "std": [float(s) for s in self.std],
            "target_std": self.target_std,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], n_features: int) -> Normalizer:
        mean = np.asarray(data["mean"], dtype=np.float64)
        std = np.asarray(data["std"], dtype=np.float64)
        if mean.shape != (n_features,) or std.shape != (n_features,):
            raise ModelError(
                f"checkpoint normalization has {mean.shape[0]} features, the spec {n_features}"
            )
        return cls(mean, std, float(data["target_std"]))
