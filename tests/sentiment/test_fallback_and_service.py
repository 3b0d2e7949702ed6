from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sentinel42.domain import NewsItem
from sentinel42.sentiment.aggregate import aggregate_sentiment
from sentinel42.sentiment.fallback import FallbackScorer, LexiconScorer
from sentinel42.sentiment.metrics import macro_f1
from sentinel42.sentiment.service import score_pending
from tests.helpers import run_cli
from tests.sentiment.conftest import SHARED_DATA

AS_OF = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
LABELS = {"0": "negative", "1": "positive", "2": "neutral"}


def test_fallback_scores_obvious_headlines_and_names_itself():
    scores = FallbackScorer().score(
        [
            "Company X beats profit forecasts and raises guidance",
            "Shares plunge after the company cuts its outlook and misses estimates",
        ]
    )
    assert [s.label for s in scores] == ["positive", "negative"]
    assert scores[0].scorer == "sentinel42-fallback"
    assert scores[0].revision.startswith("sha256:")
    assert scores[0].score > 0.5 > -0.5 > scores[1].score


def test_fallback_beats_the_lexicon_and_the_bar_on_the_validation_split():
    path = SHARED_DATA / "labeled" / "twitter_financial_news_sentiment_valid.csv"
    if not path.exists():
        pytest.skip(f"labelled data {path} is absent (it lives beside the repository)")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    texts = [r["text"] for r in rows]
    truth = [LABELS[r["label"]] for r in rows]
    fallback = macro_f1(truth, [s.label for s in FallbackScorer().score(texts)])
    lexicon = macro_f1(truth, [s.label for s in LexiconScorer().score(texts)])
    assert fallback >= 0.75
    assert lexicon < fallback


def _item(title, ticker, published, first_seen=None):
    return NewsItem(
        url=f"https://x/{abs(hash(title))}",
        title=title,
        published_at=published,
        source="W",
        tickers=(ticker,),
        first_seen_at=first_seen,
    )


def test_each_headline_is_scored_once_and_steady_state_scores_nothing(store):
    scorer = FallbackScorer()
    store.upsert_news(
        [
            _item("Apple beats forecasts", "AAPL", AS_OF),
            _item("Microsoft misses and cuts outlook", "MSFT", AS_OF),
        ],
        seen_at=AS_OF,
    )
    assert score_pending(store, scorer, 1, AS_OF) == 2
    assert score_pending(store, scorer, 32, AS_OF) == 0
    store.upsert_news([_item("Apple raises guidance", "AAPL", AS_OF)], seen_at=AS_OF)
    assert score_pending(store, scorer, 32, AS_OF) == 1
    assert store.count_scores() == 3


def test_scores_are_stamped_with_the_run_clock_not_the_wall_clock(store):
    """Time is an input: a run's scores carry its ``as_of``; persistence reads no clock."""
    from sqlalchemy import text

    store.upsert_news([_item("Apple beats forecasts", "AAPL", AS_OF)], seen_at=AS_OF)
    assert score_pending(store, FallbackScorer(), 32, AS_OF) == 1
    with store.engine.connect() as conn:
        stamps = conn.execute(text("SELECT scored_at FROM sentiment")).scalars().all()
    assert [datetime.fromisoformat(str(t)).replace(tzinfo=UTC) for t in stamps] == [AS_OF]


def test_aggregate_is_recency_weighted_and_tells_no_news_from_neutral(store):
    old = AS_OF - timedelta(hours=6)
    store.upsert_news(
        [_item("Apple beats forecasts and raises guidance", "AAPL", AS_OF - timedelta(hours=1))],
        seen_at=AS_OF - timedelta(hours=1),
    )
    store.upsert_news(
        [_item("Apple misses estimates and cuts its outlook", "AAPL", old)], seen_at=old
    )
    # Published 3 days ago, first seen now: three days old, outside the window (it counted as
    # fresh news before).
    store.upsert_news(
        [_item("Apple shares jump on record demand", "AAPL", AS_OF - timedelta(days=3))],
        seen_at=AS_OF - timedelta(minutes=30),
    )
    # Seen only after as_of: a backtest must not use it.
    store.upsert_news(
        [_item("Apple crashes", "AAPL", AS_OF - timedelta(hours=2))],
        seen_at=AS_OF + timedelta(minutes=5),
    )
    score_pending(store, FallbackScorer(), 32, AS_OF)
    agg = aggregate_sentiment(store, ["AAPL", "MSFT"], AS_OF, window_hours=24, half_life_hours=6)
    assert agg["AAPL"].n_headlines == 2
    assert agg["AAPL"].newest_headline_at == AS_OF - timedelta(hours=1)
    assert agg["AAPL"].scorers == ("sentinel42-fallback",)
    assert 0.0 < agg["AAPL"].score <= 1.0  # the recent positive outweighs the older negative
    assert agg["MSFT"].n_headlines == 0 and agg["MSFT"].score == 0.0
    assert agg["MSFT"].newest_headline_at is None
    narrow = aggregate_sentiment(store, ["AAPL"], AS_OF, window_hours=2, half_life_hours=6)
    assert narrow["AAPL"].n_headlines == 1  # only the story published an hour ago


