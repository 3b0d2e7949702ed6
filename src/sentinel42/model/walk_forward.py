"""Train across the watchlist, evaluate walk-forward against baselines, register, gate.

Splits are chronological on the bar clock shared by all tickers. Between consecutive splits
there is a purge: a validation (or test) window is kept only if its first bar starts after the
last training (or validation) target ends, so no window and no target overlap across splits.
The validation block chooses the early-stopping epoch; the test block chose nothing, so it alone
decides the promotion gate (``model/gate.py``).
"""

from __future__ import annotations

import hashlib
import logging
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.errors import ModelError
from sentinel42.model import baselines as bl
from sentinel42.model.config import RegistryConfig, TrainingConfig
from sentinel42.model.evaluate import metrics
from sentinel42.model.features import (
    FeatureSpec,
    FeatureTable,
    Normalizer,
    Samples,
    build_table,
    samples,
    windows,
)
from sentinel42.model.gate import decide, incumbent_forecasts
from sentinel42.model.registry import ModelRegistry, new_version_name

logger = logging.getLogger(__name__)

MIN_TRAIN_SAMPLES = 200
MIN_EVAL_SAMPLES = 50
DEFAULT_FOLDS = 3


@dataclass(frozen=True, slots=True)
class Fold:
    train: Samples
    val: Samples
    test: Samples


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


def _range(s: Samples) -> dict[str, Any]:
    """First window start, last window end and last target end of a split, plus its size."""
    return {
        "window_start": _iso(s.window_start.min()),
        "last_bar": _iso(s.ts.max()),
        "target_end": _iso(s.target_end.max()),
        "n": len(s),
    }


def plan_folds(all_samples: Samples, n_folds: int = DEFAULT_FOLDS) -> list[Fold]:
    """Walk-forward folds, oldest first; the last one trains the registered model.

    Each fold has an expanding training window, then a validation block (early stopping), then
    a test block (the out-of-sample numbers; the last fold's decides the promotion gate). Fewer
    folds are planned when the history is too short for the requested number.

    Raises:
        ModelError: not even one fold has ``MIN_TRAIN_SAMPLES`` training and
            ``MIN_EVAL_SAMPLES`` validation and test windows.
    """
    times = np.unique(all_samples.ts)
    for n in range(max(1, n_folds), 0, -1) if len(times) else ():
        frac = 0.2 if n == 1 else 0.45 / n
        folds = []
        for j in range(n):
            test_hi = 1.0 - (n - 1 - j) * frac
            test_lo, val_lo = test_hi - frac, test_hi - 2 * frac

            def cut(q: float) -> int:
                return int(times[min(int(q * len(times)), len(times) - 1)])

            ts = all_samples.ts
            train = all_samples.subset(ts < cut(val_lo))
            if len(train) < MIN_TRAIN_SAMPLES:
                break
            val_mask = (ts >= cut(val_lo)) & (ts < cut(test_lo))
            val = all_samples.subset(val_mask & (all_samples.window_start > train.target_end.max()))
            if len(val) < MIN_EVAL_SAMPLES:
                break
            test_mask = ts >= cut(test_lo)
            if j < n - 1:
                test_mask &= ts < cut(test_hi)
            test = all_samples.subset(test_mask & (all_samples.window_start > val.target_end.max()))
            if len(test) < MIN_EVAL_SAMPLES:
                break
            folds.append(Fold(train, val, test))
        if len(folds) == n:
            return folds
    raise ModelError(
        f"too little history to train: {len(all_samples)} windows with a target "
        f"(need at least {MIN_TRAIN_SAMPLES} for training and {MIN_EVAL_SAMPLES} each for "
        "validation and test, in time order); backfill more bars or lower SENTINEL42_MODEL_WINDOW"
    )


