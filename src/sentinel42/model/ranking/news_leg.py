"""The news leg's own test: does stored sentiment rank next-session excess returns?

News sentiment gets fusion weight only when its signal passes the same gate as a ranking model
(:mod:`gate`): on the stored history, each session's mean sentiment of the headlines first
seen by that session's close (:func:`news.news_features_from_frame`) is a score; its rank IC
against the next session's excess return needs a positive lower bound at the corrected
confidence, must not be significantly worse than ``reversal_1`` on the same samples, and its
quintile long-short must pay its costs. The outcome is kept in ``<models>/ranking-news/`` (one
state file, and every attempt in ``promotions.jsonl``, which corrects the confidence).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinel42.model.config import GateConfig, RegistryConfig
from sentinel42.model.ranking import features as F
from sentinel42.model.ranking.gate import decide
from sentinel42.model.ranking.metrics import evaluate, rank_ic
from sentinel42.model.ranking.panel import Panel, build_panel

logger = logging.getLogger(__name__)

STATE_FILE = "news_leg.json"
MIN_PERIODS = 20  # sessions with at least five names with news

if TYPE_CHECKING:
    from sentinel42.settings import Settings


@dataclass(frozen=True, slots=True)
class NewsLegConfig:
    """The news leg's gate and its standing (``SENTINEL42_NEWS_REQUIRES_VALIDATION`` and the
    model gate's :class:`~sentinel42.model.config.GateConfig`, which the news leg shares)."""

    registry: RegistryConfig  # the verdict lives in ``ranking-news`` under the models location
    requires_validation: bool  # False: news has weight without passing the gate
    gate: GateConfig  # a verdict older than gate.max_age_sessions sessions has expired

    @classmethod
    def from_settings(cls, settings: Settings) -> NewsLegConfig:
        return cls(
            registry=RegistryConfig.from_settings(settings),
            requires_validation=settings.news_requires_validation,
            gate=GateConfig.from_settings(settings),
        )


