"""Backtest: a recorded period replayed bar by bar through the live trading path.

Each step's clock is a bar end plus ``settings.trading_delay_minutes`` (the live trading
schedule: every bar of every NYSE session, early closes respected) and the step runs what a live
trading run runs: :func:`sentinel42.pipeline.refresh_all`, then
:func:`sentinel42.pipeline.decide`, then the paper portfolio. The settings point at a work folder
of its own (store, model registry), and the replay sources serve nothing that ended after the
clock, nor a headline before Sentinel42 could have seen it (its recorded ``first_seen_at``, else
``published_at`` + ``SENTINEL42_REPLAY_NEWS_LATENCY_SECONDS``; the summary's ``news_latency``
says which for how many). The models are retrained walk-forward before every
``retrain_sessions``-th session, on the store's bars up to the previous close, so a model never
saw the bars it decides: the direction LSTM (``direction``, as ``model train``) and/or the
cross-sectional ranking kinds (``intraday``, ``daily``, as the weekly training flow trains them
over the universe). The promotion gate decides as live; ``ungated`` trades every trained model
whether or not the gate promoted it (an evaluation of the model, not what the product would do;
the summary's ``gate`` says which ran).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentinel42.errors import ConfigError, ModelError
from sentinel42.market.calendar import SESSION_MINUTES
from sentinel42.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from sentinel42.domain import Decision
    from sentinel42.market.calendar import NyseCalendar
    from sentinel42.portfolio import Portfolio

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]

SESSIONS_PER_YEAR = 252
STORE_FILE = "backtest.db"
# One step per bar (the live trading schedule) or one per session (after its close).
CADENCES = ("bar", "session")
# What the walk-forward trains: the direction LSTM and the ranking kinds (model.ranking.panel).
MODEL_KINDS = ("direction", "intraday", "daily")


@dataclass(frozen=True, slots=True)
class Step:
    """One trading run of the backtest: its clock (UTC), the bar end it follows, its session."""

    clock: datetime
    bar_end: datetime
    session: int  # 0 for the backtest's first session


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision for a bar not decided before (what the paper portfolio trades on)."""

    step: int
    ticker: str
    bar_ts: datetime
    action: str
    close: float
    fused: float
    sentiment: float | None
    with_model: bool


@dataclass(slots=True)
class Account:
    """A paper portfolio, its equity after each step (index 0: before the first) and notional."""

    portfolio: Portfolio
    equity: list[float]
    notional: float = 0.0
    trades: int = 0


@dataclass(slots=True)
class BacktestResult:
    """The JSON summary plus the series the plot draws (one entry per step)."""

    summary: dict[str, Any]
    steps: list[Step]
    records: list[DecisionRecord]
    closes: dict[str, list[float]]  # ticker -> newest close at each step (NaN before any)
    equity: list[float]  # the strategy, one more than steps (the starting cash first)
    buy_and_hold: list[float]
    trainings: list[dict[str, Any]] = field(default_factory=list)


# --- the period and its clock ----------------------------------------------------------------
def parse_bound(text: str, calendar: NyseCalendar, *, end: bool) -> datetime:
    """A backtest bound: a bare New York date means whole sessions, ISO 8601 an instant.

    A bare start date is the open of the first session on or after it; a bare end date the
    close (early closes included) of the last session on or before it.

    Raises:
        ConfigError: neither a date nor an ISO 8601 time with a UTC offset.
    """
    from sentinel42.market.calendar import NEW_YORK

    name = "--end" if end else "--start"
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
        at = None if day else datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is neither YYYY-MM-DD nor ISO 8601") from None
    if at is not None:
        if at.tzinfo is None:
            raise ConfigError(f"{name}: {text!r} needs a UTC offset, e.g. {text}-04:00")
        return at.astimezone(UTC)
    assert day is not None
    midnight = datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    if end:
        return calendar.previous_close(midnight + timedelta(days=1))
    return calendar.status(midnight).next_open


