"""The paper portfolio: what following the standing decisions would have done to some cash.

:class:`Portfolio` is pure bookkeeping over a :class:`PriceTape` (no I/O, no clock); the backtest
drives it step by step and :func:`update_portfolio` drives it from the store. Rules
(docs/validation.md, "Paper portfolio"):

- **Orders.** A BUY/SELL decision is an order to move the ticker to its target weight
  (``inputs["target_weight"]``: signed fraction of equity; without it BUY means
  ``+max_position`` and SELL ``-max_position``, or 0 when shorting is off). HOLD makes no order.
- **Fills** (:func:`fill_bar`). An order decided at ``decided_at`` fills at the open of the
  first bar of its ticker that *starts* at or after ``decided_at``: buys at
  ``open * (1 + spread / 2)``, sells at ``open * (1 - spread / 2)``, each paying ``fee_bps`` of
  its notional. Until that bar is on the tape the order is pending. A newer order for the same
  ticker decided before (or at) that bar's start replaces it; one decided later waits behind it.
- **Sizing and caps.** The orders filling on one bar are a batch. At that bar's opens each
  target becomes ``target_weight * equity / open`` shares; short targets are scaled down
  together so total shorts stay within ``max_short * equity``, then all targets together so
  gross exposure stays within ``max_gross * equity`` (positions outside the batch count as
  they are). Per name: ``|target_weight| <= max_position``.
- **Cash.** Trims and closes fill first, then new shorts, then buys by strength
  (``|target_weight|``, then confidence, then ticker), the last one partially. Buying power is
  cash minus the market value of open shorts and any borrow owed (short proceeds never fund
  longs); a cover is limited by cash. Cash is never negative.
- **Rebalance band.** An add to an open position smaller than ``rebalance_band * equity`` is
  skipped, so a score that drifts up a little does not trade each bar. Opens, closes, flips and
  trims always trade (a trim takes risk off, and a cap may need it).
- **Borrow.** ``borrow_bps`` a year on short market value, charged for the calendar time
  between marks; what the cash cannot pay is owed (a liability in equity) and paid from the
  next cash that comes in. Marks for equity are closes.

Bookkeeping identity: ``equity - starting_cash == realized_pnl + unrealized_pnl - fees_paid -
borrow_paid`` (P&L on fill prices, so the half spread is in it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
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
_YEAR_SECONDS = 365.0 * 86_400


@dataclass(frozen=True, slots=True)
class PortfolioConfig:
    """How the paper portfolio trades. Fractions are of equity; costs in basis points."""

    starting_cash: float = 100_000.0
    max_position: float = 0.1
    max_gross: float = 1.0
    max_short: float = 0.3
    fee_bps: float = 1.0
    spread_bps: float = 4.0
    borrow_bps: float = 50.0  # a year, on short market value
    allow_short: bool = False
    rebalance_band: float = 0.005  # a trim or add smaller than this fraction of equity waits

    @classmethod
    def from_settings(cls, settings: Settings) -> PortfolioConfig:
        return cls(
            starting_cash=settings.portfolio_starting_cash,
            max_position=settings.portfolio_max_position,
            max_gross=settings.portfolio_max_gross,
            max_short=settings.portfolio_max_short,
            fee_bps=settings.portfolio_fee_bps,
            spread_bps=settings.portfolio_spread_bps,
            borrow_bps=settings.portfolio_borrow_bps,
            allow_short=settings.portfolio_allow_short,
            rebalance_band=settings.portfolio_rebalance_band,
        )

    def fill_price(self, open_price: float, side: str) -> float:
        """The open plus (buy) or minus (sell) half the spread."""
        half = self.spread_bps / 2e4
        return open_price * (1 + half if side == "buy" else 1 - half)


# --- the fill rule ------------------------------------------------------------------------------
class PriceTape:
    """Each ticker's bars (start-stamped, any interval) looked up by time, without copies."""

    def __init__(self, frames: Mapping[str, pd.DataFrame]) -> None:
        self._ts = {t: f.index.as_unit("ns").asi8 for t, f in frames.items() if len(f)}
        self._open = {t: frames[t]["open"].to_numpy(float) for t in self._ts}
        self._close = {t: frames[t]["close"].to_numpy(float) for t in self._ts}

    @staticmethod
    def _ns(ts: datetime) -> int:
        return int(pd.Timestamp(ts).as_unit("ns").value)

    def fill(
        self, ticker: str, decided_at: datetime, until: datetime | None = None
    ) -> tuple[datetime, float] | None:
        """``(start, open)`` of the first bar starting at or after ``decided_at`` (and at or
        before ``until``, the newest bar start known), or None while there is none."""
        stamps = self._ts.get(ticker)
        if stamps is None:
            return None
        i = int(np.searchsorted(stamps, self._ns(decided_at), side="left"))
        if i >= len(stamps) or (until is not None and stamps[i] > self._ns(until)):
            return None
        return pd.Timestamp(stamps[i], tz="UTC").to_pydatetime(), float(self._open[ticker][i])

    def close(self, ticker: str, at: datetime, *, inclusive: bool = True) -> float | None:
        """Close of the newest bar starting at (``inclusive``) or before ``at``."""
        stamps = self._ts.get(ticker)
        if stamps is None:
            return None
        i = int(np.searchsorted(stamps, self._ns(at), side="right" if inclusive else "left")) - 1
        return float(self._close[ticker][i]) if i >= 0 else None

    def open_at(self, ticker: str, at: datetime) -> float | None:
        """Open of the bar starting exactly at ``at``."""
        stamps = self._ts.get(ticker)
        if stamps is None:
            return None
        i = int(np.searchsorted(stamps, self._ns(at), side="left"))
        ok = i < len(stamps) and stamps[i] == self._ns(at)
        return float(self._open[ticker][i]) if ok else None

    def newest(self, until: datetime | None = None) -> datetime | None:
        """The newest bar start on the tape (at or before ``until``)."""
        cut = None if until is None else self._ns(until)
        best: int | None = None
        for stamps in self._ts.values():
            i = len(stamps) if cut is None else int(np.searchsorted(stamps, cut, side="right"))
            if i and (best is None or stamps[i - 1] > best):
                best = int(stamps[i - 1])
        return None if best is None else pd.Timestamp(best, tz="UTC").to_pydatetime()


