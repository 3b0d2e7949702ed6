"""Bad news lines lose only themselves: each is skipped (or cut) and reported with its line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sentinel42.news.normalize import MAX_SUMMARY_CHARS, MAX_TITLE_CHARS, make_item
from sentinel42.news.refresh import refresh_news
from sentinel42.news.replay import ReplayNewsSource
from sentinel42.news.rss import parse_feed
from tests.helpers import run_cli

T0 = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
WATCHLIST = ["AAPL", "MSFT"]


def _line(n: int, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "published_at": f"2026-03-08T11:{n:02d}:00+00:00",
        "title": f"Apple story {n}",
        "url": f"https://news.example.com/{n}",
        "source": "Wire",
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def _write(folder, lines: list[object]) -> None:
    (folder / "news").mkdir(parents=True, exist_ok=True)
    with (folder / "news" / "a.jsonl").open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def test_news_line_without_a_title_is_reported_with_its_line_number(tmp_path) -> None:
    _write(tmp_path, [_line(1), _line(2, title=None), _line(3, title="  <b></b> ")])
    batch = ReplayNewsSource(tmp_path).fetch(WATCHLIST, T0)
    assert [i.title for i in batch.items] == ["Apple story 1"]
    assert batch.problems == [
        "news/a.jsonl line 2: no title; line skipped",
        "news/a.jsonl line 3: no title; line skipped",
    ]


def test_hundred_kilobyte_title_is_cut_kept_and_reported(tmp_path) -> None:
    title = "Apple " + "x" * 100_000
    _write(tmp_path, [_line(1, title=title, summary="y" * 50_000)])
    batch = ReplayNewsSource(tmp_path).fetch(WATCHLIST, T0)
    [item] = batch.items
    assert len(item.title) == MAX_TITLE_CHARS and item.title.startswith("Apple x")
    assert len(item.summary) == MAX_SUMMARY_CHARS
    assert item.tickers == ("AAPL",)
    assert batch.problems == [
        f"news/a.jsonl line 1: title of {len(title)} characters cut to {MAX_TITLE_CHARS}; "
        "item kept",
        f"news/a.jsonl line 1: summary of 50000 characters cut to {MAX_SUMMARY_CHARS}; item kept",
    ]


def test_javascript_url_is_dropped_and_reported(tmp_path) -> None:
    _write(
        tmp_path,
        [
            _line(1, url="javascript:alert(document.cookie)"),
            _line(2, url="file:///etc/passwd"),
            _line(3),
            _line(4, url="http://[::1"),
            _line(5, url="https://x.example:port/a"),
        ],
    )
    batch = ReplayNewsSource(tmp_path).fetch(WATCHLIST, T0)
    assert [i.url for i in batch.items] == ["https://news.example.com/3"]
    assert batch.problems == [
        "news/a.jsonl line 1: url 'javascript:alert(document.cookie)' is not an http(s) link; "
        "line skipped",
        "news/a.jsonl line 2: url 'file:///etc/passwd' is not an http(s) link; line skipped",
        "news/a.jsonl line 4: url 'http://[::1' is not a valid link; line skipped",
        "news/a.jsonl line 5: url 'https://x.example:port/a' is not a valid link; line skipped",
    ]


def test_unreadable_lines_are_each_reported_and_the_rest_kept(tmp_path) -> None:
    _write(
        tmp_path,
        [
            "{not json",
            '["a", "list"]',
            _line(3, published_at="yesterday"),
            _line(4, published_at=None),
            _line(5),
        ],
    )
    batch = ReplayNewsSource(tmp_path).fetch(WATCHLIST, T0)
    assert [i.title for i in batch.items] == ["Apple story 5"]
    problems = batch.problems
    assert len(problems) == 4
    assert problems[0].startswith("news/a.jsonl line 1: not JSON (")
    assert problems[1] == "news/a.jsonl line 2: not a JSON object but list; line skipped"
    assert problems[2] == (
        "news/a.jsonl line 3: published_at 'yesterday' is not an ISO 8601 time; line skipped"
    )
    assert problems[3] == "news/a.jsonl line 4: no published_at; line skipped"


def test_feed_ticker_tags_count_only_when_they_are_watchlist_symbols(tmp_path) -> None:
    _write(
        tmp_path,
        [
            _line(
                1, title="Quarterly round-up", tickers=["TSLA", "MSFT; DROP", {"x": 1}, " msft "]
            ),
            _line(2, title="Another round-up", tickers="AAPL"),
        ],
    )
    batch = ReplayNewsSource(tmp_path).fetch(WATCHLIST, T0)
    assert [i.tickers for i in batch.items] == [("MSFT",), ()]
    assert batch.problems == [
        "news/a.jsonl line 2: tickers is not a list (matched from the text instead); item kept"
    ]


def test_make_item_refuses_links_that_are_not_http_for_every_source() -> None:
    for url in ("javascript:alert(1)", "data:text/html,hi", "ftp://x.example/a", "//x.example"):
        item = make_item(
            url=url, title="Apple", published_at=T0, source="s", origin="rss", watchlist=[]
        )
        assert item is None, url


def test_rss_entry_with_a_javascript_link_is_dropped_and_counted() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>
    <item><title>Apple beats</title><link>javascript:alert(1)</link>
      <pubDate>Sun, 08 Mar 2026 10:00:00 GMT</pubDate></item>
    <item><title>Apple misses</title><link>https://x.example/2</link>
      <pubDate>Sun, 08 Mar 2026 10:05:00 GMT</pubDate></item>
    </channel></rss>"""
    batch = parse_feed(body, url="https://feed.example/rss", watchlist=WATCHLIST)
    assert [i.url for i in batch.items] == ["https://x.example/2"]
    assert any("1 entries" in p for p in batch.problems)


