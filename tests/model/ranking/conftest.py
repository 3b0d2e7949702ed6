"""Generated universes for the ranking models: random walks, with or without a planted edge."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentinel42.market.calendar import SESSION_TZ

NY = SESSION_TZ


def session_stamps(kind: str, n_sessions: int, start: str = "2024-01-02") -> pd.DatetimeIndex:
    days = pd.bdate_range(start, periods=n_sessions)
    if kind == "daily":
        return pd.DatetimeIndex([d.tz_localize(NY) for d in days]).tz_convert("UTC")
    bars = [
        pd.Timestamp(d).tz_localize(NY) + pd.Timedelta(minutes=570 + 15 * k)
        for d in days
        for k in range(26)
    ]
    return pd.DatetimeIndex(bars).tz_convert("UTC")


def universe(
    kind: str,
    *,
    seed: int,
    n_tickers: int = 60,
    n_sessions: int = 160,
    planted: float = 0.0,
    sigma: float = 0.01,
) -> dict[str, pd.DataFrame]:
    """Ticker -> bar frame. With ``planted`` > 0, a name's next return is
    ``planted * sigma * sign(last return) * sign(the return before it)``: continuation after two
    moves the same way, reversal after a zigzag. No single-factor rule sees it (ranks by the last
    return, by five returns or by momentum carry nothing); a sequence model does."""
    rng = np.random.default_rng(seed)
    index = session_stamps(kind, n_sessions)
    n_t = len(index)
    log_vol = rng.normal(size=(n_t, n_tickers))
    ret = np.zeros((n_t, n_tickers))
    eps = rng.normal(scale=sigma, size=(n_t, n_tickers))
    market = rng.normal(scale=sigma / 2, size=n_t)
    for t in range(n_t):
        ret[t] = eps[t] + market[t]
        if planted and t > 1:
            ret[t] += (
                planted
                * sigma
                * np.sign(ret[t - 1] - market[t - 1])
                * np.sign(ret[t - 2] - market[t - 2])
            )
    close = 50.0 * np.exp(np.cumsum(ret, axis=0))
    prev = np.vstack([close[:1], close[:-1]])
    out = {}
    for j in range(n_tickers):
        o = prev[:, j] * np.exp(rng.normal(scale=sigma / 10, size=n_t))
        c = close[:, j]
        hi = np.maximum(o, c) * (1 + np.abs(rng.normal(scale=sigma / 4, size=n_t)))
        lo = np.minimum(o, c) * (1 - np.abs(rng.normal(scale=sigma / 4, size=n_t)))
        frame = pd.DataFrame(
            {"open": o, "high": hi, "low": lo, "close": c, "volume": np.exp(12 + log_vol[:, j])},
            index=pd.DatetimeIndex(index, name="ts"),
        )
        out[f"T{j:03d}"] = frame
    return out
