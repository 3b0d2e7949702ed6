"""Shared fixtures of the model tests: small, fast settings and trained registries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sentinel42.settings import Settings, load_settings
from sentinel42.synthetic import synthetic_bars

NOW = datetime(2025, 4, 1, 21, 0, tzinfo=UTC)
TICKERS = ("AAA", "BBB", "CCC", "DDD")


def fast_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Small network and few epochs: each training takes a few seconds on 2 cores."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "tickers": list(TICKERS),
        "model_window": 8,
        "model_horizon": 1,
        "model_hidden_size": 16,
        "model_epochs": 15,
        "model_patience": 3,
        "model_learning_rate": 0.01,
        "model_batch_size": 64,
        "model_seed": 7,
        "data_source": "replay",
    }
    values.update(overrides)
    return load_settings(require_replay_dir=False, **values)


@pytest.fixture(scope="module")
def pattern_bars() -> dict:
    return synthetic_bars(TICKERS, 40, pattern="sign_product", p=0.7, seed=3)


@pytest.fixture(scope="module")
def walk_bars() -> dict:
    return synthetic_bars(TICKERS, 40, pattern="random_walk", seed=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, pattern_bars: dict) -> dict:
    """A registry holding one model trained on the learnable pattern (shared, do not mutate)."""
    from sentinel42.model.config import TrainingConfig
    from sentinel42.model.walk_forward import train_and_register

    settings = fast_settings(tmp_path_factory.mktemp("pattern"))
    lines: list[str] = []
    config = TrainingConfig.from_settings(settings)
    doc = train_and_register(config, pattern_bars, now=NOW, progress=lines.append, n_folds=1)
    return {"settings": settings, "doc": doc, "progress": lines}
