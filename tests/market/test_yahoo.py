"""The live adapter against frames of yf.download's real shapes (no network)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sentinel42.errors import PermanentSourceError, TemporarySourceError
from sentinel42.market.yahoo import YahooPriceSource

AS_OF = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
YF_LOG = logging.getLogger("yfinance")
# The line yfinance 1.7 logged here with no network (recorded): one line for all failed tickers.
DNS_LINE = (
    "{tickers}: DNSError('Failed to perform, curl: (6) Could not resolve host: "
    "query2.finance.yahoo.com. See https://curl.se/libcurl/c/libcurl-errors.html first for more "
    "details.')"
)


class YFRateLimitError(Exception):
    """Same name as yfinance's; the adapter recognises it by name, as yfinance raises it."""


def download_frame(data: dict[str, pd.DataFrame | None], tickers: list[str]) -> pd.DataFrame:
    """The shape of yf.download(..., group_by='column'): (Price, Ticker) columns, NaN padding."""
    index = pd.DatetimeIndex([], tz="America/New_York")
    for frame in data.values():
        if frame is not None:
            index = index.union(frame.index)
    cols = pd.MultiIndex.from_product(
        [["Adj Close", "Close", "High", "Low", "Open", "Volume"], sorted(tickers)],
        names=["Price", "Ticker"],
    )
    out = pd.DataFrame(np.nan, index=index, columns=cols)
    for t, frame in data.items():
        if frame is not None:
            for c in ("Close", "High", "Low", "Open", "Volume"):
                out.loc[frame.index, (c, t)] = frame[c].to_numpy()
            out.loc[frame.index, ("Adj Close", t)] = frame["Close"].to_numpy()
    return out


def yf_bars(n: int = 3, base: float = 100.0) -> pd.DataFrame:
    index = pd.date_range("2026-11-24 09:30", periods=n, freq="15min", tz="America/New_York")
    close = base + np.arange(n)
    return pd.DataFrame(
        {"Open": close, "High": close + 1, "Low": close - 1, "Close": close, "Volume": 1000.0},
        index=index,
    )


class FakeDownload:
    """Plays back recorded-shape responses, one per call, and records the calls."""

    def __init__(self, responses: list[Any]) -> None:
        self.responses = responses
        self.calls: list[dict[str, Any]] = []

    def __call__(self, tickers: Any, **kwargs: Any) -> pd.DataFrame:
        self.calls.append({"tickers": tickers, **kwargs})
        response = self.responses[len(self.calls) - 1]
        if isinstance(response, BaseException):
            raise response
        return response(tickers if isinstance(tickers, list) else [tickers])


def source(fake: FakeDownload, sleeps: list[float] | None = None) -> YahooPriceSource:
    record = sleeps if sleeps is not None else []
    return YahooPriceSource(download=fake, max_attempts=3, backoff_seconds=2.0, sleep=record.append)


def test_whole_watchlist_is_one_batched_download_normalized_to_utc() -> None:
    fake = FakeDownload([lambda ts: download_frame({"AAPL": yf_bars(), "MSFT": yf_bars(2)}, ts)])
    since = {"AAPL": datetime(2026, 11, 24, 14, 30, tzinfo=UTC), "MSFT": None}
    batch = source(fake).fetch_intraday(["AAPL", "MSFT"], "15m", since, AS_OF)
    assert len(fake.calls) == 1 and fake.calls[0]["tickers"] == ["AAPL", "MSFT"]
    assert fake.calls[0]["interval"] == "15m" and fake.calls[0]["prepost"] is False
    assert fake.calls[0]["start"] == datetime(2026, 9, 26, 16, 0, tzinfo=UTC)  # 59-day window
    assert not batch.errors
    aapl = batch.frames["AAPL"]
    assert aapl.index[0] == pd.Timestamp("2026-11-24 14:30", tz=UTC)
    assert list(aapl.columns) == ["open", "high", "low", "close", "volume"]
    assert len(batch.frames["MSFT"]) == 2  # the union index padding is not a bar


def test_incremental_download_starts_one_bar_before_the_oldest_newest_bar() -> None:
    fake = FakeDownload([lambda ts: download_frame({"AAPL": yf_bars()}, ts)])
    since = {"AAPL": datetime(2026, 11, 24, 15, 0, tzinfo=UTC)}
    source(fake).fetch_intraday(["AAPL"], "15m", since, AS_OF)
    assert fake.calls[0]["start"] == datetime(2026, 11, 24, 14, 45, tzinfo=UTC)
    assert fake.calls[0]["tickers"] == "AAPL"


