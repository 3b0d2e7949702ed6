"""Validation: were the standing decisions any good, and is each fusion leg as good as validated?

Each standing decision is scored once, when its horizon has passed. It enters at its **fill**:
the open of the first bar starting at or after its ``decided_at`` (the portfolio's fill rule;
the decision bar's close printed before the decision). It exits at the close of the bar
``horizon_bars - 1`` intervals after the fill bar, never past the last bar of its own NYSE
session (an intraday position is flat by the close: a horizon that would cross the night ends at
the session's last bar, and the score records the bars it really spanned). The fill and exit bars
are the bars starting exactly at those times; if one is missing while later bars exist, the
decision is not scored (a gap is not silently bridged), nor is a decision whose fill would fall
after its session's last bar. The report counts both as ``unscorable``.

Then every live leg is monitored (:mod:`sentinel42.monitor`): per bar, the rank IC of the leg's
scores over the watchlist against the realised returns and its long-short; per session, their
mean; a CUSUM over whole sessions against the leg's validated figure, its threshold set for a
year of daily looks, degrades a decayed leg (fusion gives it no weight) and recovers it when the
evidence recovers, with hysteresis. Health is saved per leg and version; a newly promoted version
starts healthy. See docs/validation.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sentinel42.domain import Action, Decision, DecisionScore, GroupStats
from sentinel42.market.calendar import NEW_YORK
from sentinel42.persistence import ledger, score_ledger

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
    threshold: float | None  # no edge: validated accuracy minus the validated edge
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
    unscorable: int = 0  # decided on a session's last bar, or whose fill or exit bar is missing
    legs: dict[str, dict[str, Any]] = field(default_factory=dict)  # leg -> its monitor
    events: list[dict[str, Any]] = field(default_factory=list)  # legs degraded/recovered now

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
            "legs": self.legs,
            "events": self.events,
        }


def _stats(s: GroupStats, mean_name: str) -> dict[str, Any]:
    return {"n": s.n, "hits": s.hits, "hit_rate": s.hit_rate, mean_name: s.mean_return}


def is_model_degraded(store: Store, version: str) -> bool:
    """Whether the live monitor has the direction model's version degraded now (it may
    recover; health is per version)."""
    from sentinel42.persistence.leg_health import is_leg_degraded

    return is_leg_degraded(store, "direction", version)


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


def _bar_at(stamps: np.ndarray, at: datetime) -> int | str | None:
    """Position of the bar starting exactly at ``at`` in ``stamps`` (ns bar starts); None while
    it is not stored yet; :data:`UNSCORABLE` when it is missing although a later bar is."""
    expected = pd.Timestamp(at).as_unit("ns").value
    i = int(np.searchsorted(stamps, expected, "left"))
    if i < len(stamps) and stamps[i] == expected:
        return i
    return UNSCORABLE if i < len(stamps) else None


def _claimed_side(d: Decision) -> int | None:
    """The move a decision bets on: +1 BUY, -1 SELL; None for HOLD and for an exit.

    An exit (a long sold to flat at the exit band, a short bought back) trades against the side
    its fused score still leans to, or on a score of zero: it closes a bet, it does not make
    one, so it has no hit.
    """
    side = {Action.BUY: 1, Action.SELL: -1}.get(d.action)
    fused = d.inputs.get("fused")
    if side is not None and isinstance(fused, int | float) and side * fused <= 0:
        return None
    return side


def fill_bar_start(decided_at: datetime, bar_ts: datetime, interval: timedelta) -> datetime:
    """Start of the first bar (on the ``bar_ts`` grid) starting at or after ``decided_at``."""
    steps = max(0, math.ceil((decided_at - bar_ts) / interval))
    return bar_ts + steps * interval


def _score(
    d: Decision, frame: pd.DataFrame | None, horizon: int, scored_at: datetime,
    *, interval: timedelta, last_bar: datetime | None,
) -> DecisionScore | str | None:  # fmt: skip
    """Score ``d`` from its fill to its exit bar (see the module docstring), if stored yet.

    Returns the score, None while a bar it needs is not stored, or :data:`UNSCORABLE`.
    """
    # A decision without its clock is taken as decided when its bar ended, the earliest it can.
    fill_ts = fill_bar_start(d.decided_at or d.bar_ts + interval, d.bar_ts, interval)
    exit_ts = fill_ts + (horizon - 1) * interval
    if last_bar is not None:
        if fill_ts > last_bar:  # decided on (or after) its session's last bar
            return UNSCORABLE
        exit_ts = min(exit_ts, last_bar)
    if frame is None or frame.empty:
        return None
    stamps = frame.index.asi8
    fill_i, exit_i = _bar_at(stamps, fill_ts), _bar_at(stamps, exit_ts)
    if not isinstance(fill_i, int) or not isinstance(exit_i, int):
        return UNSCORABLE if UNSCORABLE in (fill_i, exit_i) else None
    entry = float(frame["open"].iloc[fill_i])
    if not entry > 0:
        return UNSCORABLE
    exit_close = float(frame["close"].iloc[exit_i])
    fr = exit_close / entry - 1.0
    model_signal = _direction(d.inputs.get("p_up"), centre=0.5)
    sentiment_signal = _direction(d.inputs.get("sentiment"), centre=0.0)
    side = _claimed_side(d)
    hit = None if side is None else side * fr > 0
    return DecisionScore(
        ticker=d.ticker,
        bar_ts=d.bar_ts,
        action=d.action,
        close=entry,  # the entry price: the fill bar's open
        exit_bar_ts=frame.index[exit_i].to_pydatetime(),
        exit_close=exit_close,
        horizon_bars=int((exit_ts - fill_ts) / interval) + 1,
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
    """Score every standing decision whose horizon has passed by ``as_of``; monitor each leg.

    A decision is scored when its exit bar (see the module docstring) has closed by ``as_of``,
    once: a scored decision is never scored again. BUY is a hit when the forward return is > 0,
    SELL when < 0; HOLD and exits (:func:`_claimed_side`) have no hit. The model alone says up
    when ``P(up) > 0.5`` (down when < 0.5); the news alone by the sign of its sentiment. Then
    every leg in use is monitored (:func:`monitor_legs`) and its health saved under its version.

    Returns:
        The report over all stored scores; ``legs`` holds each leg's monitor and ``events`` the
        legs that degraded or recovered in this run (emit the events then).
    """
    newest_scored = score_ledger.newest_scored_bar_ts(store)
    after = newest_scored - _RESCAN if newest_scored is not None else None
    decisions = ledger.standing_decisions(store, after=after, until=as_of)
    done = score_ledger.scored_keys(store, after=after)
    todo = [d for d in decisions if (d.ticker, d.bar_ts) not in done]
    scores: list[DecisionScore] = []
    unscorable = 0
    from sentinel42.factory import build_calendar

    calendar = build_calendar(settings)
    if todo:
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
    newly = score_ledger.save_decision_scores(store, scores)
    logger.info("scored %d decisions (%d waiting for their horizon)", newly, len(todo) - newly)
    from sentinel42.leg_monitor import monitor_legs

    legs, events = monitor_legs(store, settings, as_of)
    check = _model_check(store, settings, legs.get("direction"))
    return ValidationReport(
        as_of=as_of,
        newly_scored=newly,
        scored=score_ledger.count_scores(store),
        pending=len(todo) - len(scores) - unscorable,
        unscorable=unscorable,
        actions=score_ledger.action_stats(store),
        model_signal=score_ledger.signal_stats(store, "model"),
        sentiment_signal=score_ledger.signal_stats(store, "sentiment"),
        portfolio=_portfolio_summary(store, settings),
        model=check,
        degraded_model=check.version if check and check.degraded else None,
        newly_degraded=bool(check and check.newly_degraded),
        legs=legs,
        events=events,
    )


def _model_check(store: Store, settings: Settings, leg: dict[str, Any] | None) -> ModelCheck | None:
    """The direction leg's monitor in the shape ``status`` and the dashboard read."""
    if not leg or not leg.get("version"):
        return None
    version = str(leg["version"])
    hits, n = score_ledger.recent_model_hits(store, version, settings.validate_window)
    monitor = leg.get("monitor") or {}
    return ModelCheck(
        version=version,
        validated_accuracy=monitor.get("validated"),
        threshold=monitor.get("baseline"),
        live_hits=hits,
        live_n=n,
        window=settings.validate_window,
        p_value=None,
        tested=bool(monitor.get("tested")),
        degraded=bool(leg.get("degraded")),
        newly_degraded=bool(leg.get("newly_degraded")),
        note=str(monitor.get("note", "")),
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
