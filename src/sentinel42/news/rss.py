"""RSS/Atom headlines with feedparser: the only module importing it.

Feeds are fetched with httpx (timeout, size cap, conditional requests with ETag and
Last-Modified, so an unchanged feed costs one empty 304), then the bytes are parsed. feedparser
never raises: a malformed feed (``bozo``), a wrong declared encoding or a document that is not a
feed at all keeps what is usable, and every dropped entry or failed feed becomes one line in
:attr:`NewsBatch.problems`. One feed failing never stops the others.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from sentinel42.errors import PermanentSourceError, SourceError, TemporarySourceError
from sentinel42.news.base import FeedState, NewsBatch
from sentinel42.news.normalize import make_item

if TYPE_CHECKING:
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

USER_AGENT = "Sentinel42/0.1 (+self-hosted news reader)"
_SYMBOL = re.compile(r"^[A-Z]{1,5}([.-][A-Z]{1,2})?$")
# Publisher tags on a round-up ("Wall Street Week Ahead" tagged with a dozen symbols) say
# little about any one of them; a few tags do name what the item is about.
MAX_SYMBOL_TAGS = 3


@dataclass(frozen=True, slots=True)
class FeedRequest:
    """One feed to fetch: its URL and the watchlist symbol it is about (None: a market feed)."""

    url: str
    ticker: str | None = None


@dataclass(frozen=True, slots=True)
class FetchedFeed:
    """The outcome of one conditional GET: ``body`` is None when the feed is unchanged (304)."""

    body: bytes | None
    etag: str | None
    last_modified: str | None
    content_type: str | None


def fetch_feed(
    client: httpx.Client,
    url: str,
    *,
    max_bytes: int,
    etag: str | None = None,
    last_modified: str | None = None,
) -> FetchedFeed:
    """GET one feed, conditionally, reading at most ``max_bytes``.

    Raises:
        TemporarySourceError: timeout, connection error, HTTP 429 or 5xx.
        PermanentSourceError: other HTTP errors, or a body larger than ``max_bytes``.
    """
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with client.stream("GET", url, headers=headers, follow_redirects=True) as response:
            if response.status_code == 304:
                return FetchedFeed(None, etag, last_modified, None)
            if response.status_code == 429 or response.status_code >= 500:
                raise TemporarySourceError(f"HTTP {response.status_code}")
            if response.status_code >= 400:
                raise PermanentSourceError(f"HTTP {response.status_code}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise PermanentSourceError(f"body of {declared} bytes exceeds {max_bytes}")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:  # servers may omit or understate Content-Length
                    raise PermanentSourceError(f"body exceeds {max_bytes} bytes")
                chunks.append(chunk)
            return FetchedFeed(
                b"".join(chunks),
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
                response.headers.get("Content-Type"),
            )
    except httpx.TimeoutException as exc:
        raise TemporarySourceError(f"timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise TemporarySourceError(f"network error ({exc})") from exc


def _entry_time(entry: Any) -> datetime | None:
    # feedparser converts every date format it knows (RFC 822 with or without seconds,
    # ISO 8601, mixed offsets) to a UTC struct_time.
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)


def _symbol_tags(entry: Any) -> list[str]:
    terms = [str(t.get("term") or "").strip() for t in entry.get("tags") or ()]
    symbols = [t for t in terms if _SYMBOL.match(t)]
    return symbols if len(symbols) <= MAX_SYMBOL_TAGS else []


def parse_feed(
    body: bytes,
    *,
    url: str,
    watchlist: Sequence[str],
    ticker: str | None = None,
    content_type: str | None = None,
) -> NewsBatch:
    """Parse feed bytes into normalized items; what cannot be used is reported, not raised."""
    import feedparser

    headers = {"content-type": content_type} if content_type else {}
    parsed = feedparser.parse(body, response_headers=headers)
    label = f"feed {url}"
    batch = NewsBatch()
    if not parsed.get("version") and not parsed.entries:
        head = body[:512].decode("utf-8", "replace")
        kind = "a sitemap <urlset>" if "<urlset" in head else "not RSS or Atom"
        reason = f" ({parsed.get('bozo_exception')})" if parsed.get("bozo") else ""
        batch.problems.append(f"{label}: {kind}, no feed entries{reason}")
        return batch
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        batch.problems.append(
            f"{label}: malformed ({type(exc).__name__}: {exc}); kept what parsed "
            f"({len(parsed.entries)} entries)"
        )
    feed_title = str(parsed.feed.get("title") or "") or (urlsplit(url).hostname or url)
    no_date = no_link = 0
    for entry in parsed.entries:
        published = _entry_time(entry)
        if published is None:
            no_date += 1
            continue
        source = entry.get("source") or {}
        hinted = [ticker] if ticker else []
        item = make_item(
            url=str(entry.get("link") or ""),
            title=str(entry.get("title") or ""),
            published_at=published,
            source=str(source.get("title") or feed_title),
            summary=str(entry.get("summary") or ""),
            origin="rss",
            watchlist=watchlist,
            hinted=[*hinted, *_symbol_tags(entry)],
        )
        if item is None:
            no_link += 1
            continue
        batch.items.append(item)
    if no_date:
        batch.problems.append(f"{label}: {no_date} entries without a date dropped")
    if no_link:
        batch.problems.append(f"{label}: {no_link} entries without a title or link dropped")
    return batch


@dataclass(frozen=True, slots=True)
class RssConfig:
    """The RSS adapter's settings (``SENTINEL42_RSS_*``, ``SENTINEL42_HTTP_TIMEOUT_SECONDS``,
    ``SENTINEL42_FEED_MAX_BYTES``)."""

    ticker_feeds: tuple[str, ...]  # URL templates with ``{ticker}``
    market_feeds: tuple[str, ...]
    timeout_seconds: float
    max_bytes: int  # a larger feed body is refused

    @classmethod
    def from_settings(cls, settings: Settings) -> RssConfig:
        return cls(
            ticker_feeds=tuple(settings.rss_ticker_feeds),
            market_feeds=tuple(settings.rss_market_feeds),
            timeout_seconds=settings.http_timeout_seconds,
            max_bytes=settings.feed_max_bytes,
        )


class RssNewsSource:
    """Per-ticker feed templates plus market feeds.

    Args:
        config: the feeds, timeout and size limit (:class:`RssConfig`), or the settings it is
            built from.
        store: optional; gives each feed's stored ETag/Last-Modified for a conditional
            request (the new ones come back in :attr:`NewsBatch.feed_states`).
        client: optional httpx client (tests point it at a local server).
    """

    name = "rss"

    def __init__(
        self, config: RssConfig | Settings, store: Any = None, client: httpx.Client | None = None
    ) -> None:
        self.config = config if isinstance(config, RssConfig) else RssConfig.from_settings(config)
        self.store = store
        self._client = client

    def requests_for(self, tickers: Sequence[str]) -> list[FeedRequest]:
        """Every feed to fetch for ``tickers``: templates filled in, then market feeds."""
        out = [
            FeedRequest(template.replace("{ticker}", quote(t, safe="")), t)
            for t in tickers
            for template in self.config.ticker_feeds
        ]
        out += [FeedRequest(url) for url in self.config.market_feeds]
        return out

    def fetch(self, tickers: Sequence[str], as_of: datetime) -> NewsBatch:
        """Fetch and parse every feed; see :class:`~sentinel42.news.base.NewsSource`."""
        client = self._client or httpx.Client(timeout=self.config.timeout_seconds)
        batch = NewsBatch()
        errors: list[SourceError] = []
        requests = self.requests_for(tickers)
        try:
            for request in requests:
                try:
                    feed = self._fetch_one(client, request, tickers)
                except SourceError as exc:  # logged once, with the batch's problems
                    batch.problems.append(f"feed {request.url}: {exc}")
                    errors.append(exc)
                    continue
                batch.items.extend(feed.items)
                batch.problems.extend(feed.problems)
                batch.feed_states.extend(feed.feed_states)
        finally:
            if self._client is None:
                client.close()
        if requests and len(errors) == len(requests) and all(e.retryable for e in errors):
            raise TemporarySourceError(
                f"all {len(requests)} RSS feeds failed, e.g. {batch.problems[0]}"
            ) from errors[0]
        logger.info(
            "rss: %d items from %d feeds (%d failed) as of %s",
            len(batch.items),
            len(requests),
            len(errors),
            as_of.isoformat(),
        )
        return batch

    def _fetch_one(
        self, client: httpx.Client, request: FeedRequest, tickers: Sequence[str]
    ) -> NewsBatch:
        etag, modified = (None, None)
        if self.store is not None:
            etag, modified = self.store.get_feed_state(request.url)
        fetched = fetch_feed(
            client,
            request.url,
            max_bytes=self.config.max_bytes,
            etag=etag,
            last_modified=modified,
        )
        if fetched.body is None:
            logger.debug("feed %s unchanged (304)", request.url)
            return NewsBatch()
        feed = parse_feed(
            fetched.body,
            url=request.url,
            watchlist=tickers,
            ticker=request.ticker,
            content_type=fetched.content_type,
        )
        if fetched.etag or fetched.last_modified:
            # Stored by refresh_news after the items are (see NewsBatch.feed_states).
            feed.feed_states.append(FeedState(request.url, fetched.etag, fetched.last_modified))
        return feed
