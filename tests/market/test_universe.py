"""The universe: multi-ticker and gzip replay files, the universe setting, its stored bars."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentinel42.market.base import PriceBatch
from sentinel42.market.replay import ReplayPriceSource, write_price_csv
from sentinel42.synthetic import generate_replay

TICKERS = ("AAPL", "MSFT", "XOM", "BRK-B", "KO")
UNIVERSE_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "universe"
DAILY_FILE = "sp500_daily_2013-02-08_2018-02-07.csv.gz"
INTRADAY_FILE = "sp500_15m_2026-01-26_2026-03-31.csv.gz"


# --- helpers -----------------------------------------------------------------------------------
def _spoil(path: Path, rng: np.random.Generator) -> None:
    """Break a few rows of a per-ticker file in ways that keep the row's width."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for pos in rng.choice(np.arange(2, len(lines)), size=3, replace=False).tolist():
        cells = lines[pos].split(",")
        kind = pos % 3
        if kind == 0:
            cells[2] = "inf"  # High
        elif kind == 1:
            cells[1] = ""  # Open
        else:
            cells[0] = cells[0][:16]  # no UTC offset
        lines[pos] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _daily_frame(rng: np.random.Generator, n: int = 60) -> pd.DataFrame:
    days = pd.bdate_range("2025-06-02", periods=n, tz="America/New_York")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "open": close * (1 + rng.normal(0, 0.002, n)),
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.integers(1_000, 10_000, n).astype(float),
        },
        index=pd.DatetimeIndex(days.tz_convert(UTC), name="ts"),
    )


def _merge_into_multi(files: dict[str, Path], out: Path, rng: np.random.Generator) -> None:
    """One gzip CSV of every ticker's rows with a ``ticker`` column, rows interleaved at random
    (each ticker's rows keep their order)."""
    header = ""
    queues: dict[str, list[str]] = {}
    for ticker, path in files.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        header = lines[0]
        queues[ticker] = [f"{ticker},{line}" for line in lines[1:]]
    order = np.concatenate([np.full(len(q), i) for i, q in enumerate(queues.values())])
    rng.shuffle(order)
    names = list(queues)
    cursors = dict.fromkeys(names, 0)
    rows = []
    for i in order.tolist():
        ticker = names[i]
        rows.append(queues[ticker][cursors[ticker]])
        cursors[ticker] += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        fh.write("\n".join([f"ticker,{header}", *rows]) + "\n")


def _same_batches(own: PriceBatch, multi: PriceBatch, tickers: tuple[str, ...]) -> None:
    assert not own.errors and not multi.errors
    for ticker in tickers:
        pd.testing.assert_frame_equal(multi.frames[ticker], own.frames[ticker])
        mine = [(r.reason, r.rule, r.ts) for r in own.rejected.get(ticker, [])]
        theirs = [(r.reason, r.rule, r.ts) for r in multi.rejected.get(ticker, [])]
        assert theirs == mine, ticker


