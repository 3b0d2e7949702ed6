"""The promotion gate of a ranking model: rank IC bounded away from 0, no worse than the best
baseline, and a long-short book that pays its costs.

A candidate is promoted only when, on the deciding block and at the *corrected* confidence,

1. its rank IC has a one-sided lower bound above 0 (:func:`~.metrics.ic_bound`, a block
   bootstrap over whole sessions);
2. it is not significantly worse than the best baseline (the one with the highest mean rank
   IC on this block): the upper bound of the paired per-row difference ``model_ic - best_ic``
   (rows where both are finite) is not below 0;
3. its quintile long-short book earns a positive annual return net of costs.

Every attempt at the gate (every architecture, horizon or feature set tried on the same block)
is another chance for noise to pass, so the nominal confidence is Šidák-corrected for the
number of attempts: ``attempts`` tries at the corrected level pass noise no more often than
one try at the nominal level.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sentinel42.model.ranking.metrics import ic_bound


def corrected_confidence(confidence: float, attempts: int) -> float:
    """Šidák-corrected one-sided confidence for ``attempts`` tries at the gate.

    Args:
        confidence: the nominal level, e.g. 0.99 (alpha = 0.01 for the whole search).
        attempts: gate attempts made on the same block (>= 1).

    Returns:
        ``1 - alpha_each`` with ``alpha_each = 1 - (1 - alpha) ** (1 / attempts)``, i.e.
        ``confidence ** (1 / attempts)``; equal to ``confidence`` at one attempt.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    per_test = -math.expm1(math.log1p(-alpha) / attempts)  # 1 - (1 - alpha)^(1/attempts)
    return 1.0 - per_test


def _level(confidence: float) -> str:
    """0.99 -> '99%', 0.998 -> '99.8%', 0.996655 -> '99.67%'."""
    return f"{100 * confidence:.4g}%"


def _best_baseline(
    baseline_ics: dict[str, np.ndarray], baseline_metrics: dict[str, dict[str, Any]]
) -> str:
    """The baseline with the highest mean rank IC (a NaN mean ranks last)."""
    if not baseline_ics:
        raise ValueError("the gate needs at least one baseline")
    missing = sorted(set(baseline_ics) - set(baseline_metrics))
    if missing:
        raise ValueError(f"baseline_metrics lacks {missing}")

    def key(name: str) -> float:
        value = float(baseline_metrics[name]["rank_ic_mean"])
        return value if math.isfinite(value) else -math.inf

    return max(sorted(baseline_ics), key=key)


def decide(
    model_ic: np.ndarray,
    baseline_ics: dict[str, np.ndarray],
    session: np.ndarray,
    *,
    model_metrics: dict[str, Any],
    baseline_metrics: dict[str, dict[str, Any]],
    horizon: int,
    confidence: float,
    attempts: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Promote or refuse a ranking model on the deciding block; see the module docstring.

    Args:
        model_ic: [T] the candidate's per-row rank IC (:func:`~.metrics.rank_ic`).
        baseline_ics: baseline name -> [T] its per-row rank IC on the same rows.
        session: [T] int64 session id of each row, rows in time order.
        model_metrics: the candidate's :func:`~.metrics.evaluate` document (needs
            ``long_short_net_annual``).
        baseline_metrics: baseline name -> its :func:`~.metrics.evaluate` document (needs
            ``rank_ic_mean``; the highest one is the best baseline).
        horizon: target length in rows.
        confidence: the nominal one-sided level, before the correction for attempts.
        attempts: gate attempts made on this block (Šidák correction).
        seed: seeds the bootstrap.

    Returns:
        A JSON-able document: ``promoted``, ``reason`` (one sentence naming every failed check
        with its numbers, or the three passing numbers), ``confidence`` (corrected),
        ``nominal_confidence``, ``attempts``, ``best_baseline``, ``rank_ic_lower``,
        ``paired_lower``, ``paired_upper``, ``checks`` (``ic_lower_positive``,
        ``not_worse_than_best``, ``long_short_positive``), and for the record ``rank_ic_mean``,
        ``best_baseline_rank_ic_mean`` and ``long_short_net_annual``.
    """
    level = corrected_confidence(confidence, attempts)
    best = _best_baseline(baseline_ics, baseline_metrics)
    model_ic = np.asarray(model_ic, np.float64)
    diff = model_ic - np.asarray(baseline_ics[best], np.float64)  # NaN unless both finite
    lower = ic_bound(model_ic, session, horizon=horizon, confidence=level, seed=seed)
    paired = {
        side: ic_bound(
            diff, session, horizon=horizon, confidence=level, seed=seed + 1, upper=side == "upper"
        )
        for side in ("lower", "upper")
    }
    net = float(model_metrics["long_short_net_annual"])
    finite = np.isfinite(model_ic)
    model_mean = float(np.mean(model_ic[finite])) if finite.any() else float("nan")
    best_mean = float(baseline_metrics[best]["rank_ic_mean"])
    checks = {
        "ic_lower_positive": bool(lower > 0),
        "not_worse_than_best": bool(paired["upper"] >= 0),
        "long_short_positive": bool(net > 0),
    }
    pct = _level(level)
    texts = {
        "ic_lower_positive": f"rank IC {pct} lower bound {lower:+.4f}"
        + (" > 0" if checks["ic_lower_positive"] else " is not above 0")
        + f" (mean {model_mean:+.4f})",
        "not_worse_than_best": f"rank IC minus best baseline {best}'s ({best_mean:+.4f}) "
        f"paired {pct} upper bound {paired['upper']:+.4f}"
        + (" >= 0" if checks["not_worse_than_best"] else " is below 0 (significantly worse)"),
        "long_short_positive": f"long-short net {net:+.1%}/yr"
        + (" > 0" if checks["long_short_positive"] else " is not above 0"),
    }
    promoted = all(checks.values())
    shown = [texts[name] for name, ok in checks.items() if promoted or not ok]
    correction = "" if attempts == 1 else f" (nominal {_level(confidence)}, {attempts} attempts)"
    reason = ("promoted" if promoted else "refused") + correction + ": " + "; ".join(shown)
    return {
        "promoted": promoted,
        "reason": reason,
        "confidence": level,
        "nominal_confidence": float(confidence),
        "attempts": int(attempts),
        "best_baseline": best,
        "rank_ic_lower": lower,
        "paired_lower": paired["lower"],
        "paired_upper": paired["upper"],
        "checks": checks,
        "rank_ic_mean": model_mean,
        "best_baseline_rank_ic_mean": best_mean,
        "long_short_net_annual": net,
    }
