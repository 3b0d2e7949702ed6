from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from sentinel42.errors import PermanentSourceError
from sentinel42.market.calendar import NEW_YORK, NyseCalendar
from sentinel42.market.replay import ReplayPriceSource, read_price_csv, write_price_csv
from sentinel42.market.validate import validate_bars

EXPECTED_ROWS = {
    "AAPL_15m_2025-06-04_2025-08-28_UTC_prepost.csv": 3828,
    "AAPL_1d_2024-09-26_2025-09-26_history.csv": 251,
    "AAPL_1m_2025-05-07_2025-05-15_UTC_odd_tickerrow.csv": 2721,
    "AAPL_1m_2025-05-09_2025-05-16_UTC_yf_multiheader.csv": 1940,
    "NVDA_15m_2025-05-06_2025-05-16_UTC_yf_multiheader.csv": 209,
    "SPY_5m_2025-05-06_2025-05-16_UTC_yf_multiheader.csv": 625,
}


def test_every_real_recording_parses_to_a_clean_domain_frame(shared_prices: Path) -> None:
    files = sorted(shared_prices.glob("*.csv"))
    assert files
    for path in files:
        frame = read_price_csv(path)
        assert list(frame.columns) == ["open", "high", "low", "close", "volume"], path.name
        assert str(frame.index.tz) == "UTC" and frame.index.name == "ts"
        assert not frame.isna().any().any(), path.name
        assert frame.index.is_unique, path.name
        if path.name in EXPECTED_ROWS:
            assert len(frame) == EXPECTED_ROWS[path.name], path.name


def test_multiheader_export_keeps_its_close_high_low_open_order_straight(
    shared_prices: Path,
) -> None:
    frame = read_price_csv(shared_prices / "NVDA_15m_2025-05-06_2025-05-16_UTC_yf_multiheader.csv")
    first = frame.iloc[0]
    assert first["close"] == pytest.approx(111.50990295410156)
    assert first["open"] == pytest.approx(111.8550033569336)
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()


def test_daily_history_offsets_become_new_york_midnight_in_utc(shared_prices: Path) -> None:
    frame = read_price_csv(shared_prices / "SPY_1d_2024-09-26_2025-09-26_history.csv")
    assert frame.index[0] == pd.Timestamp("2024-09-26 04:00", tz=UTC)
    assert (frame.index.tz_convert(NEW_YORK).hour == 0).all()


def test_session_filter_matches_the_calendar_on_real_prepost_bars(
    shared_prices: Path, calendar: NyseCalendar
) -> None:
    raw = read_price_csv(next(shared_prices.glob("AAPL_15m_*.csv")))
    as_of = datetime(2025, 8, 29, 0, 0, tzinfo=UTC)
    result = validate_bars(raw, ticker="AAPL", interval_minutes=15, calendar=calendar, as_of=as_of)
    kept = result.frame
    sessions = calendar.sessions_between(raw.index[0].to_pydatetime(), as_of)
    expected = sum(int((c - o) / timedelta(minutes=15)) for o, c in sessions)
    assert len(sessions) == 60
    assert len(kept) <= expected and len(kept) >= expected - 5  # a few bars Yahoo never sent
    assert result.rejected["outside the regular session"] == len(raw) - len(kept) - sum(
        v for k, v in result.rejected.items() if k != "outside the regular session"
    )
    local = kept.index.tz_convert(NEW_YORK)
    by_day = pd.Series(1, index=local).groupby(local.date).count()
    # 2025-07-03 closed at 13:00: 14 bars, the last starting 12:45; 2025-07-04 closed.
    assert by_day[pd.Timestamp("2025-07-03").date()] == 14
    assert local[local.date == pd.Timestamp("2025-07-03").date()][-1].strftime("%H:%M") == "12:45"
    assert pd.Timestamp("2025-07-04").date() not in by_day.index
    assert by_day.max() == 26
    # The recorded extended-hours spike (2025-06-04 21:00 UTC) is out with the session filter.
    assert pd.Timestamp("2025-06-04 21:00", tz=UTC) not in kept.index


