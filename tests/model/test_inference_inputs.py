"""Inference sees the features training saw: the lookback comes from the model's feature spec
and the interval, counted in NYSE sessions; and a model too old, or trained on another
interval, is not used."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from sentinel42 import pipeline
from sentinel42.factory import build_calendar
from sentinel42.market.calendar import SESSION_MINUTES, NyseCalendar
from sentinel42.model.config import InferenceConfig
from sentinel42.model.features import FeatureSpec, build_table
from sentinel42.model.predictor import inference_start, load_promoted, model_data_end
from sentinel42.model.registry import ModelRegistry
from sentinel42.persistence import open_store
from sentinel42.settings import load_settings
from sentinel42.synthetic import generate_replay

# The Monday after Thanksgiving week 2026 (a holiday and a 13:00 early close behind it).
AFTER_HOLIDAY = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)


@pytest.mark.parametrize("interval", [5, 60])
def test_inference_bars_reproduce_training_features_after_a_holiday_week(tmp_path, interval):
    generate_replay(tmp_path / "replay", ["AAPL"], end=date(2026, 11, 30), sessions=15,
                    interval_minutes=interval, seed=1)  # fmt: skip
    settings = load_settings(
        data_source="replay", replay_dir=tmp_path / "replay", tickers=["AAPL"],
        interval=f"{interval}m", data_dir=tmp_path / "data",
    )  # fmt: skip
    pipeline.refresh_prices(settings, AFTER_HOLIDAY)
    spec = FeatureSpec(window=32, horizon=4, interval_minutes=interval)
    assert spec.volume_lookback == 5 * (SESSION_MINUTES // interval)  # five sessions, any interval
    start = inference_start(build_calendar(settings), AFTER_HOLIDAY, spec.inference_bars, interval)
    with open_store(settings) as store:
        full = store.load_bars(["AAPL"], settings.interval)
        recent = store.load_bars(
            ["AAPL"], settings.interval, start=start,
            end=AFTER_HOLIDAY - timedelta(minutes=interval),
        )  # fmt: skip
    assert len(recent["AAPL"]) >= spec.inference_bars
    whole = build_table(full, spec)
    live = build_table(recent, spec, tail=spec.inference_bars)
    np.testing.assert_allclose(live.features[-spec.window :], whole.features[-spec.window :])
    assert live.usable[-1]


def test_a_ten_day_lookback_was_too_short_at_60_minutes():
    """The bug this replaces: ten calendar days before the Monday after Thanksgiving hold six
    sessions, 36 hourly bars, fewer than the 70 a 32-bar window needs."""
    calendar = NyseCalendar()
    sessions = calendar.sessions_between(AFTER_HOLIDAY - timedelta(days=10), AFTER_HOLIDAY)
    bars = FeatureSpec(32, 4, interval_minutes=60).inference_bars
    assert len(sessions) * (SESSION_MINUTES // 60) < bars


@pytest.fixture
def promoted(tmp_path, trained):
    """A private copy of the trained registry with its model promoted."""
    source = trained["settings"]
    settings = load_settings(
        require_replay_dir=False, data_dir=tmp_path, tickers=list(source.tickers),
        model_max_age_sessions=15,
    )  # fmt: skip
    shutil.copytree(source.models_dir, settings.models_dir)
    registry = ModelRegistry(settings.models_dir)
    registry.promote(trained["doc"]["version"])
    return settings


def test_a_model_within_its_age_limit_is_used(promoted):
    loaded, reason = load_promoted(
        InferenceConfig.from_settings(promoted),
        _data_end(promoted) + timedelta(days=2),
        NyseCalendar(),
    )
    assert reason is None and loaded is not None


def test_a_model_older_than_the_limit_stops_deciding_until_retrained(promoted):
    late = _data_end(promoted) + timedelta(days=40)
    loaded, reason = load_promoted(InferenceConfig.from_settings(promoted), late, NyseCalendar())
    assert loaded is None
    assert "expired" in reason and "SENTINEL42_MODEL_MAX_AGE_SESSIONS" in reason


def test_a_model_trained_on_another_interval_is_not_used(promoted, tmp_path):
    settings = load_settings(require_replay_dir=False, data_dir=promoted.data_dir,
                             tickers=list(promoted.tickers), interval="5m")  # fmt: skip
    loaded, reason = load_promoted(
        InferenceConfig.from_settings(settings), _data_end(promoted), NyseCalendar()
    )
    assert loaded is None and "15-minute bars" in reason


def _data_end(settings) -> datetime:
    registry = ModelRegistry(settings.models_dir)
    end = model_data_end(registry.load(registry.current_version()))
    assert end is not None
    return end
