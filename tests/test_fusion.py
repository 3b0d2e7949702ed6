import itertools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sentinel42.domain import Action, Decision, Prediction, SentimentAggregate
from sentinel42.fusion import FusionConfig, MarketSnapshot, Standing, fuse

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
        buy, sell = float(rng.uniform(0.05, 0.5)), -float(rng.uniform(0.05, 0.5))
        config = FusionConfig(buy_threshold=buy, sell_threshold=sell, model_weight=mw,
                              sentiment_weight=sw,
                              exit_threshold=min(buy, -sell) * float(rng.uniform(0, 0.9)),
                              allow_short=bool(rng.uniform() < 0.5))  # fmt: skip
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


# --- hysteresis, target weight and the news-only cap (issue 17, item 2) -----------------------

# All the weight on the news: the fused score is the sentiment itself, exactly.
NEWS = FusionConfig(model_weight=0.0, sentiment_weight=1.0)
SHORTS = FusionConfig(model_weight=0.0, sentiment_weight=1.0, allow_short=True)


def _at(fused, previous=None, config=NEWS, *, validated=True, n=3, bar=BAR):
    decision = fuse(
        "AAPL",
        as_of=AS_OF,
        bar=bar,
        prediction=None,
        prediction_skip_reason="no promoted model",
        sentiment=_sent(fused, n=n),
        config=config,
        news_validated=validated,
        previous=previous,
    )
    assert decision is not None
    return decision


def _long():
    return Standing(Action.BUY, BAR.bar_ts - timedelta(minutes=15), 1)


def _short():
    return Standing(Action.SELL, BAR.bar_ts - timedelta(minutes=15), -1)


def _walk(path, config=NEWS, *, carry=True):
    """Decide a sequence of fused scores bar after bar; ``carry`` passes the previous one."""
    previous, decisions = None, []
    for fused in path:
        decision = _at(float(fused), previous if carry else None, config)
        decisions.append(decision)
        previous = Standing.of(decision)
    return decisions


