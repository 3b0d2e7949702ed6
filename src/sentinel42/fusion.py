"""Fusion: an LSTM prediction and a news-sentiment aggregate become one decision.

The fused score is ``model_weight * (2 * P(up) - 1) + sentiment_weight * sentiment``. A missing
signal contributes nothing rather than being re-weighted away, so a decision that stands on one
signal alone needs that signal to be strong. Thresholds come from the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sentinel42.domain import Action, Decision, Prediction, SentimentAggregate


@dataclass(frozen=True, slots=True)
class FusionConfig:
    buy_threshold: float = 0.15
    sell_threshold: float = -0.15
    model_weight: float = 0.6
    sentiment_weight: float = 0.4
    max_bar_age: timedelta = timedelta(minutes=60)
    interval: timedelta = timedelta(minutes=15)

    @classmethod
    def from_settings(cls, settings: object) -> FusionConfig:
        s = settings
        return cls(
            buy_threshold=s.buy_threshold,  # type: ignore[attr-defined]
            sell_threshold=s.sell_threshold,  # type: ignore[attr-defined]
            model_weight=s.model_weight,  # type: ignore[attr-defined]
            sentiment_weight=s.sentiment_weight,  # type: ignore[attr-defined]
            max_bar_age=timedelta(minutes=s.max_bar_age_minutes),  # type: ignore[attr-defined]
            interval=timedelta(minutes=s.interval_minutes),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """The newest stored bar of a ticker at decision time."""

    bar_ts: datetime  # bar start, UTC
    close: float


def fuse(
    ticker: str,
    *,
    as_of: datetime,
    bar: MarketSnapshot | None,
    prediction: Prediction | None,
    prediction_skip_reason: str | None,
    sentiment: SentimentAggregate | None,
    config: FusionConfig,
) -> Decision | None:
    """Decide BUY / SELL / HOLD for one ticker.

    Returns None only when there is no bar at all (there is nothing to attach a decision to).
    """
    if bar is None:
        return None
    inputs: dict[str, object] = {
        "as_of": as_of.isoformat(),
        "bar_ts": bar.bar_ts.isoformat(),
        "close": bar.close,
    }
    models: dict[str, object] = {
        "lstm": prediction.model_version if prediction else None,
        "lstm_validated_accuracy": prediction.model_accuracy if prediction else None,
        "sentiment": list(sentiment.scorers) if sentiment else [],
    }
    parts: list[str] = []
    model_signal = 0.0
    if prediction is not None:
        model_signal = 2.0 * prediction.p_up - 1.0
        inputs |= {"p_up": prediction.p_up, "expected_return": prediction.expected_return}
        acc = (
            f", validated accuracy {prediction.model_accuracy:.3f}"
            if prediction.model_accuracy is not None
            else ""
        )
        parts.append(
            f"LSTM {prediction.model_version}{acc}: P(up)={prediction.p_up:.3f} "
            f"over {prediction.horizon_bars} bars"
        )
    else:
        parts.append(f"no LSTM prediction ({prediction_skip_reason or 'no model'})")
    sentiment_signal = 0.0
    if sentiment is not None and sentiment.n_headlines > 0:
        sentiment_signal = sentiment.score
        inputs |= {
            "sentiment": sentiment.score,
            "headlines": sentiment.n_headlines,
            "newest_headline_at": sentiment.newest_headline_at.isoformat()
            if sentiment.newest_headline_at
            else None,
        }
        parts.append(
            f"news sentiment {sentiment.score:+.3f} from {sentiment.n_headlines} headlines"
        )
    else:
        inputs |= {"sentiment": None, "headlines": 0}
        parts.append("no recent news")

    fused = (
        config.model_weight * model_signal * (prediction is not None)
        + config.sentiment_weight * sentiment_signal
    )
    inputs["fused"] = round(fused, 6)
    inputs["thresholds"] = {"buy": config.buy_threshold, "sell": config.sell_threshold}

    age = as_of - (bar.bar_ts + config.interval)
    if age > config.max_bar_age:
        action, why = Action.HOLD, f"HOLD: newest bar is stale ({_minutes(age)} min old)"
        confidence = 0.0
    elif prediction is None and (sentiment is None or sentiment.n_headlines == 0):
        action, why, confidence = Action.HOLD, "HOLD: no signal to act on", 0.0
    elif fused >= config.buy_threshold:
        action, confidence = Action.BUY, min(1.0, abs(fused))
        why = f"BUY: fused {fused:+.3f} >= {config.buy_threshold:+.3f}"
    elif fused <= config.sell_threshold:
        action, confidence = Action.SELL, min(1.0, abs(fused))
        why = f"SELL: fused {fused:+.3f} <= {config.sell_threshold:+.3f}"
    else:
        action = Action.HOLD
        edge = config.buy_threshold if fused >= 0 else -config.sell_threshold
        confidence = max(0.0, 1.0 - abs(fused) / edge)
        band = f"({config.sell_threshold:+.3f}, {config.buy_threshold:+.3f})"
        why = f"HOLD: fused {fused:+.3f} inside {band}"
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
