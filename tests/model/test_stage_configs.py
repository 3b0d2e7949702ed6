"""The model stage's configs are built from the settings, every field from its own env name.

Each field gets a value of its own (none a default, none shared with another field of the same
type), so a field read from the wrong setting shows here.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from sentinel42.model.config import GateConfig, InferenceConfig, RegistryConfig, TrainingConfig
from sentinel42.model.ranking.news_leg import NewsLegConfig
from sentinel42.model.ranking.service import registry_for
from sentinel42.settings import Settings, load_settings

# env name -> (its value, the value the config holds)
MODEL_ENV: dict[str, tuple[str, Any]] = {
    "SENTINEL42_INTERVAL": ("5m", 5),
    "SENTINEL42_MODEL_WINDOW": ("17", 17),
    "SENTINEL42_MODEL_HORIZON": ("3", 3),
    "SENTINEL42_MODEL_HIDDEN_SIZE": ("24", 24),
    "SENTINEL42_MODEL_LAYERS": ("2", 2),
    "SENTINEL42_MODEL_DROPOUT": ("0.25", 0.25),
    "SENTINEL42_MODEL_EPOCHS": ("11", 11),
    "SENTINEL42_MODEL_PATIENCE": ("6", 6),
    "SENTINEL42_MODEL_BATCH_SIZE": ("96", 96),
    "SENTINEL42_MODEL_LEARNING_RATE": ("0.003", 0.003),
    "SENTINEL42_MODEL_SEED": ("1234", 1234),
    "SENTINEL42_MODEL_GATE_CONFIDENCE": ("0.95", 0.95),
    "SENTINEL42_MODEL_GATE_WINDOW_DAYS": ("45", 45),
    "SENTINEL42_MODEL_MAX_AGE_SESSIONS": ("9", 9),
    "SENTINEL42_COST_BPS": ("7.5", 7.5),
    "SENTINEL42_NEWS_REQUIRES_VALIDATION": ("false", False),
}
TRAINING_FIELDS = {
    "interval_minutes": "SENTINEL42_INTERVAL",
    "window": "SENTINEL42_MODEL_WINDOW",
    "horizon": "SENTINEL42_MODEL_HORIZON",
    "hidden_size": "SENTINEL42_MODEL_HIDDEN_SIZE",
    "layers": "SENTINEL42_MODEL_LAYERS",
    "dropout": "SENTINEL42_MODEL_DROPOUT",
    "epochs": "SENTINEL42_MODEL_EPOCHS",
    "patience": "SENTINEL42_MODEL_PATIENCE",
    "batch_size": "SENTINEL42_MODEL_BATCH_SIZE",
    "learning_rate": "SENTINEL42_MODEL_LEARNING_RATE",
}
# the gate's settings: GateConfig's fields, which TrainingConfig and NewsLegConfig both hold
GATE_FIELDS = {
    "confidence": "SENTINEL42_MODEL_GATE_CONFIDENCE",
    "window_days": "SENTINEL42_MODEL_GATE_WINDOW_DAYS",
    "max_age_sessions": "SENTINEL42_MODEL_MAX_AGE_SESSIONS",
    "cost_bps": "SENTINEL42_COST_BPS",
    "seed": "SENTINEL42_MODEL_SEED",
}
# TrainingConfig's names for them, which the training code reads
TRAINING_GATE_NAMES = {
    "seed": "SENTINEL42_MODEL_SEED",
    "gate_confidence": "SENTINEL42_MODEL_GATE_CONFIDENCE",
    "gate_window_days": "SENTINEL42_MODEL_GATE_WINDOW_DAYS",
    "max_age_sessions": "SENTINEL42_MODEL_MAX_AGE_SESSIONS",
    "cost_bps": "SENTINEL42_COST_BPS",
}
INFERENCE_FIELDS = {
    "interval_minutes": "SENTINEL42_INTERVAL",
    "max_age_sessions": "SENTINEL42_MODEL_MAX_AGE_SESSIONS",
}
NEWS_LEG_FIELDS = {
    "requires_validation": "SENTINEL42_NEWS_REQUIRES_VALIDATION",
}
CLOSED = date(2026, 12, 28)  # a Monday the exchange's own calendar has open
EARLY = date(2026, 12, 29)


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    """On top of tests/conftest.py's clean environment (data dir ``tmp_path / "data"``)."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, (value, _) in MODEL_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SENTINEL42_EXTRA_CLOSURES", CLOSED.isoformat())
    monkeypatch.setenv("SENTINEL42_EXTRA_EARLY_CLOSES", f"{EARLY.isoformat()}@13:00")


