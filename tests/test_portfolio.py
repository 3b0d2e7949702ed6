"""The paper portfolio: fills after the decision, sizing by target weight, caps, cash, borrow.

Hand-computed books use 10 bps fees and a 20 bps spread (so a buy fills at open * 1.001 and a sell
at open * 0.999, as before), on 10_000 USD.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from sentinel42.domain import Action, Decision
from sentinel42.persistence import ledger, open_store
from sentinel42.persistence.tables import EquityPointRow, PortfolioStateRow
from sentinel42.portfolio import (
    BuyAndHold,
    Portfolio,
    PortfolioConfig,
    PriceTape,
    Trade,
    fill_bar,
    update_portfolio,
)
from sentinel42.settings import load_settings

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)  # 09:30 New York, a Tuesday
BAR = timedelta(minutes=15)
MIN = timedelta(minutes=1)

CONFIG = PortfolioConfig(
    starting_cash=10_000.0,
    max_position=0.5,
    max_gross=1.0,
    max_short=0.3,
    fee_bps=10.0,
    spread_bps=20.0,
    borrow_bps=0.0,
    allow_short=False,
)


def _config(**changes) -> PortfolioConfig:
    fields = {f: getattr(CONFIG, f) for f in PortfolioConfig.__dataclass_fields__}
    return PortfolioConfig(**(fields | changes))


def _frame(
    opens: list[float],
    closes: list[float] | None = None,
    start: datetime = T0,
    step: timedelta = BAR,
) -> pd.DataFrame:
    closes = closes if closes is not None else opens
    idx = pd.DatetimeIndex([start + i * step for i in range(len(opens))], name="ts")
    return pd.DataFrame(
        {"open": opens, "high": closes, "low": closes, "close": closes, "volume": 1_000.0},
        index=idx,
    )


def _d(
    ticker: str,
    action: Action,
    decided_at: datetime,
    weight: float | None = None,
    confidence: float = 0.5,
    bar_ts: datetime | None = None,
) -> Decision:
    inputs = {} if weight is None else {"target_weight": weight}
    return Decision(
        ticker=ticker,
        bar_ts=bar_ts or decided_at - BAR - 2 * MIN,
        action=action,
        confidence=confidence,
        reason=f"test {action.value}",
        inputs=inputs,
        decided_at=decided_at,
    )


# --- the fill rule ------------------------------------------------------------------------------
def test_fill_bar_is_the_first_bar_starting_at_or_after_the_decision() -> None:
    bars = _frame([100.0, 101.0, 103.0], [100.5, 102.0, 104.0], start=T0 - BAR)  # 14:15 .. 14:45
    assert fill_bar(bars, T0 + 2 * MIN) == (T0 + BAR, 103.0)  # 14:32 -> the 14:45 bar
    assert fill_bar(bars, T0) == (T0, 101.0)  # a bar starting at the clock is after it
    assert fill_bar(bars, T0 + BAR + MIN) is None  # pending: the next bar is not there yet
    # Daily bars stamped at the session start: a decision after the close fills at the next open.
    daily = _frame(
        [50.0, 51.0, 52.0], start=datetime(2026, 11, 23, 14, 30, tzinfo=UTC), step=timedelta(days=1)
    )
    after_close = datetime(2026, 11, 23, 21, 2, tzinfo=UTC)
    assert fill_bar(daily, after_close) == (datetime(2026, 11, 24, 14, 30, tzinfo=UTC), 51.0)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_no_fill_is_at_a_price_printed_before_its_decision(seed: int) -> None:
    """Generated bars whose opens and closes all differ; decisions at random minutes; the book
    advanced as live runs it (every bar end + 2 min). Every fill is at the open of the first bar
    starting at or after its decision, with the half spread."""
    rng = random.Random(seed)
    tickers = ["AAA", "BBB", "CCC"][: rng.randint(1, 3)]
    n = 40
    frames = {}
    for t in tickers:
        price, opens, closes = rng.uniform(20, 200), [], []
        for _ in range(n):
            opens.append(price * (1 + rng.gauss(0, 0.004)))
            price = opens[-1] * (1 + rng.gauss(0, 0.004))
            closes.append(price)
        frames[t] = _frame(opens, closes)
    tape = PriceTape(frames)
    config = _config(allow_short=seed % 2 == 0, max_gross=1.5, max_position=0.5)
    book = Portfolio(config)
    decisions = [
        _d(
            t,
            rng.choice(list(Action)),
            T0 + timedelta(minutes=rng.randint(1, 15 * n)),
            rng.uniform(-0.5, 0.5),
            rng.random(),
        )
        for t in rng.choices(tickers, k=60)
    ]
    trades: list[Trade] = []
    clock = T0 + BAR + 2 * MIN
    while clock < T0 + (n + 2) * BAR:
        window = [d for d in decisions if clock - BAR < d.decided_at <= clock]
        trades += book.advance(window, tape, clock - BAR)
        clock += BAR
    assert trades
    half = config.spread_bps / 2e4
    for trade in trades:
        bars = frames[trade.ticker]
        assert trade.fill_bar >= trade.decided_at
        first = bars.index[bars.index >= trade.decided_at][0]
        assert trade.fill_bar == first
        side = 1 if trade.side == "buy" else -1
        assert trade.fill_price == pytest.approx(bars.loc[first, "open"] * (1 + side * half))


def test_a_newer_decision_before_the_fill_bar_replaces_the_pending_order() -> None:
    tape = PriceTape({"AAA": _frame([100.0] * 4)})
    book = Portfolio(CONFIG)
    # 14:32 and 14:40 are both before the 14:45 bar starts: the 14:40 target (0.1) wins. A
    # decision at 14:50 comes after that bar started: it waits for the 15:00 bar.
    decisions = [
        _d("AAA", Action.BUY, T0 + 2 * MIN, 0.5),
        _d("AAA", Action.BUY, T0 + 10 * MIN, 0.1),
        _d("AAA", Action.BUY, T0 + 20 * MIN, 0.3),
    ]
    trades = book.advance(decisions, tape, T0 + BAR)  # bars up to the 14:45 one
    assert [(t.fill_bar, t.decided_at) for t in trades] == [(T0 + BAR, T0 + 10 * MIN)]
    assert trades[0].quantity == pytest.approx(0.1 * 10_000 / 100)
    assert [(o.decided_at, o.target_weight) for o in book.pending] == [(T0 + 20 * MIN, 0.3)]
    later = book.advance([], tape, T0 + 2 * BAR)
    assert [(t.fill_bar, t.reason) for t in later] == [(T0 + 2 * BAR, "add long")]
    assert book.pending == []


# --- sizing and caps (hand-computed) ------------------------------------------------------------
def _batch(
    config: PortfolioConfig,
    decisions: list[Decision],
    opens: dict[str, float],
    book: Portfolio | None = None,
) -> tuple[Portfolio, list[Trade]]:
    """Every decision at 14:32 fills at the 14:45 bar, at ``opens`` (flat bars)."""
    book = book or Portfolio(config)
    tape = PriceTape({t: _frame([p, p], start=T0) for t, p in opens.items()})
    return book, book.advance(decisions, tape, T0 + BAR)


def test_targets_are_scaled_together_to_the_gross_cap() -> None:
    config = _config(max_gross=0.6)
    decisions = [
        _d("AAA", Action.BUY, T0 + 2 * MIN, 0.4),
        _d("BBB", Action.BUY, T0 + 2 * MIN, 0.2),
        _d("CCC", Action.BUY, T0 + 2 * MIN, 0.3),
    ]
    book, _ = _batch(config, decisions, {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0})
    # 0.9 asked, 0.6 allowed: each target times 2/3, in shares of 10_000 at the open.
    assert book.positions["AAA"] == pytest.approx(0.4 * 2 / 3 * 10_000 / 100)
    assert book.positions["BBB"] == pytest.approx(0.2 * 2 / 3 * 10_000 / 50)
    assert book.positions["CCC"] == pytest.approx(0.3 * 2 / 3 * 10_000 / 20)


def test_short_targets_are_scaled_to_the_short_cap_and_longs_are_not() -> None:
    config = _config(allow_short=True, max_short=0.3, max_gross=2.0)
    decisions = [
        _d("AAA", Action.SELL, T0 + 2 * MIN, -0.4),
        _d("BBB", Action.SELL, T0 + 2 * MIN, -0.2),
        _d("CCC", Action.BUY, T0 + 2 * MIN, 0.4),
    ]
    book, _ = _batch(config, decisions, {"AAA": 100.0, "BBB": 100.0, "CCC": 100.0})
    # Shorts 0.6 asked, 0.3 allowed: halved. The long keeps 0.4.
    assert book.positions["AAA"] == pytest.approx(-0.2 * 10_000 / 100)
    assert book.positions["BBB"] == pytest.approx(-0.1 * 10_000 / 100)
    assert book.positions["CCC"] == pytest.approx(0.4 * 10_000 / 100)


def test_the_gross_cap_counts_positions_outside_the_batch() -> None:
    config = _config(max_position=1.0, max_gross=0.8)
    book, _ = _batch(config, [_d("AAA", Action.BUY, T0 + 2 * MIN, 0.5)], {"AAA": 100.0})
    held = book.equity()  # 10_000 - 5 (half spread) - 5.005 (fee) = 9_989.995 at the open
    assert held == pytest.approx(9_989.995)
    tape = PriceTape({"AAA": _frame([100.0] * 3), "BBB": _frame([50.0] * 3)})
    book.advance([_d("BBB", Action.BUY, T0 + BAR + 2 * MIN, 0.8)], tape, T0 + 2 * BAR)
    # AAA is 5_000 / 9_989.995 of equity; BBB gets the rest of the 0.8 cap, not 0.8.
    room = 0.8 - 5_000 / held
    assert book.positions["BBB"] == pytest.approx(room * held / 50)


def test_the_target_is_capped_per_name_and_old_decisions_mean_the_full_size() -> None:
    decisions = [
        _d("AAA", Action.BUY, T0 + 2 * MIN, 0.9),  # above max_position 0.4
        _d("BBB", Action.BUY, T0 + 2 * MIN),  # no target_weight (an older version): +0.4
    ]
    book, _ = _batch(
        _config(max_position=0.4, max_gross=2.0), decisions, {"AAA": 100.0, "BBB": 100.0}
    )
    assert book.positions == {"AAA": pytest.approx(40.0), "BBB": pytest.approx(40.0)}
    # A SELL without a target and without shorting means 0: it closes the long.
    tape = PriceTape({"AAA": _frame([100.0] * 3)})
    trades = book.advance([_d("AAA", Action.SELL, T0 + BAR + 2 * MIN)], tape, T0 + 2 * BAR)
    assert [(t.side, t.reason) for t in trades] == [("sell", "close long")]
    assert "AAA" not in book.positions


def test_a_position_is_trimmed_when_its_target_shrinks_and_grows_when_it_grows() -> None:
    book, [buy] = _batch(CONFIG, [_d("AAA", Action.BUY, T0 + 2 * MIN, 0.4)], {"AAA": 100.0})
    assert (buy.side, buy.quantity, buy.reason) == ("buy", pytest.approx(40.0), "open long")
    # Cash 10_000 - 40 * 100.1 * 1.001 = 5_991.996; at 110: equity 5_991.996 + 4_400.
    tape = PriceTape({"AAA": _frame([100.0, 100.0, 110.0, 90.0])})
    [trim] = book.advance([_d("AAA", Action.BUY, T0 + BAR + 2 * MIN, 0.1)], tape, T0 + 2 * BAR)
    equity = 5_991.996 + 40 * 110
    assert (trim.side, trim.reason) == ("sell", "trim long")
    assert trim.quantity == pytest.approx(40 - 0.1 * equity / 110)
    assert trim.fill_price == pytest.approx(110 * 0.999)
    assert book.positions["AAA"] == pytest.approx(0.1 * equity / 110)
    [grow] = book.advance([_d("AAA", Action.BUY, T0 + 2 * BAR + 2 * MIN, 0.3)], tape, T0 + 3 * BAR)
    assert (grow.side, grow.reason) == ("buy", "add long")
    assert book.positions["AAA"] == pytest.approx(0.3 * book.equity() / 90, rel=2e-3)


def test_an_add_below_the_rebalance_band_waits_and_a_small_trim_still_trades() -> None:
    config = _config(rebalance_band=0.01)  # 1 % of equity: about 100 USD here
    book, [buy] = _batch(config, [_d("AAA", Action.BUY, T0 + 2 * MIN, 0.2)], {"AAA": 100.0})
    tape = PriceTape({"AAA": _frame([100.0] * 6)})

    def step(k: int, weight: float) -> list:  # decided 2 min into bar k, filled at bar k + 1
        made = book.advance([_d("AAA", Action.BUY, T0 + k * BAR + 2 * MIN, weight)], tape,
                            T0 + (k + 1) * BAR)  # fmt: skip
        assert book.pending == []  # the order reached its fill bar: traded or skipped
        return made

    # 0.2 -> 0.205 adds about 50 USD, inside the band: no trade.
    assert step(1, 0.205) == []
    assert book.positions["AAA"] == pytest.approx(buy.quantity)
    # 0.2 -> 0.22 adds about 200 USD: it trades.
    [add] = step(2, 0.22)
    assert add.reason == "add long"
    # 0.22 -> 0.215 takes about 50 USD of risk off: a trim trades whatever its size.
    [trim] = step(3, 0.215)
    assert trim.reason == "trim long"
    assert book.positions["AAA"] * 100.0 == pytest.approx(0.215 * book.equity(), rel=1e-3)


# --- cash -----------------------------------------------------------------------------------------
def test_when_cash_runs_short_the_strongest_orders_fill_first_not_by_name() -> None:
    config = _config(max_position=0.6, max_gross=2.0)
    decisions = [
        _d("AAA", Action.BUY, T0 + 2 * MIN, 0.3, confidence=0.9),  # weakest target
        _d("MMM", Action.BUY, T0 + 2 * MIN, 0.6, confidence=0.5),
        _d("ZZZ", Action.BUY, T0 + 2 * MIN, 0.6, confidence=0.8),  # strongest
    ]
    book, trades = _batch(config, decisions, {"AAA": 100.0, "MMM": 100.0, "ZZZ": 100.0})
    unit = 100.1 * 1.001  # one share, half spread and fee
    assert [t.ticker for t in trades] == ["ZZZ", "MMM"]
    assert book.positions["ZZZ"] == pytest.approx(60.0)
    # MMM gets what is left, partially; AAA nothing.
    assert book.positions["MMM"] == pytest.approx((10_000 - 60 * unit) / unit)
    assert trades[1].reason == "open long (cash-limited)"
    assert "AAA" not in book.positions and book.cash == 0.0


def test_short_proceeds_never_fund_longs() -> None:
    config = _config(allow_short=True, max_position=1.0, max_gross=2.0, max_short=1.0)
    decisions = [
        _d("AAA", Action.BUY, T0 + 2 * MIN, 1.0),
        _d("BBB", Action.SELL, T0 + 2 * MIN, -1.0),
    ]
    book, trades = _batch(config, decisions, {"AAA": 100.0, "BBB": 100.0})
    assert [(t.ticker, t.side) for t in trades] == [("BBB", "sell"), ("AAA", "buy")]
    # Short 100 BBB at 99.9: cash 10_000 + 9_990 - 9.99; the 10_000 the short is worth stays
    # reserved, so AAA gets 9_980.01 of buying power.
    assert book.positions["BBB"] == pytest.approx(-100.0)
    assert book.positions["AAA"] == pytest.approx(9_980.01 / (100.1 * 1.001))
    assert book.cash == pytest.approx(10_000.0)  # exactly what covering the short needs


def test_borrow_is_charged_on_a_short_for_the_calendar_days_held() -> None:
    config = _config(allow_short=True, borrow_bps=50.0, fee_bps=0.0, spread_bps=0.0)
    day = timedelta(days=1)
    start = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)  # daily bars, flat at 100
    tape = PriceTape({"AAA": _frame([100.0] * 20, start=start, step=day)})
    book = Portfolio(config)
    book.advance([_d("AAA", Action.SELL, start - 10 * MIN, -0.3)], tape, start)
    assert book.positions["AAA"] == pytest.approx(-30.0) and book.borrow_paid == 0.0
    book.advance([], tape, start + 10 * day)
    # 3_000 short for 10 days at 50 bps a year.
    assert book.borrow_paid == pytest.approx(3_000 * 0.005 * 10 / 365)
    assert book.equity() == pytest.approx(10_000 - book.borrow_paid)
    assert book.equity() - 10_000 == pytest.approx(
        book.realized_pnl + book.unrealized_pnl() - book.fees_paid - book.borrow_paid
    )


def test_a_squeezed_short_owes_the_borrow_its_cash_cannot_pay_and_cash_stays_at_zero() -> None:
    config = _config(
        allow_short=True,
        max_position=1.0,
        max_gross=2.0,
        max_short=1.0,
        fee_bps=0.0,
        spread_bps=0.0,
        borrow_bps=1_000.0,
    )  # 10 % a year
    day = timedelta(days=1)
    start = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    tape = PriceTape(
        {
            "AAA": _frame([100.0] * 40, start=start, step=day),
            "BBB": _frame([100.0] + [300.0] * 39, start=start, step=day),  # squeezed on day 1
        }
    )
    book = Portfolio(config)
    # Day 0: short 100 BBB (cash 20_000, of which 10_000 reserved), buy 100 AAA with the rest.
    book.advance(
        [_d("BBB", Action.SELL, start - MIN, -1.0), _d("AAA", Action.BUY, start - MIN, 1.0)],
        tape,
        start,
    )
    assert book.positions == {"AAA": pytest.approx(100.0), "BBB": pytest.approx(-100.0)}
    assert book.cash == pytest.approx(10_000.0)
    # Day 1: one day of borrow on 10_000, then covering at 300 takes all the cash, partially.
    [cover] = book.advance([_d("BBB", Action.SELL, start + day - MIN, 0.0)], tape, start + day)
    cash = 10_000 - 10_000 * 0.1 / 365
    assert cover.reason == "trim short (cash-limited)"
    assert cover.quantity == pytest.approx(cash / 300)
    assert book.cash == 0.0
    # 36 more days: the borrow on the 100 - cash / 300 shares left is owed, not taken from cash.
    book.advance([], tape, start + 37 * day)
    left = 100 - cash / 300
    owed = left * 300 * 0.1 * 36 / 365
    assert book.cash == 0.0 and book.borrow_owed == pytest.approx(owed)
    assert book.equity() == pytest.approx(100 * 100 - left * 300 - owed)
    assert book.equity() - 10_000 == pytest.approx(
        book.realized_pnl + book.unrealized_pnl() - book.fees_paid - book.borrow_paid
    )
    # Selling AAA brings cash in: the owed borrow (37 days by then) is paid from it first.
    book.advance([_d("AAA", Action.SELL, start + 38 * day - MIN, 0.0)], tape, start + 38 * day)
    assert book.borrow_owed == 0.0
    assert book.cash == pytest.approx(10_000 - left * 300 * 0.1 * 37 / 365)


@pytest.mark.parametrize(
    ("seed", "n_tickers", "allow_short", "max_position", "max_gross", "max_short"),
    [
        (1, 2, False, 0.5, 1.0, 0.0),
        (2, 5, True, 0.3, 1.0, 0.3),
        (3, 8, True, 0.5, 1.5, 0.5),
        (4, 3, True, 1.0, 2.0, 1.0),
        (5, 6, False, 0.2, 0.8, 0.3),
    ],
)
def test_books_over_random_decisions_keep_the_identity_cash_and_caps(
    seed: int,
    n_tickers: int,
    allow_short: bool,
    max_position: float,
    max_gross: float,
    max_short: float,
) -> None:
    rng = random.Random(seed)
    config = _config(
        allow_short=allow_short,
        max_position=max_position,
        max_gross=max_gross,
        max_short=max_short,
        borrow_bps=300.0,
    )
    tickers = [f"T{i}" for i in range(n_tickers)]
    n = 60
    frames = {}
    for t in tickers:  # one price per bar (open == close), moving between bars
        price, series = rng.uniform(10, 300), []
        for _ in range(n):
            price *= 1 + rng.gauss(0, 0.003)
            series.append(price)
        frames[t] = _frame(series)
    tape = PriceTape(frames)
    book = Portfolio(config)
    slack = 1.01  # the batch's own costs come out of the equity the caps were sized on

    def check(fill_bar: datetime, trades: list[Trade]) -> None:
        equity = book.equity()
        assert book.cash >= 0.0
        assert book.equity() - 10_000 == pytest.approx(
            book.realized_pnl + book.unrealized_pnl() - book.fees_paid - book.borrow_paid,
            abs=1e-6,
        )
        traded = {t.ticker for t in trades}
        for t in traded:
            assert abs(book.positions.get(t, 0.0)) * book.last_prices[t] <= (
                max_position * equity * slack + 1e-6
            )
        flat = all(abs(book.positions.get(t, 0.0)) < 1e-9 for t in traded)
        assert book.gross() <= max_gross * equity * slack + 1e-6 or flat
        assert book.short_value() <= max_short * equity * slack + 1e-6 or flat

    clock = T0 + BAR + 2 * MIN
    for _ in range(n + 1):
        decisions = [
            _d(
                t,
                rng.choice([Action.BUY, Action.SELL, Action.HOLD]),
                clock - timedelta(minutes=rng.randint(0, 14)),
                rng.uniform(-1, 1),
                rng.random(),
            )
            for t in rng.sample(tickers, rng.randint(0, n_tickers))
        ]
        book.advance(decisions, tape, clock - BAR, check)
        assert book.cash >= 0.0
        if not allow_short:
            assert all(q > 0 for q in book.positions.values())
        clock += BAR
    assert book.fees_paid > 0 and (book.borrow_paid > 0) == allow_short


def test_state_round_trips_through_json_with_pending_orders() -> None:
    tape = PriceTape({"AAA": _frame([100.0, 100.0], [100.0, 104.0])})
    book = Portfolio(CONFIG)
    book.advance([_d("AAA", Action.BUY, T0 + 2 * MIN, 0.5)], tape, T0 + BAR)
    book.advance([_d("AAA", Action.SELL, T0 + BAR + 2 * MIN)], tape, T0 + BAR)
    assert [o.action for o in book.pending] == ["SELL"]
    restored = Portfolio.from_state(CONFIG, json.loads(json.dumps(book.to_state())))
    assert restored.snapshot(T0) == book.snapshot(T0)
    snap = book.snapshot(T0)
    assert snap["positions"]["AAA"]["market_value"] == pytest.approx(50 * 104.0)
    assert snap["pending"][0]["decided_at"] == (T0 + BAR + 2 * MIN).isoformat()
    json.dumps(snap)


def test_a_decision_without_a_clock_is_refused() -> None:
    d = Decision("AAA", T0, Action.BUY, 0.5, "test")
    with pytest.raises(ValueError, match=r"AAA.*decided_at"):
        Portfolio(CONFIG).advance([d], PriceTape({}), T0)


def test_buy_and_hold_buys_each_slice_at_its_first_fill_bar_open() -> None:
    bh = BuyAndHold(["AAA", "BBB"], CONFIG, T0 + 2 * MIN)
    tape = PriceTape(
        {
            "AAA": _frame([100.0, 110.0, 120.0], [105.0, 115.0, 125.0]),
            "BBB": _frame([50.0, 60.0], [55.0, 65.0], start=T0 + BAR),
        }
    )
    bh.advance(tape, T0)  # the 14:30 bar started before the clock: nothing bought
    assert bh.positions == {} and bh.cash == 10_000.0
    bh.advance(tape, T0 + 2 * BAR)
    assert bh.positions == {
        "AAA": pytest.approx(5_000 / (110 * 1.001 * 1.001)),
        "BBB": pytest.approx(5_000 / (50 * 1.001 * 1.001)),
    }
    assert bh.equity() == pytest.approx(bh.positions["AAA"] * 125 + bh.positions["BBB"] * 65)


# --- update_portfolio against a store -------------------------------------------------------------
@pytest.fixture
def setup(tmp_path):
    settings = load_settings(
        require_replay_dir=False,
        tickers=["AAA", "BBB"],
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        portfolio_starting_cash=10_000.0,
        portfolio_max_position=0.5,
        portfolio_fee_bps=10.0,
        portfolio_spread_bps=20.0,
        portfolio_allow_short=False,
    )
    with open_store(settings) as store:
        # 13:45, 14:00, 14:15 (open 103, close 104), 14:30, 14:45 New York time is 18:45 UTC.
        start = datetime(2026, 11, 24, 18, 45, tzinfo=UTC)
        store.upsert_bars_many(
            "15m",
            {
                "AAA": _frame([100.0, 101.0, 103.0, 105.0], [101.0, 102.0, 104.0, 106.0], start),
                "BBB": _frame([50.0, 50.0, 50.0, 50.0], start=start),
            },
        )
        yield settings, store, start


def _stored(store) -> tuple[list, list]:
    with store.engine.connect() as conn:
        states = conn.execute(select(PortfolioStateRow).order_by(PortfolioStateRow.bar_ts)).all()
        points = conn.execute(select(EquityPointRow).order_by(EquityPointRow.ts)).all()
    return [tuple(r) for r in states], [tuple(r) for r in points]


def test_a_1402_decision_is_pending_then_fills_at_the_1415_bar_open(setup) -> None:
    settings, store, b1345 = setup
    b1400, b1415 = b1345 + BAR, b1345 + 2 * BAR
    at_1402 = b1400 + 2 * MIN
    store.save_decisions([_d("AAA", Action.BUY, at_1402, 0.5, bar_ts=b1345)])
    early = update_portfolio(store, settings, b1415 + 2 * MIN)  # 14:17: the 14:15 bar is open
    assert early["trades"] == [] and early["positions"] == {}
    assert [
        (o["ticker"], o["action"], o["target_weight"], o["decided_at"]) for o in early["pending"]
    ] == [("AAA", "BUY", 0.5, at_1402.isoformat())]

    snap = update_portfolio(store, settings, b1415 + BAR + 2 * MIN)  # 14:32
    assert snap["pending"] == []
    # 0.5 of 10_000 at the 14:15 open (103): 48.5437 shares at 103 * 1.001, plus 10 bps.
    qty = 0.5 * 10_000 / 103
    [trade] = snap["trades"]
    assert trade == {
        "ticker": "AAA",
        "side": "buy",
        "quantity": pytest.approx(qty),
        "decided_at": at_1402.isoformat(),
        "fill_bar": b1415.isoformat(),
        "fill_price": pytest.approx(103.103),
        "fee": pytest.approx(qty * 103.103 * 0.001),
        "reason": "open long",
    }
    # Marked at the 14:15 bar's close (104), the newest bar ended by 14:32.
    assert snap["equity"] == pytest.approx(10_000 - qty * 103.103 * 1.001 + qty * 104)
    # One point at the newest bar of each run: 14:00 while pending, then the fill bar.
    assert [p.ts for p in ledger.equity_curve(store)] == [b1400, b1415]


def test_pending_orders_survive_a_restart_and_a_retry_writes_the_same_rows(setup) -> None:
    settings, store, b1345 = setup
    store.save_decisions([_d("AAA", Action.BUY, b1345 + BAR + 2 * MIN, 0.5, bar_ts=b1345)])
    store.save_decisions([_d("BBB", Action.BUY, b1345 + BAR + 5 * MIN, 0.2, bar_ts=b1345)])
    update_portfolio(store, settings, b1345 + 2 * BAR + 2 * MIN)
    saved = ledger.latest_portfolio_state(store)
    assert saved is not None and len(saved.state["portfolio"]["pending"]) == 2
    as_of = b1345 + 4 * BAR + 2 * MIN
    first = update_portfolio(store, settings, as_of)  # a new process: only the store carries on
    rows = _stored(store)
    again = update_portfolio(store, settings, as_of)
    assert _stored(store) == rows
    assert again["trades"] == [] and again["applied"] == 0
    assert {k: v for k, v in again.items() if k not in ("trades", "applied")} == {
        k: v for k, v in first.items() if k not in ("trades", "applied")
    }
    trades = list(reversed(ledger.portfolio_trades(store, limit=None)))
    assert [(t["ticker"], t["fill_bar"]) for t in trades] == [
        ("AAA", (b1345 + 2 * BAR).isoformat()),
        ("BBB", (b1345 + 2 * BAR).isoformat()),
    ]


def test_hold_makes_no_order_and_buy_and_hold_starts_at_the_first_decision(setup) -> None:
    settings, store, b1345 = setup
    store.save_decisions([_d("BBB", Action.HOLD, b1345 + BAR + 2 * MIN, 0.0, bar_ts=b1345)])
    snap = update_portfolio(store, settings, b1345 + 3 * BAR + 2 * MIN)
    assert snap["applied"] == 1 and snap["trades"] == [] and snap["pending"] == []
    # 5_000 per ticker at the 14:15 opens (103 and 50) with half spread and fee, marked at
    # the newest closes ended by 14:32 (the 14:15 bar: 104 and 50).
    unit = 1.001 * 1.001
    bh = 5_000 / (103 * unit) * 104 + 5_000 / (50 * unit) * 50
    assert snap["buy_and_hold_equity"] == pytest.approx(bh)


def test_update_with_no_decisions_saves_nothing(setup) -> None:
    settings, store, b1345 = setup
    snap = update_portfolio(store, settings, b1345 + 4 * BAR)
    assert snap["equity"] == 10_000.0 and snap["buy_and_hold_equity"] is None
    assert ledger.equity_curve(store) == [] and ledger.latest_portfolio_state(store) is None


def test_portfolio_json_lists_fills_and_pending_orders(setup) -> None:
    from sentinel42.cli import app

    settings, store, b1345 = setup
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the replay folder (nothing read)
    store.save_decisions([_d("AAA", Action.BUY, b1345 + BAR + 2 * MIN, 0.5, bar_ts=b1345)])
    store.save_decisions([_d("BBB", Action.BUY, b1345 + 3 * BAR + 2 * MIN, 0.2, bar_ts=b1345)])
    env = {
        "SENTINEL42_DATABASE_URL": settings.database_url,
        "SENTINEL42_TICKERS": "AAA,BBB",
        "SENTINEL42_PORTFOLIO_MAX_POSITION": "0.5",
        "SENTINEL42_DATA_SOURCE": "replay",
        "SENTINEL42_REPLAY_DIR": str(settings.data_dir),
        "SENTINEL42_REPLAY_AS_OF": (b1345 + 3 * BAR + 2 * MIN).isoformat(),
    }
    result = CliRunner().invoke(app, ["portfolio", "--json"], env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    [trade] = doc["trades"]
    assert set(trade) == {
        "ticker",
        "side",
        "quantity",
        "decided_at",
        "fill_bar",
        "fill_price",
        "fee",
        "reason",
    }
    assert (trade["ticker"], trade["fill_bar"]) == ("AAA", (b1345 + 2 * BAR).isoformat())
    [pending] = doc["pending"]
    assert (pending["ticker"], pending["action"], pending["target_weight"]) == ("BBB", "BUY", 0.2)
    assert pending["decided_at"] == (b1345 + 3 * BAR + 2 * MIN).isoformat()
    assert pending["reason"] == "test BUY"
    table = CliRunner().invoke(app, ["portfolio"], env=env)
    assert table.exit_code == 0, table.output
    assert "Pending orders" in table.stdout and "Trades" in table.stdout
