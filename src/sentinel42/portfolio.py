"""The paper portfolio: what following the standing decisions would have done to some cash.

:class:`Portfolio` is pure bookkeeping (no I/O, no clock); the backtest drives it bar by bar
and :func:`update_portfolio` drives it from the store. Rules (docs/validation.md):

- BUY sizes a long to ``position_fraction`` of the equity at current marks, buying only up to
  that target (a repeated BUY never piles up); it covers a short first. A buy is never larger
  than the cash can pay for, fee included.
- SELL closes a long; with ``allow_short`` it then sells short down to the same target size.
- HOLD does nothing.
- Buys fill at ``price * (1 + slippage)``, sells at ``price * (1 - slippage)``; each trade pays
  ``fee_bps`` of its notional. Quantities are fractional shares.

Bookkeeping identity: ``equity - starting_cash == realized_pnl + unrealized_pnl - fees_paid``
(P&L is measured on fill prices, so slippage is in it; fees are kept apart).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sentinel42.domain import Action, Decision

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

_EPS = 1e-9  # share quantities below this are nothing (float dust)


@dataclass(frozen=True, slots=True)
class PortfolioConfig:
    """How the paper portfolio trades. Fees and slippage in basis points of the notional."""

    starting_cash: float = 100_000.0
    position_fraction: float = 0.1
    fee_bps: float = 1.0
    slippage_bps: float = 2.0
    allow_short: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> PortfolioConfig:
        return cls(
            starting_cash=settings.portfolio_starting_cash,
            position_fraction=settings.portfolio_position_fraction,
            fee_bps=settings.portfolio_fee_bps,
            slippage_bps=settings.portfolio_slippage_bps,
            allow_short=settings.portfolio_allow_short,
        )


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill. ``price`` is the fill price after slippage; ``fee`` is in USD."""

    ticker: str
    ts: datetime
    side: str  # "buy" | "sell"
    quantity: float  # shares, > 0
    price: float
    fee: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ts": self.ts.isoformat()}


