"""The ledger tables: idempotent writes on natural keys, migration 0004 up and down."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from sentinel42.domain import (
    Action,
    Decision,
    DecisionScore,
    EquityPoint,
    GroupStats,
    ModelHealth,
    SavedPortfolio,
)
from sentinel42.persistence import (
    current_revision,
    ledger,
    make_engine,
    migrate,
    open_store,
    score_ledger,
)
from sentinel42.persistence.db import MIGRATIONS_DIR, head_revision

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
BAR = timedelta(minutes=15)
LEDGER_TABLES = {"portfolio_state", "equity_curve", "decision_scores", "model_health"}


@pytest.fixture
def store(tmp_path):
    with open_store(url=f"sqlite:///{tmp_path / 'store.db'}") as s:
        yield s


def _score(i: int = 0, **changes) -> DecisionScore:
    score = DecisionScore(
        ticker="AAA",
        bar_ts=T0 + i * BAR,
        action=Action.BUY,
        close=100.0,
        exit_bar_ts=T0 + (i + 1) * BAR,
        exit_close=101.0,
        horizon_bars=1,
        forward_return=0.01,
        hit=True,
        model_signal=1,
        model_signal_hit=True,
        sentiment_signal=None,
        sentiment_signal_hit=None,
        model_version="m1",
        scored_at=T0 + 2 * BAR,
    )
    return replace(score, **changes)


def _health(**changes) -> ModelHealth:
    health = ModelHealth("m1", False, 55, 100, 0.6, 0.58, 0.3, T0)
    return replace(health, **changes)


def test_migration_0004_creates_the_ledger_tables_and_downgrades_cleanly(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        migrate(engine)
        assert current_revision(engine) == head_revision() >= "0004"
        assert set(inspect(engine).get_table_names()) >= LEDGER_TABLES
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            command.downgrade(config, "0003")
        assert current_revision(engine) == "0003"
        assert not LEDGER_TABLES & set(inspect(engine).get_table_names())
        migrate(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_a_score_is_written_once_and_never_rewritten(store) -> None:
    assert score_ledger.save_decision_scores(store, [_score(0), _score(1, hit=False)]) == 2
    assert (
        score_ledger.save_decision_scores(store, [_score(0, forward_return=-0.5), _score(2)]) == 1
    )
    scores = score_ledger.decision_scores(store)
    assert [s.bar_ts for s in scores] == [T0, T0 + BAR, T0 + 2 * BAR]
    assert scores[0] == _score(0)
    assert score_ledger.scored_keys(store, after=T0) == {("AAA", T0 + BAR), ("AAA", T0 + 2 * BAR)}
    assert score_ledger.newest_scored_bar_ts(store) == T0 + 2 * BAR
    assert score_ledger.count_scores(store) == 3


def test_stats_of_an_empty_ledger_are_zero_counts(store) -> None:
    stats = score_ledger.action_stats(store)
    assert stats[Action.BUY] == GroupStats(0, 0, None)
    assert stats[Action.HOLD] == GroupStats(0, None, None)
    assert score_ledger.signal_stats(store, "model") == GroupStats(0, 0, None)
    assert score_ledger.signal_stats(store, "model").hit_rate is None


def test_recent_model_hits_counts_only_that_versions_newest_signals(store) -> None:
    score_ledger.save_decision_scores(
        store,
        [_score(i, model_signal_hit=i % 2 == 0) for i in range(6)]
        + [_score(10, model_version="m2"), _score(11, model_signal=None, model_signal_hit=None)],
    )
    # m1's signals at bars 0..5 and 11 (no signal at 11): the newest 4 are bars 5, 4, 3, 2.
    assert score_ledger.recent_model_hits(store, "m1", 4) == (2, 4)
    assert score_ledger.recent_model_hits(store, "m1", 100) == (3, 6)
    assert score_ledger.recent_model_hits(store, "m3", 100) == (0, 0)


def test_model_health_upserts_until_degraded_then_keeps_the_evidence(store) -> None:
    score_ledger.save_model_health(store, _health())
    score_ledger.save_model_health(store, _health(live_hits=50, p_value=0.1))
    assert score_ledger.model_health(store, "m1") == _health(live_hits=50, p_value=0.1)
    degraded = _health(degraded=True, live_hits=30, p_value=1e-8)
    score_ledger.save_model_health(store, degraded)
    score_ledger.save_model_health(store, _health(live_hits=70, p_value=0.9, at=T0 + BAR))
    assert score_ledger.model_health(store, "m1") == degraded
    assert score_ledger.model_health(store, "m2") is None


def test_portfolio_state_and_equity_points_upsert_on_their_bar(store) -> None:
    saved = SavedPortfolio(T0, {"portfolio": {"cash": 1.0}}, [{"side": "buy"}], 2.0, 1.0, T0)
    ledger.save_portfolio_state(store, saved)
    ledger.save_portfolio_state(store, saved)
    later = replace(saved, bar_ts=T0 + BAR, trades=[{"side": "sell"}], equity=3.0)
    ledger.save_portfolio_state(store, later)
    assert ledger.latest_portfolio_state(store) == later
    assert ledger.portfolio_trades(store) == [{"side": "sell"}, {"side": "buy"}]
    assert ledger.portfolio_trades(store, limit=1) == [{"side": "sell"}]

    point = EquityPoint(T0, 100.0, 50.0, 99.0)
    ledger.save_equity_points(store, [point, replace(point, ts=T0 + BAR)])
    ledger.save_equity_points(store, [replace(point, equity=101.0)])
    assert ledger.equity_curve(store) == [
        replace(point, equity=101.0),
        replace(point, ts=T0 + BAR),
    ]


def test_a_portfolio_step_writes_its_state_and_point_in_one_transaction(store) -> None:
    saved = SavedPortfolio(T0, {"portfolio": {"cash": 1.0}}, [{"n": 1}], 2.0, 1.0, T0)
    point = EquityPoint(T0, 2.0, 1.0, 3.0)
    ledger.save_portfolio_step(store, saved, point)
    ledger.save_portfolio_step(store, saved, point)  # a retry: the same rows
    assert ledger.latest_portfolio_state(store) == saved
    assert ledger.equity_curve(store) == [point]
    # A point that cannot be written (no equity) takes its state row with it.
    bad = replace(point, ts=T0 + BAR, equity=None)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="NOT NULL"):
        ledger.save_portfolio_step(store, replace(saved, bar_ts=T0 + BAR), bad)
    assert ledger.latest_portfolio_state(store) == saved
    assert ledger.equity_curve(store) == [point]
    # Every trade, newest first, when the limit is None.
    for i in range(1, 4):
        later = replace(saved, bar_ts=T0 + i * BAR, trades=[{"n": 2 * i}, {"n": 2 * i + 1}])
        ledger.save_portfolio_state(store, later)
    assert [t["n"] for t in ledger.portfolio_trades(store, limit=None)] == [7, 6, 5, 4, 3, 2, 1]
    assert len(ledger.portfolio_trades(store, limit=3)) == 3


def test_standing_decisions_pages_back_to_after_and_skips_revisions(store) -> None:
    def decision(i: int, action: Action = Action.HOLD) -> Decision:
        bar_ts = T0 + i * BAR
        return Decision(
            "AAA", bar_ts, action, 0.5, "test", {"close": 1.0}, {}, bar_ts + timedelta(minutes=17)
        )

    store.save_decisions([decision(i) for i in range(1_100)], run_id="backfill")
    store.save_decisions([decision(1_050, Action.BUY)], run_id="forced")  # revision 1
    picked = ledger.standing_decisions(store, after=T0 + 9 * BAR, until=T0 + 1_060 * BAR)
    assert [d.bar_ts for d in picked] == [T0 + i * BAR for i in range(10, 1_061)]
    assert all(d.action is Action.HOLD for d in picked)
    assert len(ledger.standing_decisions(store)) == 1_100
