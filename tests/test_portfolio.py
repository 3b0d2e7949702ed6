"""The paper portfolio: hand-computed fills with fees and slippage, sizing, shorts, cash, store."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from sentinel42.domain import Action, Decision
from sentinel42.persistence import ledger, open_store
from sentinel42.portfolio import BuyAndHold, Portfolio, PortfolioConfig, update_portfolio
from sentinel42.settings import load_settings

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 09:30 New York, a Tuesday
BAR = timedelta(minutes=15)

# 10 bps fee and 10 bps slippage: numbers easy to follow by hand.
CONFIG = PortfolioConfig(
    starting_cash=10_000.0,
    position_fraction=0.5,
    fee_bps=10.0,
    slippage_bps=10.0,
    allow_short=False,
)


def test_buy_then_repeated_buys_then_sell_match_the_hand_computation() -> None:
    p = Portfolio(CONFIG)

    # BUY @100: target 0.5 * 10_000 / 100 = 50 shares; fill 100 * 1.001 = 100.1;
    # notional 50 * 100.1 = 5_005; fee 5.005; cash 10_000 - 5_005 - 5.005 = 4_989.995.
    [buy] = p.apply("AAA", Action.BUY, 100.0, T0)
    assert (buy.side, buy.quantity, buy.price, buy.fee) == (
        "buy",
        50.0,
        pytest.approx(100.1),
        pytest.approx(5.005),
    )
    assert p.cash == pytest.approx(4_989.995)
    assert p.positions == {"AAA": 50.0}
    assert p.cost_basis["AAA"] == pytest.approx(100.1)
    # Marked at 100: equity 4_989.995 + 50 * 100 = 9_989.995; unrealized 50 * (100 - 100.1) = -5.
    assert p.equity() == pytest.approx(9_989.995)
    assert p.unrealized_pnl() == pytest.approx(-5.0)

    # BUY again @100: target 0.5 * 9_989.995 / 100 = 49.95 < 50 held: no trade.
    assert p.apply("AAA", "BUY", 100.0, T0 + BAR) == []
    # BUY again @110: equity 4_989.995 + 5_500 = 10_489.995; target 47.68 < 50: no trade.
    assert p.apply("AAA", "buy", 110.0, T0 + 2 * BAR) == []
    assert p.positions == {"AAA": 50.0}
    assert p.cash == pytest.approx(4_989.995)

    # SELL @120: fill 120 * 0.999 = 119.88; notional 5_994; fee 5.994;
    # cash 4_989.995 + 5_994 - 5.994 = 10_978.001; realized (119.88 - 100.1) * 50 = 989.0;
    # fees 5.005 + 5.994 = 10.999; equity = cash = 10_000 + 989 - 10.999.
    [sell] = p.apply("AAA", Action.SELL, 120.0, T0 + 3 * BAR)
    assert (sell.side, sell.quantity, sell.price) == ("sell", 50.0, pytest.approx(119.88))
    assert sell.fee == pytest.approx(5.994)
    assert p.positions == {} and p.cost_basis == {}
    assert p.cash == pytest.approx(10_978.001)
    assert p.realized_pnl == pytest.approx(989.0)
    assert p.fees_paid == pytest.approx(10.999)
    assert p.equity() == pytest.approx(10_978.001)


def test_buy_after_a_drop_tops_up_to_the_target_only() -> None:
    p = Portfolio(CONFIG)
    p.apply("AAA", Action.BUY, 100.0, T0)
    # @90: equity 4_989.995 + 50 * 90 = 9_489.995; target 0.5 * 9_489.995 / 90 = 52.7222 shares.
    [top_up] = p.apply("AAA", Action.BUY, 90.0, T0 + BAR)
    assert top_up.quantity == pytest.approx(0.5 * 9_489.995 / 90 - 50)
    assert p.positions["AAA"] == pytest.approx(0.5 * 9_489.995 / 90)
    # The average entry is the quantity-weighted fill: (50 * 100.1 + q * 90.09) / (50 + q).
    q = top_up.quantity
    assert p.cost_basis["AAA"] == pytest.approx((50 * 100.1 + q * 90.09) / (50 + q))


def test_hold_does_nothing_and_sell_when_flat_without_shorting_does_nothing() -> None:
    p = Portfolio(CONFIG)
    assert p.apply("AAA", Action.HOLD, 100.0, T0) == []
    assert p.apply("AAA", Action.SELL, 100.0, T0) == []
    assert (p.cash, p.positions, p.fees_paid) == (10_000.0, {}, 0.0)


def test_sell_closes_a_long_but_opens_no_short_when_shorting_is_off() -> None:
    p = Portfolio(CONFIG)
    p.apply("AAA", Action.BUY, 100.0, T0)
    trades = p.apply("AAA", Action.SELL, 100.0, T0 + BAR)
    assert [t.reason for t in trades] == ["close long"]
    assert p.positions == {}


def test_short_selling_on_opens_to_target_and_a_buy_covers_then_goes_long() -> None:
    p = Portfolio(
        PortfolioConfig(
            starting_cash=10_000.0,
            position_fraction=0.5,
            fee_bps=10.0,
            slippage_bps=10.0,
            allow_short=True,
        )
    )
    # SELL @100 flat: short 50 at 99.9; notional 4_995; fee 4.995; cash 14_990.005.
    [short] = p.apply("AAA", Action.SELL, 100.0, T0)
    assert (short.side, short.quantity, short.reason) == ("sell", 50.0, "short to target")
    assert p.positions == {"AAA": -50.0}
    assert p.cash == pytest.approx(14_990.005)
    # Marked at 100: equity 14_990.005 - 5_000 = 9_990.005; a repeated SELL (target 49.95): none.
    assert p.equity() == pytest.approx(9_990.005)
    assert p.apply("AAA", Action.SELL, 100.0, T0 + BAR) == []

    # BUY @90: cover 50 at 90.09 (notional 4_504.5, fee 4.5045): cash 10_481.0005, realized
    # (99.9 - 90.09) * 50 = 490.5; then long to 0.5 * 10_481.0005 / 90 shares at 90.09.
    cover, long = p.apply("AAA", Action.BUY, 90.0, T0 + 2 * BAR)
    assert (cover.reason, cover.quantity, cover.price) == (
        "cover short",
        50.0,
        pytest.approx(90.09),
    )
    assert p.realized_pnl == pytest.approx(490.5)
    q = 0.5 * 10_481.0005 / 90
    assert long.quantity == pytest.approx(q)
    assert p.positions["AAA"] == pytest.approx(q)
    assert p.cash == pytest.approx(10_481.0005 - q * 90.09 * 1.001)


def test_a_buy_never_spends_more_cash_than_there_is() -> None:
    p = Portfolio(
        PortfolioConfig(
            starting_cash=10_000.0,
            position_fraction=1.0,
            fee_bps=10.0,
            slippage_bps=10.0,
            allow_short=False,
        )
    )
    # Target 100 shares would cost 100 * 100.1 * 1.001 = 10_020.01 > 10_000: sized down to
    # 10_000 / (100.1 * 1.001) shares, and the cash ends at exactly zero.
    [buy] = p.apply("AAA", Action.BUY, 100.0, T0)
    assert buy.quantity == pytest.approx(10_000 / (100.1 * 1.001))
    assert p.cash == 0.0
    assert p.apply("BBB", Action.BUY, 50.0, T0) == []
    assert p.cash == 0.0


def test_three_half_size_buys_run_out_of_cash_without_going_negative() -> None:
    p = Portfolio(CONFIG)
    for ticker in ("AAA", "BBB", "CCC"):
        p.apply(ticker, Action.BUY, 100.0, T0)
        assert p.cash >= 0.0
    assert p.positions["BBB"] < p.positions["AAA"]
    assert "CCC" not in p.positions and p.cash == 0.0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("allow_short", [False, True])
def test_equity_is_cash_plus_pnl_minus_fees_after_any_sequence(
    seed: int, allow_short: bool
) -> None:
    rng = random.Random(seed)
    config = PortfolioConfig(10_000.0, 0.3, 5.0, 3.0, allow_short)
    p = Portfolio(config)
    prices = {"AAA": 100.0, "BBB": 40.0}
    for i in range(200):
        ticker = rng.choice(list(prices))
        prices[ticker] *= 1 + rng.gauss(0, 0.01)
        p.mark(prices)
        p.apply(ticker, rng.choice(list(Action)), prices[ticker], T0 + i * BAR)
        assert p.equity() - 10_000 == pytest.approx(
            p.realized_pnl + p.unrealized_pnl() - p.fees_paid
        )
        if not allow_short:
            assert p.cash >= 0 and all(q > 0 for q in p.positions.values())


def test_state_round_trips_through_json() -> None:
    p = Portfolio(CONFIG)
    p.apply("AAA", Action.BUY, 100.0, T0)
    p.mark({"AAA": 104.0})
    restored = Portfolio.from_state(CONFIG, json.loads(json.dumps(p.to_state())))
    assert restored.snapshot(T0) == p.snapshot(T0)
    snap = p.snapshot(T0)
    assert snap["positions"]["AAA"]["market_value"] == pytest.approx(50 * 104.0)
    assert snap["positions"]["AAA"]["unrealized_pnl"] == pytest.approx(50 * (104.0 - 100.1))
    assert snap["ts"] == T0.isoformat()
    json.dumps(snap)


def test_a_bad_price_is_refused() -> None:
    with pytest.raises(ValueError, match="price"):
        Portfolio(CONFIG).apply("AAA", Action.BUY, float("nan"), T0)


def test_buy_and_hold_buys_each_slice_at_its_first_price() -> None:
    bh = BuyAndHold(["AAA", "BBB"], CONFIG)
    bh.update({"AAA": 100.0})  # BBB has no price yet: its 5_000 wait in cash
    assert bh.positions == {"AAA": pytest.approx(5_000 / (100.1 * 1.001))}
    assert bh.cash == pytest.approx(5_000.0)
    bh.update({"AAA": 110.0, "BBB": 50.0})
    assert bh.positions["BBB"] == pytest.approx(5_000 / (50.05 * 1.001))
    assert bh.equity() == pytest.approx(
        5_000 / (100.1 * 1.001) * 110 + 5_000 / (50.05 * 1.001) * 50
    )


# --- update_portfolio against a store -------------------------------------------------------------
def _bars(closes: list[float], start: datetime = T0) -> pd.DataFrame:
    idx = pd.DatetimeIndex([start + i * BAR for i in range(len(closes))], name="ts")
    return pd.DataFrame(
        {"open": closes, "high": closes, "low": closes, "close": closes, "volume": 1_000.0},
        index=idx,
    )


def _decision(ticker: str, i: int, action: Action, close: float) -> Decision:
    return Decision(
        ticker=ticker,
        bar_ts=T0 + i * BAR,
        action=action,
        confidence=0.5,
        reason="test",
        inputs={"close": close},
        decided_at=T0 + (i + 1) * BAR,
    )


@pytest.fixture
def setup(tmp_path):
    settings = load_settings(
        require_replay_dir=False,
        tickers=["AAA", "BBB"],
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        portfolio_starting_cash=10_000.0,
        portfolio_position_fraction=0.5,
        portfolio_fee_bps=10.0,
        portfolio_slippage_bps=10.0,
        portfolio_allow_short=False,
    )
    with open_store(settings) as store:
        store.upsert_bars_many(
            "15m",
            {"AAA": _bars([100.0, 100.0, 110.0, 120.0]), "BBB": _bars([50.0, 50.0, 55.0, 60.0])},
        )
        yield settings, store


def test_update_applies_standing_decisions_in_bar_order_and_saves_the_curve(setup) -> None:
    settings, store = setup
    store.save_decisions(
        [_decision("AAA", 0, Action.BUY, 100.0), _decision("BBB", 0, Action.HOLD, 50.0)]
    )
    store.save_decisions([_decision("AAA", 1, Action.BUY, 100.0)])  # no pile-up
    store.save_decisions([_decision("AAA", 3, Action.SELL, 120.0)])
    as_of = T0 + 4 * BAR
    snap = update_portfolio(store, settings, as_of)

    assert snap["applied"] == 4
    assert [(t["side"], t["quantity"]) for t in snap["trades"]] == [("buy", 50.0), ("sell", 50.0)]
    # The same numbers as the hand computation above: cash 10_978.001, realized 989.
    assert snap["cash"] == pytest.approx(10_978.001)
    assert snap["realized_pnl"] == pytest.approx(989.0)
    assert snap["positions"] == {}
    assert snap["bar_ts"] == (T0 + 3 * BAR).isoformat()
    # Buy-and-hold: 5_000 per ticker at bar 0's closes (100 and 50), worth them at 120 and 60.
    bh = 5_000 / (100.1 * 1.001) * 120 + 5_000 / (50.05 * 1.001) * 60
    assert snap["buy_and_hold_equity"] == pytest.approx(bh)
    curve = ledger.equity_curve(store)
    assert [p.ts for p in curve] == [T0, T0 + BAR, T0 + 3 * BAR]
    assert curve[0].equity == pytest.approx(9_989.995)
    assert curve[-1].buy_and_hold_equity == pytest.approx(bh)


def test_update_twice_changes_nothing(setup) -> None:
    settings, store = setup
    store.save_decisions([_decision("AAA", 0, Action.BUY, 100.0)])
    as_of = T0 + 4 * BAR
    first = update_portfolio(store, settings, as_of)
    curve = ledger.equity_curve(store)
    saved = ledger.latest_portfolio_state(store)
    second = update_portfolio(store, settings, as_of)
    assert second["applied"] == 0 and second["trades"] == []
    assert {k: v for k, v in second.items() if k not in ("applied", "trades")} == {
        k: v for k, v in first.items() if k not in ("applied", "trades")
    }
    assert ledger.equity_curve(store) == curve
    assert ledger.latest_portfolio_state(store) == saved
    assert len(ledger.portfolio_trades(store)) == 1


def test_update_marks_to_the_newest_close_and_adds_that_point(setup) -> None:
    settings, store = setup
    store.save_decisions([_decision("AAA", 0, Action.BUY, 100.0)])
    snap = update_portfolio(store, settings, T0 + 4 * BAR)
    # 50 shares marked at the newest close, 120.
    assert snap["positions"]["AAA"]["last_price"] == 120.0
    assert snap["equity"] == pytest.approx(4_989.995 + 50 * 120)
    assert ledger.equity_curve(store)[-1].ts == T0 + 3 * BAR


def test_decisions_after_as_of_wait_and_revisions_are_never_applied(setup) -> None:
    settings, store = setup
    store.save_decisions([_decision("AAA", 0, Action.BUY, 100.0)], run_id="run-1")
    store.save_decisions([_decision("AAA", 0, Action.SELL, 100.0)], run_id="run-2")  # revision 1
    store.save_decisions([_decision("AAA", 2, Action.SELL, 110.0)], run_id="run-3")
    early = update_portfolio(store, settings, T0 + 2 * BAR)  # bar 2 has not closed yet
    assert early["applied"] == 1 and early["positions"]["AAA"]["quantity"] == 50.0
    later = update_portfolio(store, settings, T0 + 3 * BAR)
    assert later["applied"] == 1 and later["positions"] == {}
    assert [t["reason"] for t in ledger.portfolio_trades(store)] == ["close long", "buy to target"]


def test_update_with_no_decisions_saves_nothing(setup) -> None:
    settings, store = setup
    snap = update_portfolio(store, settings, T0 + 4 * BAR)
    assert snap["equity"] == 10_000.0 and snap["buy_and_hold_equity"] is None
    assert ledger.equity_curve(store) == [] and ledger.latest_portfolio_state(store) is None