def fill_bar(bars: pd.DataFrame, decided_at: datetime) -> tuple[datetime, float] | None:
    """The fill rule on one ticker's bars: ``(start, open)`` of the first bar that starts at or
    after ``decided_at``, or None until it exists. Bars of any interval, stamped at their start
    (a daily decision after the close fills at the next session's open)."""
    return PriceTape({"_": bars}).fill("_", decided_at)


# --- orders and trades --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Order:
    """Move ``ticker`` to ``target_weight`` (signed fraction of equity) from a decision."""

    ticker: str
    target_weight: float
    decided_at: datetime
    bar_ts: datetime  # the decided bar
    action: str
    confidence: float
    reason: str

    def strength(self) -> tuple[float, float, str]:
        """Sort key, strongest first: |target weight|, then confidence, then ticker name."""
        return (-abs(self.target_weight), -self.confidence, self.ticker)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "decided_at": self.decided_at.isoformat(),
            "bar_ts": self.bar_ts.isoformat(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Order:
        return cls(
            d["ticker"],
            float(d["target_weight"]),
            datetime.fromisoformat(d["decided_at"]),
            datetime.fromisoformat(d["bar_ts"]),
            d["action"],
            float(d["confidence"]),
            d["reason"],
        )


def order_from_decision(decision: Decision, config: PortfolioConfig) -> Order | None:
    """The order a decision makes (None for HOLD), its target clamped to the caps per name.

    Raises:
        ValueError: the decision has no ``decided_at`` (its fill bar would be unknown).
    """
    action = Action(str(decision.action).upper())
    if action is Action.HOLD:
        return None
    if decision.decided_at is None:
        raise ValueError(f"{decision.ticker} at {decision.bar_ts}: decision has no decided_at")
    cap = config.max_position
    raw = decision.inputs.get("target_weight")
    try:
        weight = float(raw) if raw is not None else math.nan
    except (TypeError, ValueError):
        weight = math.nan
    if not math.isfinite(weight):  # stored by an older version: the full size per name
        weight = cap if action is Action.BUY else -cap
    weight = min(max(weight, -cap), cap)
    if not config.allow_short:
        weight = max(weight, 0.0)
    return Order(
        decision.ticker,
        weight,
        decision.decided_at,
        decision.bar_ts,
        action.value,
        float(decision.confidence),
        decision.reason,
    )


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill. ``fill_price`` includes the half spread; ``fee`` is in USD."""

    ticker: str
    side: str  # "buy" | "sell"
    quantity: float  # shares, > 0
    decided_at: datetime
    fill_bar: datetime  # the fill bar's start
    fill_price: float
    fee: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "decided_at": self.decided_at.isoformat(),
            "fill_bar": self.fill_bar.isoformat(),
        }


# --- the book -----------------------------------------------------------------------------------
class Portfolio:
    """Cash, signed positions, average entry prices and pending orders, marked to closes.

    Attributes:
        cash: USD, never negative.
        positions: signed share quantity per ticker (negative: short); flat tickers absent.
        cost_basis: average entry fill price per open position.
        last_prices: the newest mark per held ticker.
        pending: orders waiting for their fill bar, oldest decision first.
        decided_through: the newest decision clock taken in (None before the first).
        marked_at: the time of the newest mark (borrow is charged from it).
    """

    def __init__(self, config: PortfolioConfig) -> None:
        self.config = config
        self.cash: float = config.starting_cash
        self.positions: dict[str, float] = {}
        self.cost_basis: dict[str, float] = {}
        self.last_prices: dict[str, float] = {}
        self.realized_pnl: float = 0.0
        self.fees_paid: float = 0.0
        self.borrow_paid: float = 0.0  # charged, whether paid or still owed
        self.borrow_owed: float = 0.0  # charged while the cash could not pay it (a liability)
        self.pending: list[Order] = []
        self.decided_through: datetime | None = None
        self.marked_at: datetime | None = None

    # --- driving it -----------------------------------------------------------------------------
    def advance(
        self,
        decisions: Iterable[Decision],
        tape: PriceTape,
        until: datetime,
        on_batch: Callable[[datetime, list[Trade]], None] | None = None,
    ) -> list[Trade]:
        """Take in ``decisions``, fill every order whose fill bar starts by ``until`` (the
        newest bar start known), batch by batch in time, then mark to the newest closes.

        ``on_batch(fill_bar, trades)`` runs after each batch, marked to that bar's closes.
        Returns the fills made.
        """
        for d in sorted(decisions, key=lambda d: (d.decided_at or d.bar_ts, d.ticker)):
            order = order_from_decision(d, self.config)
            if d.decided_at is not None and (
                self.decided_through is None or d.decided_at > self.decided_through
            ):
                self.decided_through = d.decided_at
            if order is not None:
                self.pending.append(order)
        batches: dict[datetime, list[tuple[Order, float]]] = {}
        for order, (start, price) in self._resolve(tape, until):
            batches.setdefault(start, []).append((order, price))
        made: list[Trade] = []
        for start in sorted(batches):
            batch = batches[start]
            trades = self._fill_batch(start, batch, tape)
            done = {id(o) for o, _ in batch}
            self.pending = [o for o in self.pending if id(o) not in done]
            self._mark_tape(tape, start)
            made += trades
            if on_batch is not None:
                on_batch(start, trades)
        newest = tape.newest(until)
        if newest is not None and (self.marked_at is None or newest >= self.marked_at):
            self._mark_tape(tape, newest)
        return made

    def _resolve(
        self, tape: PriceTape, until: datetime
    ) -> list[tuple[Order, tuple[datetime, float]]]:
        """The orders that fill by ``until`` and their fill bars; drop the replaced ones."""
        out: list[tuple[Order, tuple[datetime, float]]] = []
        keep: list[Order] = []
        queues: dict[str, list[Order]] = {}
        for o in sorted(self.pending, key=lambda o: o.decided_at):
            queues.setdefault(o.ticker, []).append(o)
        for ticker, queue in queues.items():
            i = 0
            while i < len(queue):
                bar = tape.fill(ticker, queue[i].decided_at, until)
                if bar is None:
                    keep += queue[i:]
                    break
                j = i
                while j + 1 < len(queue) and queue[j + 1].decided_at <= bar[0]:
                    j += 1  # decided before the bar started: the newer order replaces it
                out.append((queue[j], bar))
                keep.append(queue[j])  # pending until its batch fills (a crash keeps it)
                i = j + 1
        self.pending = sorted(keep, key=lambda o: (o.decided_at, o.ticker))
        return out

    def _mark_tape(self, tape: PriceTape, at: datetime) -> None:
        """Mark the held tickers to their closes of the bars starting by ``at``."""
        prices = {t: tape.close(t, at) for t in self.positions}
        self.mark({t: p for t, p in prices.items() if p is not None}, at)

    # --- a batch --------------------------------------------------------------------------------
    def _fill_batch(
        self, start: datetime, batch: list[tuple[Order, float]], tape: PriceTape
    ) -> list[Trade]:
        # Equity at this bar's opens (the last close before it where a ticker has no bar).
        marks: dict[str, float] = {}
        for t in {*self.positions, *(o.ticker for o, _ in batch)}:
            price = tape.open_at(t, start) or tape.close(t, start, inclusive=False)
            if price is not None:
                marks[t] = price
        self.mark(marks, start)
        equity = self.equity()
        orders = {o.ticker: o for o, _ in batch}
        opens = {o.ticker: p for o, p in batch}
        weights = self.scaled_weights(orders, equity)
        targets = {t: w * equity / opens[t] for t, w in weights.items()}
        ranked = sorted(orders.values(), key=Order.strength)
        # An add to an open position below the band is not worth its costs; trims always trade
        # (they take risk off, and a cap may need them).
        band = self.config.rebalance_band * equity
        for t, q in list(targets.items()):
            held = self.positions.get(t, 0.0)
            adds = abs(held) > _EPS and (held > 0) == (q > 0) and abs(q) > abs(held)
            if adds and abs(q - held) * opens[t] < band:
                targets[t] = held
        trades: list[Trade] = []
        # 1. trims and closes, longs first (their cash pays the covers, limited by it);
        # 2. new shorts; 3. buys by strength.
        for o in sorted(ranked, key=lambda o: self.positions.get(o.ticker, 0.0) < 0):
            held, q = self.positions.get(o.ticker, 0.0), targets[o.ticker]
            if held > _EPS and q < held:
                qty = held - max(q, 0.0)
                why = "close long" if q <= _EPS else "trim long"
                trades += self._trade(o, start, "sell", qty, opens[o.ticker], why)
            elif held < -_EPS and q > held:
                qty = min(-held, q - held)
                trades += self._trade(o, start, "buy", qty, opens[o.ticker], None, cap="cash")
        for o in ranked:
            held, q = self.positions.get(o.ticker, 0.0), targets[o.ticker]
            if held < _EPS and q < held:
                why = "open short" if held > -_EPS else "add short"
                trades += self._trade(o, start, "sell", held - q, opens[o.ticker], why)
        for o in ranked:
            held, q = self.positions.get(o.ticker, 0.0), targets[o.ticker]
            if held > -_EPS and q > held:
                why = "open long" if held < _EPS else "add long"
                trades += self._trade(o, start, "buy", q - held, opens[o.ticker], why, cap="power")
        return trades

    def scaled_weights(self, orders: Mapping[str, Order], equity: float) -> dict[str, float]:
        """The batch's target weights scaled to the short and gross caps (see module doc)."""
        weights = {t: o.target_weight for t, o in orders.items()}
        if equity <= 0:
            return dict.fromkeys(weights, 0.0)
        others = [q * self._price(t) / equity for t, q in self.positions.items() if t not in orders]
        short_room = self.config.max_short - sum(-w for w in others if w < 0)
        shorts = sum(-w for w in weights.values() if w < 0)
        if shorts > 0 and shorts > short_room:
            scale = max(short_room, 0.0) / shorts
            weights = {t: w * scale if w < 0 else w for t, w in weights.items()}
        gross_room = self.config.max_gross - sum(abs(w) for w in others)
        gross = sum(abs(w) for w in weights.values())
        if gross > 0 and gross > gross_room:
            scale = max(gross_room, 0.0) / gross
            weights = {t: w * scale for t, w in weights.items()}
        return weights

    def _trade(
        self,
        order: Order,
        start: datetime,
        side: str,
        qty: float,
        open_price: float,
        why: str | None,
        cap: str | None = None,
    ) -> list[Trade]:
        fill = self.config.fill_price(open_price, side)
        unit = fill * (1 + self.config.fee_bps / 1e4)  # cash one share costs, fee included
        held = self.positions.get(order.ticker, 0.0)
        limited = False
        if cap is not None:
            room = self.cash if cap == "cash" else self.cash - self.short_value() - self.borrow_owed
            if qty * unit > room:
                qty, limited = max(room, 0.0) / unit, True
        if qty <= _EPS:
            return []
        if why is None:  # a cover
            why = "cover short" if qty >= -held - _EPS else "trim short"
        trade = self._fill(
            order, start, side, qty, fill, why + (" (cash-limited)" if limited else "")
        )
        if limited:  # spent exactly the room: no float dust below it
            self.cash = max(self.cash, 0.0 if cap == "cash" else self.short_value())
        return [trade]

    def _fill(
        self, order: Order, start: datetime, side: str, qty: float, fill: float, reason: str
    ) -> Trade:
        ticker = order.ticker
        sign = 1.0 if side == "buy" else -1.0
        notional = qty * fill
        fee = notional * self.config.fee_bps / 1e4
        self.cash -= sign * notional + fee
        self.fees_paid += fee
        held = self.positions.get(ticker, 0.0)
        after = held + sign * qty
        if abs(held) <= _EPS or (held > 0) == (sign > 0):  # opening or adding: new average
            basis = self.cost_basis.get(ticker, fill)
            self.cost_basis[ticker] = (abs(held) * basis + qty * fill) / (abs(held) + qty)
        else:  # reducing or closing (never flips: a batch closes, then opens)
            self.realized_pnl += (fill - self.cost_basis[ticker]) * qty * (1 if held > 0 else -1)
        if abs(after) <= _EPS:
            self.positions.pop(ticker, None)
            self.cost_basis.pop(ticker, None)
        else:
            self.positions[ticker] = after
        self.last_prices.setdefault(ticker, fill)
        if self.borrow_owed:
            self._settle()
        return Trade(ticker, side, qty, order.decided_at, start, fill, fee, reason)

    # --- valuation ------------------------------------------------------------------------------
    def mark(self, prices: Mapping[str, float], at: datetime | None = None) -> None:
        """Charge borrow on the shorts since the last mark (at the old marks), then take the
        new prices (USD). ``at`` None: prices only, no time passes."""
        if at is not None:
            if self.marked_at is not None and at > self.marked_at:
                years = (at - self.marked_at).total_seconds() / _YEAR_SECONDS
                fee = self.short_value() * self.config.borrow_bps / 1e4 * years
                self.borrow_paid += fee
                self.borrow_owed += fee
                self._settle()
            if self.marked_at is None or at > self.marked_at:
                self.marked_at = at
        for ticker, price in prices.items():
            if math.isfinite(price) and price > 0:
                self.last_prices[ticker] = float(price)

    def _settle(self) -> None:
        """Pay what borrow is owed from the cash there is (cash never goes below zero)."""
        pay = min(self.borrow_owed, max(self.cash, 0.0))
        self.cash -= pay
        self.borrow_owed -= pay

    def _price(self, ticker: str) -> float:
        return self.last_prices.get(ticker, self.cost_basis.get(ticker, 0.0))

    def short_value(self) -> float:
        """Market value of the short positions, positive USD."""
        return sum(-q * self._price(t) for t, q in self.positions.items() if q < 0)

    def gross(self) -> float:
        """Sum of |position value| at the marks, USD."""
        return sum(abs(q) * self._price(t) for t, q in self.positions.items())

    def equity(self) -> float:
        """Cash plus the signed market value of every position at the last marks, less the
        borrow still owed."""
        held = sum(q * self._price(t) for t, q in self.positions.items())
        return self.cash + held - self.borrow_owed

    def unrealized_pnl(self) -> float:
        return sum(q * (self._price(t) - self.cost_basis[t]) for t, q in self.positions.items())

    def snapshot(self, ts: datetime) -> dict[str, Any]:
        """A JSON-able view: cash, equity, P&L, each position at the marks, pending orders."""
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
            "borrow_paid": self.borrow_paid,
            "borrow_owed": self.borrow_owed,
            "pending": [o.to_dict() for o in self.pending],
        }

    # --- persistence ----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything :meth:`from_state` needs, JSON-able (pending orders included)."""
        return {
            "cash": self.cash,
            "positions": dict(self.positions),
            "cost_basis": dict(self.cost_basis),
            "last_prices": dict(self.last_prices),
            "realized_pnl": self.realized_pnl,
            "fees_paid": self.fees_paid,
            "borrow_paid": self.borrow_paid,
            "borrow_owed": self.borrow_owed,
            "pending": [o.to_dict() for o in self.pending],
            "decided_through": _iso(self.decided_through),
            "marked_at": _iso(self.marked_at),
        }

    @classmethod
    def from_state(cls, config: PortfolioConfig, state: Mapping[str, Any]) -> Portfolio:
        p = cls(config)
        p.cash = float(state["cash"])
        p.positions = {t: float(q) for t, q in state.get("positions", {}).items()}
        p.cost_basis = {t: float(x) for t, x in state.get("cost_basis", {}).items()}
        p.last_prices = {t: float(x) for t, x in state.get("last_prices", {}).items()}
        p.realized_pnl = float(state.get("realized_pnl", 0.0))
        p.fees_paid = float(state.get("fees_paid", 0.0))
        p.borrow_paid = float(state.get("borrow_paid", 0.0))
        p.borrow_owed = float(state.get("borrow_owed", 0.0))
        p.pending = [Order.from_dict(o) for o in state.get("pending", [])]
        p.decided_through = _from_iso(state.get("decided_through"))
        p.marked_at = _from_iso(state.get("marked_at"))
        return p


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


