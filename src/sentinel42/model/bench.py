"""Synthetic bars and the ``sentinel42 bench model`` benchmark (training time, inference latency).

The synthetic series are real inputs for tests and benchmarks, not fixtures of expected output:
``pattern="sign_product"`` hides a rule no baseline can express (the next return's sign is the
product of the last two returns' signs with probability ``p``); ``pattern="random_walk"`` has
nothing to learn.
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

NY = "America/New_York"
BARS_PER_SESSION = 26  # 09:30-16:00 New York in 15-minute bars


def synthetic_bars(
    tickers: list[str] | tuple[str, ...],
    sessions: int,
    *,
    pattern: Literal["sign_product", "random_walk"] = "sign_product",
    p: float = 0.7,
    seed: int = 0,
    first_day: date = date(2025, 1, 6),
    sigma: float = 0.002,
) -> dict[str, pd.DataFrame]:
    """Domain bar frames of ``sessions`` weekdays of regular-session 15-minute bars per ticker.

    Each session opens at 09:30 New York time (UTC offset follows DST) at the previous close.
    """
    days = pd.bdate_range(first_day, periods=sessions)
    starts = []
    for d in days:
        open_ny = pd.Timestamp(year=d.year, month=d.month, day=d.day, hour=9, minute=30, tz=NY)
        starts.append(
            open_ny.tz_convert(UTC) + pd.to_timedelta(np.arange(BARS_PER_SESSION) * 15, "m")
        )
    index = starts[0].append(starts[1:]).as_unit("ns").rename("ts")
    n = len(index)
    rng = np.random.default_rng(seed)
    out = {}
    for ticker in tickers:
        size = np.abs(rng.normal(0.0, sigma, n)) + sigma * 0.05
        sign = rng.choice([-1.0, 1.0], n)
        if pattern == "sign_product":
            keep = rng.random(n) < p
            for t in range(2, n):
                rule = sign[t - 1] * sign[t - 2]
                sign[t] = rule if keep[t] else -rule
        ret = sign * size
        close = 100.0 * np.exp(np.cumsum(ret))
        open_ = np.concatenate(([100.0], close[:-1]))
        wiggle = np.abs(rng.normal(0.0, sigma / 2, n))
        high = np.maximum(open_, close) * np.exp(wiggle)
        low = np.minimum(open_, close) * np.exp(-wiggle)
        volume = np.round(rng.lognormal(12.0, 0.5, n))
        out[ticker] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
            index=index,
        )
    return out


def run_benchmark(
    settings: Any,
    *,
    train_tickers: int = 10,
    sessions: int = 60,
    infer_tickers: int = 500,
    repeats: int = 5,
    progress: Any = None,
) -> dict[str, Any]:
    """Time training (``train_tickers`` × ``sessions`` days of 15-minute bars) and one batched
    inference call for ``infer_tickers`` tickers, in a throw-away registry.

    Returns:
        Figures in seconds plus the sizes and thread count used.
    """
    from sentinel42.bench.measure import Stages

    stages = Stages()
    with stages.stage("imports"):
        import torch

        from sentinel42.model.predictor import predict_latest, predict_with
        from sentinel42.model.storage import open_registry
        from sentinel42.model.training import train_and_register

    now = datetime(2025, 4, 1, 21, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="sentinel42-bench-") as tmp:
        bench_settings = settings.model_copy(update={"data_dir": Path(tmp)})
        names = [f"T{i:03d}" for i in range(max(train_tickers, infer_tickers))]
        bars = synthetic_bars(names[:train_tickers], sessions, seed=1)
        with stages.stage("train") as row:
            doc = train_and_register(bench_settings, bars, now=now, progress=progress, n_folds=1)
        train_s = row["wall_s"]
        registry = open_registry(bench_settings.models_dir)
        version = doc["version"]
        if registry.current_version() is None:
            registry.promote(version)  # the benchmark times inference whatever the gate said
        many = synthetic_bars(names[:infer_tickers], 8, seed=2)
        as_of = max(f.index[-1] for f in many.values()).to_pydatetime() + timedelta(minutes=15)
        loaded = registry.load(version)
        predict_with(loaded, many, as_of, interval_minutes=15)  # warm-up (allocations, caches)
        batch = []
        with stages.stage("inference", repeats=repeats):
            for _ in range(repeats):
                t0 = time.perf_counter()
                result = predict_with(loaded, many, as_of, interval_minutes=15)
                batch.append(time.perf_counter() - t0)
        with stages.stage("inference_with_model_load") as row:
            full = predict_latest(bench_settings, many, as_of)
        with_load = row["wall_s"]
        # The naive way, same work: one call (features + forward pass) per ticker.
        with stages.stage("inference_naive_per_ticker") as row:
            per_ticker = [
                predict_with(loaded, {t: frame}, as_of, interval_minutes=15)
                for t, frame in many.items()
            ]
        naive_s = row["wall_s"]
    return {
        "stages": stages.figures,
        "train": {
            "tickers": train_tickers,
            "sessions": sessions,
            "bars": train_tickers * sessions * BARS_PER_SESSION,
            "seconds": round(train_s, 3),
            "epochs": bench_settings.model_epochs,
            "folds": len(doc["folds"]),
            "validation_accuracy": doc["validation"]["model"]["accuracy"],
            "promoted": doc["promoted"],
        },
        "inference": {
            "tickers": infer_tickers,
            "predicted": len(result.predictions),
            "seconds_median": round(float(np.median(batch)), 4),
            "seconds_max": round(float(np.max(batch)), 4),
            "seconds_with_model_load": round(with_load, 4),
            "seconds_naive_per_ticker": round(naive_s, 4),
            "predicted_naive": sum(len(r.predictions) for r in per_ticker),
            "predicted_with_load": len(full.predictions),
        },
        "threads": torch.get_num_threads(),
        "settings": {
            "window": bench_settings.model_window,
            "horizon": bench_settings.model_horizon,
            "hidden_size": bench_settings.model_hidden_size,
            "layers": bench_settings.model_layers,
        },
    }


def bench_model(
    train_tickers: int = 10,
    sessions: int = 60,
    infer_tickers: int = 500,
    repeats: int = 5,
    progress: Any = None,
) -> dict[str, Any]:
    """:func:`run_benchmark` with the environment's settings: the entry of a fresh process
    (``sentinel42 bench model`` runs it through :func:`sentinel42.bench.measure.run_isolated`)."""
    from sentinel42.settings import load_settings

    return run_benchmark(
        load_settings(require_replay_dir=False),
        train_tickers=train_tickers,
        sessions=sessions,
        infer_tickers=infer_tickers,
        repeats=repeats,
        progress=progress,
    )