class Portfolio:
    """Cash, signed positions and their average entry prices, marked to the last prices seen.

    Attributes:
        cash: USD; may go below zero only while covering a short that went against it.
        positions: signed share quantity per ticker (negative: short); flat tickers absent.
        cost_basis: average entry fill price per open position.
        last_prices: the newest price seen per ticker (``apply`` and ``mark`` set it).
        realized_pnl: P&L of closed quantity, on fill prices, before fees.
        fees_paid: all fees so far.
    """

    def __init__(self, config: PortfolioConfig) -> None:
        self.config = config
        self.cash: float = config.starting_cash
        self.positions: dict[str, float] = {}
        self.cost_basis: dict[str, float] = {}
        self.last_prices: dict[str, float] = {}
        self.realized_pnl: float = 0.0
        self.fees_paid: float = 0.0

    # --- trading ------------------------------------------------------------------------------
    def apply(self, ticker: str, action: str | Action, price: float, ts: datetime) -> list[Trade]:
        """Act on one decision at ``price`` (the decision's close); returns the fills made.

        Raises:
            ValueError: the price is not a positive finite number, or the action is unknown.
        """
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"{ticker}: price must be positive and finite, got {price!r}")
        act = Action(str(action).upper())
        self.last_prices[ticker] = price
        trades: list[Trade] = []
        held = self.positions.get(ticker, 0.0)
        if act is Action.BUY:
            if held < -_EPS:
                trades.append(self._fill(ticker, ts, "buy", -held, price, "cover short"))
            qty = self._target_quantity(price) - max(self.positions.get(ticker, 0.0), 0.0)
            fill = price * (1 + self._slip)
            affordable = max(self.cash, 0.0) / (fill * (1 + self._fee_rate))
            if min(qty, affordable) > _EPS:
                trades.append(
                    self._fill(ticker, ts, "buy", min(qty, affordable), price, "buy to target")
                )
                if affordable <= qty:  # spent all the cash: no float dust below zero
                    self.cash = max(self.cash, 0.0)
        elif act is Action.SELL:
            if held > _EPS:
                trades.append(self._fill(ticker, ts, "sell", held, price, "close long"))
            if self.config.allow_short:
                short = -min(self.positions.get(ticker, 0.0), 0.0)
                qty = self._target_quantity(price) - short
                if qty > _EPS:
                    trades.append(self._fill(ticker, ts, "sell", qty, price, "short to target"))
        return trades

    def _target_quantity(self, price: float) -> float:
        return self.config.position_fraction * self.equity() / price

    @property
    def _slip(self) -> float:
        return self.config.slippage_bps / 1e4

    @property
    def _fee_rate(self) -> float:
        return self.config.fee_bps / 1e4

    def _fill(
        self, ticker: str, ts: datetime, side: str, qty: float, price: float, reason: str
    ) -> Trade:
        sign = 1.0 if side == "buy" else -1.0
        fill = price * (1 + sign * self._slip)
        notional = qty * fill
        fee = notional * self._fee_rate
        self.cash -= sign * notional + fee
        self.fees_paid += fee
        held = self.positions.get(ticker, 0.0)
        after = held + sign * qty
        if held == 0 or (held > 0) == (sign > 0):  # opening or adding: new average entry
            basis = self.cost_basis.get(ticker, fill)
            self.cost_basis[ticker] = (abs(held) * basis + qty * fill) / (abs(held) + qty)
        else:  # reducing or closing (never flips: apply closes, then opens)
            self.realized_pnl += (fill - self.cost_basis[ticker]) * qty * (1 if held > 0 else -1)
        if abs(after) <= _EPS:
            self.positions.pop(ticker, None)
            self.cost_basis.pop(ticker, None)
        else:
            self.positions[ticker] = after
        return Trade(ticker, ts, side, qty, fill, fee, reason)

    # --- valuation ----------------------------------------------------------------------------
    def mark(self, prices: Mapping[str, float]) -> None:
        """Remember the newest prices (USD) for equity and unrealized P&L."""
        for ticker, price in prices.items():
            if math.isfinite(price) and price > 0:
                self.last_prices[ticker] = float(price)

    def _price(self, ticker: str) -> float:
        return self.last_prices.get(ticker, self.cost_basis.get(ticker, 0.0))

    def equity(self) -> float:
        """Cash plus the signed market value of every position at the last marks."""
        return self.cash + sum(q * self._price(t) for t, q in self.positions.items())

    def unrealized_pnl(self) -> float:
        return sum(q * (self._price(t) - self.cost_basis[t]) for t, q in self.positions.items())

    def snapshot(self, ts: datetime) -> dict[str, Any]:
        """A JSON-able view: cash, equity, P&L and each position at the last marks."""
        positions = {
            t: {
                "quantity": q,
                "avg_price": self.cost_basis[t],
                "last_price": self._price(t),
                "market_value": q * self._price(t),
                "unrealized_pnl": q * (self._price(t) - self.cost_basis[t]),
            }
            for t, q in sorted(self.positions.items())
        }
        equity = self.equity()
        return {
            "ts": ts.isoformat(),
            "starting_cash": self.config.starting_cash,
            "cash": self.cash,
            "equity": equity,
            "return": equity / self.config.starting_cash - 1.0,
            "positions": positions,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl(),
            "fees_paid": self.fees_paid,
        }

    # --- persistence --------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything :meth:`from_state` needs, JSON-able."""
        return {
            "cash": self.cash,
            "positions": dict(self.positions),
            "cost_basis": dict(self.cost_basis),
            "last_prices": dict(self.last_prices),
            "realized_pnl": self.realized_pnl,
            "fees_paid": self.fees_paid,
        }

    @classmethod
    def from_state(cls, config: PortfolioConfig, state: Mapping[str, Any]) -> Portfolio:
        portfolio = cls(config)
        portfolio.cash = float(state["cash"])
        portfolio.positions = {t: float(q) for t, q in state.get("positions", {}).items()}
        portfolio.cost_basis = {t: float(p) for t, p in state.get("cost_basis", {}).items()}
        portfolio.last_prices = {t: float(p) for t, p in state.get("last_prices", {}).items()}
        portfolio.realized_pnl = float(state.get("realized_pnl", 0.0))
        portfolio.fees_paid = float(state.get("fees_paid", 0.0))
        return portfolio


