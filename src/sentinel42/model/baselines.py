"""Baselines the LSTM must beat, each with probabilities fitted on the training window only.

- majority: P(up) = the training window's base rate, for every window.
- persistence: the next move repeats the sign of the last bar's return; P(up) is that rule's
  training hit rate (or one minus it).
- momentum: the same with the sign of the return over the whole input window.

Each also gives an expected return for the information coefficient (a least-squares slope on
its signal), so every baseline is scored with the same metric keys as the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sentinel42.model.features import FeatureTable, Samples

BASELINES: tuple[str, ...] = ("majority", "persistence", "momentum")


def signals(table: FeatureTable, s: Samples, window: int) -> dict[str, np.ndarray]:
    """The raw signals of the rule baselines at each sample's last bar."""
    c = table.close
    return {
        "persistence": np.log(c[s.ends] / c[s.ends - 1]),
        "momentum": np.log(c[s.ends] / c[s.ends - window + 1]),
    }


def fit(table: FeatureTable, train: Samples, window: int) -> dict[str, dict[str, Any]]:
    """Fit every baseline's parameters on the training samples (JSON-able for the registry)."""
    y = train.target > 0
    params: dict[str, dict[str, Any]] = {
        "majority": {"p_up": float(np.mean(y)), "expected_return": float(np.mean(train.target))}
    }
    for name, sig in signals(table, train, window).items():
        hit = float(np.mean((sig > 0) == y))
        var = float(np.var(sig))
        beta = float(np.cov(sig, train.target, bias=True)[0, 1] / var) if var > 0 else 0.0
        params[name] = {"hit_rate": hit, "beta": beta}
    params["momentum"]["lookback_bars"] = window
    return params


def predict(
    params: dict[str, dict[str, Any]], table: FeatureTable, s: Samples, window: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """baseline -> (P(up), expected return) for samples ``s``."""
    n = len(s)
    out = {
        "majority": (
            np.full(n, params["majority"]["p_up"]),
            np.full(n, params["majority"]["expected_return"]),
        )
    }
    for name, sig in signals(table, s, window).items():
        hit = params[name]["hit_rate"]
        out[name] = (np.where(sig > 0, hit, 1.0 - hit), params[name]["beta"] * sig)
    return out
