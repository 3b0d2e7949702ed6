"""The pipeline's steps in-process on a generated replay set: the same path the flows run."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

from sentinel42 import clock, pipeline
from sentinel42.domain import Action
from sentinel42.persistence import open_store
from sentinel42.settings import load_settings

CLOSE = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)  # 16:00 New York, the replay data's end


def test_replay_clock_defaults_to_the_end_of_the_data(replay_env):
    assert clock.resolve_as_of(load_settings()) == CLOSE


def test_a_second_refresh_stores_and_scores_nothing_new(replay_env):
    settings = load_settings()
    first = pipeline.refresh_all(settings, CLOSE)
    assert all(row["bars_new"] > 0 for row in first.tickers)
    assert first.headlines_new > 0
    assert first.headlines_scored > 0
    second = pipeline.refresh_all(settings, CLOSE)
    assert [row["bars_new"] + row["bars_updated"] for row in second.tickers] == [0, 0, 0]
    assert second.headlines_new == 0
    assert second.headlines_scored == 0


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
        # No model and no headline in the replay set: nothing carries evidence, so HOLD.
        assert (d.action, d.inputs["evidence"]) == (Action.HOLD, 0.0), d
        assert d.reason.startswith("HOLD: no signal to act on; "), d.reason
        assert "no promoted model" in d.reason
        assert d.inputs["close"] > 0
    again = pipeline.decide(settings, CLOSE, forced=True)
    with open_store(settings) as store:
        assert len(store.decisions(limit=100)) == len(settings.tickers)
    assert [d.action for d in again.decisions] == [d.action for d in result.decisions]


def test_a_refresh_then_decide_run_says_nothing_waits_for_scoring_once(replay_env, caplog):
    settings = load_settings()
    pipeline.refresh_all(settings, CLOSE)  # scores every headline of the replay set
    caplog.set_level(logging.INFO)
    caplog.clear()
    # A run: the refresh (its scoring step finds nothing new), then the decision (its check
    # that every headline seen by then has a score).
    pipeline.refresh_all(settings, CLOSE)
    pipeline.decide(settings, CLOSE, forced=True)
    said = [r for r in caplog.records if "no headline waits for scoring" in r.getMessage()]
    assert [(r.name, r.levelno) for r in said] == [("sentinel42.sentiment.service", logging.INFO)]


def test_a_ticker_without_data_is_reported_and_the_rest_decide(replay_env, monkeypatch):
    monkeypatch.setenv("SENTINEL42_TICKERS", "AAPL,ZZZZ")
    settings = load_settings()
    summary = pipeline.refresh_all(settings, CLOSE)
    errors = {row["ticker"]: row["error"] for row in summary.tickers}
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


# A good headline, then neutral ones that dilute it bar after bar: the fused score (news alone,
# 0.4 of the fusion) enters above +0.15, falls through the band between the thresholds, and
# below the exit band (+0.05) once a bad one follows. Minutes after 14:30 UTC (09:30 New York)
# on 2026-11-24.
_DILUTED = [
    (5, "Apple beats profit forecasts and raises guidance"),
    (35, "Apple to hold annual shareholder meeting in March"),
    (50, "Apple names new board member"),
    (65, "Apple to hold its developer conference in June"),
    (80, "Apple names new chief people officer"),
    (95, "Apple to hold annual shareholder meeting in April"),
    (110, "Apple names new general counsel"),
    (125, "Apple to hold earnings call on Thursday"),
    (140, "Apple faces regulatory probe, shares drop 2.7%"),
]


def test_decide_over_a_moving_clock_carries_the_previous_action_across_bars(
    replay_env, tmp_path, monkeypatch
):
    import json
    import shutil
    from datetime import timedelta

    folder = tmp_path / "replay"
    shutil.copytree(replay_env / "prices", folder / "prices")
    (folder / "news").mkdir()
    session = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    lines = [
        {"published_at": (session + timedelta(minutes=m)).isoformat(), "title": title,
         "url": f"https://news.example.com/aapl/{m}", "source": "Example Wire",
         "tickers": ["AAPL"]}
        for m, title in _DILUTED
    ]  # fmt: skip
    (folder / "news" / "diluted.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(folder))
    monkeypatch.setenv("SENTINEL42_TICKERS", "AAPL")
    # The offline scorer, whatever the machine has cached: the path below depends on its scores.
    monkeypatch.setenv("SENTINEL42_FINBERT_MODEL", str(tmp_path / "no-finbert"))
    settings = load_settings()
    steps = []
    for k in range(12):  # the 09:30 ... 12:15 bars, each decided 17 minutes after it starts
        clock = session + timedelta(minutes=17 + 15 * k)
        pipeline.refresh_all(settings, clock)
        (d,) = pipeline.decide(settings, clock, run_id=f"run-{k}").decisions
        steps.append(d)
    with open_store(settings) as store:
        standing = {d.bar_ts: d for d in store.decisions("AAPL", limit=100)}
    assert sorted(standing) == [d.bar_ts for d in steps]  # one standing decision per bar
    previous = None
    for d in steps:
        assert d.inputs["previous_action"] == (previous.action.value if previous else None)
        assert d.inputs["previous_bar_ts"] == (previous.bar_ts.isoformat() if previous else None)
        fused, held = d.inputs["fused"], d.inputs["previous_position"]
        if held == "long":
            assert d.action is (Action.BUY if fused > 0.05 else Action.SELL), d.reason
        elif fused >= 0.15:
            assert d.action is Action.BUY, d.reason
        # News alone and not validated (the tests let it count): capped at 2 % of equity.
        assert d.inputs["news_only"] is True
        assert abs(d.inputs.get("target_weight", 0.0)) <= settings.portfolio_news_only_fraction
        previous = standing[d.bar_ts]
    reasons = [d.reason.split(";")[0] for d in steps]
    # It entered, held the long between the thresholds (the old rule held nothing there: HOLD),
    # and exited once the score fell to the exit band.
    assert any(r.startswith("BUY: fused") for r in reasons), reasons
    held_between = [d for d in steps if d.action is Action.BUY and d.inputs["fused"] < 0.15]
    assert held_between, reasons
    assert any(r.startswith("SELL: exit long") for r in reasons), "\n".join(reasons)
    assert steps[-1].inputs["position"] == "flat"
    # A second run for the exit's bar (a revision) reads the same earlier bar: it exits too.
    k = next(i for i, r in enumerate(reasons) if r.startswith("SELL: exit long"))
    (again,) = pipeline.decide(
        settings, session + timedelta(minutes=17 + 15 * k), run_id="again"
    ).decisions
    assert again.inputs["previous_bar_ts"] == steps[k - 1].bar_ts.isoformat()
    assert (again.action, again.inputs["target_weight"]) == (Action.SELL, 0.0)
    # Only standing decisions carry the position: a later revision of the bar before says flat,
    # and the exit's bar still reads the standing long.
    flat = dataclasses.replace(steps[k - 1], action=Action.HOLD, inputs={"position": "flat"})
    with open_store(settings) as store:
        assert store.save_decisions([flat], run_id="weekend").revisions == 1
    (third,) = pipeline.decide(
        settings, session + timedelta(minutes=17 + 15 * k), run_id="third"
    ).decisions
    assert third.inputs["previous_position"] == "long"
    assert third.action is Action.SELL


def test_the_previous_standing_decisions_of_a_universe_sized_watchlist_come_in_one_read():
    """1,200 tickers whose newest bars differ: each gets its newest standing decision for an
    earlier bar of its own, whatever the number of tickers (SQLite caps an expression's
    depth at 1,000)."""
    from datetime import timedelta

    from sentinel42.domain import Decision

    settings = load_settings()
    t0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=15)
    tickers = [f"T{i:04d}" for i in range(1200)]
    decisions = [
        Decision(
            t,
            bar,
            action,
            0.5,
            "",
            inputs={"position": position},
            decided_at=bar + timedelta(minutes=17),  # the bar's end plus the trading delay
        )
        for t in tickers
        for bar, action, position in ((t0, Action.BUY, "long"), (t1, Action.SELL, "flat"))
    ]
    with open_store(settings) as store:
        store.save_decisions(decisions, run_id="run-1")
        # The odd tickers decide t1 now: their previous bar is t0; the even ones decide the
        # next bar, whose previous is t1.
        asked = {t: t1 if i % 2 else t1 + timedelta(minutes=15) for i, t in enumerate(tickers)}
        previous = store.standing_before(asked)
        assert store.standing_before({}) == {}
        assert store.standing_before({"NONE": t1}) == {}
    assert sorted(previous) == tickers
    for i, t in enumerate(tickers):
        expected = (t0, Action.BUY) if i % 2 else (t1, Action.SELL)
        assert (previous[t].bar_ts, previous[t].action) == expected, t


def test_typed_refresh_and_portfolio_results_print_the_json_they_always_did(replay_env):
    """The refresh and portfolio reports cross layers typed; their ``to_dict`` is the JSON the
    CLI and the flows printed before: the same keys in the same order, the same values."""
    import json
    from datetime import timedelta

    from sentinel42.domain import PortfolioUpdate
    from sentinel42.portfolio import update_portfolio

    settings = load_settings()
    earlier = CLOSE - timedelta(days=1)
    summary = pipeline.refresh_all(settings, earlier)
    assert list(summary.to_dict()) == [
        "as_of", "tickers", "no_data", "failed_tickers", "no_usable_data", "headlines_new",
        "headlines_scored", "scorer", "problems",
    ]  # fmt: skip
    assert summary.to_dict()["as_of"] == earlier.isoformat()
    assert [row["ticker"] for row in summary.to_dict()["tickers"]] == list(settings.tickers)
    pipeline.decide(settings, earlier, forced=True)
    first = pipeline.update_portfolio(settings, earlier)
    pipeline.refresh_all(settings, CLOSE)
    pipeline.decide(settings, CLOSE, forced=True)
    with open_store(settings) as store:
        raw = update_portfolio(store, settings, CLOSE)  # the untyped snapshot, as JSON
    assert first.pending and raw["positions"] and raw["trades"]  # every part is exercised
    again = PortfolioUpdate.from_snapshot(raw)
    assert json.dumps(again.to_dict()) == json.dumps(raw)  # keys, order and values
    assert again.ts == CLOSE and again.applied == raw["applied"] > 0
    assert first.ts == earlier and first.to_dict()["ts"] == earlier.isoformat()