# --- buy and hold -------------------------------------------------------------------------------
class BuyAndHold:
    """The benchmark: the starting cash split equally over the watchlist, bought once, held.

    Each ticker's slice is bought at the first price seen for it, with the same fees and
    slippage as the portfolio; a slice waits in cash until then.
    """

    def __init__(self, tickers: list[str], config: PortfolioConfig) -> None:
        self.config = config
        self.cash = config.starting_cash
        self.slice = config.starting_cash / max(1, len(tickers))
        self.pending = sorted(tickers)
        self.positions: dict[str, float] = {}
        self.last_prices: dict[str, float] = {}

    def update(self, prices: Mapping[str, float]) -> None:
        """Mark to ``prices`` and buy every pending ticker that has a price."""
        fill_cost = (1 + self.config.slippage_bps / 1e4) * (1 + self.config.fee_bps / 1e4)
        for ticker, price in prices.items():
            if math.isfinite(price) and price > 0:
                self.last_prices[ticker] = float(price)
        for ticker in [t for t in self.pending if t in self.last_prices]:
            self.positions[ticker] = self.slice / (self.last_prices[ticker] * fill_cost)
            self.cash -= self.slice
            self.pending.remove(ticker)

    def equity(self) -> float:
        return self.cash + sum(q * self.last_prices[t] for t, q in self.positions.items())

    def to_state(self) -> dict[str, Any]:
        return {
            "cash": self.cash,
            "slice": self.slice,
            "pending": list(self.pending),
            "positions": dict(self.positions),
            "last_prices": dict(self.last_prices),
        }

    @classmethod
    def from_state(cls, config: PortfolioConfig, state: Mapping[str, Any]) -> BuyAndHold:
        bh = cls([], config)
        bh.cash, bh.slice = float(state["cash"]), float(state["slice"])
        bh.pending = list(state["pending"])
        bh.positions = {t: float(q) for t, q in state["positions"].items()}
        bh.last_prices = {t: float(p) for t, p in state["last_prices"].items()}
        return bh


class _Closes:
    """Each ticker's stored closes, looked up as of a bar (newest close at or before it)."""

    def __init__(self, frames: Mapping[str, Any]) -> None:
        self._ts = {t: f.index.asi8 for t, f in frames.items() if len(f)}
        self._close = {t: frames[t]["close"].to_numpy(float) for t in self._ts}
        self.newest = max((f.index[-1] for f in frames.values() if len(f)), default=None)

    def at(self, ts: datetime) -> dict[str, float]:
        key = pd.Timestamp(ts).as_unit("ns").value
        out: dict[str, float] = {}
        for t, stamps in self._ts.items():
            i = int(np.searchsorted(stamps, key, side="right")) - 1
            if i >= 0:
                out[t] = float(self._close[t][i])
        return out