# --- multi-ticker replay files -----------------------------------------------------------------
@pytest.mark.parametrize("seed", [3, 11, 29])
def test_multi_ticker_gz_file_serves_every_ticker_exactly_as_its_own_file(
    tmp_path: Path, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    own = tmp_path / "own"
    generate_replay(own, TICKERS, end=date(2026, 11, 25), sessions=6, seed=seed, news_rate=0)
    for ticker in TICKERS:
        _spoil(own / "prices" / f"{ticker}.csv", rng)
        write_price_csv(_daily_frame(rng), own / "daily" / f"{ticker}.csv", time_column="Date")
    multi = tmp_path / "multi"
    _merge_into_multi(
        {t: own / "prices" / f"{t}.csv" for t in TICKERS}, multi / "prices" / "all.csv.gz", rng
    )
    _merge_into_multi(
        {t: own / "daily" / f"{t}.csv" for t in TICKERS}, multi / "daily" / "days.csv.gz", rng
    )
    a, b = ReplayPriceSource(own), ReplayPriceSource(multi)
    clock = a.data_end()
    assert clock is not None and b.data_end() == clock
    since: dict[str, datetime | None] = dict.fromkeys(TICKERS)
    _same_batches(
        a.fetch_intraday(TICKERS, "15m", since, clock),
        b.fetch_intraday(TICKERS, "15m", since, clock),
        TICKERS,
    )
    start = datetime(2025, 1, 1, tzinfo=UTC)
    _same_batches(
        a.fetch_daily(TICKERS, start, clock), b.fetch_daily(TICKERS, start, clock), TICKERS
    )
    # An incremental fetch serves the same rows from both too.
    later = {t: clock.replace(hour=14) for t in TICKERS}
    _same_batches(
        a.fetch_intraday(TICKERS, "15m", later, clock),
        b.fetch_intraday(TICKERS, "15m", later, clock),
        TICKERS,
    )


def test_multi_ticker_file_names_its_bad_rows_by_line_under_their_ticker(tmp_path: Path) -> None:
    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "many.csv").write_text(
        "Symbol,Datetime,Open,High,Low,Close,Volume\n"
        "AAPL,2026-11-24 09:30:00-05:00,100,101,99,100,10\n"
        "MSFT,2026-11-24 09:30:00-05:00,200,201,199,200,10\n"
        "AAPL,2026-11-24 09:45:00-05:00,100,101,99,100,10\n"
        "AAPL,2026-11-24 09:45:00-05:00,100.5,101,99,100,10\n"  # duplicate: the first is kept
        "MSFT,2026-11-24 09:45:00-05:00,200,abc,199,200,10\n"
        "MSFT,2026-11-24 10:00:00-05:00,200\n"  # too short: read row by row
        ",2026-11-24 10:00:00-05:00,200,201,199,200,10\n"  # whose?
        "msft ,2026-11-24 10:15:00-05:00,200,201,199,200,10\n"
        "AAPL,2026-11-24 10:00:00-05:00,100,101,99,100,10\n",
        encoding="utf-8",
    )
    source = ReplayPriceSource(tmp_path)
    clock = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    batch = source.fetch_intraday(["AAPL", "MSFT"], "15m", {"AAPL": None, "MSFT": None}, clock)
    assert not batch.errors
    assert batch.frames["AAPL"]["open"].tolist() == [100.0, 100.0, 100.0]
    assert len(batch.frames["MSFT"]) == 2
    assert [str(r) for r in batch.rejected["AAPL"]] == [
        "prices/many.csv line 5: AAPL 2026-11-24T14:45:00+00:00 again (first at line 4); "
        "the first row is kept; row skipped"
    ]
    assert batch.rejected["AAPL"][0].rule == "duplicate timestamp"
    assert [str(r) for r in batch.rejected["MSFT"]] == [
        "prices/many.csv line 6: not a number: High='abc'; row skipped",
        "prices/many.csv line 7: has 3 field(s), the header has 7; row skipped",
    ]
    tickers, problems = source.held_tickers()
    assert tickers == ["AAPL", "MSFT"]
    assert problems == ["prices/many.csv line 8: the ticker is empty; row skipped"]


