"""The trading schedule: runs a few minutes after each bar ends, and the gate that lets through
exactly the runs that decide a session's bar (early closes and DST included)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from sentinel42 import pipeline
from sentinel42.market.calendar import NEW_YORK, NyseCalendar, trading_cron
from sentinel42.settings import load_settings

NY = NEW_YORK


def ny(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=NY)


@pytest.mark.parametrize(
    ("interval", "delay", "expected"),
    [
        (15, 2, "2,17,32,47 9-16 * * 1-5"),
        (15, 0, "0,15,30,45 9-16 * * 1-5"),
        (5, 1, "1,6,11,16,21,26,31,36,41,46,51,56 9-16 * * 1-5"),
        (30, 3, "3,33 9-16 * * 1-5"),
        (60, 2, "32 9-16 * * 1-5"),
        (1, 2, "* 9-16 * * 1-5"),
    ],
)
def test_trading_cron_fires_the_delay_after_each_bar_end(interval, delay, expected):
    assert trading_cron(interval, delay) == expected


def _gate(at: datetime, **env) -> pipeline.Gate:
    settings = load_settings(require_replay_dir=False, **env)
    return pipeline.market_gate(settings, at, force=False)


@pytest.mark.parametrize(
    ("day", "hhmm", "proceeds"),
    [
        ("2026-11-24", "09:32", False),  # no bar of the session has ended yet
        ("2026-11-24", "09:47", True),  # decides the 09:30 bar
        ("2026-11-24", "12:02", True),
        ("2026-11-24", "16:02", True),  # decides the 15:45 bar: the session's last
        ("2026-11-24", "16:17", False),
        ("2026-11-27", "13:02", True),  # early close (day after Thanksgiving): the 12:45 bar
        ("2026-11-27", "13:17", False),
        ("2026-11-26", "12:02", False),  # Thanksgiving
        ("2026-11-28", "12:02", False),  # Saturday
        ("2026-03-09", "09:47", True),  # first Monday after the March DST switch
        ("2026-11-02", "16:02", True),  # first Monday after the November DST switch
    ],
)
def test_the_gate_lets_through_exactly_the_runs_that_decide_a_session_bar(day, hhmm, proceeds):
    gate = _gate(ny(day, hhmm))
    assert gate.proceed is proceeds, gate.reason


def test_every_bar_of_a_session_is_decided_by_exactly_one_scheduled_run():
    """Walk the cron's fire times through a regular and an early-close day: each in-session bar
    is the newest ended bar of exactly one run that the gate lets through."""
    calendar = NyseCalendar()
    settings = load_settings(require_replay_dir=False)
    for day in ("2026-11-24", "2026-11-27"):
        decided = []
        t = ny(day, "09:00")
        while t < ny(day, "17:00"):
            if t.minute in (2, 17, 32, 47):
                gate = pipeline.market_gate(settings, t, force=False)
                if gate.proceed:
                    decided.append(calendar.last_bar_end(t, 15) - timedelta(minutes=15))
            t += timedelta(minutes=1)
        s_open, s_close = calendar.session(datetime.fromisoformat(day).date())
        expected = int((s_close - s_open) / timedelta(minutes=15))
        assert len(decided) == expected == len(set(decided))
        assert decided[0] == s_open
        assert decided[-1] == s_close - timedelta(minutes=15)


def test_a_forced_run_outside_the_session_proceeds_and_says_why():
    settings = load_settings(require_replay_dir=False)
    gate = pipeline.market_gate(settings, ny("2026-11-26", "12:00"), force=True)
    assert gate.proceed and not gate.market_open
    assert "force=true" in gate.reason


def test_deployments_register_the_offset_schedule():
    from flows.deployments import specs

    names = {s.name: s for s in specs("30 17 * * 5", trading_cron(15, 2))}
    (schedule,) = names["trading-production"].schedules
    assert schedule.cron == "2,17,32,47 9-16 * * 1-5"
    assert schedule.timezone == "America/New_York"


@pytest.mark.parametrize(
    ("day", "hhmm", "proceeds"),
    [
        ("2026-11-24", "16:20", True),  # 20 minutes after a regular close
        ("2026-11-24", "13:20", False),  # the session is still open
        ("2026-11-27", "13:20", True),  # 20 minutes after the early close
        ("2026-11-27", "16:20", False),  # already validated at 13:20
        ("2026-11-26", "16:20", False),  # Thanksgiving
    ],
)
def test_the_validate_flow_runs_once_after_each_close(day, hhmm, proceeds):
    settings = load_settings(require_replay_dir=False)
    gate = pipeline.validation_gate(settings, ny(day, hhmm), force=False)
    assert gate.proceed is proceeds, gate.reason


def test_deployments_register_the_validate_flow_after_the_close():
    from flows.deployments import specs

    names = {s.name: s for s in specs("30 17 * * 5", trading_cron(15, 2))}
    (schedule,) = names["validate-production"].schedules
    assert schedule.cron == "20 13,16 * * 1-5"
    assert schedule.timezone == "America/New_York"