def _check(config: Any, expected: dict[str, str]) -> None:
    for field, env in expected.items():
        assert getattr(config, field) == MODEL_ENV[env][1], (field, env)


def test_the_values_here_are_no_defaults_and_each_is_its_own():
    for name, (_, expected) in MODEL_ENV.items():
        field = name.removeprefix("SENTINEL42_").lower()
        assert Settings.model_fields[field].default != expected, name
    numbers = [v for _, v in MODEL_ENV.values() if not isinstance(v, bool)]
    assert len(set(numbers)) == len(numbers)


def test_training_config_takes_every_field_from_its_env_name(tmp_path):
    config = TrainingConfig.from_settings(load_settings())
    assert {f.name for f in fields(TrainingConfig)} == set(TRAINING_FIELDS) | {
        "registry",
        "calendar",
        "gate",
    }
    _check(config, TRAINING_FIELDS)
    _check(config.gate, GATE_FIELDS)
    _check(config, TRAINING_GATE_NAMES)  # the names the training code reads, through the gate
    assert config.registry == RegistryConfig(tmp_path / "data" / "models")
    # SENTINEL42_EXTRA_CLOSURES and SENTINEL42_EXTRA_EARLY_CLOSES reach the calendar
    assert config.calendar.session(CLOSED) is None
    early = config.calendar.session(EARLY)
    assert early is not None and early[1] == datetime(2026, 12, 29, 18, 0, tzinfo=UTC)


def test_inference_config_takes_every_field_from_its_env_name(tmp_path):
    config = InferenceConfig.from_settings(load_settings())
    assert {f.name for f in fields(InferenceConfig)} == set(INFERENCE_FIELDS) | {"registry"}
    _check(config, INFERENCE_FIELDS)
    assert config.registry == RegistryConfig(tmp_path / "data" / "models")


def test_news_leg_config_takes_every_field_from_its_env_name(tmp_path):
    config = NewsLegConfig.from_settings(load_settings())
    assert {f.name for f in fields(NewsLegConfig)} == set(NEWS_LEG_FIELDS) | {"registry", "gate"}
    _check(config, NEWS_LEG_FIELDS)
    _check(config.gate, GATE_FIELDS)
    assert config.registry == RegistryConfig(tmp_path / "data" / "models")


def test_gate_config_takes_every_field_from_its_env_name_and_both_gates_share_it():
    settings = load_settings()
    gate = GateConfig.from_settings(settings)
    assert {f.name for f in fields(GateConfig)} == set(GATE_FIELDS)
    _check(gate, GATE_FIELDS)
    assert TrainingConfig.from_settings(settings).gate == gate
    assert NewsLegConfig.from_settings(settings).gate == gate


def test_registry_config_follows_models_url_over_the_data_dir(monkeypatch, tmp_path):
    shared = tmp_path / "shared-models"
    monkeypatch.setenv("SENTINEL42_MODELS_URL", str(shared))
    settings = load_settings()
    config = RegistryConfig.from_settings(settings)
    assert config == RegistryConfig(str(shared))
    for built in (TrainingConfig, InferenceConfig, NewsLegConfig):
        assert built.from_settings(settings).registry == config, built.__name__
    # a kind's registry is ranking-<kind> under it, from the config or from the settings
    assert registry_for(config, "daily").models_dir == shared / "ranking-daily"
    assert registry_for(settings, "news").models_dir == shared / "ranking-news"
    assert config.open().models_dir == shared


def test_stage_configs_are_frozen(tmp_path):
    config = RegistryConfig(Path(tmp_path))
    with pytest.raises(AttributeError):
        config.models_location = "elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize("value", [True, False])
def test_news_leg_config_follows_news_requires_validation_either_way(monkeypatch, value):
    monkeypatch.setenv("SENTINEL42_NEWS_REQUIRES_VALIDATION", str(value).lower())
    assert NewsLegConfig.from_settings(load_settings()).requires_validation is value
