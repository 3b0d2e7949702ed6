"""Validation: were the standing decisions any good, and is the model as good as validated?

Each standing decision is scored once, when its horizon has passed, against the stored close
of its exit bar: ``horizon_bars`` bars after its bar, never past the last bar of its own NYSE
session (an intraday position is flat by the close: a horizon that would cross the night ends at
the session's last bar, and the score records the bars it really spanned). The exit bar is the
bar that starts exactly that many intervals later; if it is missing while later bars exist, the
decision is not scored (a gap is not silently bridged), nor is a decision on the session's last
bar (no bar of its session follows). The report counts both as ``unscorable``. The report
covers every stored score. The model in use is then tested: over
its newest ``validate_window`` scored signals, a one-sided exact binomial test of
H0: hit rate >= validated accuracy - margin; ``p < validate_alpha`` marks the version degraded
for good (fusion gives it no weight; a newly promoted version starts healthy). See
docs/validation.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sentinel42.domain import Action, Decision
from sentinel42.market.calendar import NEW_YORK
from sentinel42.persistence import ledger
from sentinel42.persistence.ledger import DecisionScore, GroupStats, ModelHealth

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

# Decisions bar this much older than the newest scored one are looked at again: a ticker's bars
# may arrive late, or a longer horizon finish after a shorter one.
_RESCAN = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class ModelCheck:
    """The live-skill test of one model version (``tested`` False: not enough evidence yet)."""

    version: str
    validated_accuracy: float | None
    threshold: float | None  # validated accuracy minus the margin
    live_hits: int
    live_n: int
    window: int
    p_value: float | None
    tested: bool
    degraded: bool  # now, including an earlier run's verdict
    newly_degraded: bool  # this run marked it
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "validated_accuracy": self.validated_accuracy,
            "threshold": self.threshold,
            "live_hits": self.live_hits,
            "live_n": self.live_n,
            "live_hit_rate": self.live_hits / self.live_n if self.live_n else None,
            "window": self.window,
            "p_value": self.p_value,
            "tested": self.tested,
            "degraded": self.degraded,
            "newly_degraded": self.newly_degraded,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What :func:`score_decisions` found; every figure covers all stored scores."""

    as_of: datetime
    newly_scored: int
    scored: int
    pending: int  # standing decisions whose horizon has not passed yet
    actions: dict[Action, GroupStats]
    model_signal: GroupStats
    sentiment_signal: GroupStats
    portfolio: dict[str, Any] | None = None
    model: ModelCheck | None = None
    degraded_model: str | None = None  # the model in use, when it is degraded
    newly_degraded: bool = False
    unscorable: int = 0  # decided on a session's last bar, or whose exit bar is missing

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with plain names (``mean_signed_return``: what following a signal earned)."""
        return {
            "as_of": self.as_of.isoformat(),
            "newly_scored": self.newly_scored,
            "scored": self.scored,
            "pending": self.pending,
            "unscorable": self.unscorable,
            "actions": {a.value: _stats(s, "mean_forward_return") for a, s in self.actions.items()},
            "model_signal": _stats(self.model_signal, "mean_signed_return"),
            "sentiment_signal": _stats(self.sentiment_signal, "mean_signed_return"),
            "portfolio": self.portfolio,
            "model": self.model.to_dict() if self.model else None,
            "degraded_model": self.degraded_model,
            "newly_degraded": self.newly_degraded,
        }


def _stats(s: GroupStats, mean_name: str) -> dict[str, Any]:
    return {"n": s.n, "hits": s.hits, "hit_rate": s.hit_rate, mean_name: s.mean_return}


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed exactly in log space (no overflow at large n)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n = math.lgamma(n + 1)
    terms = [
        log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def is_model_degraded(store: Store, version: str) -> bool:
    """Whether validation marked this model version degraded (health is per version)."""
    health = ledger.model_health(store, version)
    return bool(health and health.degraded)


def decision_horizon(decision: Decision, default: int) -> int:
    """Bars ahead the decision's model looked (``inputs`` or ``models``), else ``default``."""
    for value in (decision.inputs.get("horizon_bars"), decision.models.get("lstm_horizon_bars")):
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 1:
            return int(value)
    return default


def _direction(value: Any, *, centre: float) -> int | None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return 1 if value > centre else -1 if value < centre else None


UNSCORABLE = "unscorable"


