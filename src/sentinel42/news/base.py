"""The news-source port: what every news adapter (RSS, NewsAPI, replay) delivers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from sentinel42.domain import NewsItem


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed's validators (ETag, Last-Modified) for the next conditional request."""

    url: str
    etag: str | None
    last_modified: str | None


@dataclass
class NewsBatch:
    """One fetch.

    Attributes:
        items: normalized headlines (UTC times, canonical URLs, watchlist tickers).
        problems: one human line per dropped entry group or failed feed, e.g.
            ``"feed X: 3 entries without a date dropped"``.
        feed_states: validators of the feeds fetched, to store only once ``items`` are stored
            (stored earlier, a failed batch's retry would get a 304 and lose its items).
    """

    items: list[NewsItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    feed_states: list[FeedState] = field(default_factory=list)


@runtime_checkable
class NewsSource(Protocol):
    """Where headlines come from. Implementations: RssNewsSource, NewsApiSource, replay."""

    name: str

    def fetch(self, tickers: Sequence[str], as_of: datetime) -> NewsBatch:
        """Headlines about ``tickers`` published at or before ``as_of``.

        Never raises for one bad feed or query (it becomes a line in ``problems``).

        Raises:
            TemporarySourceError: everything failed, and with retryable errors.
        """
        ...
