"""Small immutable domain types shared by every stage.

Bar frames: a ``pandas.DataFrame`` with columns :data:`BAR_COLUMNS`, indexed by a tz-aware UTC
``DatetimeIndex`` named ``ts`` holding each bar's *start*, sorted and unique. They are validated
once, at the adapter edge (``sentinel42.market.validate``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
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
