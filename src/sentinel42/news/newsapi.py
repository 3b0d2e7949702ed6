"""NewsAPI ``/v2/everything`` with newsapi-python: the only module importing it.

One query per watchlist ticker (symbol OR company names). Without a key the source is skipped
with one warning. Vendor errors become classified errors: ``rateLimited``, HTTP 429 and network
trouble are temporary (retry later); ``apiKeyInvalid`` and friends, HTTP 426 and bad parameters
are permanent. The free plan's daily request budget is spread over the UTC day, so the queries
are spaced out instead of all being spent by noon.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentinel42.errors import PermanentSourceError, SourceError, TemporarySourceError
from sentinel42.news.base import NewsBatch
from sentinel42.news.normalize import COMPANY_NAMES, make_item

if TYPE_CHECKING:
    import requests
    from pydantic import SecretStr

    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

SOURCE = "newsapi"
LOOKBACK = timedelta(days=2)
PAGE_SIZE = 100
TEMPORARY_CODES = frozenset({"rateLimited", "unexpectedError"})
KEY_CODES = frozenset({"apiKeyInvalid", "apiKeyMissing", "apiKeyDisabled", "apiKeyExhausted"})
_REMOVED = "[Removed]"
_warned_no_key: set[str] = set()  # one warning per process, not one per run


def classify(code: str | None, status: int | None, message: str = "") -> SourceError:
    """Turn a NewsAPI error (body ``code`` and/or HTTP status) into a retryable-or-not error."""
    what = f"NewsAPI {code or 'error'}" + (f" (HTTP {status})" if status else "")
    text = f"{what}: {message}" if message else what
    if code in TEMPORARY_CODES or status == 429 or (status is not None and status >= 500):
        return TemporarySourceError(text)
    return PermanentSourceError(text)


def build_query(ticker: str) -> str:
    """``AAPL OR "Apple" OR "iPhone"``: the symbol and the company's names."""
    names = [f'"{n}"' for n in COMPANY_NAMES.get(ticker, ()) if n != ticker]
    return " OR ".join([ticker, *names])


def allowed_requests(budget: int, as_of: datetime) -> int:
    """Requests that may have been spent by ``as_of`` on its UTC day: the budget pro rata."""
    day_start = as_of.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (as_of - day_start).total_seconds() / 86_400
    return min(budget, 1 + int(budget * elapsed))


def parse_everything(
    payload: dict[str, Any],
    *,
    watchlist: Sequence[str],
    ticker: str | None = None,
    as_of: datetime | None = None,
) -> NewsBatch:
    """Normalize an ``/v2/everything`` response; unusable articles are counted, not raised.

    Raises:
        SourceError: the payload is an error response (classified by its ``code``).
    """
    if payload.get("status") != "ok":
        raise classify(payload.get("code"), None, str(payload.get("message") or ""))
    batch = NewsBatch()
    dropped = {"no date": 0, "removed": 0, "no title or link": 0, "after as_of": 0}
    for article in payload.get("articles") or ():
        title = str(article.get("title") or "")
        if title.strip() == _REMOVED:
            dropped["removed"] += 1
            continue
        try:
            published = datetime.fromisoformat(str(article.get("publishedAt")))
            if published.tzinfo is None:
                published = published.replace(tzinfo=UTC)  # NewsAPI documents UTC
        except ValueError:
            dropped["no date"] += 1
            continue
        if as_of is not None and published > as_of:
            dropped["after as_of"] += 1
            continue
        source = (article.get("source") or {}).get("name") or "NewsAPI"
        item = make_item(
            url=str(article.get("url") or ""),
            title=title,
            published_at=published,
            source=str(source),
            summary=article.get("description") or "",
            origin=SOURCE,
            watchlist=watchlist,
            hinted=[],
        )
        if item is None:
            dropped["no title or link"] += 1
            continue
        # No hint from the query: NewsAPI matches anywhere in the article body, so an item
        # counts for a ticker only when its headline or description names the company.
        batch.items.append(item)
    for reason, n in dropped.items():
        if n:
            batch.problems.append(f"newsapi {ticker or ''}: {n} articles dropped ({reason})")
    return batch


@dataclass(frozen=True, slots=True)
class NewsApiConfig:
    """The NewsAPI adapter's settings (``SENTINEL42_NEWSAPI_KEY``, ``..._DAILY_REQUESTS``)."""

    key: SecretStr | None  # None: the source is skipped; its repr is masked
    daily_requests: int  # requests per UTC day, spread over the day

    @classmethod
    def from_settings(cls, settings: Settings) -> NewsApiConfig:
        return cls(key=settings.newsapi_key, daily_requests=settings.newsapi_daily_requests)


