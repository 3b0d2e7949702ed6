"""One news refresh: every source, normalized, deduplicated, stored once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sentinel42.errors import SourceError, TemporarySourceError
from sentinel42.news.base import NewsSource
from sentinel42.news.normalize import dedupe

if TYPE_CHECKING:
    from sentinel42.domain import NewsItem
    from sentinel42.news.base import FeedState
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class NewsRefreshReport:
    """What one refresh did.

    Attributes:
        per_ticker: watchlist ticker -> headlines new this refresh (0 for every quiet ticker).
        headlines_new: stories stored for the first time.
        headlines_fetched: items the sources delivered (before deduplication).
        per_source: source name -> items it delivered.
        problems: one line per dropped entry group, failed feed or failed source.
    """

    as_of: datetime
    per_ticker: dict[str, int] = field(default_factory=dict)
    headlines_new: int = 0
    headlines_fetched: int = 0
    per_source: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    new_items: list[NewsItem] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (without the items themselves)."""
        return {
            "as_of": self.as_of.isoformat(),
            "headlines_new": self.headlines_new,
            "headlines_fetched": self.headlines_fetched,
            "per_ticker": dict(self.per_ticker),
            "per_source": dict(self.per_source),
            "problems": list(self.problems),
        }


def refresh_news(
    settings: Settings, sources: Sequence[NewsSource], store: Any, as_of: datetime
) -> NewsRefreshReport:
    """Fetch every source for the watchlist and store each story once.

    ``first_seen_at`` of a new story is ``as_of`` (when Sentinel42 first saw it), never earlier
    whatever an item says (a replayed headline is served only from its recorded
    ``first_seen_at`` or ``published_at`` + the latency, so ``as_of`` is never before that); a
    story seen again keeps its earliest ``first_seen_at``. Feeds' ETag/Last-Modified are stored
    after the items, so a refresh that fails to store them fetches the feeds in full again.

    Raises:
        TemporarySourceError: every source failed, and with retryable errors (so the flow's
            retry has a chance); otherwise failures are lines in ``problems``.
    """
    tickers = list(settings.tickers)
    report = NewsRefreshReport(as_of=as_of, per_ticker=dict.fromkeys(tickers, 0))
    items: list[NewsItem] = []
    feed_states: list[FeedState] = []
    failures: list[SourceError] = []
    for source in sources:
        try:
            batch = source.fetch(tickers, as_of)
        except SourceError as exc:  # logged with the other problems below
            report.problems.append(f"source {source.name}: {exc}")
            failures.append(exc)
            continue
        report.per_source[source.name] = len(batch.items)
        report.problems.extend(batch.problems)
        items.extend(batch.items)
        feed_states.extend(batch.feed_states)
    if sources and len(failures) == len(sources) and all(f.retryable for f in failures):
        raise TemporarySourceError(f"every news source failed: {failures[0]}") from failures[0]

    report.headlines_fetched = len(items)
    items = [_not_seen_before(item, as_of) for item in items]
    new_items = store.upsert_news(dedupe(items), seen_at=as_of)
    for state in feed_states:  # only now: a failed store must not turn the retry into a 304
        store.set_feed_state(state.url, state.etag, state.last_modified)
    report.new_items = list(new_items)
    report.headlines_new = len(new_items)
    for item in new_items:
        for ticker in item.tickers:
            if ticker in report.per_ticker:
                report.per_ticker[ticker] += 1
    for problem in report.problems:  # the one place a bad line or a failed feed is logged
        logger.warning("news: %s", problem)
    logger.info(
        "news refresh as of %s: %d fetched, %d new",
        as_of.isoformat(),
        report.headlines_fetched,
        report.headlines_new,
    )
    return report


def _not_seen_before(item: NewsItem, as_of: datetime) -> NewsItem:
    """The item as this refresh sees it: first seen at ``as_of`` at the earliest."""
    if item.first_seen_at is None or item.first_seen_at >= as_of:
        return item
    return replace(item, first_seen_at=as_of)
