"""Live price source over yfinance: batched downloads, up to 100 tickers a call.

The only module that imports yfinance (lazily, inside methods). yfinance's ``download`` does
not raise for a failed ticker: it logs ``['AAPL', 'MSFT']: DNSError(...)`` on the ``yfinance``
logger and returns empty (all-NaN) columns. We read those log records to learn, per ticker,
whether the failure is worth retrying (rate limit, network) or not (bad symbol).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from sentinel42.domain import BAR_COLUMNS
from sentinel42.errors import PermanentSourceError, SourceError, TemporarySourceError
from sentinel42.market.base import DAILY, PriceBatch, empty_bars, interval_minutes

logger = logging.getLogger(__name__)

# Tickers per yf.download call: a watchlist is one call, a 500-ticker universe five.
CHUNK_SIZE = 100
# Yahoo serves intraday (< 1h) bars for the last 60 days only; stay a day inside the edge so a
# request is never refused for asking a few minutes too early.
INTRADAY_WINDOW = timedelta(days=59)
_FAILED_LINE = re.compile(r"^\[(?P<tickers>[^\]]*)\]:\s*(?P<error>.*)$", re.DOTALL)
_TEMPORARY = re.compile(
    r"RateLimit|Too Many Requests|429|timed? ?out|Timeout|Connection|DNS|resolve host|curl|"
    r"Temporar|5\d\d Server Error|Service Unavailable|SSL",
    re.IGNORECASE,
)
_YF_COLUMNS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}


class _FailureLog(logging.Handler):
    """Collects yfinance's per-ticker failure lines during one download."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.errors: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        match = _FAILED_LINE.match(record.getMessage().strip())
        if not match:
            return
        for raw in match.group("tickers").split(","):
            ticker = raw.strip().strip("'\"").upper()
            if ticker:
                self.errors[ticker] = match.group("error").strip()


@contextmanager
def _capture_failures() -> Iterator[_FailureLog]:
    handler = _FailureLog()
    yf_logger = logging.getLogger("yfinance")
    yf_logger.addHandler(handler)
    try:
        yield handler
    finally:
        yf_logger.removeHandler(handler)


def classify(message: str) -> SourceError:
    """Translate a yfinance failure message into a retryable or permanent error."""
    if _TEMPORARY.search(message):
        return TemporarySourceError(f"yfinance: {message}")
    return PermanentSourceError(f"yfinance: {message}")


def _is_rate_limit_or_network(exc: BaseException) -> bool:
    name = type(exc).__name__
    return (
        name == "YFRateLimitError"
        or isinstance(exc, (ConnectionError, TimeoutError, OSError))
        or bool(_TEMPORARY.search(f"{name} {exc}"))
    )