def step_clocks(
    calendar: NyseCalendar,
    start: datetime,
    end: datetime,
    interval_minutes: int,
    delay_minutes: int,
    cadence: str = "bar",
) -> list[Step]:
    """The live trading schedule for the bars inside ``[start, end]``: each bar end + delay.

    A bar runs from the open in steps of the interval and ends at or before the close, so an
    early close has fewer bars; the last bar's run comes ``delay_minutes`` after the close.
    ``cadence="session"`` keeps one step per session: its last bar's run (the close + delay
    for a whole session), so a decision fills at the next session's open.

    Raises:
        ConfigError: an unknown cadence.
    """
    if cadence not in CADENCES:
        raise ConfigError(f"--cadence: {cadence!r} is not one of {', '.join(CADENCES)}")
    if cadence == "session":
        bars = step_clocks(calendar, start, end, interval_minutes, delay_minutes)
        return [
            s for i, s in enumerate(bars) if i + 1 == len(bars) or bars[i + 1].session != s.session
        ]
    interval, delay = timedelta(minutes=interval_minutes), timedelta(minutes=delay_minutes)
    steps: list[Step] = []
    session = -1
    for s_open, s_close in calendar.sessions_between(start - timedelta(days=1), end):
        bar_end, first = s_open + interval, True
        while bar_end <= s_close:
            if bar_end - interval >= start and bar_end <= end:
                session += first
                first = False
                steps.append(
                    Step((bar_end + delay).astimezone(UTC), bar_end.astimezone(UTC), session)
                )
            bar_end += interval
    return steps


def backtest_settings(
    replay_dir: Path,
    workdir: Path,
    tickers: Sequence[str],
    universe: Sequence[str] | None = None,
) -> Settings:
    """Settings of a backtest: the replay sources and a store and models of its own.

    ``universe`` (default: the environment's ``SENTINEL42_UNIVERSE``) is what the ranking
    kinds train and rank over. Everything else (thresholds, model, portfolio) comes from the
    environment as in live runs.
    """
    overrides: dict[str, Any] = {"universe": ",".join(universe)} if universe else {}
    return load_settings(
        data_source="replay",
        replay_dir=replay_dir,
        database_url=f"sqlite:///{workdir / STORE_FILE}",
        data_dir=workdir,
        tickers=list(tickers),
        replay_as_of=None,
        **overrides,
    )


# --- figures -----------------------------------------------------------------------------------
def total_return(equity: Sequence[float]) -> float:
    return float(equity[-1] / equity[0] - 1.0)


def sharpe_ratio(equity: Sequence[float], periods_per_year: float) -> float | None:
    """Annualised Sharpe of the per-step equity returns (no risk-free rate); None if undefined."""
    values = np.asarray(equity, dtype=float)
    if len(values) < 3:
        return None
    returns = values[1:] / values[:-1] - 1.0
    std = float(returns.std(ddof=1))
    if not math.isfinite(std) or std <= 1e-12:
        return None
    return float(returns.mean() / std * math.sqrt(periods_per_year))


def max_drawdown(equity: Sequence[float]) -> float:
    """Largest fall from a running peak, as a fraction of that peak (0.1 = 10 %)."""
    values = np.asarray(equity, dtype=float)
    return float(np.max(1.0 - values / np.maximum.accumulate(values)))


def hit_rate(
    records: Sequence[DecisionRecord], closes: Mapping[str, Any], horizon: int
) -> tuple[float | None, int]:
    """Share of BUY/SELL decisions whose return over the next ``horizon`` bars went their way.

    Only decisions whose horizon bar is in ``closes`` (bars ended by the last step) count; a
    zero return is a miss. Returns the rate (None without any) and how many counted.
    """
    hits = n = 0
    for r in records:
        series = closes.get(r.ticker)
        if r.action not in ("BUY", "SELL") or series is None:
            continue
        pos = series.index.get_indexer([r.bar_ts])[0]
        if pos < 0 or pos + horizon >= len(series):
            continue
        move = float(series.iloc[pos + horizon]) / float(series.iloc[pos]) - 1.0
        n += 1
        hits += (move > 0) if r.action == "BUY" else (move < 0)
    return (hits / n if n else None), n


def periods_per_year(cadence: str, interval_minutes: int) -> float:
    """Steps a year for the Sharpe ratio: steps per regular session for the cadence x 252
    (``bar``: 390 / interval, 26 for 15 minutes; ``session``: 1)."""
    if cadence not in CADENCES:
        raise ConfigError(f"--cadence: {cadence!r} is not one of {', '.join(CADENCES)}")
    per_session = 1.0 if cadence == "session" else SESSION_MINUTES / interval_minutes
    return SESSIONS_PER_YEAR * per_session


