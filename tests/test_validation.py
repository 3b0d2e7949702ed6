"""Validation: decisions scored once against what the price did next; model decay detected."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from sentinel42.domain import Action, Decision
from sentinel42.persistence import ledger, open_store
from sentinel42.portfolio import update_portfolio
from sentinel42.settings import load_settings
from sentinel42.validation import binomial_cdf, is_model_degraded, score_decisions

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 09:30 New York
BAR = timedelta(minutes=15)


def _bars(closes: list[float], stamps: list[datetime] | None = None) -> pd.DataFrame:
    stamps = stamps or [T0 + i * BAR for i in range(len(closes))]
    return pd.DataFrame(
        {"open": closes, "high": closes, "low": closes, "close": closes, "volume": 1_000.0},
        index=pd.DatetimeIndex(stamps, name="ts"),
    )


def _decision(
    bar_ts: datetime,
    action: Action,
    close: float,
    *,
    p_up: float | None = None,
    sentiment: float | None = None,
    model: str | None = None,
    accuracy: float | None = None,
    horizon: int | None = None,
    ticker: str = "AAA",
) -> Decision:
    inputs: dict = {"close": close, "sentiment": sentiment}
    if p_up is not None:
        inputs["p_up"] = p_up
    return Decision(
        ticker=ticker,
        bar_ts=bar_ts,
        action=action,
        confidence=0.5,
        reason="test",
        inputs=inputs,
        models={"lstm": model, "lstm_validated_accuracy": accuracy, "lstm_horizon_bars": horizon},
        decided_at=bar_ts + BAR,
    )


def _settings(tmp_path, **overrides):
    return load_settings(
        require_replay_dir=False,
        tickers=["AAA"],
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        model_horizon=1,
        **overrides,
    )


# Closes 100, 102, 101, 100, 100, 96; horizon 1 bar. Forward returns:
#   bar 0 BUY  100 -> 102  +0.02         hit   model up   (p .70) hit   news up   (+.2) hit
#   bar 1 SELL 102 -> 101  -1/102        hit   model down (p .40) hit   news down (-.3) hit
#   bar 2 BUY  101 -> 100  -1/101        miss  model up   (p .60) miss  no news
#   bar 3 HOLD 100 -> 100   0            -     model up   (p .55) miss  news up   (+.1) miss
#   bar 4 SELL 100 -> 96   -0.04         hit   no model             news down (-.5) hit
#   bar 5 BUY   96 -> ?    horizon not passed: not scored
CLOSES = [100.0, 102.0, 101.0, 100.0, 100.0, 96.0]
DECISIONS = [
    _decision(T0, Action.BUY, 100.0, p_up=0.7, sentiment=0.2, model="m1", accuracy=0.6),
    _decision(T0 + BAR, Action.SELL, 102.0, p_up=0.4, sentiment=-0.3, model="m1", accuracy=0.6),
    _decision(T0 + 2 * BAR, Action.BUY, 101.0, p_up=0.6, model="m1", accuracy=0.6),
    _decision(T0 + 3 * BAR, Action.HOLD, 100.0, p_up=0.55, sentiment=0.1, model="m1", accuracy=0.6),
    _decision(T0 + 4 * BAR, Action.SELL, 100.0, sentiment=-0.5),
    _decision(T0 + 5 * BAR, Action.BUY, 96.0, p_up=0.7, model="m1", accuracy=0.6),
]
R = [0.02, 101 / 102 - 1, 100 / 101 - 1, 0.0, -0.04]


@pytest.fixture
def metrics_store(tmp_path):
    settings = _settings(tmp_path)
    with open_store(settings) as store:
        store.upsert_bars("AAA", "15m", _bars(CLOSES))
        store.save_decisions(DECISIONS)
        yield settings, store


def test_metrics_match_the_hand_computation(metrics_store) -> None:
    settings, store = metrics_store
    report = score_decisions(store, settings, T0 + 6 * BAR)
    doc = json.loads(json.dumps(report.to_dict()))

    assert (doc["newly_scored"], doc["scored"], doc["pending"]) == (5, 5, 1)
    buy, sell, hold = doc["actions"]["BUY"], doc["actions"]["SELL"], doc["actions"]["HOLD"]
    assert (buy["n"], buy["hits"], buy["hit_rate"]) == (2, 1, 0.5)
    assert buy["mean_forward_return"] == pytest.approx((R[0] + R[2]) / 2)
    assert (sell["n"], sell["hits"], sell["hit_rate"]) == (2, 2, 1.0)
    assert sell["mean_forward_return"] == pytest.approx((R[1] + R[4]) / 2)
    assert (hold["n"], hold["hits"], hold["hit_rate"]) == (1, None, None)
    assert hold["mean_forward_return"] == pytest.approx(0.0)
    # Following a signal earns the forward return when it says up, minus it when it says down.
    model = doc["model_signal"]
    assert (model["n"], model["hits"], model["hit_rate"]) == (4, 2, 0.5)
    assert model["mean_signed_return"] == pytest.approx((R[0] - R[1] + R[2] + R[3]) / 4)
    news = doc["sentiment_signal"]
    assert (news["n"], news["hits"], news["hit_rate"]) == (4, 3, 0.75)
    assert news["mean_signed_return"] == pytest.approx((R[0] - R[1] + R[3] - R[4]) / 4)
    # Four scored signals are far from a 100-decision window: the model is not tested yet.
    assert doc["model"]["version"] == "m1" and doc["model"]["tested"] is False
    assert doc["degraded_model"] is None and doc["newly_degraded"] is False


def test_each_decision_is_scored_once_and_pending_ones_when_their_horizon_passes(
    metrics_store,
) -> None:
    settings, store = metrics_store
    score_decisions(store, settings, T0 + 6 * BAR)
    again = score_decisions(store, settings, T0 + 6 * BAR)
    assert (again.newly_scored, again.scored, again.pending) == (0, 5, 1)

    store.upsert_bars("AAA", "15m", _bars([97.0], [T0 + 6 * BAR]))
    later = score_decisions(store, settings, T0 + 7 * BAR)
    assert (later.newly_scored, later.scored, later.pending) == (1, 6, 0)
    last = ledger.decision_scores(store)[-1]
    assert (last.bar_ts, last.forward_return, last.hit) == (T0 + 5 * BAR, 97 / 96 - 1, True)


def test_decisions_whose_horizon_has_not_passed_are_not_scored(metrics_store) -> None:
    settings, store = metrics_store
    # At 10:15 bars 0..2 have closed: bar 0 and 1 can be scored; bar 2 needs bar 3 (ends 10:30).
    report = score_decisions(store, settings, T0 + 3 * BAR)
    assert report.newly_scored == 2
    assert [s.bar_ts for s in ledger.decision_scores(store)] == [T0, T0 + BAR]


def test_a_horizon_never_crosses_the_close(tmp_path) -> None:
    """A 2-bar horizon from 15:30 ends at the session's last bar (15:45), one bar later; a
    decision on the last bar has no bar of its session after it and is not scored; the next
    morning's bars are never an exit."""
    settings = _settings(tmp_path)
    day1 = datetime(2026, 11, 24, 20, 30, tzinfo=UTC)  # 15:30 and 15:45 New York
    day2 = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)  # 09:30, 09:45, 10:00 next morning
    stamps = [day1, day1 + BAR, day2, day2 + BAR, day2 + 2 * BAR]
    with open_store(settings) as store:
        store.upsert_bars("AAA", "15m", _bars([10.0, 11.0, 12.0, 13.0, 14.0], stamps))
        store.save_decisions(
            [
                _decision(day1, Action.BUY, 10.0, model="m1", horizon=2),
                _decision(day1 + BAR, Action.BUY, 11.0, model="m1", horizon=2),
            ]
        )
        report = score_decisions(store, settings, day2 + 3 * BAR)
        [score] = ledger.decision_scores(store)
    assert (report.newly_scored, report.unscorable, report.pending) == (1, 1, 0)
    assert (score.bar_ts, score.horizon_bars, score.exit_bar_ts) == (day1, 1, day1 + BAR)
    assert score.forward_return == pytest.approx(11 / 10 - 1)


