"""Record live prices into the replay format, so a captured day can be replayed later."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.market.base import DAILY, PriceSource, daily_bar_ends, interval_minutes
from sentinel42.market.replay import read_price_csv, write_price_csv

logger = logging.getLogger(__name__)


@dataclass
class RecordedTicker:
    """What ``record`` wrote for one ticker (totals in the files after merging)."""

    ticker: str
    bars_written: int = 0
    bars_total: int = 0
    daily_written: int = 0
    daily_total: int = 0
    error: str | None = None


def merge_into(path: Path, frame: pd.DataFrame, *, time_column: str) -> tuple[int, int]:
    """Merge ``frame`` into the CSV at ``path`` (the fresh value wins on a shared timestamp).

    Returns:
        (bars in ``frame`` not in the file before, bars in the file after).
    """
    fresh = frame[["open", "high", "low", "close", "volume"]]
    if path.is_file():
        old = read_price_csv(path)
        added = int((~fresh.index.isin(old.index)).sum())
        merged = pd.concat([old[~old.index.isin(fresh.index)], fresh]).sort_index()
    else:
        added = len(fresh)
        merged = fresh.sort_index()
    merged = merged[~merged.index.duplicated(keep="last")]
    write_price_csv(merged, path, time_column=time_column)
    return added, len(merged)


def record_prices(
    source: PriceSource,
    tickers: Sequence[str],
    interval: str,
    out_dir: Path,
    as_of: datetime,
    *,
    daily_history_days: int = 730,
    daily_since: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[RecordedTicker]:
    """Write ``prices/<T>.csv`` and ``daily/<T>.csv`` under ``out_dir`` from ``source``.

    The bars are written as the source delivered them (normalized, not validated) so that a
    replay runs them through the same validation as live data. Bars still forming at ``as_of``
    are not written. Existing files are merged with, never duplicated. Intraday bars go as far
    back as the source serves (yfinance: 60 days); daily bars from ``daily_since`` (default
    ``daily_history_days`` before ``as_of``; a universe passes ``daily_history_years``).
    """
    say = progress or (lambda _msg: None)
    step = timedelta(minutes=interval_minutes(interval))
    rows = {t: RecordedTicker(t) for t in tickers}
    say(f"recording {interval} bars for {len(tickers)} ticker(s) into {out_dir}")
    batch = source.fetch_intraday(tickers, interval, dict.fromkeys(tickers), as_of)
    for ticker in tickers:
        if ticker in batch.errors:
            rows[ticker].error = str(batch.errors[ticker])
            continue
        frame = batch.frames[ticker]
        frame = frame[frame.index + step <= pd.Timestamp(as_of)]
        added, total = merge_into(
            out_dir / "prices" / f"{ticker}.csv", frame, time_column="Datetime"
        )
        rows[ticker].bars_written, rows[ticker].bars_total = added, total
        say(f"{ticker}: {added} new {interval} bars ({total} in the file)")
    since = daily_since or as_of - timedelta(days=daily_history_days)
    daily = source.fetch_daily(tickers, since, as_of)
    for ticker in tickers:
        if ticker in daily.errors:
            logger.warning("%s: daily bars not recorded: %s", ticker, daily.errors[ticker])
            continue
        frame = daily.frames[ticker]
        if frame.empty:
            continue
        done = np.asarray(daily_bar_ends(frame.index) <= pd.Timestamp(as_of))
        added, total = merge_into(
            out_dir / "daily" / f"{ticker}.csv", frame[done], time_column="Date"
        )
        rows[ticker].daily_written, rows[ticker].daily_total = added, total
    return [rows[t] for t in tickers]


def record_news(
    sources: Sequence[Any], tickers: Sequence[str], out_dir: Path, as_of: datetime
) -> int | None:
    """Record the headlines ``sources`` (the news stage's ``NewsSource``s) deliver at ``as_of``.

    Each line keeps when Sentinel42 first saw the headline (``first_seen_at``): the item's own
    when it has one, else ``as_of``, this recording. A headline already in the file keeps its
    first line (and so its earlier ``first_seen_at``). A replay serves it from then on, not
    from ``published_at`` (docs/replay-format.md). A failing source is logged and skipped: it
    must not lose the prices already recorded.

    Returns:
        The number of headlines written, or None when the news stage has no replay writer.
    """
    from sentinel42.domain import NewsItem
    from sentinel42.news.replay import write_jsonl

    items: list[NewsItem] = []
    for news_source in sources:
        try:
            batch = news_source.fetch(list(tickers), as_of)
        except Exception as exc:
            logger.warning("news source %s failed while recording: %s", news_source.name, exc)
            continue
        items.extend(replace(i, first_seen_at=i.first_seen_at or as_of) for i in batch.items)
        for problem in batch.problems:
            logger.info("news source %s: %s", news_source.name, problem)
    return write_jsonl(items, out_dir / "news" / "recorded.jsonl")


__all__ = ["DAILY", "RecordedTicker", "merge_into", "record_news", "record_prices"]
