"""The NYSE trading calendar: sessions, holidays, early closes and DST, in UTC.

Built on ``exchange_calendars`` (XNYS), a maintained library whose holiday rules are updated
when the exchange announces changes, instead of a home-made holiday list that silently goes out
of date. Closures or early closes announced after the installed release (as 2025-01-09 was) are
added through the settings ``extra_closures`` and ``extra_early_closes``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from sentinel42.errors import DataError

if TYPE_CHECKING:
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

SESSION_TZ = "America/New_York"  # the exchange's zone name (checkpoints record it)
NEW_YORK = ZoneInfo(SESSION_TZ)
SESSION_OPEN_MINUTES = 9 * 60 + 30  # 09:30 New York, minutes after midnight
SESSION_MINUTES = 390  # a regular session, 09:30-16:00 (early closes end sooner)
REGULAR_CLOSE = time(16, 0)
# 1995 covers the longest daily history setting (30 years) and the recorded universes (daily
# bars from 2012 on); the library generates its rules forward, so the range costs little build
# time (0.2 s for 1995-2029 as for 2015-2029, once per process).
CALENDAR_START = "1995-01-01"
CALENDAR_YEARS_AHEAD = 3


@functools.lru_cache(maxsize=2)
def _xnys(start: str, end: str) -> Any:
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS", start=start, end=end)


def _require_aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise DataError(f"naive datetime {at.isoformat()}: give a UTC offset")
    return at.astimezone(UTC)


def trading_cron(interval_minutes: int, delay_minutes: int) -> str:
    """Cron (New York wall clock, Mon-Fri, 09-16 h) firing ``delay_minutes`` after each bar end.

    Bars start at the 09:30 open and end every ``interval_minutes``; a bar is published a
    minute or more after it ends, so deciding on the end itself always finds the previous bar.
    With 15-minute bars and a 2-minute delay: ``2,17,32,47 9-16 * * 1-5``. The trading gate
    skips the runs that decide nothing (before the first bar ends, or after the last one).
    """
    open_minute = 9 * 60 + 30
    minutes = sorted({(open_minute + k * interval_minutes + delay_minutes) % 60 for k in range(60)})
    field = "*" if len(minutes) == 60 else ",".join(str(m) for m in minutes)
    return f"{field} 9-16 * * 1-5"


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """Whether the NYSE regular session is open at one instant.

    ``session_open``/``session_close`` are the regular session of that New York calendar day
    (None on a weekend or holiday); ``next_open`` is the first open strictly after the instant.
    All datetimes are tz-aware UTC.
    """

    open: bool
    session_open: datetime | None
    session_close: datetime | None
    next_open: datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``sentinel42 calendar --json`` (ISO 8601 strings)."""
        return {
            "open": self.open,
            "session_open": self.session_open.isoformat() if self.session_open else None,
            "session_close": self.session_close.isoformat() if self.session_close else None,
            "next_open": self.next_open.isoformat(),
            "reason": self.reason,
        }


