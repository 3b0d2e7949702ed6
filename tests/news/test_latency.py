"""News latency: a replayed headline is served only once Sentinel42 could have seen it.

A line with a recorded ``first_seen_at`` is served at it; one without, at ``published_at`` plus
``SENTINEL42_REPLAY_NEWS_LATENCY_SECONDS`` (default 60); the store records it as first seen at
the clock that served it, never earlier; ``record`` keeps ``first_seen_at`` in the lines it writes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sentinel42.domain import NewsItem
from sentinel42.errors import ConfigError
from sentinel42.factory import build_news_sources
from sentinel42.market.record import record_news
from sentinel42.news.base import NewsBatch
from sentinel42.news.refresh import refresh_news
from sentinel42.news.replay import ReplayNewsSource, write_jsonl
from sentinel42.settings import load_settings

TEN = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
WATCHLIST = ["AAPL", "MSFT"]


def _line(n: int = 1, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "published_at": TEN.isoformat(),
        "title": f"Apple story {n}",
        "url": f"https://news.example.com/{n}",
        "source": "Wire",
        "tickers": ["AAPL"],
    }
    record.update(fields)
    return record


def _write(folder, lines: list[dict[str, object]]) -> None:
    (folder / "news").mkdir(parents=True, exist_ok=True)
    with (folder / "news" / "a.jsonl").open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line) + "\n")


def _replay_source(folder) -> ReplayNewsSource:
    """The news source a replay run builds from the settings (the environment's latency)."""
    settings = load_settings(data_source="replay", replay_dir=folder)
    [source] = build_news_sources(settings)
    assert isinstance(source, ReplayNewsSource)
    return source


def _titles(source: ReplayNewsSource, as_of: datetime) -> list[str]:
    return [item.title for item in source.fetch(WATCHLIST, as_of).items]


def test_a_headline_without_first_seen_at_waits_for_the_default_latency(tmp_path):
    _write(tmp_path, [_line()])
    source = _replay_source(tmp_path)
    assert _titles(source, TEN) == []
    assert _titles(source, TEN + timedelta(seconds=30)) == []
    assert _titles(source, TEN + timedelta(seconds=59)) == []
    assert _titles(source, TEN + timedelta(minutes=1)) == ["Apple story 1"]
    assert source.latency_seconds == 60
    # The class on its own is as honest as the setting's default.
    assert _titles(ReplayNewsSource(tmp_path), TEN + timedelta(seconds=30)) == []


def test_the_latency_is_a_setting(tmp_path, monkeypatch):
    _write(tmp_path, [_line()])
    monkeypatch.setenv("SENTINEL42_REPLAY_NEWS_LATENCY_SECONDS", "0")
    assert _titles(_replay_source(tmp_path), TEN) == ["Apple story 1"]
    monkeypatch.setenv("SENTINEL42_REPLAY_NEWS_LATENCY_SECONDS", "300")
    late = _replay_source(tmp_path)
    assert _titles(late, TEN + timedelta(minutes=4, seconds=59)) == []
    assert _titles(late, TEN + timedelta(minutes=5)) == ["Apple story 1"]
    for bad in ("-1", "86401"):
        monkeypatch.setenv("SENTINEL42_REPLAY_NEWS_LATENCY_SECONDS", bad)
        with pytest.raises(ConfigError, match="REPLAY_NEWS_LATENCY_SECONDS"):
            load_settings()


def test_a_recorded_first_seen_at_is_when_the_headline_is_served(tmp_path):
    seen = TEN + timedelta(minutes=5)
    _write(tmp_path, [_line(first_seen_at="2026-03-09T06:05:00-04:00")])  # 10:05 UTC
    source = _replay_source(tmp_path)
    for early in (TEN, TEN + timedelta(minutes=1), seen - timedelta(seconds=1)):
        assert _titles(source, early) == [], early
    assert _titles(source, seen) == ["Apple story 1"]
    [item] = source.fetch(WATCHLIST, seen + timedelta(minutes=10)).items
    assert item.published_at == TEN  # the headline itself is unchanged
    assert item.first_seen_at is None  # the refresh that stores it records its own clock


def test_a_first_seen_at_before_publication_serves_it_at_publication(tmp_path):
    _write(tmp_path, [_line(first_seen_at=(TEN - timedelta(minutes=5)).isoformat())])
    source = _replay_source(tmp_path)
    assert _titles(source, TEN - timedelta(seconds=1)) == []
    assert _titles(source, TEN) == ["Apple story 1"]  # recorded: no latency added


def test_an_unreadable_first_seen_at_is_reported_and_the_latency_applies(tmp_path):
    _write(
        tmp_path,
        [_line(1, first_seen_at="soon"), _line(2, first_seen_at="2026-03-09T10:05:00")],
    )
    batch = _replay_source(tmp_path).fetch(WATCHLIST, TEN + timedelta(minutes=1))
    assert [i.title for i in batch.items] == ["Apple story 1", "Apple story 2"]
    assert batch.problems == [
        "news/a.jsonl line 1: first_seen_at 'soon' is not an ISO 8601 time "
        "(served at published_at + the latency); item kept",
        "news/a.jsonl line 2: first_seen_at '2026-03-09T10:05:00' has no UTC offset "
        "(served at published_at + the latency); item kept",
    ]


def test_the_store_records_a_replayed_headline_as_first_seen_when_it_was_served(
    tmp_path, settings, store
):
    """refresh_news stores ``first_seen_at`` from the clock: never before the replay served it."""
    _write(
        tmp_path,
        [
            _line(1, first_seen_at=(TEN + timedelta(minutes=5)).isoformat()),
            _line(2, title="Microsoft story", tickers=["MSFT"]),
        ],
    )
    source = _replay_source(tmp_path)
    assert refresh_news(settings, [source], store, TEN).headlines_new == 0
    early = refresh_news(settings, [source], store, TEN + timedelta(minutes=2))
    assert [i.title for i in early.new_items] == ["Microsoft story"]
    late = refresh_news(settings, [source], store, TEN + timedelta(minutes=20))
    assert [i.title for i in late.new_items] == ["Apple story 1"]
    stored = store.headlines(None).set_index("title")["first_seen_at"]
    assert stored["Microsoft story"] == TEN + timedelta(minutes=2)
    assert stored["Apple story 1"] == TEN + timedelta(minutes=20)  # not the recorded 10:05


def test_a_refresh_never_stores_a_headline_as_first_seen_before_its_clock(settings, store):
    """Whatever first_seen_at a source's item carries, the refresh that receives it saw it at
    its own clock."""
    early = _item(1, first_seen_at=TEN - timedelta(hours=1))
    late = _item(2, first_seen_at=TEN + timedelta(hours=1))
    report = refresh_news(settings, [_Live([early, late])], store, TEN)
    assert report.headlines_new == 2
    stored = store.headlines(None).set_index("title")["first_seen_at"]
    assert stored["Apple story 1"] == TEN
    assert stored["Apple story 2"] == TEN + timedelta(hours=1)


class _Live:
    """A live adapter's output: items without first_seen_at."""

    name = "rss"

    def __init__(self, items: list[NewsItem]) -> None:
        self.items = items

    def fetch(self, tickers, as_of):
        return NewsBatch(items=[i for i in self.items if i.published_at <= as_of])


def _item(n: int, **fields) -> NewsItem:
    return NewsItem(
        url=f"https://news.example.com/{n}",
        title=f"Apple story {n}",
        published_at=TEN,
        source="Wire",
        tickers=("AAPL",),
        **fields,
    )


def test_record_keeps_when_each_headline_was_first_seen_and_replay_serves_it_then(tmp_path):
    out = tmp_path / "rec"
    recorded = TEN + timedelta(minutes=7)
    assert record_news([_Live([_item(1)])], WATCHLIST, out, recorded) == 1
    # A later recording adds the new headline; the known one keeps its first line.
    later = TEN + timedelta(minutes=30)
    assert record_news([_Live([_item(1), _item(2)])], WATCHLIST, out, later) == 1
    lines = [json.loads(raw) for raw in (out / "news" / "recorded.jsonl").read_text().splitlines()]
    assert [(line["title"], line["first_seen_at"]) for line in lines] == [
        ("Apple story 1", recorded.isoformat()),
        ("Apple story 2", later.isoformat()),
    ]
    source = ReplayNewsSource(out, latency_seconds=0)
    assert _titles(source, recorded - timedelta(seconds=1)) == []
    assert _titles(source, recorded) == ["Apple story 1"]
    assert _titles(source, later) == ["Apple story 1", "Apple story 2"]
    assert source.latency_counts(later).to_dict() == {
        "rule": "recorded first_seen_at for 2 headlines, published_at + 0 s for 0",
        "latency_seconds": 0,
        "recorded_first_seen": 2,
        "published_plus_latency": 0,
    }


def test_write_jsonl_round_trips_first_seen_at(tmp_path):
    seen = TEN + timedelta(minutes=3)
    path = tmp_path / "news" / "rec.jsonl"
    assert write_jsonl([_item(1, first_seen_at=seen), _item(2)], path) == 2
    first, second = (json.loads(raw) for raw in path.read_text().splitlines())
    assert datetime.fromisoformat(first["first_seen_at"]) == seen
    assert "first_seen_at" not in second  # never seen: the latency rule applies to it
    source = ReplayNewsSource(tmp_path)
    assert _titles(source, seen - timedelta(seconds=1)) == ["Apple story 2"]  # 10:01
    assert _titles(source, seen) == ["Apple story 2", "Apple story 1"]
    counts = source.latency_counts(seen)
    assert counts.rule() == "recorded first_seen_at for 1 headlines, published_at + 60 s for 1"
