from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sentinel42.domain import Action, Prediction, SentimentAggregate
from sentinel42.fusion import FusionConfig, MarketSnapshot, fuse

AS_OF = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
BAR = MarketSnapshot(bar_ts=AS_OF - timedelta(minutes=15), close=100.0)
CONFIG = FusionConfig()


def _pred(p_up: float, edge: float | None = 0.05) -> Prediction:
    """A prediction by a model whose validated edge (default: five points) earns full weight."""
    return Prediction("AAPL", BAR.bar_ts, p_up, 0.001, "v1", 0.56, 4, edge)


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
    assert decision.models == {
        "lstm": "v1",
        "lstm_validated_accuracy": 0.56,
        "lstm_edge": 0.05,
        "lstm_horizon_bars": 4,
        "sentiment": [],
    }
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


def _decide(prediction=None, sentiment=None, config=CONFIG, **kw):
    decision = fuse(
        "AAPL",
        as_of=AS_OF,
        bar=BAR,
        prediction=prediction,
        prediction_skip_reason="no promoted model",
        sentiment=sentiment,
        config=config,
        **kw,
    )
    assert decision is not None
    return decision


def test_hold_with_one_neutral_headline_and_no_model_is_not_confident():
    # It was 1.0: a HOLD on almost no evidence claimed full confidence.
    decision = _decide(sentiment=_sent(0.0, n=1))
    assert decision.action is Action.HOLD
    assert decision.confidence == pytest.approx(
        0.4 / 3, abs=1e-6
    )  # centre of the band x a third of news


def test_no_evidence_at_all_gives_zero_confidence():
    assert _decide(sentiment=_sent(0.0, n=0)).confidence == 0.0


@pytest.mark.parametrize("edge", [None, 0.0, -0.02])
def test_a_model_without_a_validated_edge_weighs_nothing(edge):
    decision = _decide(prediction=_pred(0.95, edge=edge))
    assert decision.inputs["weights"]["model"] == 0.0
    assert decision.inputs["fused"] == 0.0
    assert decision.action is Action.HOLD
    assert decision.confidence == 0.0


def test_the_model_weight_grows_with_its_edge_up_to_the_configured_share():
    weights = [
        _decide(prediction=_pred(0.8, edge=e)).inputs["weights"]["model"]
        for e in (0.01, 0.025, 0.05, 0.2)
    ]
    assert weights == pytest.approx([0.12, 0.3, 0.6, 0.6])


def test_a_degraded_model_weighs_nothing_and_the_reason_says_so():
    decision = _decide(prediction=_pred(0.95), sentiment=_sent(0.0, n=0), model_degraded=True)
    assert decision.action is Action.HOLD
    assert decision.inputs["weights"]["model"] == 0.0
    assert "degraded" in decision.reason


def test_weights_are_normalised_whatever_is_configured():
    config = FusionConfig(model_weight=0.9, sentiment_weight=0.9)
    decision = _decide(prediction=_pred(1.0), sentiment=_sent(1.0), config=config)
    assert decision.inputs["weights"] == {"model": 0.5, "sentiment": 0.5}
    assert decision.inputs["fused"] == pytest.approx(1.0)
    assert decision.confidence == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_confidence_has_one_meaning_for_every_action(seed):
    """Property over random inputs: fused in [-1, 1]; confidence in [0, 1], zero exactly at a
    threshold, and never above the evidence present."""
    rng = np.random.default_rng(seed)
    for _ in range(200):
        mw, sw = rng.uniform(0.01, 1.0, 2)
        buy = float(rng.uniform(0.05, 0.5))
        config = FusionConfig(buy_threshold=buy, sell_threshold=-float(rng.uniform(0.05, 0.5)),
                              model_weight=mw, sentiment_weight=sw)  # fmt: skip
        pred = _pred(float(rng.uniform()), edge=float(rng.uniform(-0.05, 0.1)))
        sent = _sent(float(rng.uniform(-1, 1)), n=int(rng.integers(0, 6)))
        d = _decide(prediction=pred if rng.uniform() < 0.8 else None, sentiment=sent,
                    config=config)  # fmt: skip
        fused = d.inputs["fused"]
        assert -1.0 <= fused <= 1.0
        assert 0.0 <= d.confidence <= d.inputs["evidence"] + 1e-9
        assert d.inputs["weights"]["model"] + d.inputs["weights"]["sentiment"] <= 1.0 + 1e-9
        if d.action is Action.BUY:
            assert fused >= config.buy_threshold
        elif d.action is Action.SELL:
            assert fused <= config.sell_threshold
