"""Fusion: an LSTM prediction and a news-sentiment aggregate become one decision.

The fused score is ``w_model * (2 * P(up) - 1) + w_news * sentiment``, in [-1, 1]:

- The configured weights are normalised to sum to 1.
- The model's share is scaled by its *validated edge*: its accuracy over the best baseline on
  the block that decided its promotion (and nothing else), ``min(1, edge / 0.05)``. A model with
  no edge, an unknown edge, or one the validate flow found degraded weighs zero. Its unearned
  share is not handed to the news: a missing or worthless signal contributes nothing, so a
  decision that stands on one signal alone needs that signal to be strong.

**Bands.** Flat, a ticker BUYs at ``fused >= buy`` and SELLs at ``fused <= sell``; once long it
stays BUY while ``fused > +exit`` and exits (SELL, target 0) at or below it; a short mirrors
that. The position comes from the ticker's previous standing decision; a HOLD keeps it.

**Target weight.** A BUY or SELL carries the signed fraction of equity to hold,
``max_position * (|fused| - exit) / (1 - exit)``; 0 for an exit, never short unless shorts are
allowed, and at most ``news_only_fraction`` when it stands on unvalidated news alone.

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
    # Hysteresis: a long stays long while fused > +exit, a short stays short while < -exit.
    exit_threshold: float = 0.05
    max_position: float = 0.1  # |target weight| at fused = +/-1, as a fraction of equity
    news_only_fraction: float = 0.02  # |target weight| cap on unvalidated news alone
    allow_short: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.exit_threshold < min(self.buy_threshold, -self.sell_threshold):
            raise ValueError(
                f"exit_threshold {self.exit_threshold} must be in [0, the entry thresholds) "
                f"(buy {self.buy_threshold}, sell {self.sell_threshold})"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionConfig:
        return cls(
            buy_threshold=settings.buy_threshold,
            sell_threshold=settings.sell_threshold,
            model_weight=settings.model_weight,
            sentiment_weight=settings.sentiment_weight,
            max_bar_age=timedelta(minutes=settings.max_bar_age_minutes),
            interval=timedelta(minutes=settings.interval_minutes),
            exit_threshold=settings.exit_threshold,
            max_position=settings.portfolio_max_position,
            news_only_fraction=settings.portfolio_news_only_fraction,
            allow_short=settings.portfolio_allow_short,
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


def band_position(fused: float, action: Action, band: tuple[float, float]) -> float:
    """How far ``fused`` sits inside the ``(low, high)`` band that chose ``action``.

    0 at the edge where the action would change; 1 at the far end the action points to (BUY:
    ``high``, SELL: ``low``) or, for HOLD, at the band's centre.
    """
    low, high = band
    if action is Action.BUY:
        return (fused - low) / (high - low)
    if action is Action.SELL:
        return (high - fused) / (high - low)
    return min(high - fused, fused - low) / ((high - low) / 2.0)


_POSITION_NAMES = {1: "long", -1: "short", 0: "flat"}
_POSITION_SIGNS = {name: sign for sign, name in _POSITION_NAMES.items()}


@dataclass(frozen=True, slots=True)
class Standing:
    """The ticker's previous standing decision (for an earlier bar) and the position it left.

    ``position`` is +1 long, -1 short, 0 flat. A HOLD keeps the position before it, so a stale
    bar between a BUY and a fall in the score does not forget the long.
    """

    action: Action
    bar_ts: datetime
    position: int

    @classmethod
    def of(cls, decision: Decision) -> Standing:
        """Read the position a stored decision left (``inputs["position"]``).

        Decisions stored before the hysteresis have no position: a BUY counts as long, a SELL as
        short (the target weight then makes it flat when shorts are off), a HOLD as flat.
        """
        stored = decision.inputs.get("position")
        if stored in _POSITION_SIGNS:
            position = _POSITION_SIGNS[stored]
        else:
            position = {Action.BUY: 1, Action.SELL: -1}.get(decision.action, 0)
        return cls(decision.action, decision.bar_ts, position)


@dataclass(frozen=True, slots=True)
class Choice:
    """What :func:`choose` decided, in which band of the fused score, toward which side."""

    action: Action
    band: tuple[float, float]  # the fused scores for which this action is taken
    direction: int  # the side of the target: +1 long, -1 short, 0 flat (an exit)
    why: str


def choose(fused: float, previous_position: int, config: FusionConfig) -> Choice:
    """BUY / SELL / HOLD from the fused score with entry and exit bands (hysteresis).

    Flat: BUY at ``fused >= buy``, SELL at ``fused <= sell``, HOLD between. Long: BUY (stay)
    while ``fused > +exit``; at or below it SELL to flat (an exit), or, with shorts allowed and
    ``fused <= sell``, SELL into a short. Short: the mirror image.
    """
    buy, sell, exit_ = config.buy_threshold, config.sell_threshold, config.exit_threshold
    f = f"fused {fused:+.3f}"
    if previous_position > 0:
        if fused > exit_:
            return Choice(Action.BUY, (exit_, 1.0), 1, f"BUY: hold long, {f} > exit {exit_:+.3f}")
        if fused <= sell and config.allow_short:
            why = f"SELL: exit long and go short, {f} <= {sell:+.3f}"
            return Choice(Action.SELL, (-1.0, sell), -1, why)
        low = sell if config.allow_short else -1.0
        return Choice(Action.SELL, (low, exit_), 0, f"SELL: exit long, {f} <= exit {exit_:+.3f}")
    if previous_position < 0:
        if fused < -exit_:
            why = f"SELL: hold short, {f} < exit {-exit_:+.3f}"
            return Choice(Action.SELL, (-1.0, -exit_), -1, why)
        if fused >= buy:
            why = f"BUY: exit short and go long, {f} >= {buy:+.3f}"
            return Choice(Action.BUY, (buy, 1.0), 1, why)
        return Choice(Action.BUY, (-exit_, buy), 0, f"BUY: exit short, {f} >= exit {-exit_:+.3f}")
    if fused >= buy:
        return Choice(Action.BUY, (buy, 1.0), 1, f"BUY: {f} >= {buy:+.3f}")
    if fused <= sell:
        return Choice(Action.SELL, (-1.0, sell), -1, f"SELL: {f} <= {sell:+.3f}")
    return Choice(Action.HOLD, (sell, buy), 0, f"HOLD: {f} inside ({sell:+.3f}, {buy:+.3f})")


def target_weight(fused: float, direction: int, config: FusionConfig) -> float:
    """The signed fraction of equity to hold on ``direction``'s side (0 for an exit).

    Linear in the score past the exit band: ``max_position * (|fused| - exit) / (1 - exit)``,
    so an entry at the threshold already holds a little (0.0105 with the defaults) and the
    full ``max_position`` is reached at ``|fused| = 1``. Shorts are clipped to 0 unless allowed.
    """
    if direction == 0 or (direction < 0 and not config.allow_short):
        return 0.0
    exit_ = config.exit_threshold
    depth = max(0.0, min(1.0, (direction * fused - exit_) / (1.0 - exit_)))
    return direction * config.max_position * depth


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
    news_validated: bool = False,
    previous: Standing | None = None,
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
        news_validated: the news leg passed its own gate. When it has not (news counts only
            because ``SENTINEL42_NEWS_REQUIRES_VALIDATION`` is false) a decision standing on
            news alone holds at most ``news_only_fraction`` of equity.
        previous: the ticker's previous standing decision, for the hysteresis; None: flat.

    A BUY or SELL carries ``inputs["target_weight"]``, the signed fraction of equity to hold
    (0: be flat); a HOLD trades nothing and keeps the position.

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
        "thresholds": {
            "buy": config.buy_threshold,
            "sell": config.sell_threshold,
            "exit": config.exit_threshold,
        },
    }

    # Stands on news alone: no model leg carries weight, only the news does.
    news_only = bool(w_model + w_rank == 0.0 and w_news > 0.0 and n_headlines > 0)
    previous_position = previous.position if previous is not None else 0
    inputs |= {
        "previous_action": previous.action.value if previous is not None else None,
        "previous_bar_ts": previous.bar_ts.isoformat() if previous is not None else None,
        "previous_position": _POSITION_NAMES[previous_position],
        "exit_threshold": config.exit_threshold,
        "news_only": news_only,
        "news_validated": news_validated,
    }
    age = as_of - (bar.bar_ts + config.interval)
    if age > config.max_bar_age or evidence == 0.0:
        # HOLD never trades: the position the previous decision left stands.
        action, position, band_used = Action.HOLD, previous_position, None
        if age > config.max_bar_age:
            why, evidence = f"HOLD: newest bar is stale ({_minutes(age)} min old)", 0.0
        else:
            why = "HOLD: no signal to act on"
        confidence = 0.0
    else:
        choice = choose(fused, previous_position, config)
        action, band_used, why = choice.action, choice.band, choice.why
        confidence = max(0.0, min(1.0, band_position(fused, action, band_used))) * evidence
        position = previous_position
        if action is not Action.HOLD:
            target = target_weight(fused, choice.direction, config)
            if choice.direction < 0 and target == 0.0:
                why += " (shorts off: target 0, be flat)"
            if news_only and not news_validated and target != 0.0:
                capped = max(-config.news_only_fraction, min(config.news_only_fraction, target))
                why += (
                    f" (news-only cap: target {capped:+.4f} of equity, at most "
                    f"{config.news_only_fraction:.4f} while the news leg is not validated"
                    + (f"; uncapped {target:+.4f})" if capped != target else ")")
                )
                target = capped
            target = round(float(target), 6)
            inputs["target_weight"] = target
            position = (target > 0) - (target < 0)
    inputs |= {"band": list(band_used) if band_used else None,
               "position": _POSITION_NAMES[position]}  # fmt: skip
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
