"""What the dashboard reads from the store and the model registry.

Each function returns plain JSON-able dicts for :mod:`sentinel42.dashboard.markdown`. Datetimes
in the results are ISO strings in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentinel42.errors import ModelError
from sentinel42.market.calendar import NEW_YORK
from sentinel42.persistence import score_ledger
from sentinel42.pipeline import decision_row

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store
    from sentinel42.settings import Settings


def freshness(store: Store, settings: Settings, as_of: datetime) -> dict[str, dict[str, Any]]:
    """Per watchlist ticker: its newest stored bar and headline, and how old the bar is.

    Returns:
        ``{ticker: {newest_bar, bar_age_minutes, newest_headline, stale}}``: ``newest_bar`` is
        the bar's start and ``newest_headline`` a publication time (ISO, UTC, or None);
        ``bar_age_minutes`` counts from the bar's end to ``as_of``, the way fusion judges a
        stale bar, and ``stale`` says it exceeds ``max_bar_age_minutes`` (or there is no bar).
    """
    tickers = list(settings.tickers)
    bars = store.newest_bar_ts(tickers, settings.interval)
    headlines = store.newest_headline_ts(tickers)
    interval = timedelta(minutes=settings.interval_minutes)
    out: dict[str, dict[str, Any]] = {}
    for ticker in tickers:
        bar, headline = bars.get(ticker), headlines.get(ticker)
        age = None if bar is None else (as_of - (bar + interval)).total_seconds() / 60.0
        out[ticker] = {
            "newest_bar": bar.isoformat() if bar else None,
            "bar_age_minutes": None if age is None else round(age, 1),
            "newest_headline": headline.isoformat() if headline else None,
            "stale": age is None or age > settings.max_bar_age_minutes,
        }
    return out


def model_status(store: Store, settings: Settings) -> dict[str, Any]:
    """The promoted model: its validated skill, and its live skill from the scored decisions.

    Returns:
        ``version`` (None without a promoted model), ``validated_accuracy`` and ``edge`` (over
        the best baseline on the block that decided its promotion), ``live_hits``/``live_n``/
        ``live_hit_rate`` over its newest ``validate_window`` scored signals, ``window``,
        ``degraded`` (validation's verdict), ``p_value`` and ``tested_at`` of the last test.
    """
    from sentinel42.model.storage import open_registry

    registry = open_registry(settings.models_location)
    version = registry.current_version()
    status: dict[str, Any] = {
        "version": version,
        "validated_accuracy": None,
        "edge": None,
        "live_hits": 0,
        "live_n": 0,
        "live_hit_rate": None,
        "window": settings.validate_window,
        "degraded": False,
        "p_value": None,
        "tested_at": None,
    }
    if version is None:
        return status
    try:
        meta = registry.metadata(version)
    except ModelError as exc:  # the dashboard reports what it can; the run goes on
        status["note"] = str(exc)
        meta = {}
    gate = meta.get("gate") or {}
    # The same lookup as LoadedModel.accuracy, without loading the weights.
    accuracy = gate.get("model_accuracy")
    if accuracy is None:
        accuracy = meta.get("metrics", {}).get("test", {}).get("model", {}).get("accuracy")
    hits, n = score_ledger.recent_model_hits(store, version, settings.validate_window)
    health = score_ledger.model_health(store, version)
    status |= {
        "validated_accuracy": None if accuracy is None else float(accuracy),
        "edge": None if gate.get("edge") is None else float(gate["edge"]),
        "live_hits": hits,
        "live_n": n,
        "live_hit_rate": hits / n if n else None,
        "degraded": bool(health and health.degraded),
        "p_value": health.p_value if health else None,
        "tested_at": health.at.isoformat() if health else None,
    }
    return status


def previous_result(store: Store, run_id: str, limit: int = 500) -> dict[str, Any] | None:
    """The decisions of the newest earlier run, shaped like ``TradingResult.to_dict()``.

    Reads every revision (a forced rerun of a bar is a revision), so "the last run" is the
    run that decided most recently, whichever bar it decided. None before a second run.
    """
    rows = [d for d in store.decisions(limit=limit, all_revisions=True) if d.run_id != run_id]
    if not rows:
        return None
    newest = max(rows, key=lambda d: (d.decided_at or d.bar_ts, d.bar_ts))
    mine = sorted((d for d in rows if d.run_id == newest.run_id), key=lambda d: d.ticker)
    return {
        "as_of": (newest.decided_at or newest.bar_ts).isoformat(),
        "run_id": newest.run_id,
        "model_version": next((d.models.get("lstm") for d in mine if d.models.get("lstm")), None),
        "decisions": [decision_row(d) for d in mine],
    }


def score_trend(store: Store) -> list[dict[str, Any]]:
    """Per New York session date of the decision bars: how the scored decisions did.

    Returns:
        Oldest first: ``date``, ``scored``, ``decisions_n``/``decisions_hits`` (BUY and SELL),
        ``model_n``/``model_hits``, ``sentiment_n``/``sentiment_hits``, and
        ``cumulative_hit_rate`` of BUY and SELL up to and including that session.
    """
    days: dict[str, dict[str, Any]] = {}
    for s in score_ledger.decision_scores(store):
        day = s.bar_ts.astimezone(NEW_YORK).date().isoformat()
        row = days.setdefault(
            day,
            dict.fromkeys(("scored", "decisions_n", "decisions_hits", "model_n", "model_hits"), 0)
            | {"date": day, "sentiment_n": 0, "sentiment_hits": 0},
        )
        row["scored"] += 1
        for prefix, hit in (
            ("decisions", s.hit),
            ("model", s.model_signal_hit),
            ("sentiment", s.sentiment_signal_hit),
        ):
            if hit is not None:
                row[f"{prefix}_n"] += 1
                row[f"{prefix}_hits"] += int(hit)
    out, n, hits = [], 0, 0
    for day in sorted(days):
        row = days[day]
        n, hits = n + row["decisions_n"], hits + row["decisions_hits"]
        out.append(row | {"cumulative_hit_rate": hits / n if n else None})
    return out