def _changes(values) -> int:
    return sum(a != b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("seed", range(5))
def test_a_noisy_score_around_the_threshold_flips_far_less_with_hysteresis(seed):
    rng = np.random.default_rng(seed)
    path = np.clip(0.15 + 0.05 * rng.standard_normal(300), -1.0, 1.0)
    crossings = _changes([f >= 0.15 for f in path])
    memoryless = [d.action for d in _walk(path, carry=False)]
    # Without memory (the old rule) the action flips BUY <-> HOLD at every crossing.
    assert _changes(memoryless) == crossings > 100
    decisions = _walk(path)
    flips = _changes([d.action for d in decisions])
    trades = _changes([d.inputs["position"] for d in decisions])
    assert flips <= crossings / 4, (flips, crossings)
    assert trades <= crossings / 6, (trades, crossings)
    for before, d in itertools.pairwise(decisions):
        assert d.inputs["previous_action"] == before.action.value


@pytest.mark.parametrize(
    ("previous", "fused", "action", "position", "reason"),
    [
        (_long(), 0.051, Action.BUY, "long", "BUY: hold long, fused +0.051 > exit +0.050"),
        (_long(), 0.050, Action.SELL, "flat", "SELL: exit long, fused +0.050 <= exit +0.050"),
        (_long(), 0.031, Action.SELL, "flat", "SELL: exit long, fused +0.031 <= exit +0.050"),
        (_short(), -0.051, Action.SELL, "short", "SELL: hold short, fused -0.051 < exit -0.050"),
        (_short(), -0.050, Action.BUY, "flat", "BUY: exit short, fused -0.050 >= exit -0.050"),
        (None, 0.051, Action.HOLD, "flat", "HOLD: fused +0.051 inside (-0.150, +0.150)"),
        (None, 0.149, Action.HOLD, "flat", "HOLD: fused +0.149 inside (-0.150, +0.150)"),
        (None, 0.150, Action.BUY, "long", "BUY: fused +0.150 >= +0.150"),
        (None, -0.150, Action.SELL, "short", "SELL: fused -0.150 <= -0.150"),
    ],
)
def test_the_exit_happens_exactly_at_the_exit_band(previous, fused, action, position, reason):
    d = _at(fused, previous, SHORTS)
    assert d.action is action
    assert d.reason.startswith(reason)
    assert d.inputs["position"] == position
    assert d.inputs["previous_action"] == (previous.action.value if previous else None)
    assert d.inputs["exit_threshold"] == 0.05
    if action is Action.HOLD:
        assert "target_weight" not in d.inputs
    else:
        target = d.inputs["target_weight"]
        assert {"long": target > 0, "short": target < 0, "flat": target == 0}[position]
        # The band used contains the score, and confidence is 0 at its edge.
        low, high = d.inputs["band"]
        assert low <= fused <= high


def test_an_exit_sells_to_flat_and_the_next_bar_between_the_bands_holds():
    exit_ = _at(0.04, _long())
    assert (exit_.action, exit_.inputs["target_weight"]) == (Action.SELL, 0.0)
    assert exit_.inputs["band"] == [-1.0, 0.05]  # shorts off: everything at or below the exit
    after = _at(0.10, Standing.of(exit_))
    assert after.action is Action.HOLD
    assert after.inputs["previous_position"] == "flat"


def test_a_long_flips_short_only_past_the_sell_threshold_when_shorts_are_allowed():
    assert _at(-0.149, _long(), SHORTS).inputs["target_weight"] == 0.0
    flipped = _at(-0.15, _long(), SHORTS)
    assert flipped.action is Action.SELL and flipped.inputs["target_weight"] < 0
    assert "exit long and go short" in flipped.reason
    assert _at(-0.5, _long(), NEWS).inputs["target_weight"] == 0.0  # shorts off: flat


@pytest.mark.parametrize("guard", ["stale", "no evidence"])
def test_a_hold_for_a_stale_bar_or_no_evidence_keeps_the_position(guard):
    if guard == "stale":
        held = _at(0.9, _long(), bar=MarketSnapshot(AS_OF - timedelta(days=1), 100.0))
    else:
        held = _at(0.0, _long(), n=0)
    assert held.action is Action.HOLD
    assert held.confidence == 0.0
    assert held.inputs["position"] == "long"
    assert "target_weight" not in held.inputs
    # The long is remembered through the HOLD: a score between the bands still holds it ...
    assert _at(0.10, Standing.of(held)).action is Action.BUY
    # ... and the exit band still closes it.
    assert _at(0.05, Standing.of(held)).inputs["target_weight"] == 0.0


def test_decisions_stored_before_the_hysteresis_read_as_positions_by_their_action():
    def old(action):
        return Decision("AAPL", BAR.bar_ts, action, 0.5, "", inputs={"fused": 0.2})

    assert Standing.of(old(Action.BUY)).position == 1
    assert Standing.of(old(Action.SELL)).position == -1
    assert Standing.of(old(Action.HOLD)).position == 0


def test_the_target_weight_grows_with_the_score_and_is_capped():
    config = FusionConfig(model_weight=0.0, sentiment_weight=1.0, allow_short=True,
                          max_position=0.25)  # fmt: skip
    grid = np.round(np.linspace(-1.0, 1.0, 2001), 6)
    for previous in (None, _long(), _short()):
        longs, shorts = [], []
        for fused in grid:
            d = _at(float(fused), previous, config)
            target = d.inputs.get("target_weight")
            assert target is None or abs(target) <= 0.25 + 1e-12
            if target is not None and target > 0:
                longs.append((fused, target))
            elif target is not None and target < 0:
                shorts.append((-fused, -target))
        for side in (longs, shorts):
            side.sort()
            sizes = [t for _, t in side]
            assert sizes == sorted(sizes), "not monotone in |fused|"
            assert sizes[-1] == pytest.approx(0.25)  # the full position at |fused| = 1
    entry = _at(0.15, None, config).inputs["target_weight"]
    assert entry == pytest.approx(0.25 * (0.15 - 0.05) / 0.95, abs=1e-6) and entry > 0


def test_without_shorts_a_sell_never_targets_below_zero():
    for fused in np.linspace(-1.0, -0.15, 50):
        for previous in (None, _long(), _short()):
            d = _at(float(fused), previous, NEWS)
            assert d.action is Action.SELL
            assert d.inputs["target_weight"] == 0.0
            assert d.inputs["position"] == "flat"


@pytest.mark.parametrize("seed", range(3))
def test_one_unvalidated_headline_never_moves_more_than_the_news_only_fraction(seed):
    rng = np.random.default_rng(seed)
    config = FusionConfig(allow_short=True)  # the default weights: news 0.4 of the fusion
    for score in rng.uniform(-1.0, 1.0, 300):
        for previous in (None, _long(), _short()):
            d = _at(float(score), previous, config, validated=False, n=1)
            assert d.inputs["news_only"] is True
            if d.action is not Action.HOLD:
                assert abs(d.inputs["target_weight"]) <= config.news_only_fraction
    strong = _at(1.0, None, config, validated=False, n=1)
    assert strong.action is Action.BUY
    assert strong.inputs["target_weight"] == config.news_only_fraction
    assert "news-only cap" in strong.reason
    # The cap is what bounds it: validated, the same headline asks for more.
    assert _at(1.0, None, config, validated=True, n=1).inputs["target_weight"] > 0.02


def test_the_news_only_cap_does_not_apply_with_a_weighted_model_leg():
    d = _decide(prediction=_pred(0.99), sentiment=_sent(1.0, n=1), config=FusionConfig())
    assert d.action is Action.BUY
    assert d.inputs["news_only"] is False
    assert d.inputs["target_weight"] > 0.02
    assert "news-only cap" not in d.reason
    # A model without a validated edge weighs nothing: the decision stands on the news alone.
    alone = _decide(prediction=_pred(0.99, edge=None), sentiment=_sent(1.0, n=1))
    assert alone.inputs["news_only"] is True
    assert alone.inputs["target_weight"] == 0.02


def test_an_exit_threshold_at_or_above_an_entry_threshold_is_refused():
    with pytest.raises(ValueError, match=r"exit_threshold 0\.15"):
        FusionConfig(exit_threshold=0.15)
