"""The pipeline's steps as plain functions: refresh, gate, predict, fuse, decide, bootstrap.

Each step opens the store it needs and takes ``as_of`` (UTC) as an input; only
:func:`sentinel42.clock.resolve_as_of` reads a clock. Prefect tasks (``sentinel42.tasks``) wrap
these one-to-one, the CLI calls them directly, and tests call them without a server.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentinel42.domain import Decision, PortfolioUpdate, RefreshSummary
from sentinel42.persistence import open_store
from sentinel42.sentiment.service import ScoringResult, score_stored
from sentinel42.settings import Settings

if TYPE_CHECKING:
    from sentinel42.decision_scoring import ValidationReport

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]


# --- refresh --------------------------------------------------------------------------------
def refresh_prices(settings: Settings, as_of: datetime, progress: Progress | None = None) -> Any:
    """Fetch, validate and store bars (intraday and daily) for the watchlist.

    While a ranking model is promoted, the rest of its universe is refreshed too, after the
    watchlist: its scores need the whole universe's newest bars. A universe ticker that fails
    is logged, not reported as a watchlist failure.
    """
    from sentinel42.factory import build_calendar, build_price_source
    from sentinel42.market.refresh import refresh_prices as _refresh

    source, calendar = build_price_source(settings), build_calendar(settings)
    with open_store(settings) as store:
        report = _refresh(settings, source, store, calendar, as_of, progress)
        extra = [t for t in _ranked_universe(settings) if t not in set(settings.tickers)]
        if extra:
            more = _refresh(settings, source, store, calendar, as_of, progress, tickers=extra)
            if more.failed:
                logger.warning(
                    "universe refresh: %d of %d ticker(s) failed (first: %s)",
                    len(more.failed), len(extra), ", ".join(more.failed[:5]),
                )  # fmt: skip
    return report


def _ranked_universe(settings: Settings) -> list[str]:
    """The tickers of every promoted ranking model's universe (none while none is promoted),
    from its metadata alone: the refresh runs every few minutes and needs no weights."""
    from sentinel42.errors import ModelError
    from sentinel42.model.ranking.panel import KINDS
    from sentinel42.model.ranking.service import registry_for

    tickers: list[str] = []
    for kind in KINDS:
        registry = registry_for(settings, kind)
        version = registry.current_version()
        if version is None:
            continue
        try:
            tickers += registry.metadata(version).get("tickers", [])
        except ModelError as exc:
            logger.warning("%s ranking model %s: %s", kind, version, exc)
    return list(dict.fromkeys(tickers))


def refresh_news(settings: Settings, as_of: datetime) -> Any:
    """Fetch, normalize, dedupe and store headlines for the watchlist."""
    from sentinel42.factory import build_news_sources
    from sentinel42.news.refresh import refresh_news as _refresh

    with open_store(settings) as store:
        return _refresh(settings, build_news_sources(settings, store), store, as_of)


def score_sentiment(
    settings: Settings, as_of: datetime, *, before_deciding: bool = False
) -> ScoringResult:
    """Score the stored headlines no scorer has scored yet: the refresh's sentiment step (see
    :func:`sentinel42.sentiment.service.score_stored`)."""
    return score_stored(settings, as_of, before_deciding=before_deciding)


def refresh_summary(
    prices: Any, news: Any, scoring: ScoringResult | None, as_of: datetime
) -> RefreshSummary:
    """One report of a whole refresh at ``as_of`` (``sentinel42 refresh --json`` prints its
    :meth:`~sentinel42.domain.RefreshSummary.to_dict`).

    ``failed_tickers`` names each watchlist ticker whose price refresh failed. ``no_usable_data``
    says why no watchlist ticker has usable bars (None while one has): every ticker failed or
    has no stored bar, or, with the market open, no ticker got a bar of the session
    (``no_data``). A trading run refuses to decide on such a refresh.
    """
    price_doc = prices.to_dict() if prices is not None else {"tickers": []}
    per_ticker_news = getattr(news, "per_ticker", {}) if news is not None else {}
    tickers = []
    for row in price_doc.get("tickers", []):
        row = dict(row)
        row["headlines_new"] = int(per_ticker_news.get(row["ticker"], 0))
        tickers.append(row)
    failed = [row for row in tickers if row.get("error")]
    usable = [row for row in tickers if not row.get("error") and row.get("newest_bar_ts")]
    no_data = bool(getattr(prices, "no_data", False))
    why: str | None = None
    if prices is not None and tickers and not usable:
        first = failed[0] if failed else None
        why = f"no usable bars for any of the {len(tickers)} watchlist ticker(s): " + (
            f"{len(failed)} failed, e.g. {first['ticker']}: {first['error']}"
            if first
            else "none has a stored bar"
        )
    elif no_data:
        newest = max(row["newest_bar_ts"] for row in usable)
        why = (
            f"no new bar for any of the {len(tickers)} watchlist ticker(s) during the session "
            f"at {price_doc['as_of']} (newest stored bar {newest})"
        )
    return RefreshSummary(
        as_of=as_of,
        tickers=tuple(tickers),
        no_data=no_data,
        failed_tickers=tuple(row["ticker"] for row in failed),
        no_usable_data=why,
        headlines_new=int(getattr(news, "headlines_new", 0)) if news is not None else 0,
        headlines_scored=scoring.scored if scoring else 0,
        scorer=scoring.scorer if scoring else None,
        problems=tuple(getattr(news, "problems", [])) if news is not None else (),
    )


def refresh_all(
    settings: Settings, as_of: datetime, progress: Progress | None = None
) -> RefreshSummary:
    """Prices, news and sentiment in one go (the CLI's in-process refresh)."""
    prices = refresh_prices(settings, as_of, progress)
    news = refresh_news(settings, as_of)
    scoring = score_sentiment(settings, as_of)
    return refresh_summary(prices, news, scoring, as_of)


# --- trading --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Gate:
    proceed: bool
    market_open: bool
    reason: str


def market_gate(settings: Settings, as_of: datetime, *, force: bool) -> Gate:
    """Whether the trading flow should decide now: a session's bar has just ended, or forced.

    The deployment runs ``trading_delay_minutes`` after each bar ends (the vendor publishes
    late), so a run proceeds while the newest bar of today's session ended less than one
    interval ago. That lets through the run just after the close (16:02, or 13:02 on an early
    close) that decides the session's last bar, and skips the 09:32 run, when no bar has ended.
    """
    from sentinel42.factory import build_calendar
    from sentinel42.market.calendar import NEW_YORK

    calendar = build_calendar(settings)
    interval = timedelta(minutes=settings.interval_minutes)
    bar_end = calendar.last_bar_end(as_of, settings.interval_minutes)
    status = calendar.status(as_of)
    if bar_end is not None and as_of - bar_end < interval:
        bar = (bar_end - interval).astimezone(NEW_YORK).strftime("%H:%M")
        return Gate(True, True, f"deciding the {bar} ET bar ({status.reason})")
    if status.open:
        why = f"market open, but no {settings.interval} bar of the session has ended yet"
    else:
        why = f"market {status.reason}"
    if force:
        return Gate(True, False, f"{why}; deciding anyway: force=true")
    return Gate(False, False, f"{why}; nothing recorded")


def decision_row(d: Decision, *, stored: bool = False) -> dict[str, Any]:
    """One decision as JSON.

    By default the summary the run documents, artifacts and the dashboard show (the fused
    score out of its inputs); with ``stored``, every field the store keeps, as
    ``sentinel42 decisions --json`` and ``sentinel42 status --json`` print it.
    """
    row = {
        "ticker": d.ticker,
        "bar_ts": d.bar_ts.isoformat(),
        "action": d.action.value,
        "confidence": d.confidence,
    }
    if not stored:
        return row | {"fused": d.inputs.get("fused"), "reason": d.reason}
    return row | {
        "reason": d.reason,
        "inputs": d.inputs,
        "models": d.models,
        "decided_at": d.decided_at.isoformat() if d.decided_at else None,
        "revision": d.revision,
        "run_id": d.run_id,
    }


@dataclass(slots=True)
class TradingResult:
    as_of: datetime
    run_id: str = ""
    decisions: list[Decision] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    model_version: str | None = None
    saved: dict[str, int] = field(default_factory=dict)
    legs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "run_id": self.run_id,
            "model_version": self.model_version,
            "legs": self.legs,
            "decisions": [decision_row(d) for d in self.decisions],
            "skipped_tickers": self.skipped,
            "saved": self.saved,
        }


