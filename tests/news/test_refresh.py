from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sentinel42.domain import NewsItem
from sentinel42.news.base import NewsBatch
from sentinel42.news.refresh import refresh_news
from sentinel42.news.replay import ReplayNewsSource, write_jsonl
from sentinel42.news.rss import parse_feed
from tests.news.conftest import shared_dir

T0 = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def _write_replay(folder, lines):
    (folder / "news").mkdir(parents=True, exist_ok=True)
    with (folder / "news" / "a.jsonl").open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line) + "\n")


class FixedSource:
    """A real NewsSource serving a fixed batch (another adapter's output, replayed)."""

    def __init__(self, name, items):
        self.name = name
        self.items = items

    def fetch(self, tickers, as_of):
        return NewsBatch(items=[i for i in self.items if i.published_at <= as_of])


def test_replay_serves_only_items_published_by_as_of(tmp_path):
    _write_replay(
        tmp_path,
        [
            {
                "published_at": "2026-03-08T11:00:00+00:00",
                "title": "Apple beats",
                "url": "https://x/1",
                "source": "W",
                "tickers": ["AAPL"],
            },
            {
                "published_at": "2026-03-08T07:30:00-04:00",
                "title": "Microsoft falls",
                "url": "https://x/2",
                "source": "W",
            },
            {
                "published_at": "2026-03-08T13:00:00+00:00",
                "title": "Nvidia soars",
                "url": "https://x/3",
                "source": "W",
            },
            {
                "published_at": "2026-03-08T13:00:00",
                "title": "naive",
                "url": "https://x/4",
                "source": "W",
            },
        ],
    )
    batch = ReplayNewsSource(tmp_path).fetch(["AAPL", "MSFT", "NVDA"], T0)
    assert [i.title for i in batch.items] == ["Apple beats", "Microsoft falls"]
    assert batch.items[1].tickers == ("MSFT",)
    assert batch.problems == [
        "news/a.jsonl line 4: published_at '2026-03-08T13:00:00' has no UTC offset; line skipped"
    ]


def test_write_jsonl_appends_and_skips_known_urls(tmp_path):
    item = NewsItem(url="https://x/1?utm_source=a", title="t", published_at=T0, source="s")
    path = tmp_path / "news" / "rec.jsonl"
    assert write_jsonl([item], path) == 1
    assert (
        write_jsonl(
            [item, NewsItem(url="https://x/2", title="u", published_at=T0, source="s")], path
        )
        == 1
    )
    assert len(path.read_text().splitlines()) == 2
    # Never seen (no first_seen_at): served once the default 60 s latency has passed.
    back = ReplayNewsSource(tmp_path).fetch(["AAPL"], T0 + timedelta(minutes=1))
    assert {i.url for i in back.items} == {"https://x/1", "https://x/2"}


def test_same_story_from_two_sources_and_two_refreshes_is_stored_once(settings, store):
    rss = FixedSource(
        "rss",
        [
            NewsItem(
                url="https://yahoo/a",
                title="Apple beats profit forecasts",
                published_at=T0,
                source="Yahoo",
                tickers=("AAPL",),
                origin="rss",
            )
        ],
    )
    api = FixedSource(
        "newsapi",
        [
            NewsItem(
                url="https://reuters/b",
                title="Apple Beats Profit Forecasts!",
                published_at=T0 + timedelta(minutes=3),
                source="Reuters",
                tickers=("AAPL",),
                origin="newsapi",
            )
        ],
    )
    first = refresh_news(settings, [rss, api], store, T0 + timedelta(minutes=5))
    assert first.headlines_fetched == 2
    assert first.headlines_new == 1
    assert first.per_ticker == {"AAPL": 1, "MSFT": 0, "NVDA": 0, "AMZN": 0, "SPY": 0}
    second = refresh_news(settings, [rss, api], store, T0 + timedelta(minutes=9))
    assert second.headlines_new == 0
    stored = store.headlines(["AAPL"], None, None)
    assert len(stored) == 1
    assert stored.iloc[0]["first_seen_at"] == T0 + timedelta(minutes=5)
    assert second.to_dict()["per_source"] == {"rss": 1, "newsapi": 1}


def test_recorded_feed_refreshed_twice_stores_each_headline_once(settings, store):
    path = shared_dir("rss") / "cnbc_international_top_news_2026-03-08.xml"
    items = parse_feed(path.read_bytes(), url="cnbc", watchlist=settings.tickers).items
    source = FixedSource("rss", items)
    as_of = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
    first = refresh_news(settings, [source], store, as_of)
    again = refresh_news(settings, [source], store, as_of + timedelta(minutes=4))
    assert first.headlines_new == len({i.title.lower() for i in items})
    assert again.headlines_new == 0
    assert store.count_news() == first.headlines_new


def test_failing_source_is_a_problem_not_a_crash(settings, store):
    from sentinel42.errors import PermanentSourceError

    class Broken:
        name = "broken"

        def fetch(self, tickers, as_of):
            raise PermanentSourceError("bad key")

    ok = FixedSource(
        "rss",
        [
            NewsItem(
                url="https://a",
                title="Nvidia soars",
                published_at=T0,
                source="W",
                tickers=("NVDA",),
            )
        ],
    )
    report = refresh_news(settings, [Broken(), ok], store, T0)
    assert report.headlines_new == 1
    assert report.problems == ["source broken: bad key"]
