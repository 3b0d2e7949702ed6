"""The per-ticker sentiment aggregate: when a story may be used, and how much it weighs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sentinel42.domain import NewsItem, SentimentScore, text_hash
from sentinel42.persistence import open_store
from sentinel42.sentiment.aggregate import aggregate_sentiment

AS_OF = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def _store_story(store, title: str, published: datetime, seen: datetime, score: float) -> None:
    item = NewsItem(
        url=f"https://news.example.com/{abs(hash(title))}",
        title=title,
        published_at=published,
        source="Example Wire",
        tickers=("AAPL",),
    )
    store.upsert_news([item], seen_at=seen)
    p_pos, p_neg = max(score, 0.0), max(-score, 0.0)
    store.save_scores(
        [SentimentScore(text_hash(title), "positive" if score > 0 else "negative",
                        p_pos, p_neg, 1.0 - p_pos - p_neg, "test-scorer", "r1")],
        seen,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path):
    with open_store(url=f"sqlite:///{tmp_path / 's.db'}") as s:
        yield s


def test_a_story_published_two_days_ago_and_first_seen_now_is_not_fresh_news(store):
    _store_story(store, "Apple beats estimates", AS_OF - timedelta(days=2), AS_OF, 0.9)
    agg = aggregate_sentiment(store, ["AAPL"], AS_OF, window_hours=24, half_life_hours=6)
    assert agg["AAPL"].n_headlines == 0
    assert agg["AAPL"].newest_headline_at is None


def test_a_story_is_weighted_by_its_age_since_publication_not_since_first_seen(store):
    # Old good news seen now, fresh bad news: the fresh one must dominate.
    _store_story(store, "Apple soars on record iPhone sales", AS_OF - timedelta(hours=12), AS_OF,
                 0.9)  # fmt: skip
    _store_story(store, "Apple plunges on probe", AS_OF - timedelta(minutes=10), AS_OF, -0.9)
    agg = aggregate_sentiment(store, ["AAPL"], AS_OF, window_hours=24, half_life_hours=6)
    assert agg["AAPL"].n_headlines == 2
    # weights 0.25 (12 h at a 6 h half-life) and ~0.98: (0.25*0.9 - 0.98*0.9) / 1.23
    assert agg["AAPL"].score == pytest.approx((0.25 * 0.9 - 0.5 ** (1 / 36) * 0.9)
                                              / (0.25 + 0.5 ** (1 / 36)), rel=1e-6)  # fmt: skip
    assert agg["AAPL"].newest_headline_at == AS_OF - timedelta(minutes=10)


def test_a_story_first_seen_after_the_clock_is_not_used_however_it_is_dated(store):
    # A backtest at AS_OF must not use what a later refresh found, even if dated earlier.
    later = AS_OF + timedelta(hours=1)
    _store_story(store, "Apple wins contract", AS_OF - timedelta(hours=1), later, 0.8)
    agg = aggregate_sentiment(store, ["AAPL"], AS_OF, window_hours=24, half_life_hours=6)
    assert agg["AAPL"].n_headlines == 0
    after = aggregate_sentiment(store, ["AAPL"], later, 24, 6)
    assert after["AAPL"].n_headlines == 1


@pytest.mark.parametrize("hours_old", [0.5, 5.0, 23.0])
def test_a_story_inside_the_window_counts_once_whatever_its_age(store, hours_old):
    _store_story(store, "Apple raises guidance", AS_OF - timedelta(hours=hours_old), AS_OF, 0.7)
    agg = aggregate_sentiment(store, ["AAPL"], AS_OF, window_hours=24, half_life_hours=6)
    assert agg["AAPL"].n_headlines == 1
    assert agg["AAPL"].score == pytest.approx(0.7)
