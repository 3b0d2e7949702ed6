"""The one place that picks adapters from the settings; nothing else branches on the mode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentinel42.market.base import PriceSource
    from sentinel42.market.calendar import NyseCalendar
    from sentinel42.news.base import NewsSource
    from sentinel42.settings import Settings


def build_price_source(settings: Settings) -> PriceSource:
    if settings.data_source == "replay":
        from sentinel42.market.replay import ReplayPriceSource

        assert settings.replay_dir is not None  # load_settings guarantees it in replay mode
        return ReplayPriceSource(settings.replay_dir, interval=settings.interval)
    from sentinel42.market.yahoo import YahooPriceSource

    return YahooPriceSource(prepost=settings.prepost)


def build_news_sources(settings: Settings, store: Any = None) -> list[NewsSource]:
    if settings.data_source == "replay":
        from sentinel42.news.replay import ReplayNewsSource

        assert settings.replay_dir is not None
        return [ReplayNewsSource(settings.replay_dir)]
    from sentinel42.news.newsapi import NewsApiSource
    from sentinel42.news.rss import RssNewsSource

    return [RssNewsSource(settings, store=store), NewsApiSource(settings, store=store)]


def build_calendar(settings: Settings) -> NyseCalendar:
    from sentinel42.market.calendar import NyseCalendar

    return NyseCalendar.from_settings(settings)
