from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from sentinel42.errors import DataError
from sentinel42.market.calendar import NyseCalendar
from sentinel42.market.validate import validate_bars

AS_OF = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)  # Tuesday 16:00 New York


def bars(starts: list[str], rows: list[tuple[float, float, float, float, float]]) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(starts, utc=True), name="ts")
    return pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"], index=index)


def session_bars(n: int, start: str = "2026-11-24 14:30") -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="15min", tz=UTC, name="ts")
    close = 100 + np.arange(n) * 0.1
    return pd.DataFrame(
        {"open": close, "high": close + 0.2, "low": close - 0.2, "close": close, "volume": 1e4},
        index=index,
    )


def run(frame: pd.DataFrame, calendar: NyseCalendar, **kw: object):
    return validate_bars(
        frame,
        ticker="TEST",
        interval_minutes=15,
        calendar=calendar,
        as_of=kw.pop("as_of", AS_OF),
        **kw,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((100, 101, 99, np.nan, 10), "missing price"),
        ((0, 101, 99, 100, 10), "non-positive price"),
        ((100, 99.5, 99, 100, 10), "inconsistent OHLC"),
        ((100, 101, 100.5, 100, 10), "inconsistent OHLC"),
        ((100, 101, 99, 100, -1), "negative volume"),
        ((100, 101, 99, 100, np.nan), "missing volume"),
    ],
)
def test_invalid_bar_is_rejected_with_its_reason(
    calendar: NyseCalendar, row: tuple, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    frame = bars(["2026-11-24 14:30", "2026-11-24 14:45"], [(100, 101, 99, 100, 10), row])
    with caplog.at_level(logging.WARNING):
        result = run(frame, calendar)
    assert len(result.frame) == 1 and result.n_rejected == 1
    assert any(reason in k for k in result.rejected)
    assert reason in caplog.text


def test_unsorted_duplicates_keep_the_last_copy_and_count_the_other(calendar: NyseCalendar) -> None:
    frame = bars(
        ["2026-11-24 14:45", "2026-11-24 14:30", "2026-11-24 14:45"],
        [(1, 1, 1, 1, 1), (2, 2, 2, 2, 2), (3, 3, 3, 3, 3)],
    )
    result = run(frame, calendar)
    assert result.frame.index.is_monotonic_increasing and result.frame.index.is_unique
    assert result.frame["close"].tolist() == [2, 3]
    assert result.rejected == {"duplicate timestamp": 1}


def test_bar_still_forming_at_as_of_is_dropped_but_not_counted_as_rejected(
    calendar: NyseCalendar,
) -> None:
    frame = session_bars(3)  # 14:30, 14:45, 15:00 UTC
    result = run(frame, calendar, as_of=datetime(2026, 11, 24, 15, 10, tzinfo=UTC))
    assert result.frame.index[-1] == pd.Timestamp("2026-11-24 14:45", tz=UTC)
    assert result.forming == 1 and result.n_rejected == 0


def test_extended_hours_bars_dropped_unless_prepost(calendar: NyseCalendar) -> None:
    frame = bars(
        ["2026-11-24 14:15", "2026-11-24 14:30", "2026-11-24 20:45", "2026-11-24 21:00"],
        [
            (100, 101, 99, 100, 0),
            (100, 101, 99, 100, 5),
            (100, 101, 99, 100, 5),
            (100, 101, 99, 100, 0),
        ],
    )
    regular = run(frame, calendar, as_of=datetime(2026, 11, 25, 1, 0, tzinfo=UTC))
    assert regular.frame.index.strftime("%H:%M").tolist() == ["14:30", "20:45"]
    assert regular.rejected == {"outside the regular session": 2}
    extended = run(frame, calendar, prepost=True, as_of=datetime(2026, 11, 25, 1, 0, tzinfo=UTC))
    assert len(extended.frame) == 4 and extended.n_rejected == 0


def test_spike_far_outside_its_neighbours_is_kept_and_flagged(calendar: NyseCalendar) -> None:
    frame = session_bars(20)
    spike_at = frame.index[10]
    frame.loc[spike_at, "high"] += 10.0  # range 10.4 against neighbours' 0.4
    result = run(frame, calendar, spike_threshold=8.0)
    assert len(result.frame) == 20 and result.n_rejected == 0
    assert result.frame["flagged"].sum() == 1
    assert bool(result.frame.loc[spike_at, "flagged"])
    assert result.frame.loc[spike_at, "flag_reason"] == "spike"
    assert result.frame.loc[spike_at, "high"] == frame.loc[spike_at, "high"]  # never changed
    assert result.n_flagged == 1


def test_one_new_bar_is_checked_against_stored_neighbours(calendar: NyseCalendar) -> None:
    stored = session_bars(12)
    new = session_bars(1, start="2026-11-24 17:30")
    new["high"] += 20
    result = run(new, calendar, context=stored)
    assert bool(result.frame["flagged"].iloc[0])
    alone = run(new, calendar)
    assert not bool(alone.frame["flagged"].iloc[0])  # no neighbourhood, no judgement


def test_naive_index_is_a_data_error(calendar: NyseCalendar) -> None:
    frame = session_bars(2)
    frame.index = frame.index.tz_localize(None)
    with pytest.raises(DataError):
        run(frame, calendar)


def test_daily_bar_on_a_holiday_is_rejected_and_todays_is_not_final(
    calendar: NyseCalendar,
) -> None:
    days = pd.DatetimeIndex(["2026-11-25", "2026-11-26", "2026-11-27"]).tz_localize(
        "America/New_York"
    )
    frame = pd.DataFrame(
        {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100.0}, index=days
    )
    result = validate_bars(
        frame,
        ticker="T",
        interval_minutes=15,
        calendar=calendar,
        as_of=datetime(2026, 11, 27, 17, 0, tzinfo=UTC),
        daily=True,
    )
    assert result.rejected == {"not a trading day": 1}
    assert result.forming == 1
    assert result.frame.index.tolist() == [pd.Timestamp("2026-11-25 05:00", tz=UTC)]