def fingerprint(bars: Mapping[str, pd.DataFrame], daily: Mapping[str, pd.DataFrame] | None) -> str:
    """sha256 over tickers, bar times and OHLCV values: same data, same fingerprint."""
    digest = hashlib.sha256()
    for group in (bars, daily or {}):
        for ticker in sorted(group):
            frame = group[ticker]
            digest.update(ticker.encode())
            digest.update(pd.DatetimeIndex(frame.index).as_unit("ns").asi8.tobytes())
            for column in ("open", "high", "low", "close", "volume"):
                digest.update(frame[column].to_numpy(dtype=np.float64).tobytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("sentinel42", "torch", "numpy", "pandas", "safetensors"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _net_and_train_config(config: TrainingConfig, n_features: int) -> tuple[Any, Any]:
    from sentinel42.model.network import NetworkConfig
    from sentinel42.model.trainer import TrainConfig

    return (
        NetworkConfig(n_features, config.hidden_size, config.layers, config.dropout),
        TrainConfig(config.epochs, config.patience, config.batch_size, config.learning_rate,
                    config.seed),
    )  # fmt: skip


def forecast_split(
    network: Any, normalizer: Normalizer, params: dict[str, Any], table: FeatureTable,
    spec: FeatureSpec, s: Samples,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """``"model"`` and each baseline -> (P(up), expected return), one entry per window of ``s``."""
    from sentinel42.model.trainer import predict

    x = windows(normalizer.apply(table.features), s.ends, spec.window)
    return {"model": predict(network, x), **bl.predict(params, table, s, spec.window)}


def score_split(
    network: Any, normalizer: Normalizer, params: dict[str, Any], table: FeatureTable,
    spec: FeatureSpec, s: Samples,
    forecasts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Model and baseline metrics on one split (out of sample when ``s`` follows training)."""
    if forecasts is None:
        forecasts = forecast_split(network, normalizer, params, table, spec, s)
    scored = {name: metrics(p, e, s.target) for name, (p, e) in forecasts.items()}
    return {"model": scored.pop("model"), "baselines": scored}


def _fit_fold(
    config: TrainingConfig, table: FeatureTable, spec: FeatureSpec, fold: Fold,
    progress: Callable[[str], None] | None,
) -> tuple[Any, Normalizer, dict[str, Any], dict[str, Any]]:  # fmt: skip
    from sentinel42.model.trainer import train_network

    normalizer = Normalizer.fit(table, fold.train)  # training window only (see Normalizer.fit)
    feats = normalizer.apply(table.features)
    net_config, train_config = _net_and_train_config(config, len(spec.names))
    result = train_network(
        net_config, train_config,
        windows(feats, fold.train.ends, spec.window), fold.train.target / normalizer.target_std,
        windows(feats, fold.val.ends, spec.window), fold.val.target / normalizer.target_std,
        progress=progress,
    )  # fmt: skip
    params = bl.fit(table, fold.train, spec.window)
    test_forecasts = forecast_split(result.network, normalizer, params, table, spec, fold.test)
    report = {
        "validation": score_split(result.network, normalizer, params, table, spec, fold.val),
        "test": score_split(result.network, normalizer, params, table, spec, fold.test,
                            test_forecasts),
        "test_forecasts": test_forecasts,
        "ranges": {"train": _range(fold.train), "validation": _range(fold.val),
                   "test": _range(fold.test)},
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
    }  # fmt: skip
    return result.network, normalizer, params, report


def _prefixed(progress: Callable[[str], None] | None, prefix: str) -> Callable[[str], None] | None:
    if progress is None:
        return None
    sink = progress
    return lambda line: sink(prefix + line)


def _expired(
    registry: ModelRegistry, version: str | None, config: TrainingConfig, now: datetime
) -> str | None:
    """Why the incumbent may not defend because it is past its age limit (as it is then no longer
    used for decisions either), else None."""
    if version is None:
        return None
    try:
        end = registry.load(version).data_end
    except ModelError:
        return None  # the gate says why it cannot defend
    if end is None:
        return None
    age = config.calendar.sessions_since(end, now)
    if age <= config.max_age_sessions:
        return None
    return (
        f"incumbent {version} does not defend: expired, its data ended {age} sessions ago "
        f"(limit {config.max_age_sessions})"
    )


def train_and_register(
    config: TrainingConfig,
    bars: Mapping[str, pd.DataFrame],
    *,
    now: datetime,
    daily: Mapping[str, pd.DataFrame] | None = None,
    progress: Callable[[str], None] | None = None,
    n_folds: int = DEFAULT_FOLDS,
) -> dict[str, Any]:
    """Train on every ticker's bars, evaluate walk-forward, save, and promote if it earns it.

    Args:
        config: the training stage's settings (``TrainingConfig.from_settings``).
        bars: ticker -> domain bar frame (regular-session 15-minute bars).
        now: tz-aware creation time (names the version).
        daily: ticker -> daily bars; when given for every ticker, daily features are used and
            inference then needs daily bars too.
        progress: receives one line per epoch and per fold.
        n_folds: walk-forward folds wanted (fewer when the history is short).

    Returns:
        The ``model train --json`` document: model and baseline test metrics of the registered
        (last) fold, its validation metrics (early stopping only), every fold, ``gate`` (the
        decision on the last fold's test block, see ``model/gate.py``), ``data_end`` (ISO UTC,
        the newest target bar any window reached), promoted and reason.

    Raises:
        ModelError: too little data to train.
    """
    if now.tzinfo is None:
        raise ModelError("now must be timezone-aware")
    use_daily = daily is not None and all(t in daily and len(daily[t]) > 0 for t in bars)
    spec = FeatureSpec(
        config.window,
        config.horizon,
        use_daily=use_daily,
        interval_minutes=config.interval_minutes,
    )
    table = build_table(bars, spec, daily=daily if use_daily else None)
    all_samples = samples(table, spec)
    folds = plan_folds(all_samples, n_folds)
    fold_reports: list[dict[str, Any]] = []
    for i, fold in enumerate(folds, start=1):
        prefix = f"fold {i}/{len(folds)}: "
        if progress is not None:
            progress(f"{prefix}train {len(fold.train)} val {len(fold.val)} test {len(fold.test)}")
        network, normalizer, params, report = _fit_fold(
            config, table, spec, fold, _prefixed(progress, prefix)
        )
        fold_reports.append(
            {"fold": i, **report["test"], "ranges": report["ranges"],
             "best_epoch": report["best_epoch"]}
        )  # fmt: skip
    final, deciding = report, folds[-1].test
    data_end = _iso(all_samples.target_end.max())
    registry = config.registry.open()
    previous = registry.current_version()
    fp = fingerprint(bars, daily if use_daily else None)
    version = new_version_name(now, fp)
    while version in registry.versions():
        version += "b"
    incumbent, ignored = incumbent_forecasts(registry, previous, spec, table, deciding)
    expired = _expired(registry, previous, config, now) if ignored is None else None
    if expired is not None:
        incumbent, ignored = None, expired
    forecasts = final["test_forecasts"]
    gate = decide(
        forecasts["model"][0], {name: forecasts[name][0] for name in bl.BASELINES},
        deciding.target, deciding.ts, horizon=spec.horizon,
        confidence=config.gate_confidence, seed=config.seed,
        incumbent=incumbent, incumbent_ignored=ignored,
    )  # fmt: skip
    promoted, reason = bool(gate["promoted"]), str(gate["reason"])
    net_config, train_config = _net_and_train_config(config, len(spec.names))
    meta = {
        "created_at": now.astimezone(UTC).isoformat(),
        "feature_spec": spec.to_dict(),
        "network": net_config.to_dict(),
        "training": {"epochs": train_config.epochs, "patience": train_config.patience,
                     "batch_size": train_config.batch_size,
                     "learning_rate": train_config.learning_rate, "seed": train_config.seed,
                     "best_epoch": final["best_epoch"], "epochs_run": final["epochs_run"]},
        "normalization": normalizer.to_dict(),
        "baselines": params,
        "tickers": list(table.tickers),
        "ranges": final["ranges"],
        "data_end": data_end,
        "data_fingerprint": fp,
        "metrics": {"validation": final["validation"], "test": final["test"]},
        "folds": fold_reports,
        "libraries": library_versions(),
        "gate": gate,
        "promotion": {"promoted": promoted, "reason": reason, "previous_version": previous,
                      "confidence": config.gate_confidence},
    }  # fmt: skip
    registry.save(version, network, meta)
    registry.record_decision(
        {"version": version, "promoted": promoted, "reason": reason, "previous_version": previous,
         "gate": gate, "validation": final["validation"]},
        now,
    )  # fmt: skip
    if promoted:
        registry.promote(version)
        logger.info("model %s promoted: %s", version, reason)
    else:
        logger.warning("model %s not promoted (current stays %s): %s", version, previous, reason)
    return {
        "version": version,
        "model": {"version": version, **final["test"]["model"]},
        "baselines": final["test"]["baselines"],
        "validation": final["validation"],
        "folds": fold_reports,
        "gate": gate,
        "data_end": data_end,
        "promoted": promoted,
        "reason": reason,
        "previous_version": previous,
        "current_version": version if promoted else previous,
        "ranges": final["ranges"],
    }


def evaluate_model(
    registry_config: RegistryConfig,
    bars: Mapping[str, pd.DataFrame],
    *,
    version: str | None = None,
    daily: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Score a registered model and its stored baselines on windows after its validation block.

    Those windows start after the last validation target ended, so they are out of sample for
    the model and its early stopping; on the training data they are the test block, which also
    decided the gate. Only windows after ``data_end`` are a fresh check of that decision.

    Args:
        registry_config: where the registry is (``RegistryConfig.from_settings``).
        version: a registered version; default the promoted one, else the newest.

    Raises:
        ModelError: no model, an incompatible checkpoint, or no out-of-sample windows.
    """
    registry = registry_config.open()
    version = version or registry.current_version() or registry.newest_version()
    if version is None:
        raise ModelError("no trained model yet; run `sentinel42 model train` first")
    loaded = registry.load(version)
    spec = loaded.spec
    table = build_table(bars, spec, daily=daily)
    after = pd.Timestamp(loaded.metadata["ranges"]["validation"]["target_end"]).value
    s = samples(table, spec)
    s = s.subset(s.window_start > after)
    if len(s) == 0:
        raise ModelError(
            f"no out-of-sample windows: every bar given ends before model {version}'s "
            f"validation window ended ({_iso(after)})"
        )
    scored = score_split(loaded.network, loaded.normalizer, loaded.metadata["baselines"], table,
                         spec, s)  # fmt: skip
    return {
        "version": version,
        "model": {"version": version, **scored["model"]},
        "baselines": scored["baselines"],
        "folds": loaded.metadata.get("folds", []),
        "promoted": version == registry.current_version(),
        "window": {"window_start": _iso(s.window_start.min()), "last_bar": _iso(s.ts.max()),
                   "n": len(s)},
    }  # fmt: skip
