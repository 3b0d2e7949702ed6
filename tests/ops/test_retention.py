"""Retention: old bars, headlines, scores and model versions go; what is still needed stays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.domain import Action, Decision, DecisionScore, NewsItem, SentimentScore, text_hash
from sentinel42.model.registry import ModelRegistry
from sentinel42.ops.retention import prune
from sentinel42.persistence import open_store, score_ledger
from sentinel42.settings import load_settings

AS_OF = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
BAR = timedelta(minutes=15)
DAY = timedelta(days=1)


def _bars(start: datetime, n: int, step: timedelta = BAR) -> pd.DataFrame:
    idx = pd.DatetimeIndex([start + i * step for i in range(n)], name="ts")
    c = [100.0 + i for i in range(n)]
    return pd.DataFrame(
        {"open": c, "high": c, "low": c, "close": c, "volume": [1.0] * n}, index=idx
    )


def _news(title: str, published: datetime) -> NewsItem:
    return NewsItem(f"https://x/{title}", title, published, "wire", tickers=("AAPL",))


def _score(title: str) -> SentimentScore:
    return SentimentScore(text_hash(title), "neutral", 0.2, 0.2, 0.6, "finbert", "r1")


def _model(registry: ModelRegistry, version: str) -> None:
    folder = registry.models_dir / version
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "metadata.json").write_text("{}", encoding="utf-8")


@pytest.fixture
def settings(tmp_path):
    return load_settings(
        tickers=["AAPL"],
        data_dir=tmp_path / "data",
        bars_retention_days=30,
        daily_history_days=60,
        news_retention_days=7,
        sentiment_window_hours=24,
        models_keep=2,
    )


@pytest.fixture
def store(settings):
    with open_store(settings) as store:
        yield store


def _fill(store) -> None:
    store.upsert_bars("AAPL", "15m", _bars(AS_OF - 40 * DAY, 4))  # past the 30-day window
    store.upsert_bars("AAPL", "15m", _bars(AS_OF - 29 * DAY, 4))  # inside it
    store.upsert_bars("AAPL", "1d", _bars(AS_OF - 70 * DAY, 3, DAY))  # past the 60-day daily
    store.upsert_bars("AAPL", "1d", _bars(AS_OF - 50 * DAY, 3, DAY))
    store.upsert_news([_news("old", AS_OF - 8 * DAY), _news("new", AS_OF - 6 * DAY)], AS_OF)
    store.save_scores([_score("old"), _score("new")], AS_OF)


def test_prune_removes_rows_past_the_window_keeps_newer_and_a_second_prune_removes_nothing(
    settings, store
) -> None:
    _fill(store)
    first = prune(store, settings, AS_OF, batch_size=3)  # batches smaller than the work

    assert (first["bars_deleted"], first["daily_bars_deleted"]) == (4, 3)
    assert (first["news_deleted"], first["scores_deleted"]) == (1, 1)
    assert first["bars_cutoff"] == (AS_OF - 30 * DAY).isoformat()
    assert first["held_for_decision"] is None
    kept = store.load_bars(["AAPL"], "15m")["AAPL"]
    assert kept.index.min() == pd.Timestamp(AS_OF - 29 * DAY)
    assert len(kept) == 4
    assert store.load_bars(["AAPL"], "1d")["AAPL"].index.min() == pd.Timestamp(AS_OF - 50 * DAY)
    headlines = store.headlines(["AAPL"])
    assert list(headlines["title"]) == ["new"]
    assert headlines["score"].notna().all()  # the kept headline keeps its score
    assert store.count_scores() == 1

    second = prune(store, settings, AS_OF)
    deleted = ("bars_deleted", "daily_bars_deleted", "news_deleted", "scores_deleted")
    assert all(second[k] == 0 for k in deleted)
    assert second["models_deleted"] == []


def test_headlines_the_sentiment_window_still_reads_are_kept(tmp_path) -> None:
    settings = load_settings(
        tickers=["AAPL"], data_dir=tmp_path / "d", news_retention_days=7, sentiment_window_hours=240
    )
    with open_store(settings) as store:
        store.upsert_news(
            [_news("eight days", AS_OF - 8 * DAY), _news("old", AS_OF - 11 * DAY)], AS_OF
        )
        report = prune(store, settings, AS_OF)
        assert report["news_cutoff"] == (AS_OF - 10 * DAY).isoformat()
        assert list(store.headlines()["title"]) == ["eight days"]


def test_an_unscored_standing_decision_keeps_its_bars_until_it_is_scored(settings, store) -> None:
    decided = AS_OF - 35 * DAY  # past the window, within validation's look-back
    store.upsert_bars("AAPL", "15m", _bars(decided - 2 * BAR, 8))
    d = Decision("AAPL", decided, Action.BUY, 0.6, "test", {}, {}, decided + timedelta(minutes=17))
    store.save_decisions([d], run_id="run-1")

    held = prune(store, settings, AS_OF)
    assert held["held_for_decision"] == decided.isoformat()
    assert held["bars_deleted"] == 2  # only the bars before the decision's own
    assert store.load_bars(["AAPL"], "15m")["AAPL"].index.min() == pd.Timestamp(decided)

    score = DecisionScore(
        ticker="AAPL",
        bar_ts=decided,
        action=Action.BUY,
        close=100.0,
        exit_bar_ts=decided + BAR,
        exit_close=101.0,
        horizon_bars=1,
        forward_return=0.01,
        hit=True,
        model_signal=None,
        model_signal_hit=None,
        sentiment_signal=None,
        sentiment_signal_hit=None,
        model_version=None,
        scored_at=AS_OF,
    )
    score_ledger.save_decision_scores(store, [score])
    released = prune(store, settings, AS_OF)
    assert released["held_for_decision"] is None
    assert released["bars_deleted"] == 6
    assert store.count_decisions() == 1  # decisions are the record: never pruned


def test_old_model_versions_go_but_the_newest_and_the_promoted_one_stay(settings, store) -> None:
    registry = ModelRegistry(settings.models_dir)
    versions = [f"2026110{i}T000000Z-abcdef0{i}" for i in range(1, 6)]
    for version in versions:
        _model(registry, version)
    registry.promote(versions[0])  # the oldest is still the promoted one

    report = prune(store, settings, AS_OF)

    assert report["models_deleted"] == versions[1:3]
    assert registry.versions() == [versions[0], *versions[3:]]
    assert registry.current_version() == versions[0]
    assert registry.prune(2) == []


def test_registry_prune_rejects_keeping_nothing(tmp_path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ModelRegistry(tmp_path).prune(0)


def test_prune_refuses_a_naive_clock(settings, store) -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        prune(store, settings, datetime(2026, 11, 25))


def test_cli_prune_prints_one_json_document(settings, store) -> None:
    # A store must exist: prune never creates one (issue 18 item 4).
    result = CliRunner().invoke(app, ["prune", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bars_deleted"] == 0
    assert report["models_deleted"] == []
