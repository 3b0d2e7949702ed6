"""Features, targets and baseline signals of the cross-sectional models, on a :class:`Panel`.

Every feature at row ``t`` uses bars up to and including ``t`` only. Per-ticker features are
normalised across tickers at each timestamp (ranks mapped to a unit-variance uniform), so the
network learns which names will do better than the others, not where the market goes;
market-wide context (time of day, the market's own return and volatility) is not cross-sectional
and is standardised with the training window's statistics instead.

The target of row ``t`` is the log return from the close of ``t`` to the close of ``t + h``
(``h`` = horizon in rows: bars for ``intraday``, sessions for ``daily``), minus its
cross-sectional mean (``excess``) or as it is (``raw``). An intraday target never crosses a
session's close: the last ``h`` bars of a session have none. A target or window touching a
flagged bar (see :mod:`panel`) is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sentinel42.errors import ModelError
from sentinel42.market.calendar import SESSION_MINUTES, SESSION_OPEN_MINUTES
from sentinel42.model.ranking.metrics import average_ranks
from sentinel42.model.ranking.panel import Panel

FEATURE_VERSION = 1
DAILY_FEATURES: tuple[str, ...] = (
    "ret_1", "ret_5", "ret_20", "mom_12_1", "vol_20", "volume_ratio_20", "range", "gap",
    "body", "beta_60", "resid_5",
)  # fmt: skip
INTRADAY_FEATURES: tuple[str, ...] = (
    "ret_1", "ret_4", "ret_26", "ret_session", "gap", "vol_26", "volume_tod", "range", "body",
    "seasonality_10", "beta_130", "resid_4",
)  # fmt: skip
DAILY_CONTEXT: tuple[str, ...] = ("mkt_ret_1", "mkt_ret_5", "mkt_vol_20")
INTRADAY_CONTEXT: tuple[str, ...] = ("time_of_day", "mkt_ret_1", "mkt_ret_4", "mkt_vol_26")
NEWS_FEATURES: tuple[str, ...] = ("news_count", "news_sentiment", "news_sentiment_change")
SEASONAL_SESSIONS = 10  # the same-time-of-day history spans this many previous sessions
BASELINES: dict[str, tuple[str, ...]] = {
    "daily": ("reversal_1", "reversal_5", "momentum_12_1", "lightgbm"),
    "intraday": ("reversal_1", "seasonality", "lightgbm"),
}
DEFAULT_WINDOW = {"daily": 20, "intraday": 16}
TARGETS: tuple[str, ...] = ("excess", "raw")


def feature_names(kind: str, *, news: bool = False) -> tuple[str, ...]:
    """Per-ticker feature names, then the context names, in the network's input order."""
    if kind == "daily":
        return DAILY_FEATURES + (NEWS_FEATURES if news else ()) + DAILY_CONTEXT
    return INTRADAY_FEATURES + INTRADAY_CONTEXT


def context_count(kind: str) -> int:
    return len(DAILY_CONTEXT if kind == "daily" else INTRADAY_CONTEXT)


