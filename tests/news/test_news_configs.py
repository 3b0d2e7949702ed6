"""The news adapters' configs are built from the settings, every field from its own env name."""

from __future__ import annotations

from dataclasses import fields

import pytest

from sentinel42.news.newsapi import NewsApiConfig, NewsApiSource
from sentinel42.news.rss import RssConfig, RssNewsSource
from sentinel42.settings import Settings, load_settings

TICKER_FEEDS = "https://a.example/rss?s={ticker},https://b.example/{ticker}/feed"
MARKET_FEEDS = "https://c.example/markets.xml,https://d.example/top.xml"
KEY = "k3y-that-never-shows"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    """On top of tests/conftest.py's clean environment."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("SENTINEL42_RSS_TICKER_FEEDS", TICKER_FEEDS)
    monkeypatch.setenv("SENTINEL42_RSS_MARKET_FEEDS", MARKET_FEEDS)
    monkeypatch.setenv("SENTINEL42_HTTP_TIMEOUT_SECONDS", "7.5")
    monkeypatch.setenv("SENTINEL42_FEED_MAX_BYTES", "123456")
    monkeypatch.setenv("SENTINEL42_NEWSAPI_KEY", KEY)
    monkeypatch.setenv("SENTINEL42_NEWSAPI_DAILY_REQUESTS", "37")


def test_the_values_here_are_no_defaults():
    defaults = Settings.model_fields
    assert defaults["http_timeout_seconds"].default != 7.5
    assert defaults["feed_max_bytes"].default != 123456
    assert defaults["newsapi_daily_requests"].default != 37
    assert defaults["newsapi_key"].default is None


def test_rss_config_takes_every_field_from_its_env_name():
    config = RssConfig.from_settings(load_settings())
    assert {f.name for f in fields(RssConfig)} == {
        "ticker_feeds",
        "market_feeds",
        "timeout_seconds",
        "max_bytes",
    }
    assert config == RssConfig(
        ticker_feeds=tuple(TICKER_FEEDS.split(",")),
        market_feeds=tuple(MARKET_FEEDS.split(",")),
        timeout_seconds=7.5,
        max_bytes=123456,
    )


def test_rss_source_from_settings_or_config_asks_for_the_same_feeds():
    settings = load_settings()
    expected = [
        "https://a.example/rss?s=BRK-B",
        "https://b.example/BRK-B/feed",
        "https://c.example/markets.xml",
        "https://d.example/top.xml",
    ]
    for source in (RssNewsSource(settings), RssNewsSource(RssConfig.from_settings(settings))):
        assert [r.url for r in source.requests_for(["BRK-B"])] == expected


def test_newsapi_config_takes_every_field_from_its_env_name_and_masks_the_key():
    config = NewsApiConfig.from_settings(load_settings())
    assert {f.name for f in fields(NewsApiConfig)} == {"key", "daily_requests"}
    assert config.key is not None and config.key.get_secret_value() == KEY
    assert config.daily_requests == 37
    assert KEY not in repr(config)
    source = NewsApiSource(load_settings())
    assert source.config == config
