"""Daily news features of the ranking model: which session a headline belongs to (by when it was
first seen, against the NYSE close), and the count, mean and change, by hand."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from sentinel42.domain import FALLBACK_SCORER, NewsItem, SentimentScore, text_hash
from sentinel42.market.calendar import NEW_YORK, NyseCalendar
from sentinel42.model.ranking.features import NEWS_FEATURES
from sentinel42.model.ranking.news import (
    daily_news_features,
    news_features_from_frame,
    refresh_universe_news,
    session_closes,
)
from sentinel42.model.ranking.panel import Panel, build_panel
from sentinel42.persistence import open_store

NY = NEW_YORK
TICKERS = ("AAA", "BBB", "CCC")
# Eight regular sessions (no holiday, no early close): Mon 2024-03-04 .. Wed 2024-03-13.
DAYS = [d.date() for d in pd.bdate_range("2024-03-04", periods=8)]
AS_OF = datetime(2024, 3, 14, tzinfo=UTC)


@pytest.fixture(scope="module")
def calendar():
    return NyseCalendar()


def _panel(days=DAYS, tickers=TICKERS):
    index = pd.DatetimeIndex([pd.Timestamp(d).tz_localize(NY) for d in days]).tz_convert(UTC)
    bars = {}
    for k, t in enumerate(tickers):
        close = 10.0 + k + np.arange(len(days)) * 0.1
        bars[t] = pd.DataFrame(
            {"open": close, "high": close + 0.5, "low": close - 0.5, "close": close,
             "volume": 1e6},
            index=pd.DatetimeIndex(index, name="ts"),
        )  # fmt: skip
    return build_panel(bars, "daily")


def _close(day) -> datetime:
    return datetime.combine(day, datetime.min.time(), NY).replace(hour=16)


def plant(store, ticker, title, seen, score, *, published=None, scorer="test-scorer"):
    """One stored headline about ``ticker`` first seen at ``seen``, scored ``score``."""
    item = NewsItem(
        url=f"https://news.example.com/{abs(hash(title))}",
        title=title,
        published_at=published or seen,
        source="Example Wire",
        tickers=(ticker,),
    )
    store.upsert_news([item], seen_at=seen)
    if score is not None:
        p_pos, p_neg = max(score, 0.0), max(-score, 0.0)
        store.save_scores(
            [SentimentScore(text_hash(title), "neutral", p_pos, p_neg, 1.0 - p_pos - p_neg,
                            scorer, "r1")],
            seen,
        )  # fmt: skip


@pytest.fixture
def store(tmp_path):
    with open_store(url=f"sqlite:///{tmp_path / 's.db'}") as s:
        yield s


def _features(store, calendar, panel=None):
    return daily_news_features(store, panel or _panel(), as_of=AS_OF, calendar=calendar)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


def test_a_headline_first_seen_one_minute_after_the_close_counts_on_the_next_session(
    store, calendar
):
    d = 3  # Thursday 2024-03-07
    plant(store, "AAA", "AAA wins a contract", _close(DAYS[d]) - timedelta(hours=2), 0.5)
    plant(store, "AAA", "AAA earlier story", _close(DAYS[d - 1]) + timedelta(hours=1), 0.1)
    before = _features(store, calendar)
    assert before is not None
    # Published well before the close, but first fetched one minute after it.
    plant(store, "AAA", "AAA issues a profit warning", _close(DAYS[d]) + timedelta(minutes=1),
          -0.9, published=_close(DAYS[d]) - timedelta(hours=5))  # fmt: skip
    after = _features(store, calendar)
    assert after is not None
    for name in NEWS_FEATURES:
        assert _same(after[name][: d + 1], before[name][: d + 1]), name  # day d and before
    assert before["news_count"][d, 0] == pytest.approx(np.log1p(2))
    assert before["news_sentiment"][d, 0] == pytest.approx(0.3)
    assert after["news_count"][d + 1, 0] == pytest.approx(np.log1p(1))
    assert after["news_sentiment"][d + 1, 0] == pytest.approx(-0.9)
    assert np.isnan(before["news_sentiment"][d + 1, 0])


def test_a_headline_first_seen_exactly_at_the_close_counts_on_that_session(store, calendar):
    plant(store, "BBB", "BBB at the bell", _close(DAYS[2]), 0.4)
    out = _features(store, calendar)
    assert out is not None
    assert out["news_count"][2, 1] == pytest.approx(np.log1p(1))
    assert out["news_count"][3, 1] == 0.0


def test_counts_means_and_change_by_hand(store, calendar):
    # AAA: day 0: +0.2, +0.4 (one of them overnight, before day 0's open); day 2: -0.3;
    # day 5: +0.6, +0.8, -0.1; day 6: one unscored headline. BBB: day 1: +0.5.
    plant(store, "AAA", "a0", _close(DAYS[0]) - timedelta(hours=20), 0.2)
    plant(store, "AAA", "a1", _close(DAYS[0]) - timedelta(hours=1), 0.4)
    plant(store, "AAA", "a2", _close(DAYS[2]) - timedelta(hours=3), -0.3)
    plant(store, "AAA", "a3", _close(DAYS[4]) + timedelta(hours=3), 0.6)  # evening of day 4
    plant(store, "AAA", "a4", _close(DAYS[5]) - timedelta(hours=6), 0.8)
    plant(store, "AAA", "a5", _close(DAYS[5]) - timedelta(hours=5), -0.1)
    plant(store, "AAA", "a6 unscored", _close(DAYS[6]) - timedelta(hours=5), None)
    plant(store, "BBB", "b0", _close(DAYS[1]) - timedelta(hours=5), 0.5)
    out = _features(store, calendar)
    assert out is not None
    nan = np.nan
    count = np.log1p([2, 0, 1, 0, 0, 3, 1, 0])
    np.testing.assert_allclose(out["news_count"][:, 0], count)
    np.testing.assert_allclose(out["news_count"][:, 1], np.log1p([0, 1, 0, 0, 0, 0, 0, 0]))
    np.testing.assert_allclose(out["news_count"][:, 2], 0.0)  # covered, no news: 0
    mean = [0.3, nan, -0.3, nan, nan, 1.3 / 3, nan, nan]
    np.testing.assert_allclose(out["news_sentiment"][:, 0], mean)
    # Day 2 against days 0-1 (0.2, 0.4): -0.3 - 0.3; day 5 against days 0-4 (0.2, 0.4, -0.3).
    change = [nan, nan, -0.6, nan, nan, 1.3 / 3 - 0.1, nan, nan]
    np.testing.assert_allclose(out["news_sentiment_change"][:, 0], change)
    assert np.isnan(out["news_sentiment_change"][:, 1]).all()  # one day of news: no change


def test_the_change_looks_back_five_sessions_only(store, calendar):
    plant(store, "AAA", "old", _close(DAYS[0]) - timedelta(hours=1), 0.9)
    plant(store, "AAA", "mid", _close(DAYS[2]) - timedelta(hours=1), 0.1)
    plant(store, "AAA", "new", _close(DAYS[6]) - timedelta(hours=1), -0.5)
    out = _features(store, calendar)
    assert out is not None
    # Day 6 looks at days 1..5: only "mid" (0.1); "old" (day 0) is six sessions back.
    assert out["news_sentiment_change"][6, 0] == pytest.approx(-0.6)


def test_sessions_before_the_news_coverage_have_no_count(store, calendar):
    plant(store, "CCC", "first ever", _close(DAYS[3]) - timedelta(hours=1), 0.1)
    out = _features(store, calendar)
    assert out is not None
    assert np.isnan(out["news_count"][:3]).all()
    assert (out["news_count"][3:, :2] == 0).all()


def test_finbert_wins_over_the_fallback_where_both_scored_a_headline(store, calendar):
    plant(store, "AAA", "AAA beats", _close(DAYS[1]) - timedelta(hours=1), -0.2,
          scorer=FALLBACK_SCORER)  # fmt: skip
    plant(store, "AAA", "AAA beats", _close(DAYS[1]) - timedelta(hours=1), 0.7,
          scorer="ProsusAI/finbert")  # fmt: skip
    plant(store, "AAA", "AAA only the fallback", _close(DAYS[1]) - timedelta(hours=2), 0.1,
          scorer=FALLBACK_SCORER)  # fmt: skip
    out = _features(store, calendar)
    assert out is not None
    assert out["news_count"][1, 0] == pytest.approx(np.log1p(2))
    assert out["news_sentiment"][1, 0] == pytest.approx((0.7 + 0.1) / 2)


def test_nothing_first_seen_after_the_clock_is_used(store, calendar):
    plant(store, "AAA", "before", _close(DAYS[6]) - timedelta(hours=1), 0.5)
    plant(store, "AAA", "after the clock", _close(DAYS[7]) - timedelta(hours=1), -0.5)
    out = daily_news_features(store, _panel(), as_of=_close(DAYS[6]), calendar=calendar)
    assert out is not None
    assert out["news_count"][7, 0] == 0.0


def test_none_without_a_headline_of_the_universe(store, calendar):
    assert _features(store, calendar) is None
    plant(store, "ZZZ", "about another ticker", _close(DAYS[2]), 0.5)
    assert _features(store, calendar) is None


def test_an_early_close_ends_the_session_at_1300(store, calendar):
    # Friday 2024-11-29 closes at 13:00 New York; 14:00 that day is news for Monday.
    days = [d.date() for d in pd.bdate_range("2024-11-25", "2024-12-03")]
    days.remove(pd.Timestamp("2024-11-28").date())  # Thanksgiving
    panel = _panel(days)
    friday = days.index(pd.Timestamp("2024-11-29").date())
    at = datetime(2024, 11, 29, 14, 0, tzinfo=NY)
    plant(store, "AAA", "after the early close", at, 0.5)
    plant(store, "AAA", "before the early close", at - timedelta(hours=2), 0.1)
    out = daily_news_features(store, panel, as_of=AS_OF.replace(year=2025), calendar=calendar)
    assert out is not None
    assert out["news_sentiment"][friday, 0] == pytest.approx(0.1)
    assert out["news_sentiment"][friday + 1, 0] == pytest.approx(0.5)
    closes = session_closes(panel, calendar)
    assert pd.Timestamp(int(closes[friday]), tz=UTC) == pd.Timestamp(at - timedelta(hours=1))
    # Without a calendar every day closes at 16:00 New York.
    plain = session_closes(panel)
    assert pd.Timestamp(int(plain[friday]), tz=UTC) == pd.Timestamp(at + timedelta(hours=2))


def test_fast_on_100k_headlines_500_tickers_and_1259_days():
    rng = np.random.default_rng(0)
    days = [d.date() for d in pd.bdate_range("2013-02-08", periods=1259)]
    tickers = tuple(f"T{k:03d}" for k in range(500))
    n_t = len(days)
    closes = (
        pd.DatetimeIndex([pd.Timestamp(d) for d in days]).tz_localize(NY) + pd.Timedelta(hours=16)
    ).tz_convert(UTC).asi8  # fmt: skip
    session = pd.DatetimeIndex([pd.Timestamp(d) for d in days]).asi8 // 86_400_000_000_000
    grid = np.ones((n_t, len(tickers)))
    panel = Panel("daily", tickers, session * 86_400_000_000_000, session, grid, grid, grid,
                  grid, grid, np.zeros(grid.shape, dtype=bool), {})  # fmt: skip
    n = 100_000
    frame = pd.DataFrame({
        "ticker": rng.choice(tickers, n),
        "first_seen_at": pd.to_datetime(
            rng.integers(closes[0] - 86_400 * 10**9, closes[-1], n), utc=True
        ),
        "score": np.where(rng.random(n) < 0.9, rng.uniform(-1, 1, n), np.nan),
    })  # fmt: skip
    started = time.perf_counter()
    out = news_features_from_frame(frame, panel, closes, as_of=AS_OF.replace(year=2030))
    took = time.perf_counter() - started
    assert out is not None
    assert np.nansum(np.expm1(out["news_count"])) == pytest.approx(n)
    assert took < 5.0, f"{took:.1f} s"


def test_the_refresh_walks_the_closes_so_each_tweet_is_first_seen_at_the_next_close(
    tmp_path, monkeypatch, calendar
):
    # A replay folder with tweets about universe tickers that are not on the watchlist.
    news = tmp_path / "replay" / "news"
    news.mkdir(parents=True)
    (tmp_path / "replay" / "daily").mkdir()
    lines = [
        (datetime(2024, 3, 5, 15, 0, tzinfo=NY), "$BBB to the moon", ["BBB"]),
        (datetime(2024, 3, 5, 16, 30, tzinfo=NY), "$BBB after hours selloff", ["BBB"]),
        (datetime(2024, 3, 6, 10, 0, tzinfo=NY), "CCC guidance cut", ["CCC"]),
    ]
    with gzip.open(news / "tweets.jsonl.gz", "wt", encoding="utf-8") as fh:
        for k, (at, title, tickers) in enumerate(lines):
            fh.write(json.dumps({"published_at": at.isoformat(), "title": title,
                                 "url": f"https://twitter.com/x/status/{k}",
                                 "source": "Twitter", "tickers": tickers}) + "\n")  # fmt: skip
    monkeypatch.setenv("SENTINEL42_DATA_SOURCE", "replay")
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(tmp_path / "replay"))
    monkeypatch.setenv("SENTINEL42_TICKERS", "AAA")
    from sentinel42.settings import load_settings

    settings = load_settings()
    panel = _panel()
    closes = [pd.Timestamp(int(c), tz=UTC).to_pydatetime() for c in session_closes(panel)]
    report = refresh_universe_news(settings, panel.tickers, closes, AS_OF)
    assert report["headlines_new"] == 3
    assert report["scored"] == 3  # the offline fallback: FinBERT is not on this machine
    with open_store(settings) as store:
        frame = store.headlines(list(TICKERS)).set_index("title")
        out = daily_news_features(store, panel, as_of=AS_OF, calendar=calendar)
    seen = frame["first_seen_at"].map(lambda v: pd.Timestamp(v).tz_convert(NY).isoformat())
    assert seen["$BBB to the moon"] == "2024-03-05T16:00:00-05:00"
    assert seen["$BBB after hours selloff"] == "2024-03-06T16:00:00-05:00"
    assert seen["CCC guidance cut"] == "2024-03-06T16:00:00-05:00"
    assert set(frame["scorer"]) == {FALLBACK_SCORER}
    assert out is not None
    np.testing.assert_allclose(out["news_count"][1:3, 1:], np.log1p([[1, 0], [1, 1]]))
    # A second refresh finds nothing new.
    assert refresh_universe_news(settings, panel.tickers, closes, AS_OF)["headlines_new"] == 0


def test_a_tweet_published_inside_the_replay_latency_before_the_close_counts_next_session(
    tmp_path, monkeypatch
):
    news = tmp_path / "replay" / "news"
    news.mkdir(parents=True)
    (tmp_path / "replay" / "daily").mkdir()
    lines = [
        (datetime(2024, 3, 5, 15, 58, 0, tzinfo=NY), "$BBB early enough"),
        (datetime(2024, 3, 5, 15, 59, 30, tzinfo=NY), "$BBB thirty seconds before the bell"),
    ]
    with (news / "t.jsonl").open("w", encoding="utf-8") as fh:
        for k, (at, title) in enumerate(lines):
            fh.write(json.dumps({"published_at": at.isoformat(), "title": title,
                                 "url": f"https://twitter.com/x/status/{k}",
                                 "source": "Twitter", "tickers": ["BBB"]}) + "\n")  # fmt: skip
    monkeypatch.setenv("SENTINEL42_DATA_SOURCE", "replay")
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(tmp_path / "replay"))
    monkeypatch.setenv("SENTINEL42_TICKERS", "AAA")
    from sentinel42.settings import load_settings

    settings = load_settings()  # the default replay latency: 60 s after publication
    panel = _panel()
    closes = [pd.Timestamp(int(c), tz=UTC).to_pydatetime() for c in session_closes(panel)]
    refresh_universe_news(settings, panel.tickers, closes, AS_OF)
    with open_store(settings) as store:
        frame = store.headlines(list(TICKERS)).set_index("title")
    seen = frame["first_seen_at"].map(lambda v: pd.Timestamp(v).tz_convert(NY).isoformat())
    assert seen["$BBB early enough"] == "2024-03-05T16:00:00-05:00"
    assert seen["$BBB thirty seconds before the bell"] == "2024-03-06T16:00:00-05:00"
