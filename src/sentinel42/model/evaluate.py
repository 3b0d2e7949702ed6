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
    p = np.clip(p_up, _EPS, 1 - _EPS)
    return {
        "accuracy": float(np.mean((p_up > 0.5) == (y > 0.5))),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "brier": float(np.mean((p_up - y) ** 2)),
        "ic": spearman(expected, realized),
        "n": int(y.shape[0]),
    }


def gate(
    model: dict[str, float], baselines: dict[str, dict[str, float]], margin: float
) -> tuple[bool, str]:
    """The promotion rule, on validation metrics.

    Promote only if the model's log-loss is below every baseline's by at least ``margin`` and
    its accuracy is not below the best baseline's.
    """
    worst_gap = min(b["log_loss"] - model["log_loss"] for b in baselines.values())
    best_name = min(baselines, key=lambda k: baselines[k]["log_loss"])
    best_acc_name = max(baselines, key=lambda k: baselines[k]["accuracy"])
    best_acc = baselines[best_acc_name]["accuracy"]
    if not np.isfinite(model["log_loss"]) or worst_gap < margin:
        return False, (
            f"validation log-loss {model['log_loss']:.4f} is not below every baseline by "
            f"{margin:g} (best baseline {best_name}: {baselines[best_name]['log_loss']:.4f})"
        )
    if model["accuracy"] < best_acc:
        return False, (
            f"validation accuracy {model['accuracy']:.4f} is below the best baseline "
            f"({best_acc_name}: {best_acc:.4f})"
        )
    return True, (
        f"validation log-loss {model['log_loss']:.4f} beats every baseline by >= {margin:g} "
        f"(best {best_name}: {baselines[best_name]['log_loss']:.4f}); accuracy "
        f"{model['accuracy']:.4f} >= best baseline {best_acc_name} {best_acc:.4f}"
    )
