"""The price-source port: what every price adapter (yfinance, replay) delivers.

A :class:`PriceSource` returns :class:`PriceBatch` objects: per-ticker bar frames already
normalized to the domain shape (columns ``open, high, low, close, volume``; a tz-aware UTC
``DatetimeIndex`` named ``ts`` holding each bar's start) but *not yet* validated or session
filtered; that happens once, in :mod:`sentinel42.market.validate`, for every source alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sentinel42.domain import BAR_COLUMNS
from sentinel42.errors import DataError, SourceError

if TYPE_CHECKING:
    import pandas as pd

DAILY = "1d"
_INTERVAL = re.compile(r"^(\d+)(m|h|d)$")


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """One input row a source could not turn into a bar; the rest of its file is kept.

    Attributes:
        file: where it came from, relative to the source's folder (``prices/AAPL.csv``).
        line: 1-based line number in that file.
        reason: what was wrong, quoting the offending value.
        rule: the rejection rule (the key of the refresh report's ``rejected_reasons``).
        ts: the row's bar start when its timestamp was readable (UTC), else None.
    """

    file: str
    line: int
    reason: str
    rule: str
    ts: datetime | None = None

    def __str__(self) -> str:
        return f"{self.file} line {self.line}: {self.reason}; row skipped"


@dataclass
class PriceBatch:
    """One fetch for several tickers.

    Attributes:
        frames: ticker -> domain bar frame (may be empty when the source had nothing new).
        errors: ticker -> why that ticker got no data. A ticker is in one of the two, never both.
        rejected: ticker -> input rows of the fetched range that were skipped (file sources).
    """

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    errors: dict[str, SourceError] = field(default_factory=dict)
    rejected: dict[str, list[RejectedRow]] = field(default_factory=dict)


@runtime_checkable
class PriceSource(Protocol):
    """Where bars come from. Implementations: YahooPriceSource, ReplayPriceSource."""

    name: str

    def fetch_intraday(
        self,
        tickers: Sequence[str],
        interval: str,
        since: Mapping[str, datetime | None],
        as_of: datetime,
    ) -> PriceBatch:
        """Bars of ``interval`` starting at or after ``since[t]`` (None: as far back as allowed)."""
        ...

    def fetch_daily(self, tickers: Sequence[str], since: datetime, as_of: datetime) -> PriceBatch:
        """Daily bars from ``since`` up to ``as_of``."""
        ...

    def data_end(self) -> datetime | None:
        """Replay: end of the newest bar held (the default replay clock). Live: None."""
        ...


def interval_minutes(interval: str) -> int:
    """Minutes in an interval string such as ``15m``, ``1h`` or ``1d``.

    Raises:
        DataError: not an interval string.
    """
    match = _INTERVAL.match(interval)
    if not match:
        raise DataError(f"{interval!r} is not a bar interval such as 15m or 1d")
    n, unit = int(match.group(1)), match.group(2)
    return n * {"m": 1, "h": 60, "d": 1440}[unit]


def daily_bar_end(ts: pd.Timestamp | datetime) -> datetime:
    """When a daily bar (indexed by New York midnight) is final: 16:00 New York that day.

    Early closes end sooner, so this is never earlier than the real end: a daily bar is never
    served or stored before its session is over.
    """
    from sentinel42.market.calendar import NEW_YORK

    day = ts.astimezone(NEW_YORK).date()
    return datetime(day.year, day.month, day.day, 16, 0, tzinfo=NEW_YORK).astimezone(UTC)


def daily_bar_ends(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """:func:`daily_bar_end` of every bar of ``index`` at once (UTC): 16:00 New York that day."""
    import pandas as pd

    from sentinel42.market.calendar import NEW_YORK

    if not len(index):
        return pd.DatetimeIndex([], tz=UTC).as_unit("ns")
    days = pd.DatetimeIndex(index).tz_convert(NEW_YORK).tz_localize(None).normalize()
    return (days + pd.Timedelta(hours=16)).tz_localize(NEW_YORK).tz_convert(UTC).as_unit("ns")


def empty_bars() -> pd.DataFrame:
    """An empty domain bar frame (UTC index named ``ts``)."""
    import pandas as pd

    index = pd.DatetimeIndex([], tz=UTC, name="ts").as_unit("ns")
    return pd.DataFrame({c: pd.Series([], dtype="float64") for c in BAR_COLUMNS}, index=index)


def one_bar(interval: str) -> timedelta:
    """The length of one bar of ``interval``."""
    return timedelta(minutes=interval_minutes(interval))
