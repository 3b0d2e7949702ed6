from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import text

from sentinel42.domain import Action, Decision, NewsItem, Prediction, SentimentScore
from sentinel42.persistence import current_revision, make_engine, migrate, open_store, text_hash

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)


def _bars(n: int, start: datetime = T0, close: float = 100.0) -> pd.DataFrame:
    idx = pd.DatetimeIndex([start + timedelta(minutes=15 * i) for i in range(n)], name="ts")
    c = [close + i for i in range(n)]
    return pd.DataFrame(
        {
            "open": c,
            "high": [x + 1 for x in c],
            "low": [x - 1 for x in c],
            "close": c,
            "volume": [1000.0] * n,
        },
        index=idx,
    )


@pytest.fixture
def store(tmp_path):
    with open_store(url=f"sqlite:///{tmp_path / 'store.db'}") as s:
        yield s


def test_upsert_bars_twice_writes_nothing_the_second_time(store):
    first = store.upsert_bars("AAPL", "15m", _bars(5))
    second = store.upsert_bars("AAPL", "15m", _bars(5))
    assert (first.new, first.updated) == (5, 0)
    assert (second.new, second.updated) == (0, 0)
    assert store.count_bars("15m") == 5


def test_upsert_bars_counts_revised_bars_as_updated(store):
    store.upsert_bars("AAPL", "15m", _bars(5))
    revised = _bars(6)
    revised.iloc[4, revised.columns.get_loc("close")] = 150.0
    counts = store.upsert_bars("AAPL", "15m", revised)
    assert (counts.new, counts.updated) == (1, 1)
    loaded = store.load_bars(["AAPL"], "15m")["AAPL"]
    assert loaded["close"].iloc[4] == 150.0
    assert str(loaded.index.tz) == "UTC"
    assert loaded.index[0] == pd.Timestamp(T0)


def test_load_bars_keeps_tickers_and_intervals_apart(store):
    store.upsert_bars("AAPL", "15m", _bars(3))
    store.upsert_bars("MSFT", "15m", _bars(2, close=300))
    store.upsert_bars("AAPL", "1d", _bars(4))
    loaded = store.load_bars(["AAPL", "MSFT", "NVDA"], "15m")
    assert sorted(loaded) == ["AAPL", "MSFT"]
    assert len(loaded["AAPL"]) == 3
    newest = store.newest_bar_ts(["AAPL", "NVDA"], "15m")
    assert newest["AAPL"] == T0 + timedelta(minutes=30)
    assert newest["NVDA"] is None


def test_replace_bars_drops_the_old_history(store):
    store.upsert_bars("AAPL", "15m", _bars(5))
    store.replace_bars("AAPL", "15m", _bars(2, close=50))
    loaded = store.load_bars(["AAPL"], "15m")["AAPL"]
    assert list(loaded["close"]) == [50.0, 51.0]


def test_naive_bar_index_is_refused(store):
    frame = _bars(2)
    frame.index = frame.index.tz_localize(None)
    with pytest.raises(ValueError, match="tz-aware"):
        store.upsert_bars("AAPL", "15m", frame)


def _item(title: str, tickers=("AAPL",), url="https://example.com/a", origin="rss") -> NewsItem:
    return NewsItem(
        url=url, title=title, published_at=T0, source="Example", tickers=tickers, origin=origin
    )


def test_same_story_from_two_sources_is_stored_once_with_merged_tickers(store):
    new1 = store.upsert_news([_item("Apple beats estimates!")], seen_at=T0)
    new2 = store.upsert_news(
        [
            _item(
                "Apple  beats estimates", tickers=("MSFT",), url="https://other/x", origin="newsapi"
            )
        ],
        seen_at=T0 + timedelta(hours=1),
    )
    assert len(new1) == 1 and new2 == []
    assert store.count_news() == 1
    rows = store.headlines(None)
    assert sorted(rows["ticker"]) == ["AAPL", "MSFT"]
    assert rows["first_seen_at"].iloc[0] == T0


def test_a_story_re_dated_across_midnight_is_still_one_story(store):
    late = _item("Apple beats estimates")
    store.upsert_news([replace(late, published_at=datetime(2026, 11, 24, 23, 50, tzinfo=UTC))], T0)
    store.upsert_news([replace(late, published_at=datetime(2026, 11, 25, 0, 10, tzinfo=UTC))], T0)
    assert store.count_news() == 1