def test_file_without_a_ticker_column_is_a_per_ticker_file_or_reported_as_unattributable(
    tmp_path: Path,
) -> None:
    prices = tmp_path / "prices"
    prices.mkdir()
    rows = "Datetime,Open,High,Low,Close,Volume\n2026-11-24 09:30:00-05:00,100,101,99,100,10\n"
    with gzip.open(prices / "AAPL.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(rows)
    (prices / "export.csv").write_text(rows, encoding="utf-8")
    source = ReplayPriceSource(tmp_path)
    clock = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    batch = source.fetch_intraday(["AAPL", "MSFT"], "15m", {"AAPL": None, "MSFT": None}, clock)
    assert len(batch.frames["AAPL"]) == 1  # prices/AAPL.csv.gz, read through gzip
    assert "MSFT" in str(batch.errors["MSFT"])
    tickers, problems = source.held_tickers()
    assert tickers == ["AAPL"]
    assert problems == [
        "prices/export.csv: no ticker column (ticker, symbol or Name) and its name is not a "
        "ticker; whose bars it holds is unknown, file ignored"
    ]


def test_a_ticker_column_in_a_file_named_for_a_ticker_changes_nothing(replay_dir: Path) -> None:
    """The real exports carry a ``Symbol`` column; they are still found by their names."""
    source = ReplayPriceSource(replay_dir)
    clock = datetime(2025, 8, 29, tzinfo=UTC)
    batch = source.fetch_intraday(["AAPL"], "15m", {"AAPL": None}, clock)
    assert len(batch.frames["AAPL"]) == 3828
    assert not source.multi_ticker_files("prices") and not source.multi_ticker_files("daily")
    assert source.held_tickers() == (["AAPL", "MSFT", "SPY"], [])


def test_daily_only_replay_dir_has_a_clock_at_the_end_of_its_last_session(tmp_path: Path) -> None:
    path = tmp_path / "daily" / "days.csv"
    path.parent.mkdir()
    path.write_text(
        "date,open,high,low,close,volume,Name\n"
        "2018-02-06,10,11,9,10,100,AAL\n"
        "2018-02-07,10,11,9,10,100,AAL\n"
        "2018-02-07,20,21,19,20,100,ZTS\n",
        encoding="utf-8",
    )
    source = ReplayPriceSource(tmp_path)
    clock = source.data_end()
    assert clock == datetime(2018, 2, 7, 21, 0, tzinfo=UTC)  # 16:00 New York
    batch = source.fetch_daily(["AAL", "ZTS"], datetime(2018, 1, 1, tzinfo=UTC), clock)
    # Date-only values are New York dates: the same index as the tz-aware midnight exports.
    assert batch.frames["AAL"].index.tolist() == [
        pd.Timestamp("2018-02-06 05:00", tz=UTC),
        pd.Timestamp("2018-02-07 05:00", tz=UTC),
    ]


# --- the real universe files -------------------------------------------------------------------
@pytest.fixture
def universe_dir(tmp_path: Path) -> Path:
    if not (UNIVERSE_DIR / DAILY_FILE).is_file() or not (UNIVERSE_DIR / INTRADAY_FILE).is_file():
        pytest.skip(f"the recorded universe is not at {UNIVERSE_DIR} (it sits beside the checkout)")
    for folder, name in (("prices", INTRADAY_FILE), ("daily", DAILY_FILE)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).symlink_to((UNIVERSE_DIR / name).resolve())
    return tmp_path


def test_real_universe_files_load_every_ticker_and_reject_the_known_defects(
    universe_dir: Path,
) -> None:
    source = ReplayPriceSource(universe_dir)
    clock = source.data_end()
    assert clock == datetime(2026, 3, 31, 20, 0, tzinfo=UTC)  # the 15:45 New York bar's end
    intraday_tickers = sorted(source._index("prices"))
    daily_tickers = sorted(source._index("daily"))
    assert len(intraday_tickers) == 484 and len(daily_tickers) == 505
    tickers, problems = source.held_tickers()
    assert set(tickers) == set(intraday_tickers) | set(daily_tickers) and not problems

    bars = source.fetch_intraday(intraday_tickers, "15m", dict.fromkeys(intraday_tickers), clock)
    assert not bars.errors and not bars.rejected
    assert sum(len(f) for f in bars.frames.values()) == 576_515

    days = source.fetch_daily(daily_tickers, datetime(2013, 1, 1, tzinfo=UTC), clock)
    assert not days.errors
    rejected = [r for rows in days.rejected.values() for r in rows]
    rules = pd.Series([r.rule for r in rejected]).value_counts().to_dict()
    # 11 rows without an open (8 of them without high and low too), 12 that break OHLC.
    assert rules == {"inconsistent OHLC (low > open/close or high < open/close)": 12,
                     "missing price (NaN)": 11}  # fmt: skip
    assert sum(len(f) for f in days.frames.values()) == 619_040 - 23
    lnt = days.frames["LNT"]
    assert pd.Timestamp("2016-05-19 04:00", tz=UTC) not in lnt.index  # close 17.87 < low 35.09
    assert [r.ts for r in days.rejected["LNT"]] == [datetime(2016, 5, 19, 4, 0, tzinfo=UTC)]
    assert not any(f.isna().any().any() for f in days.frames.values())
