"""The news leg weighs only after its own signal passed the gate on stored history."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from sentinel42 import pipeline
from sentinel42.factory import build_calendar
from sentinel42.model.ranking.news_leg import (
    STATE_FILE,
    NewsLegConfig,
    evaluate_news,
    news_leg_state,
    validate_news,
)
from sentinel42.model.ranking.panel import build_panel
from sentinel42.model.ranking.service import registry_for
from sentinel42.settings import load_settings
from tests.model.ranking.conftest import universe

CLOSE = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)


def _sentiment(panel, *, seed: int, planted: float) -> np.ndarray:
    """Headline sentiment for a third of the names each day; with ``planted`` > 0 it leans
    towards the next session's return."""
    rng = np.random.default_rng(seed)
    nxt = np.vstack([np.log(panel.close[1:] / panel.close[:-1]), np.full(panel.shape[1], np.nan)])
    s = rng.normal(size=panel.shape) + planted * np.nan_to_num(nxt) / 0.01
    s = np.tanh(s)
    s[rng.random(panel.shape) > 0.33] = np.nan  # most names have no news most days
    return s


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noise_sentiment_is_refused(seed: int) -> None:
    panel = build_panel(universe("daily", seed=seed, n_sessions=250, n_tickers=60), "daily")
    verdict = evaluate_news(panel, _sentiment(panel, seed=seed, planted=0.0), cost_bps=5,
                            confidence=0.99, attempts=1)  # fmt: skip
    assert verdict["validated"] is False, verdict["reason"]


def test_sentiment_that_leads_returns_is_validated() -> None:
    panel = build_panel(universe("daily", seed=4, n_sessions=250, n_tickers=60), "daily")
    verdict = evaluate_news(panel, _sentiment(panel, seed=4, planted=0.5), cost_bps=5,
                            confidence=0.99, attempts=1)  # fmt: skip
    assert verdict["validated"] is True, verdict["reason"]
    assert verdict["news"]["rank_ic_mean"] > 0.05


def test_too_little_history_is_refused_with_the_reason() -> None:
    panel = build_panel(universe("daily", seed=5, n_sessions=15, n_tickers=60), "daily")
    verdict = evaluate_news(panel, _sentiment(panel, seed=5, planted=0.5), cost_bps=5,
                            confidence=0.99, attempts=1)  # fmt: skip
    assert not verdict["validated"]
    assert "too little stored news history" in verdict["reason"]


def test_by_default_unvalidated_news_weighs_nothing_in_decisions(replay_env, monkeypatch):
    monkeypatch.setenv("SENTINEL42_NEWS_REQUIRES_VALIDATION", "true")
    monkeypatch.setenv("SENTINEL42_SENTIMENT_WINDOW_HOURS", "96")
    settings = load_settings()
    pipeline.refresh_all(settings, CLOSE)
    result = pipeline.decide(settings, CLOSE, forced=True)
    assert result.legs["news"]["live"] is False
    assert "validate-news" in result.legs["news"]["why"]
    with_news = [d for d in result.decisions if d.inputs.get("headlines")]
    assert with_news, "the replay set has headlines in the window"
    for d in result.decisions:
        assert d.inputs["weights"]["sentiment"] == 0.0
        assert d.action.value == "HOLD"
    # The same run with unvalidated news allowed: the headlines count again.
    monkeypatch.setenv("SENTINEL42_NEWS_REQUIRES_VALIDATION", "false")
    allowed = pipeline.decide(load_settings(), CLOSE, forced=True)
    assert any(d.inputs["weights"]["sentiment"] > 0 for d in allowed.decisions)


def test_validate_news_records_a_refusal_the_trading_run_reads(replay_env, monkeypatch):
    monkeypatch.setenv("SENTINEL42_NEWS_REQUIRES_VALIDATION", "true")
    settings = load_settings()
    pipeline.refresh_all(settings, CLOSE)
    verdict = validate_news(settings, now=CLOSE, as_of=CLOSE)
    assert verdict["validated"] is False
    assert verdict["attempts"] == 1
    result = pipeline.decide(settings, CLOSE, forced=True)
    assert result.legs["news"]["live"] is False
    assert result.legs["news"]["why"].startswith("news leg refused")
    assert validate_news(settings, now=CLOSE, as_of=CLOSE)["attempts"] == 2


@pytest.mark.parametrize(
    ("validated_at", "live"),
    [
        (datetime(2026, 11, 18, 21, 0, tzinfo=UTC), False),  # 5 sessions before CLOSE
        (datetime(2026, 11, 20, 21, 0, tzinfo=UTC), True),  # 3 sessions before CLOSE
    ],
)
def test_a_validated_verdict_expires_after_the_gates_max_age(monkeypatch, validated_at, live):
    monkeypatch.setenv("SENTINEL42_NEWS_REQUIRES_VALIDATION", "true")
    monkeypatch.setenv("SENTINEL42_MODEL_MAX_AGE_SESSIONS", "3")
    monkeypatch.setenv("SENTINEL42_MODEL_GATE_WINDOW_DAYS", "60")  # not the expiry
    settings = load_settings()
    models = registry_for(NewsLegConfig.from_settings(settings).registry, "news").models_dir
    models.mkdir(parents=True, exist_ok=True)
    state = {"validated": True, "reason": "planted", "at": validated_at.isoformat(),
             "as_of": validated_at.isoformat()}  # fmt: skip
    (models / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
    ok, why = news_leg_state(settings, CLOSE, build_calendar(settings))
    assert ok is live, why
    assert ("expired (5 sessions old)" in why) is not live