def _exit_bar(
    stamps: np.ndarray, bar_ts: datetime, horizon: int, interval: timedelta,
    last_bar: datetime | None,
) -> tuple[int | str | None, int]:  # fmt: skip
    """Where ``bar_ts``'s horizon ends in ``stamps`` (ns bar starts), and the bars it spans.

    Returns ``(index, bars)``: ``index`` is the exit bar's position; None while it is not
    stored yet; :data:`UNSCORABLE` when the decision sits on its session's last bar, or when
    the exit bar is missing although a later bar is stored (the gap stays).
    """
    bars = horizon
    if last_bar is not None:
        bars = min(horizon, int((last_bar - bar_ts) / interval))
        if bars <= 0:
            return UNSCORABLE, 0
    expected = pd.Timestamp(bar_ts + bars * interval).as_unit("ns").value
    i = int(np.searchsorted(stamps, expected, "left"))
    if i < len(stamps) and stamps[i] == expected:
        return i, bars
    return (UNSCORABLE if i < len(stamps) else None), bars


def _score(
    d: Decision, frame: pd.DataFrame | None, horizon: int, scored_at: datetime,
    *, interval: timedelta, last_bar: datetime | None,
) -> DecisionScore | str | None:  # fmt: skip
    """Score ``d`` against its exit bar (see the module docstring), if stored yet.

    Returns the score, None while the exit bar is not stored, or :data:`UNSCORABLE`.
    """
    if frame is None or frame.empty:
        return None
    stamps = frame.index.asi8
    exit_i, horizon = _exit_bar(stamps, d.bar_ts, horizon, interval, last_bar)
    if exit_i is None or isinstance(exit_i, str):
        return exit_i
    first_after = int(np.searchsorted(stamps, pd.Timestamp(d.bar_ts).as_unit("ns").value, "right"))
    closes = frame["close"].to_numpy(float)
    close = d.inputs.get("close")
    if not isinstance(close, int | float) or not close > 0:
        if first_after == 0:
            return None
        close = float(closes[first_after - 1])
    exit_close = float(closes[exit_i])
    fr = exit_close / float(close) - 1.0
    model_signal = _direction(d.inputs.get("p_up"), centre=0.5)
    sentiment_signal = _direction(d.inputs.get("sentiment"), centre=0.0)
    hit = {Action.BUY: fr > 0, Action.SELL: fr < 0}.get(d.action)
    return DecisionScore(
        ticker=d.ticker,
        bar_ts=d.bar_ts,
        action=d.action,
        close=float(close),
        exit_bar_ts=frame.index[exit_i].to_pydatetime(),
        exit_close=exit_close,
        horizon_bars=horizon,
        forward_return=fr,
        hit=hit,
        model_signal=model_signal,
        model_signal_hit=None if model_signal is None else model_signal * fr > 0,
        sentiment_signal=sentiment_signal,
        sentiment_signal_hit=None if sentiment_signal is None else sentiment_signal * fr > 0,
        model_version=d.models.get("lstm"),
        scored_at=scored_at,
    )