def split_download(data: pd.DataFrame, tickers: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Split a ``yf.download`` frame (MultiIndex columns, either order) into per-ticker frames.

    Columns ``(Price, Ticker)`` (``group_by="column"``, the default) and ``(Ticker, Price)``
    (``group_by="ticker"``) are both accepted; a single-level frame is taken as the only ticker's.
    Rows that are all NaN for a ticker (yfinance's union index padding) are dropped.
    """
    out: dict[str, pd.DataFrame] = {}
    if data is None or (data.empty and not isinstance(data.columns, pd.MultiIndex)):
        return out
    cols = data.columns
    for ticker in tickers:
        if isinstance(cols, pd.MultiIndex):
            level = next(
                (i for i in range(cols.nlevels) if ticker in cols.get_level_values(i)), None
            )
            if level is None:
                continue
            sub = data.xs(ticker, axis=1, level=level)
        elif len(tickers) == 1:
            sub = data
        else:
            continue
        sub = sub.rename(columns=lambda c: _YF_COLUMNS.get(str(c), str(c).lower()))
        if not all(c in sub.columns for c in BAR_COLUMNS):
            continue
        sub = sub[list(BAR_COLUMNS)].astype("float64").dropna(how="all")
        out[ticker] = sub
    return out


def _to_utc(frame: pd.DataFrame, *, daily: bool) -> pd.DataFrame:
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None:
        # yfinance strips the timezone of daily bars (ignore_tz); they are New York dates.
        if not daily:
            raise PermanentSourceError("yfinance returned intraday bars without a timezone")
        index = index.tz_localize("America/New_York")
    out = frame.copy()
    out.index = index.tz_convert(UTC).as_unit("ns").rename("ts")
    return out


class YahooPriceSource:
    """yfinance adapter.

    Args:
        prepost: ask for pre- and post-market bars too.
        download: the function doing the request (default ``yfinance.download``); tests pass
            one that returns recorded frames or raises.
        max_attempts: tries per batch for rate limits and network errors, before raising
            :class:`TemporarySourceError` to let the flow's Prefect retry take over.
        backoff_seconds: first wait; doubled after each failed try.
        sleep: how to wait (tests pass a recorder).
        chunk_size: tickers per download call; a longer list is fetched in several calls.
    """

    name = "yfinance"

    def __init__(
        self,
        *,
        prepost: bool = False,
        download: Callable[..., pd.DataFrame] | None = None,
        max_attempts: int = 2,
        backoff_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.prepost = prepost
        self.chunk_size = max(1, chunk_size)
        self._download = download
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep

    def _downloader(self) -> Callable[..., pd.DataFrame]:
        if self._download is None:
            import yfinance

            self._download = yfinance.download
        return self._download

    def _chunked(self, tickers: Sequence[str], *, daily: bool, **kwargs: Any) -> PriceBatch:
        """:meth:`_batch` per ``chunk_size`` tickers, merged into one batch."""
        out = PriceBatch()
        for i in range(0, len(tickers), self.chunk_size):
            part = self._batch(tickers[i : i + self.chunk_size], daily=daily, **kwargs)
            out.frames.update(part.frames)
            out.errors.update(part.errors)
            out.rejected.update(part.rejected)
        return out

    def _batch(self, tickers: Sequence[str], *, daily: bool, **kwargs: Any) -> PriceBatch:
        """Download ``tickers`` in one call; retry the retryable failures with backoff."""
        batch = PriceBatch()
        pending = list(tickers)
        wait = self.backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            retry: list[str] = []
            try:
                with _capture_failures() as failures:
                    data = self._downloader()(
                        pending if len(pending) > 1 else pending[0],
                        group_by="column",
                        auto_adjust=True,
                        actions=False,
                        progress=False,
                        threads=True,
                        multi_level_index=True,
                        **kwargs,
                    )
            except Exception as exc:
                if not _is_rate_limit_or_network(exc):
                    raise PermanentSourceError(f"yfinance download failed: {exc!r}") from exc
                logger.warning("yfinance: %r (attempt %d/%d)", exc, attempt, self.max_attempts)
                if attempt == self.max_attempts:
                    for t in pending:
                        batch.errors[t] = TemporarySourceError(f"yfinance: {exc!r}")
                    break
                self._sleep(wait)
                wait *= 2
                continue
            frames = split_download(data, pending)
            for ticker in pending:
                frame = frames.get(ticker)
                if frame is not None and len(frame):
                    batch.frames[ticker] = _to_utc(frame, daily=daily)
                    batch.errors.pop(ticker, None)
                    continue
                message = failures.errors.get(ticker)
                if message is None:
                    # No failure logged and no rows: nothing in the window (e.g. a holiday).
                    batch.frames[ticker] = empty_bars()
                    continue
                error = classify(message)
                batch.errors[ticker] = error
                if error.retryable:
                    retry.append(ticker)
            if not retry or attempt == self.max_attempts:
                break
            logger.warning(
                "yfinance: %d ticker(s) failed with a retryable error; retry %d/%d in %.0f s",
                len(retry),
                attempt,
                self.max_attempts - 1,
                wait,
            )
            self._sleep(wait)
            wait *= 2
            pending = retry
        for ticker, err in batch.errors.items():
            logger.warning("%s: no data from yfinance: %s", ticker, err)
        return batch

    def fetch_intraday(
        self,
        tickers: Sequence[str],
        interval: str,
        since: Mapping[str, datetime | None],
        as_of: datetime,
    ) -> PriceBatch:
        """Downloads from the oldest ``since`` (one bar overlap) within the 60-day window, one
        per ``chunk_size`` tickers."""
        if not tickers:
            return PriceBatch()
        earliest = as_of - INTRADAY_WINDOW
        starts = [since.get(t) for t in tickers]
        known = [s for s in starts if s is not None]
        start = earliest if len(known) < len(starts) else min(known)
        start = max(start - timedelta(minutes=interval_minutes(interval)), earliest)
        logger.info(
            "yfinance: %d ticker(s), %s bars from %s to %s", len(tickers), interval, start, as_of
        )
        return self._chunked(
            list(tickers),
            daily=False,
            start=start,
            end=as_of + timedelta(minutes=1),
            interval=interval,
            prepost=self.prepost,
        )

    def fetch_daily(self, tickers: Sequence[str], since: datetime, as_of: datetime) -> PriceBatch:
        """Downloads of daily bars from ``since`` (New York dates) to ``as_of``, one per
        ``chunk_size`` tickers."""
        if not tickers:
            return PriceBatch()
        return self._chunked(
            list(tickers),
            daily=True,
            start=since.astimezone(UTC).date().isoformat(),
            end=(as_of.astimezone(UTC) + timedelta(days=1)).date().isoformat(),
            interval=DAILY,
            prepost=False,
        )

    def data_end(self) -> datetime | None:
        """Live data has no end."""
        return None
