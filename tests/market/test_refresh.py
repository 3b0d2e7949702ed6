"""refresh_prices through the real store and the replay source on real recordings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sentinel42.errors import TemporarySourceError
from sentinel42.market.calendar import NEW_YORK, NyseCalendar
from sentinel42.market.record import record_prices
from sentinel42.market.refresh import refresh_prices
from sentinel42.market.replay import ReplayPriceSource, read_price_csv, write_price_csv
from sentinel42.market.validate import validate_bars
from sentinel42.market.yahoo import YahooPriceSource
from sentinel42.settings import load_settings

HALF_DAY_CLOSE = datetime(2025, 7, 3, 20, 0, tzinfo=UTC)  # 16:00 New York, after the 13:00 close


def settings_for(replay_dir: Path, tickers: list[str], **kw: Any):
    return load_settings(tickers=tickers, data_source="replay", replay_dir=replay_dir, **kw)


def test_backfill_stores_exactly_the_regular_session_bars_up_to_the_clock(
    replay_dir: Path, store: Any, calendar: NyseCalendar
) -> None:
    settings = settings_for(replay_dir, ["AAPL", "MSFT"])
    source = ReplayPriceSource(replay_dir)
    report = refresh_prices(settings, source, store, calendar, HALF_DAY_CLOSE)
    bars = store.load_bars(["AAPL"], "15m")["AAPL"]
    raw = read_price_csv(replay_dir / "prices" / "AAPL.csv")
    upto = raw[raw.index + pd.Timedelta(minutes=15) <= HALF_DAY_CLOSE]
    expected = upto[calendar.session_mask(upto.index, 15)]
    assert bars.index.equals(expected.index)
    last = bars.index[-1].tz_convert(NEW_YORK)
    assert last.strftime("%Y-%m-%d %H:%M") == "2025-07-03 12:45"
    row = report.tickers[0]
    assert row.bars_new == len(expected) and row.bars_updated == 0
    assert row.bars_rejected == len(upto) - len(expected)
    assert row.newest_bar_ts == bars.index[-1].to_pydatetime()
    assert row.daily_bars_new > 100  # a year of daily bars, stored apart
    assert store.newest_bar_ts(["AAPL"], "1d")["AAPL"].astimezone(NEW_YORK).day == 3
    assert not report.no_data and not report.market_open

    again = refresh_prices(settings, source, store, calendar, HALF_DAY_CLOSE)
    assert [(t.bars_new, t.bars_updated, t.daily_bars_new) for t in again.tickers] == [
        (0, 0, 0),
        (0, 0, 0),
    ]


def test_partial_last_bar_is_not_stored_until_it_ends(
    replay_dir: Path, store: Any, calendar: NyseCalendar
) -> None:
    settings = settings_for(replay_dir, ["SPY"])
    source = ReplayPriceSource(replay_dir)
    refresh_prices(settings, source, store, calendar, datetime(2025, 8, 28, 14, 40, tzinfo=UTC))
    assert store.newest_bar_ts(["SPY"], "15m")["SPY"] == datetime(2025, 8, 28, 14, 15, tzinfo=UTC)
    later = refresh_prices(
        settings, source, store, calendar, datetime(2025, 8, 28, 14, 45, tzinfo=UTC)
    )
    assert later.tickers[0].bars_new == 1
    assert store.newest_bar_ts(["SPY"], "15m")["SPY"] == datetime(2025, 8, 28, 14, 30, tzinfo=UTC)


def test_missing_ticker_fails_alone_and_is_reported(
    replay_dir: Path, store: Any, calendar: NyseCalendar
) -> None:
    settings = settings_for(replay_dir, ["AAPL", "NVDA"])
    report = refresh_prices(
        settings, ReplayPriceSource(replay_dir), store, calendar, HALF_DAY_CLOSE
    )
    by = {t.ticker: t for t in report.tickers}
    assert by["AAPL"].bars_new > 0 and by["AAPL"].error is None
    assert "prices/NVDA.csv" in (by["NVDA"].error or "") and by["NVDA"].bars_new == 0
    assert report.failed == ["NVDA"]


def test_no_data_during_the_session_is_signalled(
    tmp_path: Path, replay_dir: Path, store: Any, calendar: NyseCalendar
) -> None:
    stale = tmp_path / "stale"
    raw = read_price_csv(replay_dir / "prices" / "AAPL.csv")
    cut = raw[raw.index < pd.Timestamp("2025-08-27", tz=UTC)]
    write_price_csv(cut, stale / "prices" / "AAPL.csv")
    settings = settings_for(stale, ["AAPL"])
    in_session = datetime(2025, 8, 27, 16, 0, tzinfo=UTC)  # 12:00 New York
    backfill = refresh_prices(settings, ReplayPriceSource(stale), store, calendar, in_session)
    assert backfill.market_open and not backfill.no_data  # it got bars, if old ones
    report = refresh_prices(settings, ReplayPriceSource(stale), store, calendar, in_session)
    assert report.market_open and report.no_data
    report_dict = report.to_dict()
    assert report_dict["no_data"] is True and report_dict["tickers"][0]["ticker"] == "AAPL"
    fresh = refresh_prices(
        settings_for(replay_dir, ["AAPL"]),
        ReplayPriceSource(replay_dir),
        store,
        calendar,
        in_session,
    )
    assert not fresh.no_data and fresh.tickers[0].bars_new > 0


def test_rewritten_history_is_refetched_and_recorded_as_a_corporate_action(
    tmp_path: Path, replay_dir: Path, store: Any, calendar: NyseCalendar
) -> None:
    settings = settings_for(replay_dir, ["MSFT"])
    refresh_prices(settings, ReplayPriceSource(replay_dir), store, calendar, HALF_DAY_CLOSE)
    split = tmp_path / "split"
    for kind in ("prices", "daily"):
        raw = read_price_csv(replay_dir / kind / "MSFT.csv")
        halved = raw.assign(**{c: raw[c] / 2 for c in ("open", "high", "low", "close")})
        write_price_csv(halved, split / kind / "MSFT.csv")
    later = datetime(2025, 7, 7, 20, 0, tzinfo=UTC)
    report = refresh_prices(
        settings_for(split, ["MSFT"]), ReplayPriceSource(split), store, calendar, later
    )
    row = report.tickers[0]
    assert row.corporate_action
    bars = store.load_bars(["MSFT"], "15m")["MSFT"]
    halved_raw = read_price_csv(split / "prices" / "MSFT.csv")
    assert bars["close"].iloc[0] == pytest.approx(halved_raw.loc[bars.index[0], "close"])
    assert bars.index[-1] == pd.Timestamp("2025-07-07 19:45", tz=UTC)
    events = store.events("corporate_action")
    assert len(events) == 1 and events[0]["ticker"] == "MSFT"


def test_every_ticker_down_with_retryable_errors_raises_for_a_prefect_retry(
    replay_dir: Path, store: Any, calendar: NyseCalendar
) -> None:
    def offline(tickers: Any, **kwargs: Any) -> pd.DataFrame:
        raise ConnectionError("network unreachable")

    source = YahooPriceSource(download=offline, max_attempts=2, sleep=lambda s: None)
    settings = load_settings(tickers=["AAPL", "MSFT"])
    with pytest.raises(TemporarySourceError):
        refresh_prices(settings, source, store, calendar, HALF_DAY_CLOSE)


def test_record_writes_replay_files_that_merge_without_duplicates(
    tmp_path: Path, replay_dir: Path, calendar: NyseCalendar
) -> None:
    out = tmp_path / "captured"
    source = ReplayPriceSource(replay_dir)
    first = record_prices(source, ["AAPL"], "15m", out, datetime(2025, 8, 27, 0, 0, tzinfo=UTC))
    second = record_prices(source, ["AAPL"], "15m", out, datetime(2025, 8, 28, 0, 0, tzinfo=UTC))
    assert second[0].bars_written == 64  # one more recorded day, 04:00-20:00 New York
    assert second[0].bars_total == first[0].bars_total + 64
    back = read_price_csv(out / "prices" / "AAPL.csv")
    assert back.index.is_unique and len(back) == second[0].bars_total
    assert (out / "daily" / "AAPL.csv").is_file()
    replayed = ReplayPriceSource(out).fetch_intraday(
        ["AAPL"], "15m", {}, datetime(2025, 8, 28, 0, 0, tzinfo=UTC)
    )
    assert len(replayed.frames["AAPL"]) == len(back)


def _synthetic_bars(index: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.005, len(index))))
    spread = np.abs(rng.normal(0, 0.2, len(index))) + 0.01
    spread[rng.random(len(index)) < 0.1] *= 30
    frame = pd.DataFrame(
        {
            "open": close,
            "high": close + spread,
            "low": close - spread,
            "close": close,
            "volume": np.full(len(index), 1000.0),
        },
        index=index,
    )
    return frame


@pytest.mark.parametrize("seed", range(2))
def test_incremental_refreshes_flag_bars_as_validating_the_whole_history(
    tmp_path: Path, store: Any, calendar: NyseCalendar, seed: int
) -> None:
    """Refresh bar by bar (and a few at a time) across nights, a weekend and the 4 July holiday:
    every stored ``flagged`` equals validating the whole history at the last clock at once, for
    the intraday and the daily bars. Spikes sit on the first bars after each gap too, and U's
    data has a gap of days (its past bars lie further back than the refresh loads at first)."""
    rng = np.random.default_rng(seed)
    sessions = calendar.sessions_between(
        datetime(2025, 6, 25, tzinfo=UTC), datetime(2025, 7, 10, tzinfo=UTC)
    )
    starts = [
        ts
        for s_open, s_close in sessions
        for ts in pd.date_range(s_open, s_close, freq="15min", inclusive="left")
        if ts + pd.Timedelta(minutes=15) <= s_close
    ]
    days = pd.DatetimeIndex(
        [d for d in pd.bdate_range("2025-03-03", "2025-07-09") if calendar.is_session(d.date())]
    ).tz_localize(NEW_YORK)
    for ticker in ("T", "U"):
        bars = _synthetic_bars(pd.DatetimeIndex(starts), rng)
        first_bars = bars.index.tz_convert(NEW_YORK).strftime("%H:%M").isin(["09:45", "10:00"])
        bars.loc[first_bars, "high"] += 20.0  # a spike on the 2nd and 3rd bar of each session
        daily = _synthetic_bars(days, rng)
        daily.iloc[-12::3, daily.columns.get_loc("high")] += 40.0  # spikes among the last days
        if ticker == "U":  # a gap in U's data: its past bars lie further back than usual
            bars = bars[(bars.index < "2025-07-01 15:00") | (bars.index >= "2025-07-07")]
            daily = daily[(daily.index < "2025-06-12") | (daily.index >= "2025-07-07")]
        write_price_csv(bars, tmp_path / "prices" / f"{ticker}.csv")
        write_price_csv(daily, tmp_path / "daily" / f"{ticker}.csv", time_column="Date")
    settings = settings_for(tmp_path, ["T", "U"], spike_threshold=3.0, daily_history_days=400)
    source = ReplayPriceSource(tmp_path)
    ends = [ts + pd.Timedelta(minutes=15) for ts in starts]
    clock = ends.index(pd.Timestamp("2025-07-01 14:00", tz=UTC))  # backfill to a Tuesday 10:00
    refresh_prices(settings, source, store, calendar, ends[clock].to_pydatetime())
    while clock < len(ends) - 1:
        clock = min(len(ends) - 1, clock + int(rng.choice([1, 1, 1, 2, 3])))
        report = refresh_prices(settings, source, store, calendar, ends[clock].to_pydatetime())
        assert not report.failed
    as_of = ends[-1].to_pydatetime()

    for interval, folder, daily_bars in (("15m", "prices", False), ("1d", "daily", True)):
        for ticker in ("T", "U"):
            stored = store.load_bars([ticker], interval)[ticker]
            whole = validate_bars(
                read_price_csv(tmp_path / folder / f"{ticker}.csv"),
                ticker=ticker,
                interval_minutes=15,
                calendar=calendar,
                as_of=as_of,
                spike_threshold=3.0,
                daily=daily_bars,
            ).frame
            assert stored.index.equals(whole.index), (interval, ticker)
            wrong = stored.index[stored["flagged"].to_numpy() != whole["flagged"].to_numpy()]
            assert wrong.empty, (interval, ticker, list(wrong))
            assert whole["flagged"].sum() > 5