def _figures(
    account: Account,
    buy_and_hold: Sequence[float],
    records: Sequence[DecisionRecord],
    closes: Mapping[str, Any],
    settings: Settings,
    periods: float | None = None,
) -> dict[str, Any]:
    if periods is None:
        periods = periods_per_year("bar", settings.interval_minutes)
    rate, scored = hit_rate(records, closes, settings.model_horizon)
    average = float(np.mean(account.equity))
    return {
        "total_return": total_return(account.equity),
        "sharpe": sharpe_ratio(account.equity, periods),
        "max_drawdown": max_drawdown(account.equity),
        "hit_rate": rate,
        "hit_rate_decisions": scored,
        "turnover": account.notional / average if average > 0 else None,
        "buy_and_hold_return": total_return(buy_and_hold),
        "n_decisions": len(records),
        "n_buy": sum(r.action == "BUY" for r in records),
        "n_sell": sum(r.action == "SELL" for r in records),
        "n_trades": account.trades,
        "n_with_model": sum(r.with_model for r in records),
        "n_with_news": sum(r.sentiment is not None for r in records),
        "final_equity": account.equity[-1],
    }


def news_latency(settings: Settings, until: datetime) -> dict[str, Any]:
    """The news latency rule of the headlines the replay served by ``until``: how many came at
    their recorded ``first_seen_at`` and how many at ``published_at`` + the latency setting."""
    from sentinel42.factory import build_news_sources
    from sentinel42.news.replay import LatencyCounts, ReplayNewsSource

    counts = LatencyCounts(settings.replay_news_latency_seconds, 0, 0)
    for source in build_news_sources(settings):
        if isinstance(source, ReplayNewsSource):
            more = source.latency_counts(until)
            counts = LatencyCounts(
                counts.latency_seconds,
                counts.recorded_first_seen + more.recorded_first_seen,
                counts.published_plus_latency + more.published_plus_latency,
            )
    return counts.to_dict()


# --- the universe and the market --------------------------------------------------------------
# Two watchlists no universe spec is likely to name; see spec_tickers.
_PROBES = ("ZZZZY", "ZZZZZ")


def spec_tickers(replay_dir: Path, spec: str) -> tuple[list[str], list[str]]:
    """The tickers a universe ``spec`` names on its own, sorted, and the problems resolving it.

    ``spec`` reads as ``SENTINEL42_UNIVERSE`` does (``all``: every ticker the replay folder
    holds; a comma-separated list; ``@path``), through
    :func:`~sentinel42.market.universe.resolve_universe`. That always adds the watchlist, so
    it is resolved under two different one-ticker watchlists and each one taken out again: a
    ticker the spec names is in both results, a probe only in its own.

    Raises:
        ConfigError: the spec is malformed, or names no ticker the replay folder holds.
    """
    from sentinel42.market.universe import resolve_universe

    found: set[str] = set()
    problems: tuple[str, ...] = ()
    for probe in _PROBES:
        try:
            settings = load_settings(
                data_source="replay", replay_dir=replay_dir, universe=spec, tickers=[probe]
            )
        except ConfigError as exc:
            raise ConfigError(f"--universe {spec!r}: {exc}") from None
        resolved = resolve_universe(settings)
        found |= set(resolved.tickers) - {probe}
        problems = resolved.problems
    if not found:
        raise ConfigError(f"--universe {spec!r}: no ticker of it is in the replay folder")
    return sorted(found), list(problems)


def versus_benchmarks(
    summary: Mapping[str, Any], market_equity: Sequence[float], universe: Sequence[str]
) -> dict[str, Any]:
    """The strategy against buy-and-hold of the watchlist and against the market (the whole
    universe, equal weight, bought once): each benchmark's return and the excess over it."""
    market = total_return(market_equity)
    strategy = float(summary["total_return"])
    return {
        "universe": list(universe),
        "universe_size": len(universe),
        "market_return": market,
        "excess_return_vs_buy_and_hold": strategy - float(summary["buy_and_hold_return"]),
        "excess_return_vs_market": strategy - market,
    }


# --- the run -----------------------------------------------------------------------------------
def _train(
    settings: Settings,
    calendar: NyseCalendar,
    step: Step,
    *,
    store_empty: bool,
    models: Sequence[str] = ("direction",),
    ungated: bool = False,
) -> list[dict[str, Any]]:
    """Train each of ``models`` on the bars up to the close before ``step``'s session (a live
    after-close run); one entry per model, with what the gate said and whether it trades."""
    from sentinel42 import pipeline

    at = calendar.previous_close(step.clock)
    if store_empty:  # the first training: backfill what a live store would hold by then
        pipeline.refresh_all(settings, at)
    entries = []
    for kind in models:
        if kind == "direction":
            entries.append(_train_direction(settings, at, ungated=ungated))
        else:
            entries.append(_train_ranking(settings, kind, at, ungated=ungated))
    return entries


