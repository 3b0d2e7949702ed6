"""Per-ticker news sentiment for the trading flow: a recency-weighted mean over a window."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sentinel42.domain import SentimentAggregate

# Clock skew between a feed and us: a story dated a little after the clock but already seen
# counts as published at the clock (age 0) rather than being dropped.
MAX_FUTURE_SKEW = timedelta(minutes=30)


def aggregate_sentiment(
    store: Any,
    tickers: Sequence[str],
    as_of: datetime,
    window_hours: float,
    half_life_hours: float,
) -> dict[str, SentimentAggregate]:
    """Recency-weighted mean score per ticker of the stories published in the window.

    Two rules, kept apart on purpose:

    - *May it be used?* Only once Sentinel42 has seen it: ``first_seen_at <= as_of``. A backtest
      therefore never uses a story before it could have been fetched, however the feed dated it.
    - *How much does it weigh?* By its age since ``published_at``: it counts only when published
      inside ``(as_of - window, as_of]``, and its weight halves every ``half_life_hours``. A story
      published two days ago and first seen now is two days old, not fresh news.

    Unscored headlines are ignored.

    Returns:
        Every ticker in ``tickers``; one without usable scored headlines gets ``n_headlines=0``,
        ``score=0.0`` and ``newest_headline_at=None`` ("no news", not "neutral news").
    """
    window_start = as_of - timedelta(hours=window_hours)
    frame = store.headlines(list(tickers), since=window_start, until=as_of + MAX_FUTURE_SKEW)
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
        if _ts(row.first_seen_at) > as_of or (ticker, row.text_hash) in seen:
            continue
        published = min(_ts(row.published_at), as_of)
        if not (window_start < published <= as_of):
            continue
        seen.add((ticker, row.text_hash))
        age_h = (as_of - published).total_seconds() / 3600
        weight = 0.5 ** (age_h / half_life_hours)
        sums[ticker][0] += weight * float(score)
        sums[ticker][1] += weight
        counts[ticker] += 1
        if newest[ticker] is None or published > newest[ticker]:  # type: ignore[operator]
            newest[ticker] = published
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
