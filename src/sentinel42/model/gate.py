"""The promotion gate: decided on the untouched test block, with a block-bootstrap bound.

The validation block chose the early-stopping epoch, so a model's numbers there are biased in
its favour; the test block (after a purge gap) chose nothing, so it alone decides. A candidate is
promoted only if, on that block:

1. its accuracy edge over the most accurate baseline (the best one *on this block*, which makes
   the hurdle higher, not lower) has a one-sided lower bound above zero at ``confidence``;
2. its log-loss is no higher than the lowest baseline log-loss;
3. it is not significantly worse than the incumbent (the promoted model) on the windows both
   see out of sample: the upper bound of its accuracy edge over the incumbent is not below zero
   and the lower bound of its log-loss excess over the incumbent is not above zero.

Windows overlap (a 4-bar target shares 3 bars with its neighbour) and tickers move together, so
per-window outcomes are not independent. The bounds therefore come from a circular
moving-block bootstrap over *bar times*: every window ending at one bar time goes into the same
unit (all tickers together), and blocks of consecutive bar times span at least two horizons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.errors import ModelError
from sentinel42.model.evaluate import hits, log_losses
from sentinel42.model.features import FeatureSpec, FeatureTable, Samples, windows
from sentinel42.model.registry import ModelRegistry

N_BOOTSTRAP = 2000
BLOCK_HORIZONS = 2  # blocks span at least this many horizons (overlap plus some persistence)
MIN_INCUMBENT_WINDOWS = 50  # fewer shared out-of-sample windows: the incumbent cannot defend


def block_bars(n_times: int, horizon: int) -> int:
    """Bar times per bootstrap block: at least two horizons, growing like n^(1/3).

    Args:
        n_times: distinct bar times in the sample.
        horizon: bars per target; windows closer than this share target bars.
    """
    return max(1, min(n_times, max(BLOCK_HORIZONS * horizon, math.ceil(n_times ** (1 / 3)))))


def mean_bound(
    values: np.ndarray,
    ts: np.ndarray,
    *,
    horizon: int,
    confidence: float,
    upper: bool = False,
    seed: int = 0,
    n_boot: int = N_BOOTSTRAP,
) -> float:
    """One-sided bootstrap bound of the mean of per-window values.

    Args:
        values: [windows] the per-window quantity (e.g. model hit minus baseline hit).
        ts: [windows] int64 ns, the bar time of each window's last bar (the resampling unit).
        horizon: target length in bars (sets the minimum block length).
        confidence: one-sided level, e.g. 0.95.
        upper: the upper bound instead of the lower one.
        seed: seeds the resampling, so one input gives one bound.
        n_boot: bootstrap replicates.

    Returns:
        The ``1 - confidence`` (or ``confidence``) quantile of the resampled means; NaN when
        there are no windows.
    """
    if values.shape[0] == 0:
        return float("nan")
    times, unit = np.unique(ts, return_inverse=True)
    n_times = times.shape[0]
    sums = np.bincount(unit, weights=values.astype(np.float64), minlength=n_times)
    counts = np.bincount(unit, minlength=n_times).astype(np.float64)
    length = block_bars(n_times, horizon)
    n_blocks = math.ceil(n_times / length)
    # circular blocks: every bar time is equally likely to be drawn, the block ends included
    cum_sums = np.concatenate(([0.0], np.cumsum(np.tile(sums, 2))))
    cum_counts = np.concatenate(([0.0], np.cumsum(np.tile(counts, 2))))
    starts = np.random.default_rng(seed).integers(0, n_times, size=(n_boot, n_blocks))
    total = (cum_sums[starts + length] - cum_sums[starts]).sum(axis=1)
    weight = (cum_counts[starts + length] - cum_counts[starts]).sum(axis=1)
    means = total / weight
    return float(np.quantile(means, confidence if upper else 1.0 - confidence))


@dataclass(frozen=True, slots=True)
class Incumbent:
    """The promoted model's forecasts on the deciding-block windows it has not seen.

    ``shared`` selects those windows (their first bar starts after the incumbent's data end);
    ``p_up`` holds its P(up) on them, in the same order.
    """

    version: str
    p_up: np.ndarray  # [shared windows]
    shared: np.ndarray  # [deciding-block windows] bool
    data_end: str  # ISO UTC


def incumbent_forecasts(
    registry: ModelRegistry, version: str | None, spec: FeatureSpec, table: FeatureTable,
    deciding: Samples,
) -> tuple[Incumbent | None, str | None]:  # fmt: skip
    """The promoted model's P(up) on the deciding-block windows it has not seen, if it can defend.

    The incumbent must load and compute exactly the candidate's features, window and horizon
    (otherwise its windows and targets are not the candidate's). Only windows whose first bar
    starts after the incumbent's data end are used, with the same purge rule as the splits, so
    the incumbent is out of sample on every window it is judged on.

    Returns:
        ``(Incumbent, None)`` when it defends; ``(None, why)`` when one exists but cannot defend;
        ``(None, None)`` when no model is promoted.
    """
    if version is None:
        return None, None
    try:
        loaded = registry.load(version)
    except ModelError as exc:
        return None, f"incumbent {version} does not defend: it cannot be loaded ({exc})"
    if loaded.spec != spec:
        return None, (
            f"incumbent {version} does not defend: incompatible feature spec "
            f"{loaded.spec.to_dict()} (candidate: {spec.to_dict()})"
        )
    if loaded.data_end is None:
        return None, f"incumbent {version} does not defend: its checkpoint has no data end"
    after = pd.Timestamp(loaded.data_end).value
    shared = deciding.window_start > after
    if int(shared.sum()) < MIN_INCUMBENT_WINDOWS:
        return None, (
            f"incumbent {version} does not defend: only {int(shared.sum())} test windows start "
            f"after its data end ({_iso(after)}); it needs {MIN_INCUMBENT_WINDOWS} to be judged "
            "out of sample"
        )
    x = windows(loaded.normalizer.apply(table.features), deciding.ends[shared], spec.window)
    p_up, _ = loaded.lstm.predict(x)  # as it decides live
    return Incumbent(version, p_up, shared, _iso(after)), None


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


def _compare_incumbent(
    p_model: np.ndarray,
    realized: np.ndarray,
    ts: np.ndarray,
    inc: Incumbent,
    *,
    horizon: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    y, t = realized[inc.shared], ts[inc.shared]
    p = p_model[inc.shared]
    acc_diff = hits(p, y) - hits(inc.p_up, y)
    ll_diff = log_losses(p, y) - log_losses(inc.p_up, y)
    return {
        "version": inc.version,
        "data_end": inc.data_end,
        "n": int(y.shape[0]),
        "accuracy": float(np.mean(hits(inc.p_up, y))),
        "log_loss": float(np.mean(log_losses(inc.p_up, y))),
        "model_accuracy": float(np.mean(hits(p, y))),
        "model_log_loss": float(np.mean(log_losses(p, y))),
        "edge": float(np.mean(acc_diff)),
        "edge_upper_bound": mean_bound(
            acc_diff, t, horizon=horizon, confidence=confidence, upper=True, seed=seed
        ),
        "log_loss_excess": float(np.mean(ll_diff)),
        "log_loss_excess_lower_bound": mean_bound(
            ll_diff, t, horizon=horizon, confidence=confidence, seed=seed + 1
        ),
    }


def decide(
    p_model: np.ndarray,
    p_baselines: dict[str, np.ndarray],
    realized: np.ndarray,
    ts: np.ndarray,
    *,
    horizon: int,
    confidence: float,
    seed: int = 0,
    incumbent: Incumbent | None = None,
    incumbent_ignored: str | None = None,
) -> dict[str, Any]:
    """Promote or refuse a candidate on the deciding (test) block; see the module docstring.

    Args:
        p_model: [windows] the candidate's P(up) on the deciding block.
        p_baselines: baseline name -> [windows] P(up), fitted on the training block only.
        realized: [windows] realized target log returns ("up" is strictly positive).
        ts: [windows] int64 ns bar time of each window's last bar.
        horizon: target length in bars.
        confidence: one-sided level of every bound (``Settings.model_gate_confidence``).
        seed: seeds the bootstrap.
        incumbent: the promoted model's forecasts on the shared windows, if it can defend.
        incumbent_ignored: why an existing incumbent does not defend (shown in the reason).

    Returns:
        The ``gate`` document (registry metadata and ``model train --json``): block, n, model
        and best-baseline numbers, edge and its lower bound, confidence, incumbent comparison,
        promoted and reason.
    """
    acc = {name: float(np.mean(hits(p, realized))) for name, p in p_baselines.items()}
    ll = {name: float(np.mean(log_losses(p, realized))) for name, p in p_baselines.items()}
    best = max(acc, key=lambda k: acc[k])
    best_ll = min(ll, key=lambda k: ll[k])
    model_acc = float(np.mean(hits(p_model, realized)))
    model_ll = float(np.mean(log_losses(p_model, realized)))
    diff = hits(p_model, realized) - hits(p_baselines[best], realized)
    lower = mean_bound(diff, ts, horizon=horizon, confidence=confidence, seed=seed)
    n = int(realized.shape[0])
    times = np.unique(ts).shape[0]
    level = f"{confidence:.0%}"
    doc: dict[str, Any] = {
        "block": "test",
        "n": n,
        "model_accuracy": model_acc,
        "model_log_loss": model_ll,
        "best_baseline": best,
        "best_baseline_accuracy": acc[best],
        "best_baseline_log_loss": ll[best_ll],
        "best_log_loss_baseline": best_ll,
        "edge": model_acc - acc[best],
        "edge_lower_bound": lower,
        "confidence": confidence,
        "block_bars": block_bars(times, horizon),
        "bootstrap_samples": N_BOOTSTRAP,
        "incumbent": None,
        "incumbent_ignored": incumbent_ignored,
    }
    head = f"test block ({n} windows, used for neither fitting nor early stopping): "
    checks: list[tuple[bool, str]] = [
        (
            bool(lower > 0),
            f"accuracy {model_acc:.4f} vs best baseline {best} {acc[best]:.4f}: edge "
            f"{model_acc - acc[best]:+.4f}, {level} lower bound {lower:+.4f}"
            + (" > 0" if lower > 0 else " is not above 0"),
        ),
        (
            bool(np.isfinite(model_ll) and model_ll <= ll[best_ll]),
            f"log-loss {model_ll:.4f} "
            + ("<=" if model_ll <= ll[best_ll] else "is above")
            + f" the best baseline's ({best_ll} {ll[best_ll]:.4f})",
        ),
    ]
    if incumbent is not None:
        cmp = _compare_incumbent(
            p_model, realized, ts, incumbent, horizon=horizon, confidence=confidence, seed=seed
        )
        doc["incumbent"] = cmp
        worse = cmp["edge_upper_bound"] < 0 or cmp["log_loss_excess_lower_bound"] > 0
        checks.append(
            (
                not worse,
                f"against incumbent {cmp['version']} on the {cmp['n']} windows after its data "
                f"end: accuracy {cmp['model_accuracy']:.4f} vs {cmp['accuracy']:.4f} ({level} "
                f"upper bound of the difference {cmp['edge_upper_bound']:+.4f}), log-loss "
                f"{cmp['model_log_loss']:.4f} vs {cmp['log_loss']:.4f} ({level} lower bound of "
                f"the excess {cmp['log_loss_excess_lower_bound']:+.4f}): "
                + ("significantly worse" if worse else "not worse"),
            )
        )
    failed = [text for ok, text in checks if not ok]
    # a refusal names only what failed; an incumbent that could not defend is always named
    shown = failed or [text for _, text in checks]
    if incumbent is None:
        shown.append(incumbent_ignored or "no incumbent")
    doc["promoted"] = not failed
    doc["reason"] = ("refused on the " if failed else "promoted on the ") + head + "; ".join(shown)
    return doc