def test_an_early_close_ends_the_horizon_at_its_own_last_bar(tmp_path) -> None:
    settings = _settings(tmp_path)
    last = datetime(2026, 11, 27, 17, 45, tzinfo=UTC)  # 12:45 New York, the early close's last
    stamps = [last - BAR, last, datetime(2026, 11, 30, 14, 30, tzinfo=UTC)]
    with open_store(settings) as store:
        store.upsert_bars("AAA", "15m", _bars([20.0, 21.0, 30.0], stamps))
        store.save_decisions([_decision(last - BAR, Action.SELL, 20.0, model="m1", horizon=4)])
        score_decisions(store, settings, datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
        [score] = ledger.decision_scores(store)
    assert (score.horizon_bars, score.exit_bar_ts, score.exit_close) == (1, last, 21.0)


def test_the_exit_bar_is_checked_by_its_time_and_a_gap_is_not_bridged(tmp_path) -> None:
    settings = _settings(tmp_path)
    stamps = [T0, T0 + BAR, T0 + 3 * BAR, T0 + 4 * BAR]  # the 10:00 bar is missing
    with open_store(settings) as store:
        store.upsert_bars("AAA", "15m", _bars([10.0, 11.0, 13.0, 14.0], stamps))
        store.save_decisions(
            [
                _decision(T0, Action.BUY, 10.0, model="m1", horizon=2),  # exit 10:00: missing
                _decision(T0 + BAR, Action.BUY, 11.0, model="m1", horizon=2),  # exit 10:15
            ]
        )
        report = score_decisions(store, settings, T0 + 6 * BAR)
        [score] = ledger.decision_scores(store)
    assert (report.newly_scored, report.unscorable) == (1, 1)
    assert (score.bar_ts, score.exit_bar_ts, score.exit_close) == (T0 + BAR, T0 + 3 * BAR, 13.0)


def _model_history(store, version: str, hits: int, n: int = 100) -> datetime:
    """``n`` decisions on a rising price, on the regular-session bars from ``T0`` (none on a
    session's last bar, which has no exit); the model says up on ``hits`` of them. Returns a
    clock by which every horizon has passed."""
    from sentinel42.market.calendar import NyseCalendar

    sessions = NyseCalendar().sessions_between(T0, T0 + timedelta(days=14))
    stamps = [open_ + k * BAR for open_, close in sessions for k in range((close - open_) // BAR)]
    closes = [100.0 + 0.1 * i for i in range(len(stamps))]
    store.upsert_bars("AAA", "15m", _bars(closes, stamps))
    lasts = {close - BAR for _, close in sessions}
    usable = [i for i, ts in enumerate(stamps) if ts not in lasts][:n]
    store.save_decisions(
        [
            _decision(
                stamps[i],
                Action.HOLD,
                closes[i],
                p_up=0.7 if k < hits else 0.3,
                model=version,
                accuracy=0.6,
            )
            for k, i in enumerate(usable)
        ]
    )
    return stamps[usable[-1] + 1] + BAR


@pytest.mark.parametrize(("hits", "degraded"), [(30, True), (58, False)])
def test_a_model_far_below_its_validated_accuracy_is_degraded(tmp_path, hits, degraded) -> None:
    settings = _settings(tmp_path, validate_window=100)
    with open_store(settings) as store:
        as_of = _model_history(store, "m1", hits)
        report = score_decisions(store, settings, as_of)
        assert report.model is not None and report.model.tested
        assert (report.model.live_hits, report.model.live_n) == (hits, 100)
        assert report.model.threshold == pytest.approx(0.58)  # 0.6 - margin 0.02
        assert report.model.p_value == pytest.approx(binomial_cdf(hits, 100, 0.58))
        assert report.degraded_model == ("m1" if degraded else None)
        assert report.newly_degraded is degraded
        assert is_model_degraded(store, "m1") is degraded
        health = ledger.model_health(store, "m1")
        assert health is not None and (health.live_hits, health.live_n) == (hits, 100)
        assert health.degraded is degraded
        # Health is per version: a newly promoted model starts healthy.
        assert is_model_degraded(store, "m2") is False

        again = score_decisions(store, settings, as_of)
        assert again.newly_scored == 0 and again.newly_degraded is False
        assert again.degraded_model == report.degraded_model
        assert ledger.model_health(store, "m1") == health


def test_a_model_short_of_a_full_window_is_not_tested(tmp_path) -> None:
    settings = _settings(tmp_path, validate_window=100)
    with open_store(settings) as store:
        as_of = _model_history(store, "m1", hits=0, n=99)
        report = score_decisions(store, settings, as_of)
    assert report.model is not None and report.model.live_n == 99
    assert report.model.tested is False and report.degraded_model is None


def test_the_report_compares_the_paper_portfolio_with_buy_and_hold(metrics_store) -> None:
    settings, store = metrics_store
    snapshot = update_portfolio(store, settings, T0 + 6 * BAR)
    doc = score_decisions(store, settings, T0 + 6 * BAR).to_dict()
    assert doc["portfolio"]["return"] == pytest.approx(snapshot["return"])
    assert doc["portfolio"]["buy_and_hold_return"] == pytest.approx(snapshot["buy_and_hold_return"])
    assert doc["portfolio"]["end"] == (T0 + 5 * BAR).isoformat()


@pytest.mark.parametrize(
    ("k", "n", "p", "expected"),
    [(0, 3, 0.5, 0.125), (1, 3, 0.5, 0.5), (3, 3, 0.5, 1.0), (-1, 3, 0.5, 0.0), (2, 4, 0.0, 1.0)],
)
def test_binomial_cdf_exact_small_cases(k, n, p, expected) -> None:
    assert binomial_cdf(k, n, p) == pytest.approx(expected)


def test_binomial_cdf_matches_scipy_at_large_n() -> None:
    stats = pytest.importorskip("scipy.stats")
    for k, n, p in [(30, 100, 0.58), (58, 100, 0.58), (4_900, 10_000, 0.5), (10, 100_000, 0.3)]:
        assert binomial_cdf(k, n, p) == pytest.approx(
            float(stats.binom.cdf(k, n, p)), rel=1e-9, abs=1e-300
        )