def test_cli_scores_stdin_as_json_lines_in_order(tmp_path):
    env = {
        "SENTINEL42_DATA_DIR": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PATH": "/usr/bin:/bin",
    }
    proc = run_cli(
        "sentiment",
        "score",
        "--json",
        env=env,
        stdin="Company X beats profit forecasts and raises guidance\n\n"
        "Shares plunge after profit warning\n",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", None, "negative"]
    assert rows[0]["scorer"] == "sentinel42-fallback"
    assert set(rows[0]["probabilities"]) == {"positive", "negative", "neutral"}
    assert "fallback" in proc.stderr


class _RacedFallback(FallbackScorer):
    """The fallback scorer, beside another process that saves the same headlines' scores
    first: on its first batch, another connection to the same store (standing for the other
    process) stores every pending score before this one's save runs."""

    def __init__(self, other_store) -> None:
        super().__init__()
        self.other = other_store
        self.raced = False

    def score(self, texts):
        if not self.raced:
            self.raced = True
            pending = self.other.pending_texts(self.name, self.revision, limit=256)
            theirs = FallbackScorer().score([t for _, t in pending])
            self.other.save_scores(
                [replace(s, text_hash=h) for s, (h, _) in zip(theirs, pending, strict=True)],
                AS_OF,
            )
        return super().score(texts)


def test_scores_another_process_saved_first_do_not_stop_the_rest(store, settings):
    """The first chunk's scores all conflict (another process saved them): that is "already
    stored", and the later chunks are still scored (they were left unscored before)."""
    from sentinel42.persistence import open_store

    store.upsert_news(
        [_item(f"Headline {i} about Apple's quarter", "AAPL", AS_OF) for i in range(300)],
        seen_at=AS_OF,
    )
    with open_store(settings) as other:
        scorer = _RacedFallback(other)
        stored = score_pending(store, scorer, 32, AS_OF)
    assert store.pending_texts(scorer.name, scorer.revision) == []
    assert store.count_scores() == 300
    assert stored == 300 - 256  # the rest; the other process's 256 are not counted twice


def test_a_decision_scores_headlines_another_process_stored_but_did_not_score(replay_env):
    """Headlines stored by another process (a refresh that has not scored them yet) count in
    the decision: the trading run scores them itself. Before, they were silently left out
    ("no recent news")."""
    from sentinel42 import clock, pipeline
    from sentinel42.persistence import open_store
    from sentinel42.settings import load_settings

    settings = load_settings()
    as_of = clock.resolve_as_of(settings)
    pipeline.refresh_prices(settings, as_of)
    titles = {"AAPL": "Apple beats forecasts and raises guidance",
              "MSFT": "Microsoft misses estimates and cuts its outlook"}  # fmt: skip
    with open_store(settings) as store:
        store.upsert_news(
            [_item(t, k, as_of - timedelta(hours=1)) for k, t in titles.items()],
            seen_at=as_of - timedelta(minutes=30),
        )
        assert store.count_scores() == 0
    decisions = {d.ticker: d for d in pipeline.decide(settings, as_of).decisions}
    assert decisions["AAPL"].inputs["headlines"] == 1 and decisions["AAPL"].inputs["sentiment"] > 0
    assert decisions["MSFT"].inputs["headlines"] == 1 and decisions["MSFT"].inputs["sentiment"] < 0
    assert decisions["NVDA"].inputs["headlines"] == 0  # no news stays "no recent news"
    assert "no recent news" in decisions["NVDA"].reason
