"""The one place that picks adapters from the settings; nothing else branches on the mode."""

from __future__ import annotations

import functools
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
        return [
            ReplayNewsSource(
                settings.replay_dir, latency_seconds=settings.replay_news_latency_seconds
            )
        ]
    from sentinel42.news.newsapi import NewsApiSource
    from sentinel42.news.rss import RssNewsSource

    return [RssNewsSource(settings, store=store), NewsApiSource(settings, store=store)]


def build_calendar(settings: Settings) -> NyseCalendar:
    """The NYSE calendar for these settings' extra closures; built once per process (about
    0.25 s each), since every trading run and every backtest step asks for it."""
    return _calendar(
        tuple(sorted(settings.extra_closures)), tuple(sorted(settings.extra_early_closes.items()))
    )


@functools.lru_cache(maxsize=8)
def _calendar(closures: tuple[Any, ...], early: tuple[Any, ...]) -> NyseCalendar:
    from sentinel42.market.calendar import NyseCalendar

    return NyseCalendar(closures, dict(early))