def score_decisions(store: Store, settings: Settings, as_of: datetime) -> ValidationReport:
    """Score every standing decision whose horizon has passed by ``as_of``; test the model.

    A decision at bar ``b`` with horizon ``h`` is scored when the ``h``-th stored bar of
    ``settings.interval`` after ``b`` has closed by ``as_of``, once: a scored decision is never
    scored again. BUY is a hit when the forward return is > 0, SELL when < 0; HOLD has no hit.
    The model alone says up when ``P(up) > 0.5`` (down when < 0.5); the news alone by the sign
    of its sentiment. The model in use (the newest decision's ``models["lstm"]``) is tested
    against its ``models["lstm_validated_accuracy"]`` once it has ``validate_window`` scored
    signals; its health is saved under its version.

    Returns:
        The report over all stored scores; ``degraded_model`` names the model in use when it is
        degraded, ``newly_degraded`` says this run marked it (emit the event then).
    """
    newest_scored = ledger.newest_scored_bar_ts(store)
    after = newest_scored - _RESCAN if newest_scored is not None else None
    decisions = ledger.standing_decisions(store, after=after, until=as_of)
    done = ledger.scored_keys(store, after=after)
    todo = [d for d in decisions if (d.ticker, d.bar_ts) not in done]
    scores: list[DecisionScore] = []
    unscorable = 0
    if todo:
        from sentinel42.factory import build_calendar

        calendar = build_calendar(settings)
        interval = timedelta(minutes=settings.interval_minutes)
        bars = store.load_bars(
            sorted({d.ticker for d in todo}),
            settings.interval,
            start=min(d.bar_ts for d in todo),
            end=as_of - interval,  # bars that have closed by as_of
        )
        for d in todo:
            horizon = decision_horizon(d, settings.model_horizon)
            session = calendar.session(d.bar_ts.astimezone(NEW_YORK).date())
            last_bar = session[1] - interval if session is not None else None
            score = _score(d, bars.get(d.ticker), horizon, as_of, interval=interval,
                           last_bar=last_bar)  # fmt: skip
            if isinstance(score, DecisionScore):
                scores.append(score)
            elif score == UNSCORABLE:
                unscorable += 1
    newly = ledger.save_decision_scores(store, scores)
    logger.info("scored %d decisions (%d waiting for their horizon)", newly, len(todo) - newly)
    check = _check_model(store, settings, decisions, as_of)
    return ValidationReport(
        as_of=as_of,
        newly_scored=newly,
        scored=ledger.count_scores(store),
        pending=len(todo) - len(scores) - unscorable,
        unscorable=unscorable,
        actions=ledger.action_stats(store),
        model_signal=ledger.signal_stats(store, "model"),
        sentiment_signal=ledger.signal_stats(store, "sentiment"),
        portfolio=_portfolio_summary(store, settings),
        model=check,
        degraded_model=check.version if check and check.degraded else None,
        newly_degraded=bool(check and check.newly_degraded),
    )


def _check_model(
    store: Store, settings: Settings, decisions: list[Decision], as_of: datetime
) -> ModelCheck | None:
    in_use = next((d for d in reversed(decisions) if d.models.get("lstm")), None)
    if in_use is None:
        return None
    version = str(in_use.models["lstm"])
    accuracy = in_use.models.get("lstm_validated_accuracy")
    window = settings.validate_window
    hits, n = ledger.recent_model_hits(store, version, window)
    before = ledger.model_health(store, version)
    was_degraded = bool(before and before.degraded)
    threshold = p_value = None
    if not isinstance(accuracy, int | float):
        note = "no validated accuracy recorded for this model; not tested"
    elif n < window:
        note = f"{n} of {window} scored model signals; not tested yet"
    else:
        threshold = min(1.0, max(0.0, float(accuracy) - settings.validate_margin))
        p_value = binomial_cdf(hits, n, threshold)
        verdict = "below" if p_value < settings.validate_alpha else "not significantly below"
        note = (
            f"live hit rate {hits}/{n} = {hits / n:.3f} {verdict} {threshold:.3f} "
            f"(validated {float(accuracy):.3f} - margin {settings.validate_margin:.3f}); "
            f"one-sided binomial p = {p_value:.3g}, alpha {settings.validate_alpha}"
        )
    degraded_now = p_value is not None and p_value < settings.validate_alpha
    ledger.save_model_health(
        store,
        ModelHealth(
            model_version=version,
            degraded=degraded_now,
            live_hits=hits,
            live_n=n,
            validated_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
            threshold=threshold,
            p_value=p_value,
            at=as_of,
        ),
    )
    if degraded_now and not was_degraded:
        logger.warning("model %s degraded: %s", version, note)
    return ModelCheck(
        version=version,
        validated_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
        threshold=threshold,
        live_hits=hits,
        live_n=n,
        window=window,
        p_value=p_value,
        tested=p_value is not None,
        degraded=was_degraded or degraded_now,
        newly_degraded=degraded_now and not was_degraded,
        note=note,
    )


def _portfolio_summary(store: Store, settings: Settings) -> dict[str, Any] | None:
    """The paper portfolio's return against buy-and-hold, from the equity curve."""
    curve = ledger.equity_curve(store)
    if not curve:
        return None
    cash = settings.portfolio_starting_cash
    last = curve[-1]
    ret = last.equity / cash - 1.0
    bh_ret = last.buy_and_hold_equity / cash - 1.0
    return {
        "start": curve[0].ts.isoformat(),
        "end": last.ts.isoformat(),
        "points": len(curve),
        "starting_cash": cash,
        "equity": last.equity,
        "return": ret,
        "buy_and_hold_equity": last.buy_and_hold_equity,
        "buy_and_hold_return": bh_ret,
        "excess_return": ret - bh_ret,
    }