def decide(
    settings: Settings, as_of: datetime, *, forced: bool = False, run_id: str | None = None
) -> TradingResult:
    """Predict, fuse and record one decision per watchlist ticker that has bars.

    Never fails for a missing model: those tickers decide on the news alone (or HOLD) and the
    reason says so. ``run_id`` names the run (the Prefect flow-run id; a fresh one per CLI
    call): the same run saving again changes nothing, and a later run for a bar already decided
    is stored as a revision beside the standing decision.
    """
    from sentinel42.factory import build_calendar
    from sentinel42.fusion import FusionConfig, Standing, fuse
    from sentinel42.model.config import InferenceConfig
    from sentinel42.model.predictor import (
        PredictionResult,
        inference_start,
        load_promoted,
        predict_with,
    )
    from sentinel42.model.ranking.news_leg import news_leg_state
    from sentinel42.sentiment.aggregate import aggregate_sentiment

    # Every headline seen by as_of is scored, or this raises.
    score_sentiment(settings, as_of, before_deciding=True)
    run_id = run_id or f"cli-{uuid.uuid4()}"
    interval = timedelta(minutes=settings.interval_minutes)
    calendar = build_calendar(settings)
    loaded, skip_reason = load_promoted(InferenceConfig.from_settings(settings), as_of, calendar)
    # The model's feature spec says how many bars its newest window needs; without a model
    # only the newest bar matters.
    bars_needed = loaded.spec.inference_bars if loaded is not None else 1
    start = inference_start(calendar, as_of, bars_needed, settings.interval_minutes)
    result = TradingResult(as_of=as_of, run_id=run_id)
    with open_store(settings) as store:
        bars = store.load_bars(
            settings.tickers, settings.interval, start=start, end=as_of - interval
        )
        if loaded is None:
            predicted = PredictionResult({}, dict.fromkeys(settings.tickers, skip_reason or ""))
        else:
            daily = (
                store.load_bars(settings.tickers, "1d", end=as_of)
                if loaded.spec.use_daily
                else None
            )
            predicted = predict_with(
                loaded, bars, as_of, interval_minutes=settings.interval_minutes, daily=daily
            )
        result.model_version = predicted.model_version
        degraded = _model_degraded(store, predicted.model_version)
        sentiment = aggregate_sentiment(
            store,
            settings.tickers,
            as_of,
            settings.sentiment_window_hours,
            settings.sentiment_half_life_hours,
        )
        config = FusionConfig.from_settings(settings)
        rank_scores, result.legs = ranking_legs(settings, store, calendar, as_of)
        news_live = news_leg_state(settings, as_of, calendar)
        # Without the requirement the news counts whether or not it passed its gate.
        news_validated = news_live[0] and settings.news_requires_validation
        result.legs["news"] = {"live": news_live[0], "why": news_live[1]}
        result.legs["direction"] = (
            {"live": True, "version": predicted.model_version}
            if predicted.model_version
            else {"live": False, "why": skip_reason or "no promoted direction model"}
        )
        snapshots = _snapshots(bars, settings.tickers)
        # The hysteresis needs the position each ticker's previous standing decision left.
        previous = store.standing_before({t: s.bar_ts for t, s in snapshots.items() if s})
        for ticker in settings.tickers:
            snapshot = snapshots[ticker]
            decision = fuse(
                ticker,
                as_of=as_of,
                bar=snapshot,
                prediction=predicted.predictions.get(ticker),
                prediction_skip_reason=predicted.skipped.get(ticker),
                sentiment=sentiment.get(ticker),
                config=config,
                model_degraded=degraded,
                rank_legs=[legs[ticker] for legs in rank_scores.values() if ticker in legs],
                news_live=news_live,
                news_validated=news_validated,
                previous=Standing.of(previous[ticker]) if ticker in previous else None,
            )
            if decision is None:
                result.skipped[ticker] = "no stored bars up to as_of"
                logger.warning("%s: no stored bars up to %s; no decision", ticker, as_of)
                continue
            result.decisions.append(decision)
        store.save_predictions(list(predicted.predictions.values()), created_at=as_of)
        saved = store.save_decisions(result.decisions, forced=forced, run_id=run_id)
        result.saved = _as_counts(saved)
    for d in result.decisions:
        logger.info("%s %s (%.2f): %s", d.ticker, d.action.value, d.confidence, d.reason)
    return result