# --- rolling helpers along time (axis 0), NaN-aware ---------------------------------------------
def shift(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` moved ``k`` rows later along time (the first ``k`` rows NaN)."""
    out = np.full_like(x, np.nan)
    if k < x.shape[0]:
        out[k:] = x[: x.shape[0] - k]
    return out


def _rolling(x: np.ndarray, k: int, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling sum and count of finite values over the last ``k`` rows (NaN below min_count)."""
    finite = np.isfinite(x)
    z = np.where(finite, x, 0.0)
    cs = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(z, axis=0)])
    cn = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(finite, axis=0)])
    lo = np.maximum(np.arange(x.shape[0]) - k + 1, 0)
    hi = np.arange(x.shape[0]) + 1
    s, n = cs[hi] - cs[lo], cn[hi] - cn[lo]
    return np.where(n >= min_count, s, np.nan), n


def _rolling_mean(x: np.ndarray, k: int, min_count: int) -> np.ndarray:
    s, n = _rolling(x, k, min_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / n


def _rolling_std(x: np.ndarray, k: int, min_count: int) -> np.ndarray:
    s, n = _rolling(x, k, min_count)
    s2, _ = _rolling(x * x, k, min_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = s / n
        var = np.maximum(s2 / n - m * m, 0.0) * n / np.maximum(n - 1, 1)
    return np.sqrt(var)


def _row_mean(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    n = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(finite, x, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def cs_rank(x: np.ndarray) -> np.ndarray:
    """Per row, ranks of the finite values mapped to a uniform of unit variance; NaN stays NaN.

    Ties share their average rank (:func:`metrics.average_ranks`). A row with one finite value
    maps it to 0.
    """
    ranks = average_ranks(x)
    n = np.isfinite(ranks).sum(axis=1, keepdims=True).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.sqrt(12.0 * n * n / np.maximum(n * n - 1.0, 1e-12))
        return np.where(
            n > 1, ((ranks - 0.5) / n - 0.5) * scale, np.where(np.isnan(ranks), np.nan, 0.0)
        )


def cs_zscore(x: np.ndarray, clip: float = 3.0) -> np.ndarray:
    """Per row: (x - mean) / std over the finite values, clipped to +-clip (training labels)."""
    m = _row_mean(x)[:, None]
    d = x - m
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(_row_mean(d * d))[:, None]
        z = np.where(sd > 1e-12, d / sd, 0.0)
    return np.clip(z, -clip, clip)


# --- the per-kind feature blocks ----------------------------------------------------------------
def _beta(r: np.ndarray, m: np.ndarray, k: int) -> np.ndarray:
    mm = np.broadcast_to(m[:, None], r.shape)
    both = np.isfinite(r) & np.isfinite(mm)
    rr, mx = np.where(both, r, np.nan), np.where(both, mm, np.nan)
    s_rm = _rolling_mean(rr * mx, k, k // 2)
    s_r, s_m = _rolling_mean(rr, k, k // 2), _rolling_mean(mx, k, k // 2)
    s_mm = _rolling_mean(mx * mx, k, k // 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = s_mm - s_m * s_m
        return np.where(var > 1e-14, (s_rm - s_r * s_m) / var, np.nan)


def _slot_grid(panel: Panel) -> tuple[np.ndarray, np.ndarray, int]:
    """Each row's session number (0..D-1) and time-of-day slot; slots per day."""
    _, day = np.unique(panel.session, return_inverse=True)
    minutes = panel.minutes_of_day()
    steps = np.diff(panel.ts)
    step_min = float(np.median(steps[steps > 0])) / 60e9 if steps.size and (steps > 0).any() else 15
    slot = np.round((minutes - minutes.min()) / max(step_min, 1.0)).astype(np.int64)
    return day.astype(np.int64), slot, int(slot.max()) + 1


def seasonal_history(panel: Panel, values: np.ndarray, sessions: int) -> np.ndarray:
    """Per row: the mean of ``values`` at the same time of day over the previous ``sessions``
    sessions (the current session excluded); NaN with fewer than half of them."""
    day, slot, n_slots = _slot_grid(panel)
    n_days = int(day.max()) + 1
    grid = np.full((n_days, n_slots, values.shape[1]), np.nan)
    grid[day, slot] = values
    s, n = _rolling(grid, sessions, max(1, sessions // 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
    prev = np.full_like(mean, np.nan)
    prev[1:] = mean[:-1]  # sessions strictly before the row's own
    return prev[day, slot]


# An intraday decision on row t is taken once row t has ended (plus the trading delay), when
# row t+1 has already begun: its order fills at the open of row t+2 (portfolio.fill_bar).
INTRADAY_FILL_LAG = 1


def forward_log_return(panel: Panel, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """[T, N] the log return row t's decision can earn over ``horizon`` rows, and [T] the end
    row's ts.

    Intraday: from the open of row t+2, where the decision's order fills (row t+1 began before
    the decision), to the close of row t+1+h, all within row t's session; a flagged bar in
    rows t+2 .. t+1+h voids it. Daily: from the close of row t to the close of row t+h (a
    flagged bar in t+1 .. t+h voids it).
    """
    c = panel.close
    n_t = c.shape[0]
    lag = INTRADAY_FILL_LAG if panel.kind == "intraday" else 0
    ahead = np.arange(n_t) + lag + horizon
    ok = ahead < n_t
    ahead_c = np.minimum(ahead, n_t - 1)
    if panel.kind == "intraday":
        ok &= panel.session[ahead_c] == panel.session
        entry = panel.open[np.minimum(np.arange(n_t) + lag + 1, n_t - 1)]
    else:
        entry = c
    with np.errstate(invalid="ignore", divide="ignore"):
        fwd = np.where(ok[:, None], np.log(c[ahead_c] / entry), np.nan)
    bad = panel.flagged.astype(np.float64)
    # flagged anywhere in rows t+1+lag .. t+lag+h
    s, _ = _rolling(bad, horizon, 0)
    bad_ahead = np.full_like(s, 0.0)
    shift = lag + horizon
    if shift < n_t:
        bad_ahead[: n_t - shift] = s[shift:]
    fwd = np.where(bad_ahead > 0, np.nan, fwd)
    end_ts = np.where(ok, panel.ts[ahead_c], -1)
    return fwd, end_ts


def target(
    fwd: np.ndarray, kind: str = "excess", dead_zone: tuple[float, float] | None = None
) -> np.ndarray:
    """The model's target from forward returns: excess over the cross-sectional mean, or raw.

    ``dead_zone`` (LOW, HIGH): samples whose target lies strictly between them become NaN,
    dropped from training and evaluation alike (the StockNet task's rise/fall threshold).
    """
    if kind not in TARGETS:
        raise ModelError(f"unknown target {kind!r}; use one of {', '.join(TARGETS)}")
    y = fwd - _row_mean(fwd)[:, None] if kind == "excess" else fwd.copy()
    if dead_zone is not None:
        low, high = dead_zone
        y = np.where((y > low) & (y < high), np.nan, y)
    return y


@dataclass(frozen=True)
class FeatureBlock:
    """Features on the panel's grid.

    Attributes:
        names: per-ticker names then context names.
        grid: [T, N, F] float32: per-ticker features cross-sectionally ranked (NaN -> 0),
            context features as computed (standardised later with training statistics).
        valid: [T, N] bool: the ticker has a usable bar at t (a close, no defect).
        raw: name -> [T, N] unnormalised per-ticker values (baselines and tests read them).
    """

    names: tuple[str, ...]
    n_context: int
    grid: np.ndarray
    valid: np.ndarray
    raw: dict[str, np.ndarray]


def compute(panel: Panel, horizon: int, news: dict[str, np.ndarray] | None = None) -> FeatureBlock:
    """Every feature of ``panel``'s kind (see the module docstring).

    Args:
        horizon: rows ahead of the target; the intraday seasonality feature averages the
            same-slot return over that horizon in previous sessions.
        news: daily only: ``NEWS_FEATURES`` name -> [T, N] per ticker-day (NaN where none).
    """
    c, o, h, low, v = panel.close, panel.open, panel.high, panel.low, panel.volume
    prev_c = shift(c, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r1 = np.log(c / prev_c)
        rng = np.log(h / low)
        gap = np.log(o / prev_c)
        body = np.log(c / o)
        lv = np.log1p(np.maximum(v, 0.0))
    flagged = panel.flagged
    r1 = np.where(flagged, np.nan, r1)
    mkt = _row_mean(r1)
    raw: dict[str, np.ndarray] = {"ret_1": r1, "range": rng, "gap": gap, "body": body}
    if panel.kind == "daily":
        raw["ret_5"] = _rolling(r1, 5, 4)[0]
        raw["ret_20"] = _rolling(r1, 20, 15)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            raw["mom_12_1"] = np.log(shift(c, 21) / shift(c, 252))
        raw["vol_20"] = _rolling_std(r1, 20, 10)
        with np.errstate(invalid="ignore"):
            raw["volume_ratio_20"] = lv - _rolling_mean(shift(lv, 1), 20, 10)
        beta = _beta(r1, mkt, 60)
        raw["beta_60"] = beta
        raw["resid_5"] = raw["ret_5"] - beta * _rolling(mkt[:, None], 5, 4)[0]
        names = DAILY_FEATURES
        context = np.column_stack(
            [mkt, _rolling(mkt[:, None], 5, 4)[0][:, 0], _rolling_std(mkt[:, None], 20, 10)[:, 0]]
        )
        if news is not None:
            for name in NEWS_FEATURES:
                raw[name] = news[name]
            names = names + NEWS_FEATURES
    else:
        raw["ret_4"] = _rolling(r1, 4, 3)[0]
        raw["ret_26"] = _rolling(r1, 26, 20)[0]
        first_row = np.r_[True, panel.session[1:] != panel.session[:-1]]
        open_idx = np.maximum.accumulate(np.where(first_row, np.arange(c.shape[0]), 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            raw["ret_session"] = np.log(c / o[open_idx])
        # The overnight gap of the row's session: today's first open over yesterday's close.
        raw["gap"] = gap[open_idx]
        raw["vol_26"] = _rolling_std(r1, 26, 13)
        raw["volume_tod"] = lv - seasonal_history(panel, lv, SEASONAL_SESSIONS)
        fwd_h, _ = forward_log_return(panel, horizon)
        raw["seasonality_10"] = seasonal_history(panel, fwd_h, SEASONAL_SESSIONS)
        beta = _beta(r1, mkt, 130)
        raw["beta_130"] = beta
        raw["resid_4"] = raw["ret_4"] - beta * _rolling(mkt[:, None], 4, 3)[0]
        names = INTRADAY_FEATURES
        tod = (panel.minutes_of_day() - SESSION_OPEN_MINUTES) / SESSION_MINUTES
        context = np.column_stack(
            [
                tod,
                mkt,
                _rolling(mkt[:, None], 4, 3)[0][:, 0],
                _rolling_std(mkt[:, None], 26, 13)[:, 0],
            ]
        )
    valid = np.isfinite(c) & ~flagged
    if panel.suspect is not None:  # out of the windows, not out of the targets
        valid &= ~panel.suspect
    per_ticker = np.stack(
        [np.nan_to_num(cs_rank(np.where(valid, raw[n], np.nan))) for n in names], axis=2
    )
    ctx = np.nan_to_num(context)
    values = np.concatenate(
        [per_ticker, np.broadcast_to(ctx[:, None, :], (*c.shape, ctx.shape[1]))], axis=2
    ).astype(np.float32)
    ctx_names = DAILY_CONTEXT if panel.kind == "daily" else INTRADAY_CONTEXT
    return FeatureBlock(names + ctx_names, ctx.shape[1], values, valid, raw)


def baseline_scores(kind: str, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The rule baselines' scores [T, N] (higher = expected to do better); lightgbm is fitted."""
    out = {"reversal_1": -raw["ret_1"]}
    if kind == "daily":
        out["reversal_5"] = -raw["ret_5"]
        out["momentum_12_1"] = raw["mom_12_1"]
    else:
        out["seasonality"] = raw["seasonality_10"]
    return out


def usable_windows(valid: np.ndarray, window: int) -> np.ndarray:
    """[T, N] bool: rows t where the ticker's bars t-window+1 .. t are all valid."""
    s, _ = _rolling((~valid).astype(np.float64), window, 0)
    enough = np.arange(valid.shape[0]) >= window - 1
    return (s == 0) & enough[:, None] & valid