def _train_direction(settings: Settings, at: datetime, *, ungated: bool) -> dict[str, Any]:
    from sentinel42 import pipeline
    from sentinel42.model.storage import open_registry

    entry: dict[str, Any] = {"kind": "direction", "at": at.isoformat()}
    try:
        report = pipeline.train_model(settings, now=at)
    except ModelError as exc:
        logger.warning("backtest: no direction model trained at %s: %s", at.isoformat(), exc)
        return entry | {"version": None, "promoted": False, "traded": False, "reason": str(exc)}
    version, promoted = report.get("version"), bool(report.get("promoted"))
    if ungated and version is not None and not promoted:
        open_registry(settings.models_location).promote(version)
    return entry | {
        "version": version,
        "promoted": promoted,
        "traded": version is not None and (promoted or ungated),
        "reason": report.get("reason"),
    }


def _train_ranking(settings: Settings, kind: str, at: datetime, *, ungated: bool) -> dict[str, Any]:
    """One ranking kind, trained over the universe as the weekly flow trains it."""
    from sentinel42.model.ranking import weekly
    from sentinel42.model.ranking.service import registry_for

    entry: dict[str, Any] = {"kind": kind, "at": at.isoformat()}
    try:
        document = weekly.train(settings, kind, now=at, as_of=at)
    except ModelError as exc:
        logger.warning("backtest: no %s model trained at %s: %s", kind, at.isoformat(), exc)
        return entry | {"version": None, "promoted": False, "traded": False, "reason": str(exc)}
    version, promoted = document["version"], bool(document["promoted"])
    if ungated and not promoted:
        registry_for(settings, kind).promote(version)
    figures = document.get("model", {})
    return entry | {
        "version": version,
        "promoted": promoted,
        "traded": promoted or ungated,
        "reason": document["reason"],
        "test": document.get("test"),
        "rank_ic_mean": figures.get("rank_ic_mean"),
        "rank_ic_lower": figures.get("rank_ic_lower"),
        "long_short_net_annual": figures.get("long_short_net_annual"),
        "train_s": document.get("timing", {}).get("train_s"),
    }


def _books(
    settings: Settings,
    steps: Sequence[Step],
    fresh_at: Sequence[Sequence[Decision]],
    stored: Mapping[str, pd.DataFrame],
) -> tuple[Account, dict[str, Account], list[float], dict[str, list[float]]]:
    """The in-memory books, step by step: the whole watchlist, each ticker alone, and their
    buy-and-hold benchmarks (equity after each step; index 0: before the first).

    The same :class:`~sentinel42.portfolio.Portfolio` and fill rule as the live book: step
    ``i`` sees the bars that ended by its clock (the replay never revises a served bar, so the
    store's bars after the last step, cut at each clock, are what each step had stored).
    """
    from sentinel42.portfolio import BuyAndHold, Portfolio, PortfolioConfig, PriceTape

    tickers = list(settings.tickers)
    config = PortfolioConfig.from_settings(settings)
    cash = settings.portfolio_starting_cash
    tape = PriceTape(stored)
    tapes = {t: PriceTape({t: stored[t]}) if t in stored else PriceTape({}) for t in tickers}
    book = Account(Portfolio(config), [cash])
    alone = {t: Account(Portfolio(config), [cash]) for t in tickers}
    # The benchmarks start at the first decision's clock, as the live book's does.
    held: BuyAndHold | None = None
    held_alone: dict[str, BuyAndHold] = {}
    bh, bh_alone = [cash], {t: [cash] for t in tickers}
    interval = timedelta(minutes=settings.interval_minutes)
    for step, fresh in zip(steps, fresh_at, strict=True):
        until = step.clock - interval
        accounts = [(book, fresh, tape)]
        accounts += [(alone[t], [d for d in fresh if d.ticker == t], tapes[t]) for t in tickers]
        for account, decisions, own in accounts:
            trades = account.portfolio.advance(decisions, own, until)
            account.notional += sum(t.quantity * t.fill_price for t in trades)
            account.trades += len(trades)
            account.equity.append(float(account.portfolio.equity()))
        if held is None and fresh:
            held = BuyAndHold(tickers, config, step.clock)
            held_alone = {t: BuyAndHold([t], config, step.clock) for t in tickers}
        if held is not None:
            held.advance(tape, until)
            for t in tickers:
                held_alone[t].advance(tapes[t], until)
        bh.append(held.equity() if held is not None else cash)
        for t in tickers:
            bh_alone[t].append(held_alone[t].equity() if t in held_alone else cash)
    return book, alone, bh, bh_alone