def test_bad_symbol_fails_alone_and_is_not_retried() -> None:
    def respond(ts: list[str]) -> pd.DataFrame:
        YF_LOG.error("['ZZZZ']: YFTzMissingError('possibly delisted; no timezone found')")
        return download_frame({"AAPL": yf_bars(), "ZZZZ": None}, ts)

    sleeps: list[float] = []
    fake = FakeDownload([respond])
    batch = source(fake, sleeps).fetch_intraday(["AAPL", "ZZZZ"], "15m", {}, AS_OF)
    assert len(fake.calls) == 1 and sleeps == []
    assert isinstance(batch.errors["ZZZZ"], PermanentSourceError)
    assert "delisted" in str(batch.errors["ZZZZ"])
    assert len(batch.frames["AAPL"]) == 3


def test_rate_limited_ticker_is_retried_with_backoff_then_succeeds() -> None:
    def limited(ts: list[str]) -> pd.DataFrame:
        YF_LOG.error("['MSFT']: YFRateLimitError('Too Many Requests. Rate limited.')")
        return download_frame({"AAPL": yf_bars(), "MSFT": None}, ts)

    sleeps: list[float] = []
    fake = FakeDownload([limited, lambda ts: download_frame({"MSFT": yf_bars(2)}, ts)])
    batch = source(fake, sleeps).fetch_intraday(["AAPL", "MSFT"], "15m", {}, AS_OF)
    assert [c["tickers"] for c in fake.calls] == [["AAPL", "MSFT"], "MSFT"]
    assert sleeps == [2.0]
    assert not batch.errors and len(batch.frames["MSFT"]) == 2


def test_network_down_gives_retryable_errors_after_the_last_attempt() -> None:
    def offline(ts: list[str]) -> pd.DataFrame:
        YF_LOG.error("\n2 Failed downloads:")
        YF_LOG.error(DNS_LINE.format(tickers="['MSFT', 'AAPL']"))
        return download_frame({"AAPL": None, "MSFT": None}, ts)

    sleeps: list[float] = []
    fake = FakeDownload([offline, offline, offline])
    batch = source(fake, sleeps).fetch_intraday(["AAPL", "MSFT"], "15m", {}, AS_OF)
    assert len(fake.calls) == 3 and sleeps == [2.0, 4.0]
    assert all(isinstance(e, TemporarySourceError) for e in batch.errors.values())
    assert set(batch.errors) == {"AAPL", "MSFT"}


def test_raised_rate_limit_error_is_retried_and_reported_as_temporary() -> None:
    sleeps: list[float] = []
    fake = FakeDownload([YFRateLimitError("Too Many Requests")] * 3)
    batch = source(fake, sleeps).fetch_intraday(["AAPL"], "15m", {}, AS_OF)
    assert len(fake.calls) == 3 and sleeps == [2.0, 4.0]
    assert batch.errors["AAPL"].retryable


def test_empty_frame_without_a_failure_is_no_new_data_not_an_error() -> None:
    fake = FakeDownload([lambda ts: download_frame({"AAPL": None}, ts)])
    batch = source(fake).fetch_intraday(["AAPL"], "15m", {}, AS_OF)
    assert not batch.errors and batch.frames["AAPL"].empty


def test_unexpected_exception_is_permanent() -> None:
    fake = FakeDownload([KeyError("chart")])
    with pytest.raises(PermanentSourceError):
        source(fake).fetch_intraday(["AAPL"], "15m", {}, AS_OF)


def test_daily_bars_with_naive_dates_become_new_york_midnight() -> None:
    daily = yf_bars(2)
    daily.index = pd.DatetimeIndex(["2026-11-23", "2026-11-24"])
    fake = FakeDownload([lambda ts: download_frame_naive(daily, ts)])
    batch = source(fake).fetch_daily(["AAPL"], datetime(2026, 11, 1, tzinfo=UTC), AS_OF)
    assert fake.calls[0]["interval"] == "1d"
    assert batch.frames["AAPL"].index[0] == pd.Timestamp("2026-11-23 05:00", tz=UTC)


def download_frame_naive(frame: pd.DataFrame, tickers: list[str]) -> pd.DataFrame:
    cols = pd.MultiIndex.from_product(
        [["Close", "High", "Low", "Open", "Volume"], tickers], names=["Price", "Ticker"]
    )
    return pd.DataFrame(
        frame[["Close", "High", "Low", "Open", "Volume"]].to_numpy(),
        index=frame.index,
        columns=cols,
    )