def _snapshots(bars: dict[str, Any], tickers: list[str]) -> dict[str, Any]:
    """Each ticker's newest stored bar as a ``MarketSnapshot`` (None without bars)."""
    from sentinel42.fusion import MarketSnapshot

    return {
        t: MarketSnapshot(f.index[-1].to_pydatetime(), float(f["close"].iloc[-1]))
        if (f := bars.get(t)) is not None and not f.empty
        else None
        for t in tickers
    }


def ranking_legs(
    settings: Settings, store: Any, calendar: Any, as_of: datetime
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each promoted ranking kind's scores for the watchlist, and which legs are live and why.

    A kind is live when its promoted model loads, its data is not older than
    ``SENTINEL42_MODEL_MAX_AGE_SESSIONS`` sessions, and its universe has a full window of bars
    ending at the newest stored timestamp (intraday: a bar that ended within
    ``SENTINEL42_MAX_BAR_AGE_MINUTES``). A leg the live monitor found degraded is still scored
    (so the monitor sees whether it recovers) but carries no validated IC, hence no weight, and
    is reported off with the monitor's reason. Returns kind -> ticker -> ``RankLeg``, and
    kind -> {"live", "version", "why", ...}.
    """
    from sentinel42.fusion import RankLeg
    from sentinel42.model.predictor import inference_start
    from sentinel42.model.ranking.news import daily_news_features
    from sentinel42.model.ranking.panel import KINDS
    from sentinel42.model.ranking.predict import score_latest

    scores: dict[str, dict[str, Any]] = {}
    legs: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        model, legs[kind] = promoted_leg(settings, kind, calendar, as_of, store)
        if model is None:
            continue
        tickers = sorted(set(model.tickers) | set(settings.tickers))
        if kind == "daily":
            bars = store.load_bars(tickers, "1d", end=as_of)
            bars = {t: f.iloc[-model.rows_needed :] for t, f in bars.items()}
        else:
            interval = timedelta(minutes=settings.interval_minutes)
            start = inference_start(calendar, as_of, model.rows_needed, settings.interval_minutes)
            bars = store.load_bars(tickers, settings.interval, start=start, end=as_of - interval)
        newest = max((f.index[-1] for f in bars.values() if len(f)), default=None)
        if newest is None:
            stale = True
        elif kind == "intraday":
            ended = newest.to_pydatetime() + timedelta(minutes=settings.interval_minutes)
            stale = as_of - ended > timedelta(minutes=settings.max_bar_age_minutes)
        else:  # the newest daily bar is the last session that closed by as_of
            stale = calendar.sessions_since(newest.to_pydatetime(), as_of) > 2
        if stale:
            legs[kind] |= {"live": False, "why": f"no recent {kind} bars for its universe"}
            continue
        ranked = score_latest(
            model, bars,
            news=lambda panel: daily_news_features(store, panel, as_of=as_of, calendar=calendar),
        )  # fmt: skip
        # A degraded leg's scores are recorded at weight 0: its live figures go on.
        rank_ic = None if legs[kind].get("degraded") else model.validated.get("rank_ic_mean")
        scores[kind] = {
            t: RankLeg(kind, model.version, ranked[t], rank_ic, model.horizon)
            for t in settings.tickers
            if t in ranked
        }
        legs[kind] |= {"scored": len(ranked), "at": newest.isoformat() if newest else None}
    return scores, legs


def promoted_leg(
    settings: Settings, kind: str, calendar: Any, as_of: datetime, store: Any = None
) -> tuple[Any, dict[str, Any]]:
    """The kind's promoted ranking model if it may be used at ``as_of`` (else None), and its
    leg's state: off without a loadable promoted model, or when its data ended more than
    ``SENTINEL42_MODEL_MAX_AGE_SESSIONS`` sessions before ``as_of``; with ``store``, also off
    (``degraded`` True, the model still returned for scoring at weight 0) while the live
    monitor has this version degraded."""
    from sentinel42.model.config import RegistryConfig
    from sentinel42.model.ranking.predict import load_promoted

    model, why = load_promoted(RegistryConfig.from_settings(settings), kind)
    if model is None:
        return None, {"live": False, "why": why}
    leg = {"live": True, "version": model.version, "rank_ic": model.validated.get("rank_ic_mean"),
           "why": "promoted"}  # fmt: skip
    age = calendar.sessions_since(model.data_end, as_of) if model.data_end else 0
    if age > settings.model_max_age_sessions:
        leg |= {"live": False, "why": f"expired: its data ended {age} sessions ago (limit "
                                      f"{settings.model_max_age_sessions}); retrain"}  # fmt: skip
        return None, leg
    if store is not None:
        from sentinel42.persistence.leg_health import latest_leg_health

        health = latest_leg_health(store, f"ranking_{kind}", model.version)
        if health is not None and health.degraded:
            leg |= {"live": False, "degraded": True,
                    "why": f"degraded by live monitoring: {health.note}"}  # fmt: skip
    return model, leg


def leg_status(settings: Settings, as_of: datetime) -> dict[str, dict[str, Any]]:
    """Which fusion legs would carry weight at ``as_of`` and why, without scoring (``status``)."""
    from sentinel42.decision_scoring import is_model_degraded
    from sentinel42.errors import StoreError
    from sentinel42.factory import build_calendar
    from sentinel42.model.ranking.news_leg import news_leg_state
    from sentinel42.model.ranking.panel import KINDS

    calendar = build_calendar(settings)
    try:
        with open_store(settings, readonly=True) as store:
            legs = {kind: promoted_leg(settings, kind, calendar, as_of, store)[1]
                    for kind in KINDS}  # fmt: skip
            live, why = news_leg_state(settings, as_of, calendar, store)
            version = current_model_version(settings)
            if version is not None and is_model_degraded(store, version):
                legs["direction"] = {"live": False, "version": version,
                                     "why": "degraded by live monitoring"}  # fmt: skip
    except StoreError as exc:  # no store yet: nothing has been monitored
        logger.debug("leg health not read: %s", exc)
        legs = {kind: promoted_leg(settings, kind, calendar, as_of)[1] for kind in KINDS}
        live, why = news_leg_state(settings, as_of, calendar)
    legs["news"] = {"live": live, "why": why}
    return legs


def _model_degraded(store: Any, version: str | None) -> bool:
    """True while the live monitor has the direction model's ``version`` degraded (it recovers
    when its live hit rate does; see docs/validation.md)."""
    if version is None:
        return False
    from sentinel42.decision_scoring import is_model_degraded

    return is_model_degraded(store, version)


def _as_counts(saved: Any) -> dict[str, int]:
    return {"standing": saved.standing, "revisions": saved.revisions, "unchanged": saved.unchanged}


# --- looking back: portfolio and validation ----------------------------------------------
def update_portfolio(settings: Settings, as_of: datetime) -> PortfolioUpdate:
    """Apply the standing decisions not yet applied to the paper portfolio; its snapshot."""
    from sentinel42.portfolio import update_portfolio as _update

    with open_store(settings) as store:
        return PortfolioUpdate.from_snapshot(_update(store, settings, as_of))


def validation_gate(settings: Settings, as_of: datetime, *, force: bool) -> Gate:
    """Whether the validate flow should run: within three hours after today's session closed
    (so the 16:20 run validates a regular day and the 13:20 run an early close, once), or
    forced."""
    from sentinel42.factory import build_calendar

    status = build_calendar(settings).status(as_of)
    close = status.session_close
    if close is not None and close <= as_of < close + timedelta(hours=3):
        return Gate(True, False, f"after today's close at {close.isoformat()}")
    why = "no session closed in the last three hours"
    if force:
        return Gate(True, False, f"{why}; validating anyway: force=true")
    return Gate(False, False, f"{why}; nothing to validate")


def validate(settings: Settings, as_of: datetime) -> ValidationReport:
    """Score every standing decision whose horizon has passed, and test the model's live skill
    (the validate flow; ``sentinel42 validate`` prints its ``to_dict()``)."""
    from sentinel42.decision_scoring import score_decisions

    with open_store(settings) as store:
        return score_decisions(store, settings, as_of)


# --- model ----------------------------------------------------------------------------------
def current_model_version(settings: Settings) -> str | None:
    from sentinel42.model.storage import open_registry

    return open_registry(settings.models_location).current_version()


def train_model(
    settings: Settings, now: datetime, progress: Progress | None = None
) -> dict[str, Any]:
    """Train on the stored bars, evaluate against the baselines, promote or refuse."""
    from sentinel42.model.config import TrainingConfig
    from sentinel42.model.walk_forward import train_and_register

    with open_store(settings) as store:
        bars = store.load_bars(settings.tickers, settings.interval)
        daily = store.load_bars(settings.tickers, "1d")
    config = TrainingConfig.from_settings(settings)
    report = train_and_register(config, bars, now=now, daily=daily or None, progress=progress)
    with open_store(settings) as store:
        store.record_event(
            "model_promoted" if report.get("promoted") else "model_refused",
            None,
            {"version": report.get("version"), "reason": report.get("reason")},
            now,
        )
    return report
