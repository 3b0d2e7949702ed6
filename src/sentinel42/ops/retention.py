"""Retention: prune stored bars and headlines past their windows, and old model versions.

What is kept, from ``as_of`` back:

* intraday bars for ``bars_retention_days`` (training reads that history), daily bars for the
  longer of that and ``daily_history_days`` (the model's daily context);
* headlines for ``news_retention_days``, and never less than ``sentiment_window_hours`` (a
  decision's sentiment reads that far back); scores of pruned headlines go with them;
* model versions: the newest ``models_keep`` and the promoted one.

A standing decision that validation has not scored yet keeps every bar from its own bar on (its
score is read from those closes), even past the window. Decisions, their scores, predictions and
the paper portfolio are never pruned: they are the record. Prefect's own run history is pruned by
Prefect's database vacuum service (docs/operations.md, "Retention").

:func:`prune` is idempotent: a second call with the same ``as_of`` deletes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentinel42.persistence import housekeeping

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

BATCH_SIZE = 5_000
# Validation re-reads decisions up to 14 days behind its newest score: an unscored decision that
# far behind the bar window may still be scored, so its bars stay.
_PENDING_LOOKBACK = timedelta(days=14)


def cutoffs(settings: Settings, as_of: datetime) -> dict[str, datetime]:
    """Rows older than these are pruned: ``bars`` (intraday), ``daily_bars`` and ``news``."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be tz-aware")
    bars = as_of - timedelta(days=settings.bars_retention_days)
    daily_days = max(settings.bars_retention_days, settings.daily_history_days)
    news = min(
        as_of - timedelta(days=settings.news_retention_days),
        as_of - timedelta(hours=settings.sentiment_window_hours),
    )
    return {"bars": bars, "daily_bars": as_of - timedelta(days=daily_days), "news": news}


def prune(
    store: Store, settings: Settings, as_of: datetime, *, batch_size: int = BATCH_SIZE
) -> dict[str, Any]:
    """Delete bars, headlines (with their scores) and model versions past retention.

    Args:
        store: The open store.
        settings: Retention windows (``bars_retention_days``, ``news_retention_days``,
            ``daily_history_days``, ``sentiment_window_hours``, ``models_keep``) and
            ``models_dir``.
        as_of: The clock the windows end at (tz-aware).
        batch_size: Rows deleted per transaction.

    Returns:
        A JSON-able summary: the cutoffs used (ISO 8601, UTC), how many rows of each kind were
        deleted, the model versions deleted, and ``held_for_decision``: the bar start of the
        oldest unscored standing decision when it held back the bar cutoff, else None.

    Raises:
        ValueError: ``as_of`` is naive.
    """
    from sentinel42.model.storage import open_registry

    cut = cutoffs(settings, as_of)
    bars_cutoff = cut["bars"]
    pending = housekeeping.oldest_unscored_decision(store, since=bars_cutoff - _PENDING_LOOKBACK)
    held = pending if pending is not None and pending < bars_cutoff else None
    if held is not None:
        bars_cutoff = held
    bars = housekeeping.delete_bars_before(store, bars_cutoff, daily=False, batch_size=batch_size)
    daily = housekeeping.delete_bars_before(
        store, cut["daily_bars"], daily=True, batch_size=batch_size
    )
    news = housekeeping.delete_news_before(store, cut["news"], batch_size=batch_size)
    scores = housekeeping.delete_orphan_scores(store, batch_size=batch_size)
    models = open_registry(settings.models_location).prune(settings.models_keep)
    logger.info(
        "pruned %d bars, %d daily bars, %d headlines, %d scores, %d model versions",
        bars,
        daily,
        news,
        scores,
        len(models),
    )
    return {
        "as_of": as_of.isoformat(),
        "bars_cutoff": bars_cutoff.isoformat(),
        "daily_bars_cutoff": cut["daily_bars"].isoformat(),
        "news_cutoff": cut["news"].isoformat(),
        "held_for_decision": held.isoformat() if held is not None else None,
        "bars_deleted": bars,
        "daily_bars_deleted": daily,
        "news_deleted": news,
        "scores_deleted": scores,
        "models_deleted": models,
    }


def prune_store(settings: Settings, as_of: datetime) -> dict[str, Any]:
    """Open the store the settings name and :func:`prune` it (the CLI and a scheduled flow)."""
    from sentinel42.persistence import open_store

    with open_store(settings) as store:
        return prune(store, settings, as_of)