def _served_bars(
    settings: Settings, tickers: Sequence[str], clock: datetime
) -> dict[str, pd.DataFrame]:
    """Bars the replay source serves by ``clock`` for tickers the backtest does not store."""
    if not tickers:
        return {}
    from sentinel42.factory import build_price_source

    source = build_price_source(settings)
    batch = source.fetch_intraday(list(tickers), settings.interval, dict.fromkeys(tickers), clock)
    return dict(batch.frames)


def _market(
    settings: Settings,
    steps: Sequence[Step],
    fresh_at: Sequence[Sequence[Decision]],
    tickers: Sequence[str],
    bars: Mapping[str, pd.DataFrame],
) -> list[float]:
    """The market benchmark: the universe, equal weight, bought once by the fill rule from the
    first decision's clock (as the buy-and-hold benchmark); its equity after each step."""
    from sentinel42.portfolio import BuyAndHold, PortfolioConfig, PriceTape

    cash = settings.portfolio_starting_cash
    tape, interval = PriceTape(bars), timedelta(minutes=settings.interval_minutes)
    market: BuyAndHold | None = None
    equity = [cash]
    for step, fresh in zip(steps, fresh_at, strict=True):
        if market is None and fresh:
            market = BuyAndHold(list(tickers), PortfolioConfig.from_settings(settings), step.clock)
        if market is not None:
            market.advance(tape, step.clock - interval)
        equity.append(market.equity() if market is not None else cash)
    return equity