# --- driving it from the store ----------------------------------------------------------------
def update_portfolio(store: Store, settings: Settings, as_of: datetime) -> dict[str, Any]:
    """Apply every standing decision not yet applied (bar closed by ``as_of``); save the result.

    Decisions are applied in bar order, a bar's tickers in name order, each at its recorded
    close (``inputs["close"]``); after each bar the state and an equity point are saved under
    that bar (every ticker marked to its newest close up to that bar). Then the portfolio is
    marked to each ticker's newest close up to ``as_of`` and an equity point is saved at that
    newest bar. :class:`BuyAndHold` of the watchlist, started at the first applied bar, is
    valued beside it.

    Idempotent: a retried run finds its decisions applied and writes the same points. A
    decision for a bar older than the newest applied one (recorded late) is not applied: the
    portfolio does not trade in the past.

    Returns:
        :meth:`Portfolio.snapshot` at ``as_of`` plus ``bar_ts`` (newest applied bar, ISO),
        ``applied`` (decisions applied now), ``trades`` (fills made now),
        ``buy_and_hold_equity`` and ``buy_and_hold_return`` (None before the first bar).
    """
    from sentinel42.persistence import ledger

    config = PortfolioConfig.from_settings(settings)
    saved = ledger.latest_portfolio_state(store)
    portfolio, bh, applied_bar = Portfolio(config), None, None
    if saved is not None:
        portfolio = Portfolio.from_state(config, saved.state["portfolio"])
        bh = BuyAndHold.from_state(config, saved.state["buy_and_hold"])
        applied_bar = saved.bar_ts
    end = as_of - timedelta(minutes=settings.interval_minutes)  # bars closed by as_of
    decisions = ledger.standing_decisions(store, after=applied_bar, until=end)
    tickers = sorted({*settings.tickers, *portfolio.positions, *(d.ticker for d in decisions)})
    # A week back covers a long weekend for the marks of the first bar applied.
    start = (decisions[0].bar_ts if decisions else as_of) - timedelta(days=7)
    closes = _Closes(store.load_bars(tickers, settings.interval, start, end))

    by_bar: dict[datetime, list[Decision]] = {}
    for d in decisions:
        by_bar.setdefault(d.bar_ts, []).append(d)
    made: list[Trade] = []
    points: list[ledger.EquityPoint] = []
    for bar_ts, group in by_bar.items():
        marks = closes.at(bar_ts)
        portfolio.mark(marks)
        bar_trades: list[Trade] = []
        for d in group:
            price = _decision_close(d.inputs, marks.get(d.ticker))
            if price is None:
                logger.warning("%s at %s: no close to trade at; skipped", d.ticker, bar_ts)
                continue
            marks[d.ticker] = price
            bar_trades += portfolio.apply(d.ticker, d.action, price, bar_ts)
        bh = bh or BuyAndHold(list(settings.tickers), config)
        bh.update(marks)
        for t in bar_trades:
            logger.info(
                "paper %s %s %.4f @ %.4f: %s", t.side, t.ticker, t.quantity, t.price, t.reason
            )
        made += bar_trades
        state = {"portfolio": portfolio.to_state(), "buy_and_hold": bh.to_state()}
        trades = [t.to_dict() for t in bar_trades]
        equity = portfolio.equity()
        ledger.save_portfolio_state(
            store, ledger.SavedPortfolio(bar_ts, state, trades, equity, portfolio.cash, as_of)
        )
        points.append(ledger.EquityPoint(bar_ts, equity, portfolio.cash, bh.equity()))
        applied_bar = bar_ts

    if closes.newest is not None:
        marks = closes.at(closes.newest)
        portfolio.mark(marks)
        if bh is not None:
            bh.update(marks)
            newest = closes.newest.to_pydatetime()
            if applied_bar is None or newest > applied_bar:
                points.append(
                    ledger.EquityPoint(newest, portfolio.equity(), portfolio.cash, bh.equity())
                )
    ledger.save_equity_points(store, points)
    bh_equity = bh.equity() if bh is not None else None
    return portfolio.snapshot(as_of) | {
        "bar_ts": applied_bar.isoformat() if applied_bar else None,
        "applied": len(decisions),
        "trades": [t.to_dict() for t in made],
        "buy_and_hold_equity": bh_equity,
        "buy_and_hold_return": None if bh_equity is None else bh_equity / config.starting_cash - 1,
    }


def _decision_close(inputs: Mapping[str, Any], fallback: float | None) -> float | None:
    """The close a decision was made at; the stored bar's close if the decision lacks it."""
    try:
        price = float(inputs["close"])
    except (KeyError, TypeError, ValueError):
        return fallback
    return price if math.isfinite(price) and price > 0 else fallback
