"""Small immutable domain types shared by every stage.

Bar frames: a ``pandas.DataFrame`` with columns :data:`BAR_COLUMNS`, indexed by a tz-aware UTC
``DatetimeIndex`` named ``ts`` holding each bar's *start*, sorted and unique. They are validated
once, at the adapter edge (``sentinel42.market.validate``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
# The offline sentiment scorer's name: where FinBERT has also scored a headline, its score wins.
FALLBACK_SCORER = "sentinel42-fallback"

# --- story identity -------------------------------------------------------------------------
# A story is its normalized title within a time window: the same title from another source, a
# later refresh or a feed that re-dated it is that story; the same title further apart in time
# ("Stocks making the biggest moves midday") is a new story.
STORY_WINDOW = timedelta(days=3)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def text_hash(text: str) -> str:
    """The cache key of a text to score: sha256 hex of the stripped text."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def title_hash(title: str) -> str:
    """Hash of a normalized headline (case, punctuation and spacing ignored)."""
    normalized = _NON_ALNUM.sub(" ", title.lower()).strip()
    return hashlib.sha1(normalized.encode("utf-8"), usedforsecurity=False).hexdigest()


def story_key(title: str, published_at: datetime) -> str:
    """Unique key of a stored story: its title hash and the UTC day it was first published."""
    return f"{title_hash(title)}:{published_at.astimezone(UTC).date().isoformat()}"


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


@dataclass(frozen=True, slots=True)
class NewsItem:
    """One headline as a source delivered it, normalized.

    ``published_at`` and ``first_seen_at`` are tz-aware UTC. ``url`` is canonical (tracking
    parameters stripped). ``tickers`` are the watchlist symbols the item is about.
    """

    url: str
    title: str
    published_at: datetime
    source: str
    summary: str = ""
    tickers: tuple[str, ...] = ()
    first_seen_at: datetime | None = None
    origin: str = ""  # which adapter produced it: "rss", "newsapi", "replay"


@dataclass(frozen=True, slots=True)
class SentimentScore:
    """Sentiment of one text by one model. Probabilities sum to 1; ``score = p_pos - p_neg``."""

    text_hash: str
    label: str  # "positive" | "negative" | "neutral"
    p_positive: float
    p_negative: float
    p_neutral: float
    scorer: str  # model id (hub id, directory name or fallback name)
    revision: str  # model revision / weights fingerprint

    @property
    def score(self) -> float:
        return self.p_positive - self.p_negative