def test_a_recurring_headline_days_later_is_a_new_story(store):
    item = _item("Stocks making the biggest moves midday")
    store.upsert_news([item], T0)
    later = replace(item, published_at=T0 + timedelta(days=7))
    assert store.upsert_news([later], T0 + timedelta(days=7)) == [
        replace(later, first_seen_at=T0 + timedelta(days=7))
    ]
    assert store.count_news() == 2


def test_scores_are_cached_per_scorer_and_revision(store):
    store.upsert_news([_item("Apple beats"), _item("Apple misses", url="u2")], seen_at=T0)
    pending = store.pending_texts("lexicon", "v1")
    assert len(pending) == 2
    scores = [
        SentimentScore(h, "positive", 0.8, 0.1, 0.1, "lexicon", "v1")
        for h, t in pending
        if t == "Apple beats"
    ]
    assert store.save_scores(scores) == 1
    assert store.save_scores(scores) == 0
    assert len(store.pending_texts("lexicon", "v1")) == 1
    assert len(store.pending_texts("lexicon", "v2")) == 2
    head = store.headlines(["AAPL"])
    scored = head[head["text_hash"] == text_hash("Apple beats")]
    assert scored["score"].iloc[0] == pytest.approx(0.7)


def test_a_model_score_wins_over_a_later_fallback_score(store):
    store.upsert_news([_item("Apple beats")], seen_at=T0)
    h = text_hash("Apple beats")
    store.save_scores([SentimentScore(h, "positive", 0.9, 0.05, 0.05, "ProsusAI/finbert", "abc")])
    store.save_scores([SentimentScore(h, "negative", 0.1, 0.8, 0.1, "sentinel42-fallback", "f1")])
    row = store.headlines(["AAPL"]).iloc[0]
    assert row["scorer"] == "ProsusAI/finbert"
    assert row["score"] == pytest.approx(0.85)


def test_decisions_upsert_on_ticker_and_bar(store):
    d = Decision("AAPL", T0, Action.BUY, 0.7, "r1", {"a": 1}, {"m": "v1"}, T0)
    store.save_decisions([d])
    store.save_decisions([Decision("AAPL", T0, Action.HOLD, 0.2, "r2", {}, {}, T0)])
    rows = store.decisions()
    assert len(rows) == 1
    assert rows[0].action is Action.HOLD and rows[0].reason == "r2"


def test_predictions_are_idempotent(store):
    p = Prediction("AAPL", T0, 0.6, 0.001, "v1", 0.55, 4)
    assert store.save_predictions([p], T0) == 1
    assert store.save_predictions([p], T0) == 0


def test_request_budget_and_feed_state_round_trip(store):
    day = T0.date()
    store.add_requests("newsapi", day)
    store.add_requests("newsapi", day, 2)
    assert store.count_requests("newsapi", day) == 3
    store.set_feed_state("https://f", '"e1"', None)
    store.set_feed_state("https://f", '"e2"', "Tue")
    assert store.get_feed_state("https://f") == ('"e2"', "Tue")


def test_upgrade_from_first_schema_keeps_the_data(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO bars (ticker, interval, ts, open, high, low, close, volume) "
                "VALUES ('AAPL', '15m', 1764000000, 1, 2, 0.5, 1.5, 10)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO news (dedupe_key, url, title, summary, source, origin, published_at,"
                " first_seen_at, text_hash) VALUES ('k1', 'https://e/1', 'Old story', '', 'E',"
                " 'rss', '2026-11-24 14:30:00', '2026-11-24 14:30:00', 'h1')"
            )
        )
        conn.execute(text("INSERT INTO news_tickers (news_id, ticker) VALUES (1, 'AAPL')"))
    engine.dispose()
    with open_store(url=f"sqlite:///{tmp_path / 'old.db'}") as store:
        assert current_revision(store.engine) == "0002"
        bars = store.load_bars(["AAPL"], "15m")["AAPL"]
        assert bars["close"].iloc[0] == 1.5
        assert not bars["flagged"].iloc[0]
        # A story stored by the first schema is recognised again, not duplicated.
        assert store.upsert_news([_item("Old story", tickers=("MSFT",))], seen_at=T0) == []
        assert store.count_news() == 1
        assert sorted(store.headlines(None)["ticker"]) == ["AAPL", "MSFT"]
