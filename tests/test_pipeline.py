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


def _replay_news(replay_dir) -> list[dict]:
    import json

    lines = (replay_dir / "news" / "synthetic.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_decisions_count_only_stories_published_inside_the_window(replay_env, monkeypatch):
    """The generated set spreads 39 headlines over 12 sessions; refreshed at its end, every one
    is first seen at the clock. Only the 7 published in the window (96 hours here) may count."""
    from datetime import timedelta

    monkeypatch.setenv("SENTINEL42_SENTIMENT_WINDOW_HOURS", "96")
    settings = load_settings()
    pipeline.refresh_all(settings, CLOSE)
    result = pipeline.decide(settings, CLOSE, forced=True)
    window_start = CLOSE - timedelta(hours=settings.sentiment_window_hours)
    news = _replay_news(replay_env)
    assert len(news) > 10
    assert sum(d.inputs["headlines"] for d in result.decisions) > 0
    for d in result.decisions:
        inside = [
            n for n in news
            if d.ticker in n["tickers"]
            and window_start < datetime.fromisoformat(n["published_at"]) <= CLOSE
        ]  # fmt: skip
        assert d.inputs["headlines"] == len(inside), d.ticker


def test_one_headline_three_days_old_gives_no_recent_news(replay_env, tmp_path, monkeypatch):
    import json
    import shutil
    from datetime import timedelta

    folder = tmp_path / "replay"
    shutil.copytree(replay_env / "prices", folder / "prices")
    (folder / "news").mkdir()
    line = {
        "published_at": (CLOSE - timedelta(days=3)).isoformat(),
        "title": "Apple beats profit forecasts and raises guidance",
        "url": "https://news.example.com/aapl/old",
        "source": "Example Wire",
        "tickers": ["AAPL"],
    }
    (folder / "news" / "one.jsonl").write_text(json.dumps(line) + "\n")
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(folder))
    settings = load_settings()
    pipeline.refresh_all(settings, CLOSE)
    result = pipeline.decide(settings, CLOSE, forced=True)
    aapl = next(d for d in result.decisions if d.ticker == "AAPL")
    assert aapl.inputs["headlines"] == 0
    assert "no recent news" in aapl.reason


def test_two_runs_for_the_same_bar_leave_one_standing_decision_and_one_revision(replay_env):
    settings = load_settings()
    pipeline.refresh_all(settings, CLOSE)
    first = pipeline.decide(settings, CLOSE, forced=False, run_id="run-1")
    retried = pipeline.decide(settings, CLOSE, forced=False, run_id="run-1")
    forced = pipeline.decide(settings, CLOSE, forced=True, run_id="run-2")
    n = len(settings.tickers)
    assert first.saved == {"standing": n, "revisions": 0, "unchanged": 0}
    assert retried.saved == {"standing": 0, "revisions": 0, "unchanged": n}
    assert forced.saved == {"standing": 0, "revisions": n, "unchanged": 0}
    with open_store(settings) as store:
        standing = store.decisions(limit=100)
        history = store.decisions(limit=100, all_revisions=True)
    assert len(standing) == n and len(history) == 2 * n
    assert all(d.run_id == "run-1" and d.revision == 0 for d in standing)
