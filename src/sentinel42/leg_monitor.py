"""Live monitoring of every fusion leg from the stored decisions and their scores (issue 17, 6).

Legs and what each is judged on:

- ``direction``: the LSTM (``models["lstm"]``); scores ``inputs["p_up"]``; the session figure
  the CUSUM watches is its hit rate, against ``models["lstm_validated_accuracy"]`` (no edge:
  that accuracy minus ``models["lstm_edge"]``).
- ``ranking_<kind>``: a promoted ranking model (``models["ranking_<kind>"]``); scores
  ``inputs["ranking"][kind]["score"]``; the session figure is its rank IC, against the
  ``rank_ic_mean`` its registry recorded when it was promoted (no edge: 0).
- ``news``: the news leg since its last validation (``news_leg.json``); scores
  ``inputs["sentiment"]``; its rank IC against the IC that validation measured (no edge: 0).

For each leg only the version of its newest decision is judged (a new version starts afresh).
The statistics are :mod:`sentinel42.monitor`'s; health is saved per leg, version and ``as_of``
(:mod:`sentinel42.persistence.leg_health`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinel42 import monitor
from sentinel42.domain import Decision
from sentinel42.market.calendar import NEW_YORK
from sentinel42.persistence import ledger, score_ledger
from sentinel42.persistence.leg_health import (
    LegHealth,
    latest_leg_health,
    mirror_model_health,
    save_leg_health,
)

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

DIRECTION = "direction"
NEWS = "news"


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _ranking_score(kind: str) -> Callable[[Decision], float | None]:
    def score(d: Decision) -> float | None:
        legs = d.inputs.get("ranking")
        leg = legs.get(kind) if isinstance(legs, dict) else None
        return _number(leg.get("score")) if isinstance(leg, dict) else None

    return score


def _ranking_validated_ic(settings: Settings, kind: str, version: str) -> float | None:
    from sentinel42.errors import ModelError
    from sentinel42.model.ranking.service import registry_for

    try:
        meta = registry_for(settings, kind).metadata(version)
    except ModelError as exc:
        logger.warning("ranking_%s %s: no validated IC (%s)", kind, version, exc)
        return None
    return _number(meta.get("report", {}).get("model", {}).get("rank_ic_mean"))


def _bars(
    pairs: list[tuple[Decision, float]], score: Callable[[Decision], float | None]
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Per bar (time order): its session date, the leg's scores and the realised returns."""
    by_bar: dict[datetime, list[tuple[float, float]]] = {}
    for d, ret in pairs:
        s = score(d)
        if s is not None:
            by_bar.setdefault(d.bar_ts, []).append((s, ret))
    stamps = sorted(by_bar)
    session = np.array([ts.astimezone(NEW_YORK).date().isoformat() for ts in stamps])
    scores = [np.array([s for s, _ in by_bar[ts]]) for ts in stamps]
    returns = [np.array([r for _, r in by_bar[ts]]) for ts in stamps]
    return session, scores, returns


def leg_figures(
    pairs: list[tuple[Decision, float]], score: Callable[[Decision], float | None]
) -> monitor.SessionSeries:
    """The leg's per-bar rank IC, long-short and hit rate (of ``score`` read as P(up)),
    averaged per NYSE session."""
    session, scores, returns = _bars(pairs, score)
    ic = np.array([monitor.spearman_ic(s, r) for s, r in zip(scores, returns, strict=True)])
    ls = np.array([monitor.long_short(s, r) for s, r in zip(scores, returns, strict=True)])
    hit = np.array([monitor.hit_rate(s, r) for s, r in zip(scores, returns, strict=True)])
    return monitor.session_series(session, ic, ls, hit)


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def _legs(settings: Settings, decisions: list[Decision]) -> list[dict[str, Any]]:
    """Each leg found in the decisions: its name, version in use, score reader, validated
    figure, no-edge baseline, and which session figure the CUSUM watches."""
    from sentinel42.model.ranking.news_leg import news_validation
    from sentinel42.model.ranking.panel import KINDS

    found: list[dict[str, Any]] = []
    newest = next((d for d in reversed(decisions) if d.models.get("lstm")), None)
    if newest is not None:
        acc, edge = (
            _number(newest.models.get("lstm_validated_accuracy")),
            _number(newest.models.get("lstm_edge")),
        )
        found.append({
            "leg": DIRECTION, "version": str(newest.models["lstm"]),
            "score": lambda d: _number(d.inputs.get("p_up")), "validated": acc,
            "baseline": acc - edge if acc is not None and edge is not None else (acc or 0.0),
            "figure": "hit_rate",
        })  # fmt: skip
    for kind in KINDS:
        key = f"ranking_{kind}"
        newest = next((d for d in reversed(decisions) if d.models.get(key)), None)
        if newest is not None:
            version = str(newest.models[key])
            found.append({
                "leg": key, "version": version, "score": _ranking_score(kind),
                "validated": _ranking_validated_ic(settings, kind, version), "baseline": 0.0,
                "figure": "ic",
            })  # fmt: skip
    state = news_validation(settings)
    since: datetime | None = None
    if state is not None and state.get("validated"):
        version, since = f"news@{state['at']}", datetime.fromisoformat(str(state["at"]))
        validated = _number(state.get("news", {}).get("rank_ic_mean"))
    else:
        version, validated = "news@unvalidated", None
    found.append({
        "leg": NEWS, "version": version, "since": since, "validated": validated, "baseline": 0.0,
        "score": lambda d: _number(d.inputs.get("sentiment")), "figure": "ic",
    })  # fmt: skip
    return found


