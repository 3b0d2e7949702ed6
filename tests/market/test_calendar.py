from __future__ import annotations

import json
from datetime import UTC, date, datetime, time

import pandas as pd
import pytest
import time_machine
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.errors import DataError
from sentinel42.market.calendar import NEW_YORK, NyseCalendar

NY = NEW_YORK


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def test_thanksgiving_2026_is_closed_with_the_next_open_on_friday(calendar: NyseCalendar) -> None:
    status = calendar.status(ny(2026, 11, 26, 11, 0))
    assert not status.open
    assert status.session_open is None and status.session_close is None
    assert "Thanksgiving" in status.reason
    assert status.next_open == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)


def test_day_after_thanksgiving_2026_closes_at_13_00(calendar: NyseCalendar) -> None:
    assert calendar.is_open(ny(2026, 11, 27, 12, 59))
    after = calendar.status(ny(2026, 11, 27, 14, 0))
    assert not after.open
    assert after.session_close == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    assert "early close (13:00 ET)" in after.reason
    assert after.next_open == datetime(2026, 11, 30, 14, 30, tzinfo=UTC)


def test_early_close_bar_at_13_00_is_outside_the_session(calendar: NyseCalendar) -> None:
    index = pd.DatetimeIndex(
        [
            ny(2026, 11, 27, 9, 15),
            ny(2026, 11, 27, 9, 30),
            ny(2026, 11, 27, 12, 45),
            ny(2026, 11, 27, 13, 0),
        ]
    ).tz_convert(UTC)
    assert calendar.session_mask(index, 15).tolist() == [False, True, True, False]


@pytest.mark.parametrize(
    ("before", "after", "open_before_utc", "open_after_utc"),
    [
        # 2026-03-08: clocks spring forward; 09:30 New York moves from 14:30 to 13:30 UTC.
        (date(2026, 3, 6), date(2026, 3, 9), time(14, 30), time(13, 30)),
        # 2026-11-01: clocks fall back; 09:30 New York moves from 13:30 to 14:30 UTC.
        (date(2026, 10, 30), date(2026, 11, 2), time(13, 30), time(14, 30)),
    ],
)
def test_dst_switch_moves_the_open_in_utc_but_not_in_new_york(
    calendar: NyseCalendar, before: date, after: date, open_before_utc: time, open_after_utc: time
) -> None:
    first, second = calendar.session(before), calendar.session(after)
    assert first is not None and second is not None
    assert first[0].time() == open_before_utc and second[0].time() == open_after_utc
    assert first[0].astimezone(NY).time() == second[0].astimezone(NY).time() == time(9, 30)
    assert (second[1] - second[0]).total_seconds() == 6.5 * 3600
    sunday = calendar.status(datetime.combine(after, time(0, 0), NY) - pd.Timedelta(hours=12))
    assert not sunday.open and "weekend" in sunday.reason
    assert sunday.next_open == second[0]


def test_national_day_of_mourning_2025_01_09_is_closed(calendar: NyseCalendar) -> None:
    status = calendar.status(ny(2025, 1, 9, 11, 0))
    assert not status.open
    assert status.next_open == datetime(2025, 1, 10, 14, 30, tzinfo=UTC)


def test_extra_closure_and_early_close_from_settings_override_the_library() -> None:
    cal = NyseCalendar(
        extra_closures=[date(2026, 6, 5)], extra_early_closes={date(2026, 6, 8): time(12, 0)}
    )
    closed = cal.status(ny(2026, 6, 5, 11, 0))
    assert not closed.open and "extra closure" in closed.reason
    assert closed.next_open == datetime(2026, 6, 8, 13, 30, tzinfo=UTC)
    assert cal.is_open(ny(2026, 6, 8, 11, 59))
    late = cal.status(ny(2026, 6, 8, 12, 30))
    assert not late.open and "early close (12:00 ET)" in late.reason
    assert cal.previous_close(ny(2026, 6, 8, 12, 30)) == datetime(2026, 6, 8, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "is_open", "reason"),
    [
        (ny(2026, 11, 24, 9, 0), False, "before the open"),
        (ny(2026, 11, 24, 9, 30), True, "open"),
        (ny(2026, 11, 24, 15, 59), True, "open"),
        (ny(2026, 11, 24, 16, 0), False, "after the close"),
        (ny(2026, 11, 24, 16, 45), False, "after the close"),
    ],
)
def test_cron_firings_outside_the_session_find_it_closed(
    calendar: NyseCalendar, at: datetime, is_open: bool, reason: str
) -> None:
    status = calendar.status(at)
    assert status.open is is_open
    assert reason in status.reason


def test_naive_time_is_refused(calendar: NyseCalendar) -> None:
    with pytest.raises(DataError):
        calendar.status(datetime(2026, 11, 27, 14, 0))


def test_expected_bar_start_is_the_newest_finished_bar(calendar: NyseCalendar) -> None:
    assert calendar.expected_bar_start(ny(2026, 11, 24, 9, 40), 15) is None
    assert calendar.expected_bar_start(ny(2026, 11, 24, 10, 1), 15) == ny(2026, 11, 24, 9, 45)


def test_calendar_command_json_after_the_early_close() -> None:
    result = CliRunner().invoke(app, ["calendar", "--at", "2026-11-27T14:00:00-05:00", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc == {
        "open": False,
        "session_open": "2026-11-27T14:30:00+00:00",
        "session_close": "2026-11-27T18:00:00+00:00",
        "next_open": "2026-11-30T14:30:00+00:00",
        "reason": "closed: after the early close (13:00 ET)",
    }


def test_calendar_command_without_at_uses_the_clock() -> None:
    with time_machine.travel(datetime(2026, 11, 26, 15, 0, tzinfo=UTC), tick=False):
        result = CliRunner().invoke(app, ["calendar", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["open"] is False
    assert "Thanksgiving" in json.loads(result.stdout)["reason"]


def test_calendar_command_rejects_a_time_without_offset() -> None:
    result = CliRunner().invoke(app, ["calendar", "--at", "2026-11-27T14:00:00"])
    assert result.exit_code == 2
    assert "UTC offset" in result.output
