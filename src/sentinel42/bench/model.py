"""The ``sentinel42 bench model`` benchmark (training time, inference latency) on
:func:`sentinel42.synthetic.synthetic_bars`."""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinel42.synthetic import BARS_PER_SESSION, synthetic_bars

if TYPE_CHECKING:
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)


def run_benchmark(
    settings: Settings,
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

        from sentinel42.model.config import InferenceConfig, TrainingConfig
        from sentinel42.model.predictor import predict_latest, predict_with
        from sentinel42.model.storage import open_registry
        from sentinel42.model.walk_forward import train_and_register

    now = datetime(2025, 4, 1, 21, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="sentinel42-bench-") as tmp:
        bench_settings = settings.model_copy(update={"data_dir": Path(tmp)})
        names = [f"T{i:03d}" for i in range(max(train_tickers, infer_tickers))]
        bars = synthetic_bars(names[:train_tickers], sessions, seed=1)
        with stages.stage("train") as row:
            doc = train_and_register(
                TrainingConfig.from_settings(bench_settings),
                bars,
                now=now,
                progress=progress,
                n_folds=1,
            )
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
            full = predict_latest(InferenceConfig.from_settings(bench_settings), many, as_of)
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


def bench_model(**sizes: Any) -> dict[str, Any]:
    """:func:`run_benchmark` with the environment's settings: the entry of a fresh process
    (``sentinel42 bench model`` runs it through :func:`sentinel42.bench.measure.run_isolated`).

    ``sizes`` are :func:`run_benchmark`'s keyword arguments (``train_tickers``, ``sessions``,
    ``infer_tickers``, ``repeats``, ``progress``) with its defaults; any other name is a
    ``TypeError``."""
    from sentinel42.settings import load_settings

    return run_benchmark(load_settings(require_replay_dir=False), **sizes)
