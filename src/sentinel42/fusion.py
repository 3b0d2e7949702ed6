"""Fusion: an LSTM prediction and a news-sentiment aggregate become one decision.

The fused score is ``w_model * (2 * P(up) - 1) + w_news * sentiment``, in [-1, 1]:

- The configured weights are normalised to sum to 1.
- The model's share is scaled by its *validated edge*: its accuracy over the best baseline on
  the block that decided its promotion (and nothing else), ``min(1, edge / 0.05)``. A model with
  no edge, an unknown edge, or one the validate flow found degraded weighs zero. Its unearned
  share is not handed to the news: a missing or worthless signal contributes nothing, so a
  decision that stands on one signal alone needs that signal to be strong.

**Confidence** means the same for every action: how far the fused score sits inside the chosen
action's band (0 at a threshold, 1 at the band's far end, or for HOLD at its centre), times the
share of the configured evidence that was present (the model's effective weight when it
predicted, plus the news weight scaled by ``min(1, headlines / 3)``). No evidence, or a stale
bar, gives 0. See docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sentinel42.domain import Action, Decision, Prediction, SentimentAggregate

if TYPE_CHECKING:
    from sentinel42.settings import Settings

# An accuracy edge of five points over the best baseline earns the model its full weight.
EDGE_FOR_FULL_WEIGHT = 0.05
# Three headlines in the window count as full news evidence; one counts a third.
HEADLINES_FOR_FULL_WEIGHT = 3
# A ranking model whose validated mean rank IC reaches this earns its full share of weight.
RANK_IC_FOR_FULL_WEIGHT = 0.03


@dataclass(frozen=True, slots=True)
class RankLeg:
    """A promoted cross-sectional ranking model's view of one ticker (one leg of the fusion).

    ``score`` is the ticker's rank among the universe's model scores, in [-1, 1]; ``rank_ic``
    is the model's mean rank IC on the test block that promoted it.
    """

    kind: str
    version: str
    score: float
    rank_ic: float | None
    horizon: int


def rank_quality(rank_ic: float | None) -> float:
    """Share of its weight a ranking leg earns: 0 without a validated IC, 1 from 0.03."""
    if rank_ic is None or rank_ic <= 0:
        return 0.0
    return min(1.0, rank_ic / RANK_IC_FOR_FULL_WEIGHT)


@dataclass(frozen=True, slots=True)
class FusionConfig:
    buy_threshold: float = 0.15
    sell_threshold: float = -0.15
    model_weight: float = 0.6
    sentiment_weight: float = 0.4
    max_bar_age: timedelta = timedelta(minutes=60)
    interval: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionConfig:
        return cls(
            buy_threshold=settings.buy_threshold,
            sell_threshold=settings.sell_threshold,
            model_weight=settings.model_weight,
            sentiment_weight=settings.sentiment_weight,
            max_bar_age=timedelta(minutes=settings.max_bar_age_minutes),
            interval=timedelta(minutes=settings.interval_minutes),
        )

    @property
    def normalized_weights(self) -> tuple[float, float]:
        """(model, news) weights scaled to sum to 1."""
        total = self.model_weight + self.sentiment_weight
        return self.model_weight / total, self.sentiment_weight / total


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """The newest stored bar of a ticker at decision time."""

    bar_ts: datetime  # bar start, UTC
    close: float


def model_quality(edge: float | None) -> float:
    """Share of its configured weight a model earns: 0 without an edge, 1 from five points."""
    if edge is None or edge <= 0:
        return 0.0
    return min(1.0, edge / EDGE_FOR_FULL_WEIGHT)


def band_position(fused: float, action: Action, config: FusionConfig) -> float:
    """0 at the threshold that would change ``action``, 1 at the far end (HOLD: the centre)."""
    buy, sell = config.buy_threshold, config.sell_threshold
    if action is Action.BUY:
        return (fused - buy) / (1.0 - buy)
    if action is Action.SELL:
        return (sell - fused) / (1.0 + sell)
    return min(buy - fused, fused - sell) / ((buy - sell) / 2.0)


def fuse(
    ticker: str,
    *,
    as_of: datetime,
    bar: MarketSnapshot | None,
    prediction: Prediction | None,
    prediction_skip_reason: str | None,
    sentiment: SentimentAggregate | None,
    config: FusionConfig,
    model_degraded: bool = False,
    rank_legs: Sequence[RankLeg] = (),
    news_live: tuple[bool, str] = (True, ""),
) -> Decision | None:
    """Decide BUY / SELL / HOLD for one ticker.

    Args:
        rank_legs: the promoted ranking models' scores for this ticker. The model weight is
            shared equally by the model legs present (the direction LSTM when it predicted,
            and each ranking leg), each scaled by its own validated quality.
        news_live: whether the news leg has weight, and why (``news_leg.news_leg_state``):
            sentiment weighs nothing until its own signal passed the gate on stored history.
        model_degraded: the validate flow found the model's live hit rate significantly below
            its validated accuracy; its weight is then zero until a new model is promoted.

    Returns None only when there is no bar at all (there is nothing to attach a decision to).
    """
    if bar is None:
        return None
    w_model_cfg, w_news = config.normalized_weights
    inputs: dict[str, object] = {
        "as_of": as_of.isoformat(),
        "bar_ts": bar.bar_ts.isoformat(),
        "close": bar.close,
    }
    models: dict[str, object] = {
        "lstm": prediction.model_version if prediction else None,
        "lstm_validated_accuracy": prediction.model_accuracy if prediction else None,
        "lstm_edge": prediction.model_edge if prediction else None,
        "lstm_horizon_bars": prediction.horizon_bars if prediction else None,
        "sentiment": list(sentiment.scorers) if sentiment else [],
    }
    parts: list[str] = []
    model_signal, w_model = 0.0, 0.0
    n_model_legs = (prediction is not None) + len(rank_legs)
    share = w_model_cfg / n_model_legs if n_model_legs else 0.0
    if prediction is not None:
        model_signal = 2.0 * prediction.p_up - 1.0
        quality = 0.0 if model_degraded else model_quality(prediction.model_edge)
        w_model = share * quality
        inputs |= {"p_up": prediction.p_up, "expected_return": prediction.expected_return}
        acc = (
            f", validated accuracy {prediction.model_accuracy:.3f}"
            if prediction.model_accuracy is not None
            else ""
        )
        if model_degraded:
            why_weight = "degraded by validation: weight 0"
        elif prediction.model_edge is None:
            why_weight = "no validated edge recorded: weight 0"
        else:
            why_weight = (
                f"edge {prediction.model_edge:+.3f} over the best baseline: weight {w_model:.2f}"
            )
        parts.append(
            f"LSTM {prediction.model_version}{acc} ({why_weight}): "
            f"P(up)={prediction.p_up:.3f} over {prediction.horizon_bars} bars"
        )
    else:
        parts.append(f"no LSTM prediction ({prediction_skip_reason or 'no model'})")
    rank_part, w_rank, legs_in = 0.0, 0.0, {}
    for leg in rank_legs:
        w_leg = share * rank_quality(leg.rank_ic)
        rank_part += w_leg * leg.score
        w_rank += w_leg
        legs_in[leg.kind] = {"score": leg.score, "weight": round(w_leg, 6)}
        models[f"ranking_{leg.kind}"] = leg.version
        ic = f"rank IC {leg.rank_ic:+.4f}" if leg.rank_ic is not None else "no validated IC"
        parts.append(
            f"{leg.kind} ranking {leg.version} ({ic}: weight {w_leg:.2f}): score "
            f"{leg.score:+.2f} among the universe over {leg.horizon} "
            f"{'sessions' if leg.kind == 'daily' else 'bars'}"
        )
    if legs_in:
        inputs["ranking"] = legs_in
    news_signal, n_headlines = 0.0, 0
    if not news_live[0]:
        w_news = 0.0
    if sentiment is not None and sentiment.n_headlines > 0:
        news_signal, n_headlines = sentiment.score, sentiment.n_headlines
        inputs |= {
            "sentiment": sentiment.score,
            "headlines": sentiment.n_headlines,
            "newest_headline_at": sentiment.newest_headline_at.isoformat()
            if sentiment.newest_headline_at
            else None,
        }
        parts.append(
            f"news sentiment {sentiment.score:+.3f} from {sentiment.n_headlines} headlines"
            + ("" if news_live[0] else f" ({news_live[1]}: weight 0)")
        )
    else:
        inputs |= {"sentiment": None, "headlines": 0}
        parts.append("no recent news")

    fused = w_model * model_signal + rank_part + w_news * news_signal
    evidence = (
        (w_model if prediction is not None else 0.0)
        + w_rank
        + w_news * min(1.0, n_headlines / HEADLINES_FOR_FULL_WEIGHT)
    )
    inputs |= {
        "fused": round(fused, 6),
        "model_signal": round(model_signal, 6),
        "weights": {"model": round(w_model, 6), "sentiment": round(w_news, 6)}
        | ({"ranking": round(w_rank, 6)} if rank_legs else {}),
        "evidence": round(evidence, 6),
        "thresholds": {"buy": config.buy_threshold, "sell": config.sell_threshold},
    }

    age = as_of - (bar.bar_ts + config.interval)
    if age > config.max_bar_age:
        action, why = Action.HOLD, f"HOLD: newest bar is stale ({_minutes(age)} min old)"
        evidence = 0.0
    elif evidence == 0.0:
        action, why = Action.HOLD, "HOLD: no signal to act on"
    elif fused >= config.buy_threshold:
        action = Action.BUY
        why = f"BUY: fused {fused:+.3f} >= {config.buy_threshold:+.3f}"
    elif fused <= config.sell_threshold:
        action = Action.SELL
        why = f"SELL: fused {fused:+.3f} <= {config.sell_threshold:+.3f}"
    else:
        action = Action.HOLD
        band = f"({config.sell_threshold:+.3f}, {config.buy_threshold:+.3f})"
        why = f"HOLD: fused {fused:+.3f} inside {band}"
    confidence = max(0.0, min(1.0, band_position(fused, action, config))) * evidence
    return Decision(
        ticker=ticker,
        bar_ts=bar.bar_ts,
        action=action,
        confidence=round(confidence, 6),
        reason=f"{why}; " + "; ".join(parts),
        inputs=inputs,
        models=models,
        decided_at=as_of,
    )


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)