def monitor_legs(
    store: Store, settings: Settings, as_of: datetime
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Monitor every leg on the scored standing decisions up to ``as_of``; save its health.

    Returns:
        leg -> its figures and monitor (``degraded``, ``newly_degraded``, ``newly_recovered``),
        and one event per leg that degraded or recovered in this run (``event`` is
        ``"degraded"`` or ``"recovered"``, with the leg, version and figures).
    """
    decisions = ledger.standing_decisions(store, until=as_of)
    returns = {(s.ticker, s.bar_ts): s.forward_return for s in score_ledger.decision_scores(store)}
    out: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    for spec in _legs(settings, decisions):
        leg, version = spec["leg"], spec["version"]
        if leg == DIRECTION:
            mine = [d for d in decisions if d.models.get("lstm") == version]
        elif leg == NEWS:
            since = spec["since"]
            mine = [d for d in decisions if since is None or (d.decided_at or d.bar_ts) >= since]
        else:
            mine = [d for d in decisions if d.models.get(leg) == version]
        pairs = [(d, returns[k]) for d in mine if (k := (d.ticker, d.bar_ts)) in returns]
        series = leg_figures(pairs, spec["score"])
        watched = series.hit_rate if spec["figure"] == "hit_rate" else series.ic
        verdict = monitor.run_monitor(
            watched, spec["validated"], spec["baseline"],
            min_sessions=settings.validate_min_sessions, alpha_year=settings.validate_alpha,
        )  # fmt: skip
        before = latest_leg_health(store, leg, version, before=as_of)
        was = bool(before and before.degraded)
        doc: dict[str, Any] = {
            "version": version, "sessions": len(series.sessions), "bars": int(series.bars.sum()),
            "watched": spec["figure"], "live_ic": _mean(series.ic),
            "live_long_short": _mean(series.long_short), "live_hit_rate": _mean(series.hit_rate),
            "degraded": verdict.degraded, "newly_degraded": verdict.degraded and not was,
            "newly_recovered": was and not verdict.degraded, "monitor": verdict.to_dict(),
        }  # fmt: skip
        out[leg] = doc
        figures = {k: doc[k] for k in ("live_ic", "live_long_short", "live_hit_rate", "bars",
                                       "watched")} | verdict.to_dict()  # fmt: skip
        save_leg_health(store, LegHealth(leg, version, as_of, verdict.tested, verdict.degraded,
                                         verdict.sessions, figures, verdict.note))  # fmt: skip
        if leg == DIRECTION:
            hits, n = score_ledger.recent_model_hits(store, version, settings.validate_window)
            mirror_model_health(store, version, degraded=verdict.degraded, live_hits=hits,
                                live_n=n, validated_accuracy=spec["validated"],
                                at=as_of)  # fmt: skip
        for flag, event in (("newly_degraded", "degraded"), ("newly_recovered", "recovered")):
            if doc[flag]:
                logger.warning("%s %s %s: %s", leg, version, event, verdict.note)
                events.append({"event": event, "leg": leg, "version": version} | figures
                              | {"note": verdict.note})  # fmt: skip
    return out, events
