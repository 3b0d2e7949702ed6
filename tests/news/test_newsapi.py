from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
import requests

from sentinel42.errors import PermanentSourceError, SourceError, TemporarySourceError
from sentinel42.news import newsapi
from sentinel42.news.newsapi import NewsApiSource, allowed_requests, build_query, parse_everything
from sentinel42.settings import load_settings
from tests.news.conftest import shared_dir

WATCH = ["AAPL", "MSFT", "NVDA", "AMZN", "SPY"]
NOON = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
OK_BODY = {
    "status": "ok",
    "totalResults": 2,
    "articles": [
        {
            "source": {"id": None, "name": "Reuters"},
            "title": "Apple beats profit forecasts",
            "description": "iPhone demand",
            "url": "https://r.example/a?utm_source=newsapi",
            "publishedAt": "2026-03-09T10:00:00Z",
        },
        {
            "source": {"id": None, "name": "X"},
            "title": "[Removed]",
            "description": None,
            "url": "https://removed.com",
            "publishedAt": "2026-03-09T10:00:00Z",
        },
    ],
}


class LocalSession(requests.Session):
    """A real requests session whose newsapi.org traffic goes to the local test server."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        return super().request(
            method, url.replace("https://newsapi.org", self.base), *args, **kwargs
        )


def _source(tmp_path, httpserver, store=None, budget=100):
    settings = load_settings(
        data_dir=tmp_path, tickers=WATCH, newsapi_key="k-123", newsapi_daily_requests=budget
    )
    return NewsApiSource(settings, store=store, session=LocalSession(httpserver.url_for("/")))


def test_recorded_everything_response_normalizes():
    path = shared_dir("newsapi") / "everything_2023-06-23_2023-07-22_page1.json"
    payload = json.loads(path.read_text(encoding="utf-8"))
    batch = parse_everything(payload, watchlist=WATCH)
    assert 90 <= len(batch.items) <= 100
    assert all(i.published_at.tzinfo is not None and i.origin == "newsapi" for i in batch.items)
    assert any("MSFT" in i.tickers or "NVDA" in i.tickers for i in batch.items)


def test_recorded_error_response_is_permanent():
    path = shared_dir("newsapi") / "error_maximumResultsReached.json"
    with pytest.raises(PermanentSourceError, match="maximumResultsReached"):
        parse_everything(json.loads(path.read_text(encoding="utf-8")), watchlist=WATCH)


def test_query_names_symbol_and_company():
    assert build_query("AAPL") == 'AAPL OR "Apple" OR "iPhone"'
    assert build_query("ZZZZ") == "ZZZZ"


def test_fetch_queries_each_ticker_and_drops_removed(httpserver, tmp_path):
    httpserver.expect_request("/v2/everything").respond_with_json(OK_BODY)
    batch = _source(tmp_path, httpserver).fetch(["AAPL", "MSFT"], NOON)
    assert len(httpserver.log) == 2
    sent = httpserver.log[0][0]
    assert sent.args["q"] == build_query("AAPL")
    assert sent.headers["Authorization"] == "k-123"
    assert [i.title for i in batch.items] == ["Apple beats profit forecasts"] * 2
    assert batch.items[0].url == "https://r.example/a"
    assert any("removed" in p for p in batch.problems)


def test_without_key_the_source_is_skipped_with_one_warning(tmp_path, caplog):
    newsapi._warned_no_key.clear()
    source = NewsApiSource(load_settings(data_dir=tmp_path, tickers=WATCH))
    with caplog.at_level(logging.WARNING):
        assert source.fetch(WATCH, NOON).items == []
        assert source.fetch(WATCH, NOON).items == []
    assert sum("no key" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, {"status": "error", "code": "rateLimited", "message": "slow"}, TemporarySourceError),
        (401, {"status": "error", "code": "apiKeyInvalid", "message": "bad"}, PermanentSourceError),
        (
            426,
            {"status": "error", "code": "parameterInvalid", "message": "old"},
            PermanentSourceError,
        ),
        (500, {"status": "error", "code": "unexpectedError", "message": "x"}, TemporarySourceError),
    ],
)
def test_api_errors_are_classified(httpserver, tmp_path, status, body, error):
    httpserver.expect_request("/v2/everything").respond_with_json(body, status=status)
    source = _source(tmp_path, httpserver)
    if error is TemporarySourceError:
        with pytest.raises(TemporarySourceError):
            source.fetch(["AAPL"], NOON)
    else:
        batch = source.fetch(["AAPL"], NOON)
        assert batch.items == [] and body["code"] in batch.problems[0]


def test_non_json_429_is_temporary_by_status(httpserver, tmp_path):
    httpserver.expect_request("/v2/everything").respond_with_data("<html>429</html>", status=429)
    with pytest.raises(TemporarySourceError, match="429"):
        _source(tmp_path, httpserver).fetch(["AAPL"], NOON)


def test_invalid_key_stops_querying_other_tickers(httpserver, tmp_path):
    httpserver.expect_request("/v2/everything").respond_with_json(
        {"status": "error", "code": "apiKeyInvalid", "message": "bad"}, status=401
    )
    _source(tmp_path, httpserver).fetch(WATCH, NOON)
    assert len(httpserver.log) == 1


def test_budget_is_spread_over_the_day(httpserver, tmp_path, store):
    assert allowed_requests(100, datetime(2026, 3, 9, 0, 0, tzinfo=UTC)) == 1
    assert allowed_requests(100, NOON) == 51
    assert allowed_requests(100, datetime(2026, 3, 9, 23, 59, tzinfo=UTC)) == 100
    httpserver.expect_request("/v2/everything").respond_with_json(OK_BODY)
    source = _source(tmp_path, httpserver, store=store, budget=8)
    early = datetime(2026, 3, 9, 3, 0, tzinfo=UTC)  # 1/8 of the day: 1 + 1 = 2 requests
    source.fetch(WATCH, early)
    source.fetch(WATCH, early)  # budget spent until later in the day
    assert len(httpserver.log) == 2
    assert store.count_requests("newsapi", early.date()) == 2
    source.fetch(WATCH, datetime(2026, 3, 9, 6, 0, tzinfo=UTC))  # 1 + 2 = 3 allowed by now
    queried = [entry[0].args["q"].split()[0] for entry in httpserver.log]
    assert queried == ["AAPL", "MSFT", "NVDA"]  # rotation continues where it stopped


def test_classify_defaults():
    assert isinstance(newsapi.classify("rateLimited", None), TemporarySourceError)
    assert isinstance(newsapi.classify(None, 426), PermanentSourceError)
    assert isinstance(newsapi.classify(None, 429), SourceError)