@dataclass(frozen=True, slots=True)
class SentimentAggregate:
    """Recency-weighted sentiment of one ticker over a window ending at ``as_of``."""

    ticker: str
    score: float  # in [-1, 1]; 0.0 when n_headlines == 0
    n_headlines: int
    newest_headline_at: datetime | None
    scorers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Prediction:
    """The model's view of one ticker at one bar (the newest bar ending at or before as_of)."""

    ticker: str
    bar_ts: datetime
    p_up: float
    expected_return: float
    model_version: str
    model_accuracy: float | None = None  # validated out-of-sample directional accuracy
    horizon_bars: int = 1
    # Accuracy over the best baseline on the block that decided the promotion gate; None when
    # the checkpoint does not record it (such a model gets no fusion weight).
    model_edge: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A BUY / SELL / HOLD for one ticker at one bar, with why and from what.

    ``revision`` and ``run_id`` are filled in by the store: revision 0 is the standing decision
    (the first recorded for the ticker and bar); a later run's decision for the same bar is
    revision 1, 2, ... beside it. ``run_id`` names the run that decided (Prefect flow-run id).
    """

    ticker: str
    bar_ts: datetime
    action: Action
    confidence: float  # in [0, 1]
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    decided_at: datetime | None = None
    revision: int = 0
    run_id: str | None = None


# --- results the ledgers store: the paper portfolio, decision scores, model health ---------
@dataclass(frozen=True, slots=True)
class SavedPortfolio:
    """The paper portfolio after every event up to ``bar_ts``: a fill bar's start, a decision
    clock or a mark (the newest of them; keys only grow, so the newest row is the state)."""

    bar_ts: datetime
    state: dict[str, Any]  # {"portfolio": Portfolio.to_state(), "buy_and_hold": {...}}
    trades: list[dict[str, Any]]  # the fills saved under this key (Trade.to_dict())
    equity: float
    cash: float
    saved_at: datetime


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """Equity (USD) valued at the close of the bar starting at ``ts``."""

    ts: datetime
    equity: float
    cash: float
    buy_and_hold_equity: float


@dataclass(frozen=True, slots=True)
class DecisionScore:
    """A standing decision against what the price did ``horizon_bars`` bars later.

    ``forward_return = exit_close / close - 1``. ``hit`` is None for HOLD; a signal is +1 (up),
    -1 (down) or None (no signal), and its hit is None when there was no signal.
    """

    ticker: str
    bar_ts: datetime
    action: Action
    close: float
    exit_bar_ts: datetime
    exit_close: float
    horizon_bars: int
    forward_return: float
    hit: bool | None
    model_signal: int | None
    model_signal_hit: bool | None
    sentiment_signal: int | None
    sentiment_signal_hit: bool | None
    model_version: str | None
    scored_at: datetime


@dataclass(frozen=True, slots=True)
class ModelHealth:
    """A model version's live hit rate tested against its validated accuracy."""

    model_version: str
    degraded: bool
    live_hits: int
    live_n: int
    validated_accuracy: float | None
    threshold: float | None  # validated accuracy minus the margin: H0 says the hit rate >= it
    p_value: float | None
    at: datetime


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Count, hits and mean return of one group of scored decisions (``hits`` None: no hits)."""

    n: int
    hits: int | None
    mean_return: float | None

    @property
    def hit_rate(self) -> float | None:
        return None if self.hits is None or self.n == 0 else self.hits / self.n


# --- reports that cross layers (pipeline -> tasks, flows, CLI) --------------------------------
@dataclass(frozen=True, slots=True)
class RefreshSummary:
    """One refresh of prices, news and sentiment (``sentinel42 refresh --json``, the data-refresh
    flow's ``data-refresh`` artifact).

    Attributes:
        as_of: the refresh's clock.
        tickers: one row per watchlist ticker, as the price refresh reports it (``ticker``,
            ``bars_new``, ``error``, ``newest_bar_ts``, ...) plus ``headlines_new``.
        no_data: with the market open, no ticker got a bar of the session.
        failed_tickers: each watchlist ticker whose price refresh failed.
        no_usable_data: why no watchlist ticker has usable bars; None while one has. A trading
            run refuses to decide on such a refresh.
        headlines_new: headlines stored for the first time.
        headlines_scored: headlines the sentiment step scored.
        scorer: the scorer's name (None: no scoring step).
        problems: the news refresh's skipped input lines.
    """

    as_of: datetime
    tickers: tuple[dict[str, Any], ...]
    no_data: bool
    failed_tickers: tuple[str, ...]
    no_usable_data: str | None
    headlines_new: int
    headlines_scored: int
    scorer: str | None
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the fields in their order (the CLI's since the first release)."""
        return _jsonable(self)


@dataclass(frozen=True, slots=True)
class PortfolioUpdate:
    """The paper portfolio after one update (``trade --json``'s ``portfolio``, the trading
    flow's result and dashboard): the book marked at ``ts`` and what this update did.

    Attributes:
        ts: the update's clock.
        starting_cash, cash, equity: USD.
        total_return: ``equity / starting_cash - 1`` (``return`` in the JSON).
        positions: ticker -> ``quantity``, ``avg_price``, ``last_price``, ``market_value``,
            ``unrealized_pnl``.
        realized_pnl, unrealized_pnl, fees_paid, borrow_paid, borrow_owed: USD.
        pending: orders waiting for their fill bar, oldest decision first.
        bar_ts: the saved state's key, the newest event taken in (None: nothing saved yet).
        applied: decisions taken in by this update.
        trades: fills made by this update.
        buy_and_hold_equity, buy_and_hold_return: the watchlist benchmark (None before the
            first decision).
    """

    ts: datetime
    starting_cash: float
    cash: float
    equity: float
    total_return: float
    positions: dict[str, dict[str, float]]
    realized_pnl: float
    unrealized_pnl: float
    fees_paid: float
    borrow_paid: float
    borrow_owed: float
    pending: tuple[dict[str, Any], ...]
    bar_ts: datetime | None
    applied: int
    trades: tuple[dict[str, Any], ...]
    buy_and_hold_equity: float | None
    buy_and_hold_return: float | None

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> PortfolioUpdate:
        """From the portfolio's JSON snapshot (:func:`sentinel42.portfolio.update_portfolio`)."""
        bar_ts = snapshot["bar_ts"]
        return cls(
            ts=datetime.fromisoformat(snapshot["ts"]),
            starting_cash=snapshot["starting_cash"],
            cash=snapshot["cash"],
            equity=snapshot["equity"],
            total_return=snapshot["return"],
            positions={t: dict(p) for t, p in snapshot["positions"].items()},
            realized_pnl=snapshot["realized_pnl"],
            unrealized_pnl=snapshot["unrealized_pnl"],
            fees_paid=snapshot["fees_paid"],
            borrow_paid=snapshot["borrow_paid"],
            borrow_owed=snapshot["borrow_owed"],
            pending=tuple(snapshot["pending"]),
            bar_ts=datetime.fromisoformat(bar_ts) if bar_ts else None,
            applied=snapshot["applied"],
            trades=tuple(snapshot["trades"]),
            buy_and_hold_equity=snapshot["buy_and_hold_equity"],
            buy_and_hold_return=snapshot["buy_and_hold_return"],
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the snapshot it was read from, key for key (``total_return`` as
        ``return``)."""
        return _jsonable(self, total_return="return")


def _jsonable(report: Any, **renamed: str) -> dict[str, Any]:
    """A report dataclass's fields in their order, JSON-able: datetimes as ISO strings, tuples as
    lists, containers copied; ``renamed`` maps a field to the key it is written under."""
    return {renamed.get(f.name, f.name): _plain(getattr(report, f.name)) for f in fields(report)}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