# --- buy and hold -------------------------------------------------------------------------------
class BuyAndHold:
    """The benchmark: the starting cash split equally over the watchlist, bought once, held.

    Each ticker's slice is bought by the fill rule from ``start`` (the first decision's clock):
    at the open of its first bar starting at or after it, plus half the spread and the fee; a
    slice waits in cash until then. Marked to closes.
    """

    def __init__(self, tickers: list[str], config: PortfolioConfig, start: datetime) -> None:
        self.config = config
        self.start = start
        self.cash = config.starting_cash
        self.slice = config.starting_cash / max(1, len(tickers))
        self.waiting = sorted(tickers)
        self.positions: dict[str, float] = {}
        self.last_prices: dict[str, float] = {}

    def advance(self, tape: PriceTape, until: datetime) -> None:
        """Buy every waiting slice whose fill bar starts by ``until``; mark to closes by it."""
        for ticker in list(self.waiting):
            bar = tape.fill(ticker, self.start, until)
            if bar is None:
                continue
            unit = self.config.fill_price(bar[1], "buy") * (1 + self.config.fee_bps / 1e4)
            self.positions[ticker] = self.slice / unit
            self.cash -= self.slice
            self.waiting.remove(ticker)
        for ticker in self.positions:
            price = tape.close(ticker, until)
            if price is not None:
                self.last_prices[ticker] = price

    def equity(self) -> float:
        return self.cash + sum(q * self.last_prices[t] for t, q in self.positions.items())

    def to_state(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "cash": self.cash,
            "slice": self.slice,
            "waiting": list(self.waiting),
            "positions": dict(self.positions),
            "last_prices": dict(self.last_prices),
        }

    @classmethod
    def from_state(
        cls, config: PortfolioConfig, state: Mapping[str, Any], legacy_start: datetime
    ) -> BuyAndHold:
        """``legacy_start``: the start of a state saved before it recorded one."""
        start = state.get("start")
        bh = cls([], config, datetime.fromisoformat(start) if start else legacy_start)
        bh.cash, bh.slice = float(state["cash"]), float(state["slice"])
        bh.waiting = list(state.get("waiting", state.get("pending", [])))
        bh.positions = {t: float(q) for t, q in state["positions"].items()}
        bh.last_prices = {t: float(p) for t, p in state["last_prices"].items()}
        return bh