def run_backtest(
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    retrain_sessions: int | None = None,
    use_model: bool = True,
    progress: Progress | None = None,
    progress_every: int = 26,
    cadence: str = "bar",
    universe: Sequence[str] | None = None,
    models: Sequence[str] = ("direction",),
    ungated: bool = False,
) -> BacktestResult:
    """Replay ``[start, end]`` step by step through the live trading path.

    Args:
        settings: from :func:`backtest_settings` (a fresh work folder: its store must be empty,
            or the first steps would see bars stored by a later clock).
        start, end: tz-aware; every bar that starts at or after ``start`` and ends by ``end``
            is decided (see :func:`step_clocks`).
        retrain_sessions: retrain every this many sessions; default
            ``settings.backtest_retrain_sessions``.
        use_model: False decides on sentiment alone (no training; much faster).
        models: what the walk-forward trains (:data:`MODEL_KINDS`): ``direction`` (the LSTM of
            ``model train``), ``intraday`` and ``daily`` (the ranking kinds, over
            ``settings.universe``, as the weekly flow trains them).
        ungated: trade every trained model, promoted by the gate or not (evaluates the
            models; the product trades only promoted ones).
        progress: receives a line every ``progress_every`` steps.
        cadence: ``bar`` (every bar, as live) or ``session`` (one step after each close).
        universe: the market benchmark's tickers (equal weight, bought once); default the
            watchlist. The watchlist is always part of it.

    Raises:
        ConfigError: no bar of any session ends in the period, an unknown cadence or model.
    """
    from sentinel42 import pipeline
    from sentinel42.factory import build_calendar
    from sentinel42.persistence import open_store

    calendar = build_calendar(settings)
    steps = step_clocks(
        calendar, start, end, settings.interval_minutes, settings.trading_delay_minutes, cadence
    )
    periods = periods_per_year(cadence, settings.interval_minutes)
    unknown = [m for m in models if m not in MODEL_KINDS]
    if unknown:
        raise ConfigError(f"--models: {', '.join(unknown)} not among {', '.join(MODEL_KINDS)}")
    models = list(dict.fromkeys(models)) if use_model else []
    if not steps:
        raise ConfigError(f"no NYSE bar ends between {start.isoformat()} and {end.isoformat()}")
    with open_store(settings) as store:
        if store.count_bars():
            raise ConfigError(f"the backtest store {settings.store_url} is not empty")
    every = retrain_sessions or settings.backtest_retrain_sessions
    tickers = list(settings.tickers)
    closes: dict[str, list[float]] = {t: [] for t in tickers}
    last_bar: dict[str, datetime] = {}
    prices: dict[str, float] = {}
    records: list[DecisionRecord] = []
    fresh_at: list[list[Decision]] = []  # each step's decisions for bars not decided before
    trainings: list[dict[str, Any]] = []
    trained_session = -1
    began = time.perf_counter()
    for i, step in enumerate(steps):
        if models and step.session % every == 0 and step.session != trained_session:
            trainings += _train(
                settings, calendar, step, store_empty=i == 0, models=models, ungated=ungated
            )
            trained_session = step.session
        pipeline.refresh_all(settings, step.clock)
        # A run id fixed by the clock: a rerun of the same backtest records the same rows.
        run_id = f"backtest-{step.clock.isoformat()}"
        result = pipeline.decide(settings, step.clock, forced=False, run_id=run_id)
        # The live run's own store-backed portfolio step; the in-memory books below add the
        # per-ticker and notional figures, and must end where it ends (tested).
        live_book = pipeline.update_portfolio(settings, step.clock)
        fresh = []
        for d in result.decisions:
            prices[d.ticker] = float(d.inputs["close"])
            if d.ticker not in last_bar or d.bar_ts > last_bar[d.ticker]:
                last_bar[d.ticker] = d.bar_ts
                fresh.append(d)
        fresh_at.append(fresh)
        for t in tickers:
            closes[t].append(prices.get(t, math.nan))
        for d in sorted(fresh, key=lambda d: d.ticker):
            records.append(
                DecisionRecord(
                    step=i,
                    ticker=d.ticker,
                    bar_ts=d.bar_ts,
                    action=d.action.value,
                    close=float(d.inputs["close"]),
                    fused=float(d.inputs.get("fused", 0.0)),
                    sentiment=d.inputs.get("sentiment"),
                    with_model=d.inputs.get("p_up") is not None or "ranking" in d.inputs,
                )
            )
        if progress is not None and ((i + 1) % progress_every == 0 or i + 1 == len(steps)):
            elapsed = time.perf_counter() - began
            progress(
                f"step {i + 1}/{len(steps)} clock {step.clock.isoformat()} "
                f"elapsed {elapsed:.0f}s ({elapsed / (i + 1):.2f}s/step)"
            )
    elapsed = time.perf_counter() - began

    with open_store(settings) as store:  # bars ended by the last step: the hit rate's horizon
        stored = store.load_bars(tickers, settings.interval)
    bar_closes = {t: frame["close"] for t, frame in stored.items() if not frame.empty}
    market_tickers = list(dict.fromkeys([*tickers, *(universe or ())]))
    undecided = [t for t in market_tickers if t not in set(tickers)]
    market_bars = {**_served_bars(settings, undecided, steps[-1].clock), **stored}
    book, alone, bh, bh_alone = _books(settings, steps, fresh_at, stored)
    market_equity = _market(settings, steps, fresh_at, market_tickers, market_bars)
    summary: dict[str, Any] = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "first_step": steps[0].clock.isoformat(),
        "last_step": steps[-1].clock.isoformat(),
        "steps": len(steps),
        "sessions": steps[-1].session + 1,
        "tickers": tickers,
        "workdir": str(settings.data_dir),
        "models_trained": sum(t["version"] is not None for t in trainings),
        "models_promoted": sum(t["promoted"] for t in trainings),
        "models_traded": sum(t["traded"] for t in trainings),
        "models": models,
        "gate": "ignored: every trained model trades (--ungated)" if ungated else "enforced",
        "retrain_sessions": every if models else None,
        "news_latency": news_latency(settings, steps[-1].clock),
        "cadence": cadence,
        "periods_per_year": periods,
        **_figures(book, bh, records, bar_closes, settings, periods),
        "per_ticker": {
            t: _figures(
                alone[t],
                bh_alone[t],
                [r for r in records if r.ticker == t],
                bar_closes,
                settings,
                periods,
            )
            for t in tickers
        },
        "trainings": trainings,
        "portfolio": live_book.to_dict(),
        "timing": {
            "seconds": round(elapsed, 3),
            "seconds_per_step": round(elapsed / len(steps), 4),
        },
    }
    summary.update(versus_benchmarks(summary, market_equity, market_tickers))
    return BacktestResult(summary, steps, records, closes, book.equity, bh, trainings)
