"""Per-ticker news sentiment for the trading flow: a recency-weighted mean over a window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sentinel42.domain import SentimentAggregate

# Feeds re-date items; a story published long ago but first seen inside the window still
# counts (at its first_seen_at). Older publications than this are not even loaded.
MAX_BACKDATE = timedelta(days=30)


def aggregate_sentiment(
    store: Any,
    tickers: Sequence[str],
    as_of: datetime,
    window_hours: float,
    half_life_hours: float,
) -> dict[str, SentimentAggregate]:
    """Recency-weighted mean score per ticker over ``(as_of - window, as_of]``.

    A headline's time is ``max(published_at, first_seen_at)``: a backtest must not use a story
    before Sentinel42 could have seen it, however the feed dated it. Its weight halves every
    ``half_life_hours``. Unscored headlines are ignored.

    Returns:
        Every ticker in ``tickers``; one without scored headlines gets ``n_headlines=0``,
        ``score=0.0`` and ``newest_headline_at=None`` ("no news", not "neutral news").
    """
    window_start = as_of - timedelta(hours=window_hours)
    frame = store.headlines(list(tickers), since=window_start - MAX_BACKDATE, until=as_of)
    sums: dict[str, list[float]] = {t: [0.0, 0.0] for t in tickers}
    counts: dict[str, int] = dict.fromkeys(tickers, 0)
    newest: dict[str, datetime | None] = dict.fromkeys(tickers)
    scorers: dict[str, set[str]] = {t: set() for t in tickers}
    seen: set[tuple[str, str]] = set()
    for row in frame.itertuples(index=False):
        ticker = str(row.ticker)
        score = row.score
        if ticker not in sums or score is None or (isinstance(score, float) and math.isnan(score)):
            continue
        at = max(_ts(row.published_at), _ts(row.first_seen_at))
        if not (window_start < at <= as_of) or (ticker, row.text_hash) in seen:
            continue
        seen.add((ticker, row.text_hash))
        age_h = (as_of - at).total_seconds() / 3600
        weight = 0.5 ** (age_h / half_life_hours)
        sums[ticker][0] += weight * float(score)
        sums[ticker][1] += weight
        counts[ticker] += 1
        if newest[ticker] is None or at > newest[ticker]:  # type: ignore[operator]
            newest[ticker] = at
        if row.scorer:
            scorers[ticker].add(str(row.scorer))
    return {
        t: SentimentAggregate(
            ticker=t,
            score=sums[t][0] / sums[t][1] if counts[t] else 0.0,
            n_headlines=counts[t],
            newest_headline_at=newest[t],
            scorers=tuple(sorted(scorers[t])),
        )
        for t in tickers
    }


def _ts(value: Any) -> datetime:
    # Rows come back as pandas Timestamps or datetimes; both compare as aware datetimes.
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    return value