def test_news_refresh_report_lists_the_skipped_lines(tmp_path, settings, store) -> None:
    _write(tmp_path, [_line(1), _line(2, title=""), _line(3, url="javascript:void(0)")])
    report = refresh_news(settings, [ReplayNewsSource(tmp_path)], store, T0)
    assert report.headlines_new == 1
    assert report.problems == [
        "news/a.jsonl line 2: no title; line skipped",
        "news/a.jsonl line 3: url 'javascript:void(0)' is not an http(s) link; line skipped",
    ]
    assert report.to_dict()["problems"] == report.problems


def test_each_bad_line_is_logged_once_per_refresh(tmp_path, settings, store, caplog) -> None:
    """Issue 18 item 5: the source reported it, the refresh logged it, and the CLI printed it:
    three times on stderr. Now the refresh is the one place that logs it."""
    import logging

    _write(tmp_path, [_line(1), _line(2, title=""), _line(3, url="javascript:void(0)")])
    with caplog.at_level(logging.DEBUG, logger="sentinel42"):
        refresh_news(settings, [ReplayNewsSource(tmp_path)], store, T0)
    for bad in ("news/a.jsonl line 2: no title", "news/a.jsonl line 3: url"):
        logged = [r for r in caplog.records if bad in r.getMessage()]
        assert len(logged) == 1, [r.getMessage() for r in logged]
        assert logged[0].levelno == logging.WARNING


def test_sentinel42_refresh_prints_each_bad_news_line_once_on_stderr(tmp_path, replay_dir) -> None:
    """What the operator sees: the source, the refresh and the CLI each printed it (three times)."""
    import os
    import shutil

    replay = tmp_path / "replay"
    shutil.copytree(replay_dir, replay)
    with (replay / "news" / "bad.jsonl").open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(_line(1, title="")) + "\n")
        fh.write("{not json\n")
    env = {
        **os.environ,
        "SENTINEL42_DATA_SOURCE": "replay",
        "SENTINEL42_REPLAY_DIR": str(replay),
        "SENTINEL42_TICKERS": "AAPL,MSFT",
        "SENTINEL42_DATA_DIR": str(tmp_path / "data"),
    }
    result = run_cli("refresh", env=env)
    assert result.returncode == 0, result.stderr
    for bad in ("news/bad.jsonl line 1: no title", "news/bad.jsonl line 2: "):
        assert result.stderr.count(bad) == 1, result.stderr
