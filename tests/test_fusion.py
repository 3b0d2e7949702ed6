from datetime import UTC, datetime, timedelta

import pytest

from sentinel42.domain import Action, Prediction, SentimentAggregate
from sentinel42.fusion import FusionConfig, MarketSnapshot, fuse

AS_OF = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
BAR = MarketSnapshot(bar_ts=AS_OF - timedelta(minutes=15), close=100.0)
CONFIG = FusionConfig()


def _pred(p_up: float) -> Prediction:
    return Prediction("AAPL", BAR.bar_ts, p_up, 0.001, "v1", 0.56, 4)


def _sent(score: float, n: int = 3) -> SentimentAggregate:
    return SentimentAggregate("AAPL", score, n, AS_OF - timedelta(hours=1), ("fallback",))


@pytest.mark.parametrize(
    ("p_up", "sentiment", "expected"),
    [
        (0.70, 0.5, Action.BUY),
        (0.30, -0.5, Action.SELL),
        (0.52, 0.0, Action.HOLD),
        (0.70, -0.6, Action.HOLD),
        (None, 0.6, Action.BUY),
        (None, 0.2, Action.HOLD),
    ],
)
def test_fuse_combines_model_and_news(p_up, sentiment, expected):
    decision = fuse(
        "AAPL",
        as_of=AS_OF,
        bar=BAR,
        prediction=_pred(p_up) if p_up is not None else None,
        prediction_skip_reason="no promoted model",
        sentiment=_sent(sentiment),
        config=CONFIG,
    )
    assert decision is not None
    assert decision.action is expected
    assert 0.0 <= decision.confidence <= 1.0
    assert decision.inputs["sentiment"] == sentiment


def test_fuse_without_model_or_news_holds_and_says_why():
    decision = fuse(
        "AAPL",
        as_of=AS_OF,
        bar=BAR,
        prediction=None,
        prediction_skip_reason="no promoted model",
        sentiment=_sent(0.0, n=0),
        config=CONFIG,
    )
    assert decision.action is Action.HOLD
    assert "no promoted model" in decision.reason
    assert "no recent news" in decision.reason
    assert decision.models["lstm"] is None


def test_fuse_with_stale_bars_returns_hold():
    old = MarketSnapshot(bar_ts=AS_OF - timedelta(days=1), close=100.0)
    decision = fuse(
        "AAPL",
        as_of=AS_OF,
        bar=old,
        prediction=_pred(0.9),
        prediction_skip_reason=None,
        sentiment=_sent(0.9),
        config=CONFIG,
    )
    assert decision.action is Action.HOLD
    assert "stale" in decision.reason


def test_fuse_records_model_version_and_accuracy():
    decision = fuse(
        "AAPL",
        as_of=AS_OF,
        bar=BAR,
        prediction=_pred(0.8),
        prediction_skip_reason=None,
        sentiment=None,
        config=CONFIG,
    )
    assert decision.models == {"lstm": "v1", "lstm_validated_accuracy": 0.56, "sentiment": []}
    assert "v1" in decision.reason and "0.560" in decision.reason


def test_fuse_without_a_bar_gives_nothing():
    assert (
        fuse(
            "AAPL",
            as_of=AS_OF,
            bar=None,
            prediction=None,
            prediction_skip_reason=None,
            sentiment=None,
            config=CONFIG,
        )
        is None
    )
