"""Out-of-sample metrics: directional accuracy, log-loss, Brier score, information coefficient."""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_KEYS: tuple[str, ...] = ("accuracy", "log_loss", "brier", "ic", "n")
_EPS = 1e-7


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation; 0.0 when either side is constant (a constant carries no ranking)."""
    if a.shape[0] < 3:
        return 0.0
    ra = pd.Series(a).rank(method="average").to_numpy()
    rb = pd.Series(b).rank(method="average").to_numpy()
    sa, sb = ra.std(), rb.std()
    if sa < 1e-12 or sb < 1e-12:
        return 0.0
    return float(np.mean((ra - ra.mean()) * (rb - rb.mean())) / (sa * sb))


def hits(p_up: np.ndarray, realized: np.ndarray) -> np.ndarray:
    """[samples] 1.0 where the call (P(up) > 0.5 means up) matches the sign, else 0.0.

    A zero realized return counts as "not up".
    """
    return ((p_up > 0.5) == (realized > 0)).astype(np.float64)


def log_losses(p_up: np.ndarray, realized: np.ndarray) -> np.ndarray:
    """[samples] natural-log loss of each forecast, probabilities clipped away from 0 and 1."""
    y = (realized > 0).astype(np.float64)
    p = np.clip(p_up, _EPS, 1 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def metrics(p_up: np.ndarray, expected: np.ndarray, realized: np.ndarray) -> dict[str, float]:
    """Score forecasts against realized horizon log returns.

    Args:
        p_up: [samples] predicted P(return > 0).
        expected: [samples] predicted return (any monotone scale; only its ranks matter).
        realized: [samples] realized log return; "up" means strictly positive.

    Returns:
        accuracy (P(up) > 0.5 called up), log_loss (natural log), brier, ic (Spearman of
        expected vs realized), n (samples).
    """
    y = (realized > 0).astype(np.float64)
    if y.shape[0] == 0:
        return {"accuracy": float("nan"), "log_loss": float("nan"), "brier": float("nan"),
                "ic": float("nan"), "n": 0}  # fmt: skip
    return {
        "accuracy": float(np.mean(hits(p_up, realized))),
        "log_loss": float(np.mean(log_losses(p_up, realized))),
        "brier": float(np.mean((p_up - y) ** 2)),
        "ic": spearman(expected, realized),
        "n": int(y.shape[0]),
    }
