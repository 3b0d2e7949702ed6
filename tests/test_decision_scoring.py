"""Decision scoring (``sentinel42.decision_scoring``, the validate flow's work): decisions scored
once from their fill against what the price did next; every leg monitored, degraded on decay and
recovered, with its events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from sentinel42.decision_scoring import is_model_degraded, score_decisions
from sentinel42.domain import Action, Decision
from sentinel42.persistence import open_store, score_ledger
from sentinel42.portfolio import update_portfolio
from sentinel42.settings import load_settings

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 09:30 New York
BAR = timedelta(minutes=15)


def _bars(
    closes: list[float], stamps: list[datetime] | None = None, opens: list[float] | None = None
) -> pd.DataFrame:
    """Bars whose open is the previous close unless given (so a fill at the next bar's open
    enters at the decision bar's close, and the hand computations below hold)."""
    stamps = stamps or [T0 + i * BAR for i in range(len(closes))]
    opens = opens or [closes[0], *closes[:-1]]
    return pd.DataFrame(
        {"open": opens, "high": closes, "low": closes, "close": closes, "volume": 1_000.0},
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
    # One session of scores is far from validate_min_sessions: no leg is tested yet.
    assert doc["model"]["version"] == "m1" and doc["model"]["tested"] is False
    assert doc["legs"]["direction"]["monitor"]["tested"] is False and doc["events"] == []
    assert doc["degraded_model"] is None and doc["newly_degraded"] is False


def test_each_decision_is_scored_once_and_pending_ones_when_their_horizon_passes(
    metrics_store,
) -> None:
    settings, store = metrics_store
    score_decisions(store, settings, T0 + 6 * BAR)
    again = score_decisions(store, settings, T0 + 6 * BAR)
    assert (again.newly_scored, again.scored, again.pending) == (0, 5, 1)

    store.upsert_bars("AAA", "15m", _bars([97.0], [T0 + 6 * BAR], opens=[96.0]))
    later = score_decisions(store, settings, T0 + 7 * BAR)
    assert (later.newly_scored, later.scored, later.pending) == (1, 6, 0)
    last = score_ledger.decision_scores(store)[-1]
    assert (last.bar_ts, last.forward_return, last.hit) == (T0 + 5 * BAR, 97 / 96 - 1, True)


def test_decisions_whose_horizon_has_not_passed_are_not_scored(metrics_store) -> None:
    settings, store = metrics_store
    # At 10:15 bars 0..2 have closed: bar 0 and 1 can be scored; bar 2 needs bar 3 (ends 10:30).
    report = score_decisions(store, settings, T0 + 3 * BAR)
    assert report.newly_scored == 2
    assert [s.bar_ts for s in score_ledger.decision_scores(store)] == [T0, T0 + BAR]


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
        [score] = score_ledger.decision_scores(store)
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
        [score] = score_ledger.decision_scores(store)
    assert (score.horizon_bars, score.exit_bar_ts, score.exit_close) == (1, last, 21.0)


def test_the_fill_and_exit_bars_are_checked_by_their_time_and_a_gap_is_not_bridged(
    tmp_path,
) -> None:
    settings = _settings(tmp_path)
    stamps = [T0, T0 + BAR, T0 + 2 * BAR, T0 + 4 * BAR, T0 + 5 * BAR]  # 10:15 is missing
    with open_store(settings) as store:
        store.upsert_bars("AAA", "15m", _bars([10.0, 11.0, 12.0, 14.0, 15.0], stamps))
        store.save_decisions(
            [
                _decision(T0, Action.BUY, 10.0, model="m1", horizon=2),  # 09:45 -> 10:00
                _decision(T0 + BAR, Action.BUY, 11.0, model="m1", horizon=2),  # exit missing
                _decision(T0 + 2 * BAR, Action.BUY, 12.0, model="m1", horizon=1),  # fill missing
            ]
        )
        report = score_decisions(store, settings, T0 + 6 * BAR)
        [score] = score_ledger.decision_scores(store)
    assert (report.newly_scored, report.unscorable) == (1, 2)
    assert (score.bar_ts, score.exit_bar_ts, score.exit_close) == (T0, T0 + 2 * BAR, 12.0)
    assert score.forward_return == pytest.approx(12 / 10 - 1)


def test_the_realised_return_enters_at_the_fill_bars_open_not_the_decision_bars_close(
    tmp_path,
) -> None:
    """Decided at 14:02 on the 13:45 bar: it fills at the 14:15 bar's open (the 13:45 close
    and the 14:00 bar printed before it could trade) and exits at the close of the bar its
    2-bar horizon ends on, 14:30."""
    settings = _settings(tmp_path)
    b1345 = datetime(2026, 11, 24, 18, 45, tzinfo=UTC)
    stamps = [b1345 + i * BAR for i in range(4)]  # 13:45, 14:00, 14:15, 14:30
    decision = Decision(
        ticker="AAA", bar_ts=b1345, action=Action.BUY, confidence=0.5, reason="test",
        inputs={"close": 100.0}, models={"lstm_horizon_bars": 2},
        decided_at=b1345 + BAR + timedelta(minutes=2),
    )  # fmt: skip
    with open_store(settings) as store:
        store.upsert_bars("AAA", "15m", _bars([100.0, 104.0, 106.0, 107.0], stamps,
                                              opens=[99.0, 101.0, 105.0, 106.5]))  # fmt: skip
        store.save_decisions([decision])
        score_decisions(store, settings, stamps[-1] + BAR)
        [score] = score_ledger.decision_scores(store)
    assert score.close == 105.0  # the 14:15 bar's open
    assert (score.exit_bar_ts, score.exit_close, score.horizon_bars) == (stamps[3], 107.0, 2)
    assert score.forward_return == pytest.approx(107 / 105 - 1)


@pytest.mark.parametrize(
    ("action", "fused", "hit"),
    [
        (Action.SELL, 0.03, None),  # a long sold to flat at the exit band: no bet on a fall
        (Action.SELL, 0.0, None),
        (Action.BUY, -0.02, None),  # a short bought back
        (Action.SELL, -0.2, False),  # an entry SELL bets on a fall; the price rose: a miss
        (Action.BUY, 0.2, True),
        (Action.BUY, None, True),  # stored before fused was recorded: its action is its bet
    ],
)
def test_an_exit_closes_a_bet_and_is_not_scored_as_one(tmp_path, action, fused, hit) -> None:
    settings = _settings(tmp_path)
    decision = _decision(T0, action, 100.0)
    inputs = decision.inputs | ({} if fused is None else {"fused": fused})
    with open_store(settings) as store:
        store.upsert_bars("AAA", "15m", _bars([100.0, 102.0, 103.0]))
        store.save_decisions([Decision(**{**_fields(decision), "inputs": inputs})])
        score_decisions(store, settings, T0 + 3 * BAR)
        [score] = score_ledger.decision_scores(store)
    assert score.forward_return == pytest.approx(0.02)
    assert score.hit is hit


def _fields(d: Decision) -> dict:
    return {f: getattr(d, f) for f in d.__dataclass_fields__}


def test_the_report_compares_the_paper_portfolio_with_buy_and_hold(metrics_store) -> None:
    settings, store = metrics_store
    snapshot = update_portfolio(store, settings, T0 + 6 * BAR)
    doc = score_decisions(store, settings, T0 + 6 * BAR).to_dict()
    assert doc["portfolio"]["return"] == pytest.approx(snapshot["return"])
    assert doc["portfolio"]["buy_and_hold_return"] == pytest.approx(snapshot["buy_and_hold_return"])
    assert doc["portfolio"]["end"] == (T0 + 5 * BAR).isoformat()


# --- live monitoring through the store and the validate task --------------------------------
NAMES = [f"T{chr(65 + i)}" for i in range(12)]
PLANTED_IC = 0.3
HEALTHY, OFF, BACK = 30, 40, 60  # sessions: the edge is on, switched off, then back


def _leg_settings(tmp_path):
    return load_settings(
        require_replay_dir=False, tickers=NAMES, database_url=f"sqlite:///{tmp_path / 's.db'}",
        data_dir=str(tmp_path / "data"), model_horizon=1, news_requires_validation=True,
        model_max_age_sessions=260,
    )  # fmt: skip


def _leg_history(store, settings, seed: int = 5) -> list[datetime]:
    """Generated sessions (see ``monitor.simulate_bars``): four decisions a session per name,
    each filled at the next bar's open and held one bar; every leg (direction, intraday ranking,
    news) scores with the planted IC while the edge is on and with none while it is off. A
    validated intraday ranking model ``r1`` and a validated news leg are recorded. Returns each
    session's end (by then all its horizons have passed)."""
    import numpy as np

    from sentinel42.market.calendar import NyseCalendar
    from sentinel42.model.ranking.news_leg import STATE_FILE
    from sentinel42.model.ranking.service import registry_for
    from sentinel42.monitor import simulate_bars

    total = HEALTHY + OFF + BACK
    start = datetime(2026, 1, 5, tzinfo=UTC)
    sessions = NyseCalendar().sessions_between(start, start + timedelta(days=400))[:total]
    path = np.r_[np.full(HEALTHY, PLANTED_IC), np.zeros(OFF), np.full(BACK, PLANTED_IC)]
    _, scores, fwd = simulate_bars(np.random.default_rng(seed), sessions=total, bars=4,
                                   names=len(NAMES), ic=path, horizon=1, market=1.0)  # fmt: skip
    rows: dict[str, list[tuple[datetime, float, float]]] = {t: [] for t in NAMES}
    decisions = []
    for s, (open_, _) in enumerate(sessions):
        for b in range(4):
            ts, i = open_ + 2 * b * BAR, s * 4 + b
            for j, t in enumerate(NAMES):
                rows[t] += [(ts, 100.0, 100.0), (ts + BAR, 100.0, 100.0 * (1 + fwd[i, j]))]
                score = float(scores[i, j])
                decisions.append(Decision(
                    ticker=t, bar_ts=ts, action=Action.HOLD, confidence=0.0, reason="test",
                    inputs={"close": 100.0, "p_up": 0.5 + 0.1 * np.tanh(score),
                            "sentiment": score, "ranking": {"intraday": {"score": score}}},
                    models={"lstm": "m1", "lstm_validated_accuracy": 0.6, "lstm_edge": 0.1,
                            "lstm_horizon_bars": 1, "ranking_intraday": "r1"},
                    decided_at=ts + BAR,
                ))  # fmt: skip
    for t, r in rows.items():
        frame = pd.DataFrame([(o, o, c, c, 1e3) for _, o, c in r],
                             columns=["open", "high", "low", "close", "volume"],
                             index=pd.DatetimeIndex([ts for ts, _, _ in r], name="ts"))  # fmt: skip
        store.upsert_bars(t, "15m", frame)
    store.save_decisions(decisions)
    meta = registry_for(settings, "intraday").models_dir / "r1" / "metadata.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"report": {"model": {"rank_ic_mean": PLANTED_IC}}}))
    validated_at = sessions[0][0] - timedelta(days=1)
    state = registry_for(settings, "news").models_dir / STATE_FILE
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({
        "validated": True, "reason": "test", "at": validated_at.isoformat(),
        "as_of": sessions[-1][1].isoformat(), "news": {"rank_ic_mean": PLANTED_IC},
    }))  # fmt: skip
    return [close for _, close in sessions]


@pytest.fixture
def events(monkeypatch):
    """Prefect events captured in memory (the validate task's real emit_event)."""
    from prefect.events.clients import AssertingEventsClient
    from prefect.events.worker import EventsWorker

    fresh = EventsWorker.instance
    worker = [fresh(AssertingEventsClient)]
    monkeypatch.setattr(EventsWorker, "instance", lambda *_: worker[0])

    def drained() -> list:
        worker[0].drain()  # a drained worker is stopped: the next emit gets a fresh one
        found = [e for client in AssertingEventsClient.all for e in client.pop_events()]
        worker[0] = fresh(AssertingEventsClient)
        return [(e.event, e.payload["leg"]) for e in found]

    yield drained
    worker[0].drain()


def test_validate_task_degrades_each_leg_on_decay_and_recovers_it_with_its_events(
    tmp_path, events
) -> None:
    from sentinel42 import pipeline
    from sentinel42.events import MODEL_DEGRADED_EVENT, MODEL_RECOVERED_EVENT
    from sentinel42.factory import build_calendar
    from sentinel42.model.ranking.news_leg import news_leg_state
    from sentinel42.persistence.leg_health import leg_history
    from sentinel42.tasks import validate_task

    settings = _leg_settings(tmp_path)
    legs = {"direction", "ranking_intraday", "news"}
    with open_store(settings) as store:
        ends = _leg_history(store, settings)
    calendar = build_calendar(settings)

    healthy = validate_task.fn(settings, ends[HEALTHY - 1])
    assert {k for k, v in healthy.legs.items() if v["monitor"]["tested"]} == legs
    assert not any(v["degraded"] for v in healthy.legs.values()) and events() == []
    assert healthy.legs["ranking_intraday"]["live_ic"] == pytest.approx(PLANTED_IC, abs=0.1)

    decayed = validate_task.fn(settings, ends[HEALTHY + OFF - 1])
    assert sorted(events()) == sorted((MODEL_DEGRADED_EVENT, leg) for leg in legs)
    assert all(decayed.legs[leg]["newly_degraded"] for leg in legs)
    assert decayed.degraded_model == "m1" and decayed.newly_degraded is True
    with open_store(settings) as store:
        assert pipeline._model_degraded(store, "m1") is True
        assert score_ledger.model_health(store, "m1").degraded is True  # type: ignore[union-attr]
        live, why = news_leg_state(settings, ends[HEALTHY + OFF - 1], calendar, store)
    assert live is False and "degraded" in why
    # A retried run (same as_of) rewrites its own rows: nothing duplicated.
    validate_task.fn(settings, ends[HEALTHY + OFF - 1])
    events()
    with open_store(settings) as store:
        assert len(leg_history(store, "ranking_intraday", "r1")) == 2
        # A newly promoted version starts healthy.
        assert is_model_degraded(store, "m2") is False

    back = validate_task.fn(settings, ends[-1])
    assert sorted(events()) == sorted((MODEL_RECOVERED_EVENT, leg) for leg in legs)
    assert all(back.legs[leg]["newly_recovered"] for leg in legs)
    assert not any(back.legs[leg]["degraded"] for leg in legs)
    with open_store(settings) as store:
        assert pipeline._model_degraded(store, "m1") is False
        assert score_ledger.model_health(store, "m1").degraded is False  # type: ignore[union-attr]
        assert news_leg_state(settings, ends[-1], calendar, store)[0] is True


def test_a_degraded_ranking_leg_is_scored_at_weight_zero_and_gets_its_weight_back(
    monkeypatch, tmp_path
) -> None:
    """decide() with a promoted intraday ranking model: while its newest leg_health row says
    degraded, the leg is reported off with the monitor's reason and weighs 0, but its scores
    are still recorded (so the monitor can see it recover); a newer healthy row restores it."""
    from datetime import date

    from sentinel42 import pipeline
    from sentinel42.model.ranking.service import registry_for, train_kind
    from sentinel42.model.ranking.train import TrainRequest
    from sentinel42.persistence.leg_health import LegHealth, save_leg_health
    from sentinel42.synthetic import generate_replay

    close = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    replay = tmp_path / "universe"
    generate_replay(replay, ["T" + chr(65 + i) for i in range(24)], end=date(2026, 11, 25),
                    sessions=34, seed=3, news_rate=0.0)  # fmt: skip
    for key, value in (("DATA_SOURCE", "replay"), ("REPLAY_DIR", str(replay)),
                       ("TICKERS", "TA,TB,TC"), ("UNIVERSE", "all")):  # fmt: skip
        monkeypatch.setenv(f"SENTINEL42_{key}", value)
    settings = load_settings()
    doc = train_kind(settings, TrainRequest(kind="intraday", epochs=2, samples_per_epoch=4_000),
                     now=close, as_of=close)  # fmt: skip
    registry_for(settings, "intraday").promote(doc["version"])  # promoted by hand
    healthy = pipeline.decide(settings, close, forced=True)
    assert healthy.legs["intraday"]["live"] is True

    def health(degraded: bool, at: datetime) -> None:
        with open_store(settings) as store:
            save_leg_health(store, LegHealth("ranking_intraday", doc["version"], at, True,
                                             degraded, 40, {}, "decay CUSUM 9 >= 5"))  # fmt: skip

    health(True, close - timedelta(hours=2))
    off = pipeline.decide(settings, close, forced=True)
    leg = off.legs["intraday"]
    assert (leg["live"], leg["degraded"]) == (False, True)
    assert leg["why"] == "degraded by live monitoring: decay CUSUM 9 >= 5"
    assert pipeline.leg_status(settings, close)["intraday"]["live"] is False
    for d in off.decisions:
        assert d.inputs["ranking"]["intraday"]["weight"] == 0.0
        assert -1.0 <= d.inputs["ranking"]["intraday"]["score"] <= 1.0
    assert any(d.inputs["ranking"]["intraday"]["weight"] > 0 for d in healthy.decisions)

    health(False, close - timedelta(hours=1))  # the monitor's newer run: recovered
    back = pipeline.decide(settings, close, forced=True)
    assert back.legs["intraday"]["live"] is True and "degraded" not in back.legs["intraday"]