# --- driving it from the store ----------------------------------------------------------------
# Decisions recorded more than this after their bar are not read (the read pages back this far).
_LOOKBACK = timedelta(days=7)


def update_portfolio(store: Store, settings: Settings, as_of: datetime) -> dict[str, Any]:
    """Take in the standing decisions made by ``as_of`` and fill what the stored bars allow.

    Decisions with a clock after the newest one taken in (``decided_through``) and at or before
    ``as_of`` become orders (:meth:`Portfolio.advance`); bars that ended by ``as_of`` fill them.
    After each batch the state (pending orders included) and an equity point at the fill bar
    (marked to its closes) are saved together; then the book is marked to the newest closes
    and saved with an equity point at the newest bar. :class:`BuyAndHold` of the watchlist,
    started at the first decision's clock, is valued beside it.

    Idempotent: a retried run with the same ``as_of`` finds nothing new and rewrites the same
    rows; one that crashed midway resumes from the last batch saved.

    Returns:
        :meth:`Portfolio.snapshot` at ``as_of`` (``pending`` included) plus ``bar_ts`` (the
        saved state's key: the newest event taken in), ``applied`` (decisions taken in now),
        ``trades`` (fills made now, as in ``portfolio --json``), ``buy_and_hold_equity`` and
        ``buy_and_hold_return`` (None before the first decision).
    """
    from sentinel42.domain import EquityPoint, SavedPortfolio
    from sentinel42.persistence import ledger

    config = PortfolioConfig.from_settings(settings)
    saved = ledger.latest_portfolio_state(store)
    portfolio, bh, key = Portfolio(config), None, None
    row_trades: dict[datetime, list[dict[str, Any]]] = {}
    if saved is not None:
        portfolio = Portfolio.from_state(config, saved.state["portfolio"])
        bh = BuyAndHold.from_state(config, saved.state["buy_and_hold"], saved.bar_ts)
        key = saved.bar_ts
        row_trades[key] = list(saved.trades)
    until = as_of - timedelta(minutes=settings.interval_minutes)  # bars ended by as_of
    cursor = portfolio.decided_through
    # A state saved before pending orders existed applied every decision up to its bar.
    legacy = saved.bar_ts if saved is not None and cursor is None else None
    if cursor is not None:  # only what was decided since: one indexed read, not the history
        decisions = store.standing_decided(cursor, as_of)
    else:
        decisions = [
            d
            for d in ledger.standing_decisions(store, after=legacy)
            if d.decided_at is not None and d.decided_at <= as_of
        ]
    if saved is None and not decisions:
        return portfolio.snapshot(as_of) | _extra(None, 0, [], None, config)
    tickers = sorted(
        {*settings.tickers, *portfolio.positions, *(o.ticker for o in portfolio.pending)}
        | {d.ticker for d in decisions}
    )
    clocks = [o.decided_at for o in portfolio.pending]
    clocks += [t for d in decisions if (t := d.decided_at) is not None]
    # The benchmark's start only while a slice still waits for its first bar.
    waiting = bh.start if bh is not None and bh.waiting else None
    clocks += [t for t in (portfolio.marked_at, waiting) if t is not None]
    start = min([*clocks, as_of]) - _LOOKBACK  # a long weekend of closes before the first mark
    tape = PriceTape(store.load_bars(tickers, settings.interval, start, until))
    if bh is None:
        first = min(d.decided_at for d in decisions if d.decided_at is not None)
        bh = BuyAndHold(list(settings.tickers), config, first)
    benchmark = bh

    def save(at: datetime, trades: list[Trade], point_ts: datetime | None) -> None:
        nonlocal key
        key = at if key is None else max(key, at)
        row_trades[key] = row_trades.get(key, []) + [t.to_dict() for t in trades]
        state = {"portfolio": portfolio.to_state(), "buy_and_hold": benchmark.to_state()}
        equity = portfolio.equity()
        row = SavedPortfolio(key, state, row_trades[key], equity, portfolio.cash, as_of)
        point = None
        if point_ts is not None:
            point = EquityPoint(point_ts, equity, portfolio.cash, benchmark.equity())
        ledger.save_portfolio_step(store, row, point)

    def on_batch(fill_bar: datetime, trades: list[Trade]) -> None:
        benchmark.advance(tape, fill_bar)
        for t in trades:
            logger.info(
                "paper %s %s %.4f @ %.4f (bar %s): %s",
                t.side, t.ticker, t.quantity, t.fill_price, fill_bar.isoformat(), t.reason,
            )  # fmt: skip
        save(fill_bar, trades, fill_bar)

    made = portfolio.advance(decisions, tape, until, on_batch)
    newest = tape.newest(until)
    benchmark.advance(tape, newest or until)
    events = [portfolio.decided_through, portfolio.marked_at]
    at = max([t for t in events if t is not None], default=as_of)
    state_now = {"portfolio": portfolio.to_state(), "buy_and_hold": benchmark.to_state()}
    if saved is None or decisions or made or state_now != saved.state:
        point_ts = newest if newest is not None and newest == portfolio.marked_at else None
        save(at, [], point_ts)
    return portfolio.snapshot(as_of) | _extra(key, len(decisions), made, benchmark, config)


def _extra(
    key: datetime | None,
    applied: int,
    made: list[Trade],
    bh: BuyAndHold | None,
    config: PortfolioConfig,
) -> dict[str, Any]:
    bh_equity = bh.equity() if bh is not None else None
    return {
        "bar_ts": key.isoformat() if key else None,
        "applied": applied,
        "trades": [t.to_dict() for t in made],
        "buy_and_hold_equity": bh_equity,
        "buy_and_hold_return": None if bh_equity is None else bh_equity / config.starting_cash - 1,
    }
