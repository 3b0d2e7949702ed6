"""The pipeline's steps in-process on a generated replay set: the same path the flows run."""

from __future__ import annotations

from datetime import UTC, datetime

from sentinel42 import pipeline
from sentinel42.domain import Action
from sentinel42.persistence import open_store
from sentinel42.settings import load_settings

CLOSE = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)  # 16:00 New York, the replay data's end


def test_replay_clock_defaults_to_the_end_of_the_data(replay_env):
    assert pipeline.resolve_as_of(load_settings()) == CLOSE


def test_a_second_refresh_stores_and_scores_nothing_new(replay_env):
    settings = load_settings()
    first = pipeline.refresh_all(settings, CLOSE)
    assert all(row["bars_new"] > 0 for row in first["tickers"])
    assert first["headlines_new"] > 0
    assert first["headlines_scored"] > 0
    second = pipeline.refresh_all(settings, CLOSE)
    assert [row["bars_new"] + row["bars_updated"] for row in second["tickers"]] == [0, 0, 0]
    assert second["headlines_new"] == 0
    assert second["headlines_scored"] == 0


def test_the_replay_clock_hides_later_data(replay_env):
    settings = load_settings()
    as_of = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 10:00 New York
    pipeline.refresh_all(settings, as_of)
    with open_store(settings) as store:
        bars = store.load_bars(settings.tickers, settings.interval)
        news = store.headlines(None)
    for frame in bars.values():
        assert frame.index.max() <= as_of  # bar start; the bar ended by as_of
        assert frame.index.max().to_pydatetime().timestamp() + 15 * 60 <= as_of.timestamp()
    assert (news["published_at"] <= as_of).all()


def test_gate_skips_outside_the_session_unless_forced(replay_env):
    settings = load_settings()
    thanksgiving = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    assert not pipeline.market_gate(settings, thanksgiving, force=False).proceed
    assert pipeline.market_gate(settings, thanksgiving, force=True).proceed
    assert pipeline.market_gate(
        settings, datetime(2026, 11, 24, 15, 0, tzinfo=UTC), force=False
    ).proceed


def test_decide_without_a_model_records_one_decision_per_ticker_and_says_why(replay_env):
    settings = load_settings()
    pipeline.refresh_all(settings, CLOSE)
    result = pipeline.decide(settings, CLOSE, forced=True)
    assert sorted(d.ticker for d in result.decisions) == sorted(settings.tickers)
    for d in result.decisions:
        assert d.action in set(Action)
        assert "no promoted model" in d.reason
        assert d.inputs["close"] > 0
    again = pipeline.decide(settings, CLOSE, forced=True)
    with open_store(settings) as store:
        assert len(store.decisions(limit=100)) == len(settings.tickers)
    assert [d.action for d in again.decisions] == [d.action for d in result.decisions]


def test_a_ticker_without_data_is_reported_and_the_rest_decide(replay_env, monkeypatch):
    monkeypatch.setenv("SENTINEL42_TICKERS", "AAPL,ZZZZ")
    settings = load_settings()
    summary = pipeline.refresh_all(settings, CLOSE)
    errors = {row["ticker"]: row["error"] for row in summary["tickers"]}
    assert errors["AAPL"] is None
    assert errors.get("ZZZZ")
    result = pipeline.decide(settings, CLOSE, forced=True)
    assert [d.ticker for d in result.decisions] == ["AAPL"]
    assert "ZZZZ" in result.skipped