class NewsApiSource:
    """``/v2/everything`` per ticker, within the daily request budget.

    Args:
        config: the key and the daily budget (:class:`NewsApiConfig`), or the settings it is
            built from.
        store: optional; counts the requests of each UTC day across processes.
        session: optional ``requests.Session`` (tests point it at a local server).
    """

    name = SOURCE

    def __init__(
        self,
        config: NewsApiConfig | Settings,
        store: Any = None,
        session: requests.Session | None = None,
    ) -> None:
        self.config = (
            config if isinstance(config, NewsApiConfig) else NewsApiConfig.from_settings(config)
        )
        self.store = store
        self._session = session
        self._local_counts: dict[str, int] = {}

    def _spent(self, day: datetime) -> int:
        if self.store is not None:
            return int(self.store.count_requests(SOURCE, day.date()))
        return self._local_counts.get(day.date().isoformat(), 0)

    def _spend(self, day: datetime) -> None:
        if self.store is not None:
            self.store.add_requests(SOURCE, day.date(), 1)
        key = day.date().isoformat()
        self._local_counts[key] = self._local_counts.get(key, 0) + 1

    def fetch(self, tickers: Sequence[str], as_of: datetime) -> NewsBatch:
        """Query as many tickers as the budget allows now; see ``NewsSource.fetch``."""
        batch = NewsBatch()
        if self.config.key is None:
            if SOURCE not in _warned_no_key:
                _warned_no_key.add(SOURCE)
                logger.warning("NewsAPI skipped: no key (set SENTINEL42_NEWSAPI_KEY to enable it)")
            return batch
        import requests
        from newsapi import NewsApiClient
        from newsapi.newsapi_exception import NewsAPIException

        as_of = as_of.astimezone(UTC)
        spent = self._spent(as_of)
        allowed = allowed_requests(self.config.daily_requests, as_of)
        if spent >= allowed or not tickers:
            logger.info("newsapi: %d of %d requests used so far today; waiting", spent, allowed)
            return batch
        # Rotate: the n-th request of the day queries ticker n mod len(tickers), so every
        # ticker gets its turn even when the budget allows one query per run.
        start = spent % len(tickers)
        order = [*tickers[start:], *tickers[:start]][: allowed - spent]

        statuses: list[int] = []
        session = self._session or requests.Session()
        session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))
        client = NewsApiClient(api_key=self.config.key.get_secret_value(), session=session)
        errors: list[SourceError] = []
        try:
            for ticker in order:
                statuses.clear()
                self._spend(as_of)
                try:
                    payload = client.get_everything(
                        q=build_query(ticker),
                        from_param=(as_of - LOOKBACK).strftime("%Y-%m-%dT%H:%M:%S"),
                        to=as_of.strftime("%Y-%m-%dT%H:%M:%S"),
                        language="en",
                        sort_by="publishedAt",
                        page_size=PAGE_SIZE,
                    )
                    part = parse_everything(payload, watchlist=tickers, ticker=ticker, as_of=as_of)
                except NewsAPIException as exc:
                    body = exc.get_exception() if isinstance(exc.exception, dict) else {}
                    status = statuses[-1] if statuses else None
                    err = classify(body.get("code"), status, str(body.get("message") or ""))
                    errors.append(err)
                    batch.problems.append(f"newsapi {ticker}: {err}")
                    if body.get("code") in KEY_CODES:
                        break  # the same key fails for every ticker
                    continue
                except requests.exceptions.JSONDecodeError:
                    # An error page from a proxy or the CDN: only the status says what it was.
                    status = statuses[-1] if statuses else None
                    errors.append(classify(None, status, "response is not JSON"))
                    batch.problems.append(f"newsapi {ticker}: {errors[-1]}")
                    continue
                except requests.exceptions.RequestException as exc:
                    errors.append(TemporarySourceError(f"NewsAPI network error: {exc}"))
                    batch.problems.append(f"newsapi {ticker}: {errors[-1]}")
                    continue
                except SourceError as exc:
                    errors.append(exc)
                    batch.problems.append(f"newsapi {ticker}: {exc}")
                    continue
                batch.items.extend(part.items)
                batch.problems.extend(part.problems)
        finally:
            if self._session is None:
                session.close()
        if errors and len(errors) == len(order) and all(e.retryable for e in errors):
            raise TemporarySourceError(f"every NewsAPI query failed: {errors[0]}") from errors[0]
        return batch