def evaluate_news(
    panel: Panel, sentiment: np.ndarray, *, cost_bps: float, confidence: float, attempts: int,
    seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """The gate's verdict on ``sentiment`` [T, N] as a score of next-session excess returns."""
    fwd, _ = F.forward_log_return(panel, 1)
    target = F.target(fwd, "excess")
    have = np.isfinite(sentiment) & np.isfinite(target)
    y = np.where(have, target, np.nan)
    ic = rank_ic(np.where(have, sentiment, np.nan), y)
    rows = np.flatnonzero(np.isfinite(ic))
    if rows.size < MIN_PERIODS:
        return {
            "validated": False, "n_periods": int(rows.size),
            "reason": f"too little stored news history: {rows.size} sessions with five or more "
                      f"names with headlines (need {MIN_PERIODS})",
        }  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        ret_1 = np.log(panel.close / F.shift(panel.close, 1))
    scores = {"news": sentiment, "reversal_1": -ret_1}
    session = panel.session[rows]
    periods_per_year = 252.0
    out = {
        name: evaluate(np.where(have, s, np.nan)[rows], y[rows], session, horizon=1,
                       periods_per_year=periods_per_year, cost_bps=cost_bps,
                       confidence=confidence, seed=seed)
        for name, s in scores.items()
    }  # fmt: skip
    ics = {name: rank_ic(np.where(have, s, np.nan)[rows], y[rows]) for name, s in scores.items()}
    gate = decide(
        ics["news"], {"reversal_1": ics["reversal_1"]}, session, model_metrics=out["news"],
        baseline_metrics={"reversal_1": out["reversal_1"]}, horizon=1, confidence=confidence,
        attempts=attempts, seed=seed,
    )  # fmt: skip
    return {"validated": bool(gate["promoted"]), "reason": gate["reason"], "gate": gate,
            "news": out["news"], "baselines": {"reversal_1": out["reversal_1"]},
            "n_periods": int(rows.size)}  # fmt: skip


def validate_news(settings: Settings, *, now: datetime, as_of: datetime) -> dict[str, Any]:
    """Test the stored news of the universe and record the verdict (``news validate``).

    ``settings`` is the whole of them (the universe and the store read their parts); the gate
    reads its :class:`NewsLegConfig`.
    """
    from sentinel42.factory import build_calendar
    from sentinel42.market.universe import resolve_universe
    from sentinel42.model.ranking.news import news_features_from_frame, session_closes
    from sentinel42.model.ranking.service import attempts_in_window, registry_for
    from sentinel42.persistence import open_store

    tickers = list(resolve_universe(settings).tickers)
    with open_store(settings) as store:
        bars = store.load_bars(tickers, "1d", end=as_of)
        frame = store.headlines(tickers)
    config = NewsLegConfig.from_settings(settings)
    registry = registry_for(config.registry, "news")
    attempts = attempts_in_window(registry, now, config.gate.window_days)
    if not bars:
        verdict: dict[str, Any] = {"validated": False, "n_periods": 0,
                                   "reason": "no stored daily bars for the universe"}  # fmt: skip
    else:
        panel = build_panel(bars, "daily")
        closes = session_closes(panel, build_calendar(settings))
        feats = news_features_from_frame(frame, panel, closes, as_of=as_of)
        if feats is None:
            verdict = {"validated": False, "n_periods": 0,
                       "reason": "no stored headlines for the universe"}  # fmt: skip
        else:
            verdict = evaluate_news(
                panel, feats["news_sentiment"], cost_bps=config.gate.cost_bps,
                confidence=config.gate.confidence, attempts=attempts, seed=config.gate.seed,
            )  # fmt: skip
    verdict |= {"attempts": attempts, "at": now.isoformat(), "as_of": as_of.isoformat()}
    registry.record_decision({"kind": "news", "promoted": verdict["validated"],
                              "reason": verdict["reason"]}, now)  # fmt: skip
    from sentinel42.model.registry import _atomic_write

    _atomic_write(registry.models_dir / STATE_FILE, json.dumps(verdict, indent=2, default=str))
    return verdict


def news_validation(where: RegistryConfig | Settings) -> dict[str, Any] | None:
    """The news leg's stored verdict (``news_leg.json``), or None when absent or unreadable.

    Args:
        where: the registry's config, or the settings it is built from.
    """
    from sentinel42.model.ranking.service import registry_for

    path = registry_for(where, "news").models_dir / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def news_leg_state(
    settings: Settings, as_of: datetime, calendar: Any, store: Any = None
) -> tuple[bool, str]:
    """Whether the news leg has weight now, and why (for the fusion and ``status``).

    A validated leg that the live monitor found degraded (``leg_health``, leg ``news``, version
    ``news@<validation time>``) has none until it recovers; ``store`` is the open store to read
    that from (one is opened read-only from ``settings`` when None); the rest of what it reads
    is the :class:`NewsLegConfig`.
    """
    config = NewsLegConfig.from_settings(settings)
    if not config.requires_validation:
        return True, "news weight without validation (SENTINEL42_NEWS_REQUIRES_VALIDATION=false)"
    from sentinel42.model.ranking.service import registry_for

    path = registry_for(config.registry, "news").models_dir / STATE_FILE
    if not path.is_file():
        return False, "news leg not validated: run `sentinel42 model validate-news`"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        at = datetime.fromisoformat(state["as_of"])
    except (OSError, ValueError, KeyError) as exc:
        return False, f"news leg state unreadable: {exc}"
    if not state.get("validated"):
        return False, f"news leg refused: {state.get('reason')}"
    age = calendar.sessions_since(at, as_of)
    if age > config.gate.max_age_sessions:
        return (
            False,
            f"news validation expired ({age} sessions old); run `sentinel42 model validate-news`",
        )
    health = _live_health(settings, store, f"news@{state.get('at')}")
    if health is not None and health.degraded:
        return False, f"news leg degraded by live monitoring: {health.note}"
    return True, f"news leg validated: {state.get('reason')}"


def _live_health(settings: Settings, store: Any, version: str) -> Any:
    from sentinel42.errors import StoreError
    from sentinel42.persistence import open_store
    from sentinel42.persistence.leg_health import latest_leg_health

    if store is not None:
        return latest_leg_health(store, "news", version)
    try:
        with open_store(settings, readonly=True) as opened:
            return latest_leg_health(opened, "news", version)
    except StoreError as exc:  # no store yet (nothing monitored) or an older schema
        logger.debug("news leg health not read: %s", exc)
        return None
