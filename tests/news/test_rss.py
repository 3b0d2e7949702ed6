from __future__ import annotations

import time

import httpx
import pytest
from werkzeug import Response

from sentinel42.errors import PermanentSourceError, TemporarySourceError
from sentinel42.news.rss import RssNewsSource, fetch_feed, parse_feed
from sentinel42.settings import load_settings
from tests.news.conftest import AS_OF, shared_dir

WATCH = ["AAPL", "MSFT", "NVDA", "AMZN", "SPY"]

FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Test Wire</title>
<item><title>Apple beats profit forecasts</title>
<link>https://wire.example/a?utm_source=rss</link>
<pubDate>Sun, 08 Mar 2026 07:23:46 -0400</pubDate>
<description>iPhone sales rise</description></item>
<item><title>Undated item</title><link>https://wire.example/b</link></item>
<item><title>Microsoft cuts jobs</title><link>https://wire.example/c</link>
<pubDate>Sun, 08 Mar 2026 13:00 GMT</pubDate></item>
</channel></rss>"""


def _settings(tmp_path, ticker_feeds, market_feeds=(), **kw):
    return load_settings(
        data_dir=tmp_path,
        tickers=WATCH,
        rss_ticker_feeds=list(ticker_feeds),
        rss_market_feeds=list(market_feeds),
        **kw,
    )


def test_every_recorded_feed_parses_or_reports_what_it_dropped():
    files = sorted(shared_dir("rss").glob("*.xml"))
    assert files
    for path in files:
        batch = parse_feed(path.read_bytes(), url=path.name, watchlist=WATCH)
        assert batch.items or batch.problems, path.name
        for item in batch.items:
            assert item.published_at.utcoffset().total_seconds() == 0
            assert item.title and item.url.startswith("http")
            assert "utm_" not in item.url and "source=feed" not in item.url


def test_sitemap_is_reported_as_not_a_feed():
    path = shared_dir("rss") / "bloomberg_news_sitemap_2026-03-15.xml"
    batch = parse_feed(path.read_bytes(), url="bb", watchlist=WATCH)
    assert batch.items == []
    assert "sitemap" in batch.problems[0]


def test_feed_with_wrong_declared_encoding_keeps_its_entries():
    path = shared_dir("rss") / "yahoo_news_topstories_2021-10-03.xml"
    batch = parse_feed(path.read_bytes(), url="yahoo", watchlist=WATCH)
    assert len(batch.items) == 50
    assert any("malformed" in p for p in batch.problems)
    assert not any("\ufffd" in i.title for i in batch.items)  # cp1252 quotes decoded


def test_mixed_offsets_become_utc_and_symbol_feed_tags_its_ticker():
    path = shared_dir("rss") / "seekingalpha_symbol_AAPL_2026-03-08.xml"
    batch = parse_feed(path.read_bytes(), url="sa", watchlist=WATCH, ticker="AAPL")
    assert len(batch.items) == 20
    first = batch.items[0]
    assert first.published_at.isoformat() == "2026-03-08T11:23:46+00:00"  # -0400 in the feed
    assert all("AAPL" in i.tickers for i in batch.items)


def test_pubdate_without_seconds_parses():
    path = shared_dir("rss") / "cnbc_finance_2019-07-29.xml"
    batch = parse_feed(path.read_bytes(), url="cnbc", watchlist=WATCH)
    assert len(batch.items) == 30
    assert batch.items[0].published_at.isoformat() == "2019-07-29T13:55:00+00:00"


def test_undated_entry_is_dropped_and_reported():
    batch = parse_feed(FEED, url="wire", watchlist=WATCH)
    assert [i.title for i in batch.items] == ["Apple beats profit forecasts", "Microsoft cuts jobs"]
    assert batch.problems == ["feed wire: 1 entries without a date dropped"]
    assert batch.items[0].tickers == ("AAPL",)
    assert batch.items[0].url == "https://wire.example/a"


def test_unchanged_feed_is_a_304_that_costs_nothing(httpserver, tmp_path, store):
    httpserver.expect_ordered_request("/rss", headers={}).respond_with_response(
        Response(FEED, headers={"ETag": '"v1"', "Content-Type": "application/rss+xml"})
    )
    httpserver.expect_ordered_request(
        "/rss", headers={"If-None-Match": '"v1"'}
    ).respond_with_response(Response(status=304))
    settings = _settings(tmp_path, [httpserver.url_for("/rss") + "?s={ticker}"])
    source = RssNewsSource(settings, store=store)
    first = source.fetch(["AAPL"], AS_OF)
    assert len(first.items) == 2
    assert store.get_feed_state(first.feed_states[0].url) == (None, None)  # not stored yet
    for state in first.feed_states:  # what refresh_news does once the items are stored
        store.set_feed_state(state.url, state.etag, state.last_modified)
    second = source.fetch(["AAPL"], AS_OF)
    assert second.items == [] and second.problems == []
    httpserver.check_assertions()


def test_feed_state_is_stored_only_after_its_items(httpserver, tmp_path, store):
    """A refresh whose items fail to store must fetch the feed in full again, not get a 304."""
    from sentinel42.news.refresh import refresh_news

    def conditional(request):
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304)
        return Response(FEED, headers={"ETag": '"v1"', "Content-Type": "application/rss+xml"})

    httpserver.expect_request("/rss").respond_with_handler(conditional)
    settings = _settings(tmp_path, [httpserver.url_for("/rss") + "?s={ticker}"])

    class FailingStore:
        def __getattr__(self, name):
            return getattr(store, name)

        def upsert_news(self, items, seen_at):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        refresh_news(settings, [RssNewsSource(settings, store=store)], FailingStore(), AS_OF)
    report = refresh_news(settings, [RssNewsSource(settings, store=store)], store, AS_OF)
    assert report.headlines_new == 2
    again = refresh_news(settings, [RssNewsSource(settings, store=store)], store, AS_OF)
    assert again.headlines_fetched == 0  # now a 304


def test_timeout_is_temporary(httpserver):
    def slow(_request):
        time.sleep(0.5)
        return Response(FEED)

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with (
        httpx.Client(timeout=0.1) as client,
        pytest.raises(TemporarySourceError, match="timed out"),
    ):
        fetch_feed(client, httpserver.url_for("/slow"), max_bytes=100_000)


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, TemporarySourceError), (503, TemporarySourceError), (404, PermanentSourceError)],
)
def test_http_errors_are_classified(httpserver, status, error):
    httpserver.expect_request("/x").respond_with_data("nope", status=status)
    with httpx.Client() as client, pytest.raises(error, match=str(status)):
        fetch_feed(client, httpserver.url_for("/x"), max_bytes=100_000)


def test_oversize_body_is_refused_even_without_content_length(httpserver):
    def chunked(_request):
        return Response(b"x" * 8192 for _ in range(10))  # streamed: no Content-Length

    httpserver.expect_request("/big").respond_with_handler(chunked)
    httpserver.expect_request("/big-declared").respond_with_data(b"y" * 20_000)
    with httpx.Client() as client:
        with pytest.raises(PermanentSourceError, match="exceeds"):
            fetch_feed(client, httpserver.url_for("/big"), max_bytes=10_000)
        with pytest.raises(PermanentSourceError, match="exceeds"):
            fetch_feed(client, httpserver.url_for("/big-declared"), max_bytes=10_000)


def test_one_failing_feed_does_not_stop_the_others(httpserver, tmp_path):
    httpserver.expect_request("/good").respond_with_data(FEED)
    httpserver.expect_request("/bad").respond_with_data("down", status=500)
    settings = _settings(
        tmp_path, [httpserver.url_for("/good") + "?s={ticker}"], [httpserver.url_for("/bad")]
    )
    batch = RssNewsSource(settings).fetch(["AAPL"], AS_OF)
    assert len(batch.items) == 2
    assert any("HTTP 500" in p for p in batch.problems)


def test_all_feeds_failing_temporarily_raises_retryable(httpserver, tmp_path):
    httpserver.expect_request("/a").respond_with_data("slow down", status=429)
    settings = _settings(tmp_path, [httpserver.url_for("/a") + "?s={ticker}"])
    with pytest.raises(TemporarySourceError, match="all 2 RSS feeds failed"):
        RssNewsSource(settings).fetch(["AAPL", "MSFT"], AS_OF)