class NyseCalendar:
    """NYSE regular sessions in UTC, with closures the library does not know yet.

    Args:
        extra_closures: New York dates on which the exchange is closed.
        extra_early_closes: New York date -> close time (New York wall clock).
    """

    def __init__(
        self,
        extra_closures: Iterable[date] = (),
        extra_early_closes: Mapping[date, time] | None = None,
    ) -> None:
        end_year = max(datetime.now(UTC).year + CALENDAR_YEARS_AHEAD, 2030)
        cal = _xnys(CALENDAR_START, f"{end_year}-12-31")
        schedule = cal.schedule
        self._extra_closures = frozenset(extra_closures)
        self._extra_early = dict(extra_early_closes or {})
        days = [d.date() for d in schedule.index]
        opens = pd.DatetimeIndex(schedule["open"]).tz_convert(UTC).as_unit("ns")
        close_ns = pd.DatetimeIndex(schedule["close"]).tz_convert(UTC).as_unit("ns").asi8.copy()
        keep = np.array([d not in self._extra_closures for d in days], dtype=bool)
        for i, d in enumerate(days):
            if d in self._extra_early:
                local = datetime.combine(d, self._extra_early[d], NEW_YORK)
                close_ns[i] = pd.Timestamp(local).tz_convert(UTC).as_unit("ns").value
        self._days: list[date] = [d for d, k in zip(days, keep, strict=True) if k]
        self._day_pos = {d: i for i, d in enumerate(self._days)}
        self._opens = opens[keep]
        self._closes = pd.DatetimeIndex(close_ns[keep]).tz_localize(UTC)
        self._open_ns = self._opens.asi8
        self._close_ns = self._closes.asi8
        self._first = self._opens[0].to_pydatetime()
        self._last = self._closes[-1].to_pydatetime()
        self._holiday_names = self._names(cal)

    @staticmethod
    def _names(cal: Any) -> dict[date, str]:
        names: dict[date, str] = {}
        try:
            regular = cal.regular_holidays.holidays(
                start=CALENDAR_START, end=cal.last_session, return_name=True
            )
            names.update({ts.date(): str(name) for ts, name in regular.items()})
        except (AttributeError, TypeError, ValueError):  # library internals changed: no names
            logger.debug("holiday names unavailable from exchange_calendars")
        for ts in getattr(cal, "adhoc_holidays", []):
            names.setdefault(pd.Timestamp(ts).date(), "special closure")
        return names

    @classmethod
    def from_settings(cls, settings: Settings) -> NyseCalendar:
        """Build from ``settings.extra_closures`` and ``settings.extra_early_closes``."""
        return cls(settings.extra_closures, settings.extra_early_closes)

    # --- lookups ---------------------------------------------------------------------------
    def _check_range(self, at: datetime) -> None:
        if not (self._first - timedelta(days=7) <= at <= self._last + timedelta(days=7)):
            raise DataError(
                f"{at.isoformat()} is outside the calendar's range "
                f"{self._first.date()}..{self._last.date()}"
            )

    def session(self, day: date) -> tuple[datetime, datetime] | None:
        """Open and close (UTC) of the regular session on a New York date, or None."""
        pos = self._day_pos.get(day)
        if pos is None:
            return None
        return self._opens[pos].to_pydatetime(), self._closes[pos].to_pydatetime()

    def is_session(self, day: date) -> bool:
        """True when the NYSE holds a regular session on this New York date."""
        return day in self._day_pos

    def status(self, at: datetime) -> SessionStatus:
        """Open/closed at ``at`` (tz-aware), with the day's session and the next open.

        Raises:
            DataError: ``at`` is naive or outside the calendar's range.
        """
        at = _require_aware(at)
        self._check_range(at)
        ns = pd.Timestamp(at).as_unit("ns").value
        nxt = int(np.searchsorted(self._open_ns, ns, side="right"))
        if nxt >= len(self._opens):
            raise DataError(f"no NYSE session known after {at.isoformat()}")
        next_open = self._opens[nxt].to_pydatetime()
        day = at.astimezone(NEW_YORK).date()
        todays = self.session(day)
        if todays is None:
            return SessionStatus(False, None, None, next_open, self._closed_reason(day))
        s_open, s_close = todays
        if at < s_open:
            reason = "closed: before the open"
        elif at < s_close:
            return SessionStatus(True, s_open, s_close, next_open, "open: regular session")
        elif s_close.astimezone(NEW_YORK).time() < REGULAR_CLOSE:
            hhmm = s_close.astimezone(NEW_YORK).strftime("%H:%M")
            reason = f"closed: after the early close ({hhmm} ET)"
        else:
            reason = "closed: after the close"
        return SessionStatus(False, s_open, s_close, next_open, reason)

    def _closed_reason(self, day: date) -> str:
        if day in self._extra_closures:
            return "closed: extra closure (settings)"
        if day.weekday() >= 5:
            return "closed: weekend"
        name = self._holiday_names.get(day)
        return f"closed: holiday ({name})" if name else "closed: holiday"

    def is_open(self, at: datetime) -> bool:
        """True when ``at`` (tz-aware) is inside a regular session [open, close)."""
        return self.status(at).open

    def previous_close(self, at: datetime) -> datetime:
        """Close (UTC) of the newest session that closed at or before ``at``."""
        at = _require_aware(at)
        ns = pd.Timestamp(at).as_unit("ns").value
        pos = int(np.searchsorted(self._close_ns, ns, side="right")) - 1
        if pos < 0:
            raise DataError(f"no NYSE session known before {at.isoformat()}")
        return self._closes[pos].to_pydatetime()

    def sessions_between(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """(open, close) in UTC of the sessions that open in [start, end)."""
        lo = int(np.searchsorted(self._open_ns, pd.Timestamp(_require_aware(start)).value))
        hi = int(np.searchsorted(self._open_ns, pd.Timestamp(_require_aware(end)).value))
        return [
            (self._opens[i].to_pydatetime(), self._closes[i].to_pydatetime()) for i in range(lo, hi)
        ]

    def session_mask(self, index: pd.DatetimeIndex, interval_minutes: int) -> np.ndarray:
        """True where the bar [start, start + interval] lies inside a regular session.

        A bar belongs to the session when it starts at or after the open and ends at or before
        the close, so on a 13:00 early close the 13:00 bar is out.

        Args:
            index: tz-aware bar starts.
            interval_minutes: bar length.
        """
        if len(index) == 0:
            return np.zeros(0, dtype=bool)
        if index.tz is None:
            raise DataError("bar index is naive; expected tz-aware UTC")
        starts = index.tz_convert(UTC).as_unit("ns").asi8
        ends = starts + interval_minutes * 60 * 1_000_000_000
        pos = np.searchsorted(self._open_ns, starts, side="right") - 1
        valid = pos >= 0
        safe = np.where(valid, pos, 0)
        return valid & (starts >= self._open_ns[safe]) & (ends <= self._close_ns[safe])

    def last_bar_end(self, at: datetime, interval_minutes: int) -> datetime | None:
        """End (UTC) of the newest bar of ``at``'s New York session that has ended by ``at``.

        Bars run from the open in steps of ``interval_minutes``; one that would end after the
        session's close (early closes included) is not a bar of the session. None when that day
        holds no session or no bar of it has ended yet. After the close it is the session's
        last bar end, so the run a few minutes after 16:00 (or 13:00) can decide that bar.
        """
        at = _require_aware(at)
        todays = self.session(at.astimezone(NEW_YORK).date())
        if todays is None:
            return None
        s_open, s_close = todays
        step = timedelta(minutes=interval_minutes)
        ended = int((min(at, s_close) - s_open) / step)
        return s_open + ended * step if ended >= 1 else None

    def sessions_since(self, start: datetime, at: datetime) -> int:
        """How many sessions opened in (start, at]: the age of data ending at ``start``."""
        lo = int(np.searchsorted(self._open_ns, pd.Timestamp(_require_aware(start)).value, "right"))
        hi = int(np.searchsorted(self._open_ns, pd.Timestamp(_require_aware(at)).value, "right"))
        return max(0, hi - lo)

    def session_open_back(self, at: datetime, n: int) -> datetime:
        """Open (UTC) of the ``n``-th session counting back from the newest one opened by ``at``
        (``n = 1``: that session itself). Holidays and weekends are skipped, not counted.

        Raises:
            DataError: the calendar has fewer sessions before ``at``.
        """
        pos = int(np.searchsorted(self._open_ns, pd.Timestamp(_require_aware(at)).value, "right"))
        if pos - max(1, n) < 0:
            raise DataError(f"the calendar has fewer than {n} sessions before {at.isoformat()}")
        return self._opens[pos - max(1, n)].to_pydatetime()

    def expected_bar_start(self, at: datetime, interval_minutes: int) -> datetime | None:
        """Start of the newest in-session bar that has ended by ``at``, in today's session.

        None when the market is closed at ``at`` or no bar of today's session has ended yet.
        """
        status = self.status(at)
        if not status.open or status.session_open is None:
            return None
        step = timedelta(minutes=interval_minutes)
        n = int((_require_aware(at) - status.session_open) / step)
        if n < 1:
            return None
        return status.session_open + (n - 1) * step