def test_replay_serves_all_history_but_nothing_that_ends_after_the_clock(replay_dir: Path) -> None:
    source = ReplayPriceSource(replay_dir, interval="15m")
    clock = datetime(2025, 8, 28, 14, 40, tzinfo=UTC)  # the 14:30 UTC bar is still forming
    batch = source.fetch_intraday(["AAPL"], "15m", {"AAPL": None}, clock)
    frame = batch.frames["AAPL"]
    assert frame.index[0] == pd.Timestamp("2025-06-04 08:00", tz=UTC)  # > 60 days back
    assert frame.index[-1] == pd.Timestamp("2025-08-28 14:15", tz=UTC)
    assert (frame.index + pd.Timedelta(minutes=15) <= clock).all()
    since = source.fetch_intraday(
        ["AAPL"], "15m", {"AAPL": datetime(2025, 8, 28, 13, 0, tzinfo=UTC)}, clock
    )
    assert since.frames["AAPL"].index[0] == pd.Timestamp("2025-08-28 13:00", tz=UTC)
    assert source.data_end() == datetime(2025, 8, 29, 0, 0, tzinfo=UTC)


def test_replay_daily_bar_is_served_after_its_session_ends(replay_dir: Path) -> None:
    source = ReplayPriceSource(replay_dir)
    start = datetime(2025, 8, 20, tzinfo=UTC)
    during = source.fetch_daily(["SPY"], start, datetime(2025, 8, 28, 19, 0, tzinfo=UTC))
    after = source.fetch_daily(["SPY"], start, datetime(2025, 8, 28, 20, 0, tzinfo=UTC))
    assert len(after.frames["SPY"]) == len(during.frames["SPY"]) + 1


def test_replay_reports_missing_file_and_wrong_interval_per_ticker(
    tmp_path: Path, shared_prices: Path
) -> None:
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "AAPL.csv").symlink_to(
        (shared_prices / "AAPL_1m_2025-05-07_2025-05-15_UTC_odd_tickerrow.csv").resolve()
    )
    batch = ReplayPriceSource(tmp_path).fetch_intraday(
        ["AAPL", "ZZZZ"], "15m", {}, datetime(2025, 6, 1, tzinfo=UTC)
    )
    assert not batch.frames
    assert isinstance(batch.errors["ZZZZ"], PermanentSourceError)
    assert "prices/ZZZZ.csv" in str(batch.errors["ZZZZ"])
    assert "1-minute" in str(batch.errors["AAPL"])


def test_replay_finds_recordings_named_like_yfinance_exports(shared_prices: Path) -> None:
    source = ReplayPriceSource(shared_prices.parent, interval="15m")
    batch = source.fetch_intraday(["MSFT"], "15m", {}, datetime(2025, 7, 1, tzinfo=UTC))
    assert len(batch.frames["MSFT"]) > 1000


def test_written_replay_csv_reads_back_identically(tmp_path: Path) -> None:
    index = pd.date_range("2026-11-27 14:30", periods=3, freq="15min", tz=UTC, name="ts").as_unit(
        "ns"
    )
    frame = pd.DataFrame(
        {
            "open": [1.5, 2.25, 3.0],
            "high": [2.0, 3.0, 4.0],
            "low": [1.0, 2.0, 3.0],
            "close": [1.75, 2.5, 3.5],
            "volume": [10.0, 0.0, 30.0],
            "flagged": False,
        },
        index=index,
    )
    path = tmp_path / "prices" / "AAPL.csv"
    write_price_csv(frame, path)
    assert path.read_text().splitlines()[0] == "Datetime,Open,High,Low,Close,Volume"
    back = read_price_csv(path)
    pd.testing.assert_frame_equal(back, frame.drop(columns="flagged"), check_freq=False)
