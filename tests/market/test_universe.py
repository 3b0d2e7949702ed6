"""The universe: multi-ticker and gzip replay files, the universe setting, its stored bars."""

from __future__ import annotations

import functools
import gzip
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentinel42.factory import build_calendar, build_price_source
from sentinel42.market.base import PriceBatch
from sentinel42.market.replay import ReplayPriceSource, write_price_csv
from sentinel42.persistence.store import UpsertCounts
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


@functools.cache
def _sessions() -> list[date]:
    from sentinel42.market.calendar import NEW_YORK, NyseCalendar

    start, end = datetime(2025, 6, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    return [o.astimezone(NEW_YORK).date() for o, _ in NyseCalendar().sessions_between(start, end)]


def _daily_frame(rng: np.random.Generator, n: int = 60) -> pd.DataFrame:
    """``n`` daily bars of NYSE sessions from June 2025 (New York midnight, in UTC)."""
    days = pd.DatetimeIndex(_sessions()[:n]).tz_localize("America/New_York")
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


def test_real_daily_universe_file_serves_dotted_share_classes_as_yfinance_writes_them(
    universe_dir: Path,
) -> None:
    """Issue 18 item 5: the daily file writes BRK.B and BF.B, the 15-minute file BRK-B and BF-B;
    both load, as one ticker each, under the hyphenated name."""
    from sentinel42.market.universe import resolve_universe
    from sentinel42.settings import load_settings

    source = ReplayPriceSource(universe_dir)
    tickers, problems = source.held_tickers()
    assert {"BRK-B", "BF-B"} <= set(tickers) and not problems
    assert not [t for t in tickers if "." in t]
    days = source.fetch_daily(
        ["BRK-B", "BF-B"], datetime(2013, 1, 1, tzinfo=UTC), source.data_end()
    )
    assert not days.errors and len(days.frames["BRK-B"]) == len(days.frames["BF-B"]) == 1259
    settings = load_settings(
        data_source="replay", replay_dir=universe_dir, tickers=["brk.b"], universe="BF.B,KO"
    )
    assert settings.tickers == ["BRK-B"]
    assert resolve_universe(settings, source).tickers == ("BRK-B", "BF-B", "KO")


def test_a_share_class_written_two_ways_is_one_ticker_and_the_second_is_refused(
    tmp_path: Path,
) -> None:
    from sentinel42.market.universe import resolve_universe
    from sentinel42.settings import load_settings

    prices = tmp_path / "prices"
    prices.mkdir()
    (prices / "many.csv").write_text(
        "Symbol,Datetime,Open,High,Low,Close,Volume\n"
        "BRK.B,2026-11-24 09:30:00-05:00,100,101,99,100,10\n"
        "BRK-B,2026-11-24 09:30:00-05:00,100.5,101,99,100,10\n"
        "brk.b,2026-11-24 09:45:00-05:00,100,101,99,100,10\n"
        "KO,2026-11-24 09:30:00-05:00,60,61,59,60,10\n",
        encoding="utf-8",
    )
    source = ReplayPriceSource(tmp_path)
    assert source.held_tickers() == (["BRK-B", "KO"], [])
    clock = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    batch = source.fetch_intraday(["BRK-B"], "15m", {"BRK-B": None}, clock)
    assert batch.frames["BRK-B"]["open"].tolist() == [100.0, 100.0]
    assert [str(r) for r in batch.rejected["BRK-B"]] == [
        "prices/many.csv line 3: BRK-B 2026-11-24T14:30:00+00:00 again (first at line 2); "
        "the first row is kept; row skipped"
    ]
    listed = tmp_path / "universe.txt"
    listed.write_text("BRK-B\nko\nbrk.b\n", encoding="utf-8")
    spec = load_settings(data_source="replay", replay_dir=tmp_path, tickers=["KO"],
                         universe=f"@{listed}")  # fmt: skip
    assert resolve_universe(spec, source).problems == (
        f"{listed} line 3: BRK.B is BRK-B again (first at line 1); line skipped",
    )
    inline = load_settings(data_source="replay", replay_dir=tmp_path, tickers=["KO"],
                           universe="BRK-B,BRK.B")  # fmt: skip
    universe = resolve_universe(inline, source)
    assert universe.tickers == ("KO", "BRK-B")
    assert universe.problems == (
        "SENTINEL42_UNIVERSE: BRK.B is BRK-B, which is listed twice; counted once",
    )


# --- the universe setting ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SENTINEL42_UNIVERSE", "AAPL,not a ticker", "SENTINEL42_UNIVERSE: 'NOT A TICKER' is not"),
        ("SENTINEL42_UNIVERSE", "@", "SENTINEL42_UNIVERSE: '@' needs a file name"),
        ("SENTINEL42_UNIVERSE", " , ", "SENTINEL42_UNIVERSE: is empty"),
        ("SENTINEL42_DAILY_HISTORY_YEARS", "0", "SENTINEL42_DAILY_HISTORY_YEARS: "),
        ("SENTINEL42_DAILY_HISTORY_YEARS", "31", "SENTINEL42_DAILY_HISTORY_YEARS: "),
        ("SENTINEL42_COST_BPS", "-1", "SENTINEL42_COST_BPS: "),
        ("SENTINEL42_MODEL_GATE_WINDOW_DAYS", "0", "SENTINEL42_MODEL_GATE_WINDOW_DAYS: "),
    ],
)
def test_bad_universe_settings_are_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, message: str
) -> None:
    from sentinel42.errors import ConfigError
    from sentinel42.settings import load_settings

    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_universe_settings_defaults_and_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    from sentinel42.settings import load_settings

    settings = load_settings()
    assert settings.universe == "watchlist" and settings.daily_history_years == 10
    assert settings.cost_bps == 5.0 and settings.model_gate_window_days == 30
    assert load_settings(universe=" ALL ").universe == "all"
    assert load_settings(universe="aapl, brk-b").universe == "AAPL,BRK-B"
    assert load_settings(universe="@ lists/sp500.txt").universe == "@lists/sp500.txt"


def _mixed_replay_dir(root: Path) -> Path:
    """Per-ticker and multi-ticker files, intraday and daily, plain and gzip."""
    bar = "2026-11-24 09:30:00-05:00,100,101,99,100,10\n"
    (root / "prices").mkdir(parents=True)
    (root / "daily").mkdir()
    (root / "prices" / "AAPL.csv").write_text(f"Datetime,Open,High,Low,Close,Volume\n{bar}")
    (root / "prices" / "AMZN_15m_2026_export.csv").write_text(
        f"Datetime,Open,High,Low,Close,Volume\n{bar}"
    )
    (root / "prices" / "TSLA_1m_2026_export.csv").write_text(  # another interval: not counted
        f"Datetime,Open,High,Low,Close,Volume\n{bar}"
    )
    with gzip.open(root / "prices" / "universe.csv.gz", "wt") as fh:
        fh.write(f"ticker,Datetime,Open,High,Low,Close,Volume\nXOM,{bar}KO,{bar}")
    (root / "daily" / "MSFT.csv.gz").write_bytes(
        gzip.compress(b"Date,Open,High,Low,Close,Volume\n2026-11-24,1,2,0.5,1,10\n")
    )
    (root / "daily" / "days.csv").write_text(
        "date,open,high,low,close,volume,Name\n"
        "2026-11-24,1,2,0.5,1,10,KO\n"
        "2026-11-24,1,2,0.5,1,10,PEP\n"
    )
    return root


def test_all_lists_every_ticker_of_a_replay_dir_mixing_per_ticker_and_multi_ticker_files(
    tmp_path: Path,
) -> None:
    from sentinel42.market.universe import resolve_universe
    from sentinel42.settings import load_settings

    root = _mixed_replay_dir(tmp_path / "replay")
    settings = load_settings(
        data_source="replay", replay_dir=root, tickers=["MSFT", "NVDA"], universe="all"
    )
    universe = resolve_universe(settings)
    # The watchlist first, always (NVDA too, though the data lacks it), then the rest sorted.
    assert universe.tickers == ("MSFT", "NVDA", "AAPL", "AMZN", "KO", "PEP", "XOM")
    assert universe.problems == ()
    (root / "daily" / "more.csv").write_text(
        "date,open,high,low,close,volume,symbol\n2026-11-24,1,2,0.5,1,10,S&P 500\n"
    )
    assert resolve_universe(settings).problems == (
        "SENTINEL42_UNIVERSE=all: 'S&P 500' in the replay data is not a ticker symbol; left out",
    )


def test_ticker_file_keeps_its_good_lines_and_names_each_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from sentinel42.market.universe import resolve_universe
    from sentinel42.settings import load_settings

    root = _mixed_replay_dir(tmp_path / "replay")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "universe.txt").write_text(
        "# the names we rank within\n"
        "xom\n"
        "\n"
        "KO   # a comment after a ticker\n"
        "ZZZZ\n"
        "not a ticker\n"
        "XOM\n"
        "PEP\n"
    )
    settings = load_settings(
        data_source="replay", replay_dir=root, tickers=["AAPL"], universe="@universe.txt"
    )
    with caplog.at_level("WARNING", logger="sentinel42.market.universe"):
        universe = resolve_universe(settings)
    assert universe.tickers == ("AAPL", "KO", "PEP", "XOM")
    assert universe.problems == (
        "universe.txt line 5: ZZZZ is not in the replay data; line skipped",
        "universe.txt line 6: 'not a ticker' is not a ticker symbol; line skipped",
        "universe.txt line 7: XOM again (first at line 2); line skipped",
    )
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [f"universe: {p}" for p in universe.problems]  # one line each


def test_universe_list_and_live_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentinel42.errors import ConfigError
    from sentinel42.market.universe import resolve_universe
    from sentinel42.settings import load_settings

    root = _mixed_replay_dir(tmp_path / "replay")
    replay = load_settings(
        data_source="replay", replay_dir=root, tickers=["AAPL"], universe="KO,ZZZZ,KO,AAPL"
    )
    universe = resolve_universe(replay)
    assert universe.tickers == ("AAPL", "KO")
    assert universe.problems == (
        "SENTINEL42_UNIVERSE: ZZZZ is not in the replay data; left out",
        "SENTINEL42_UNIVERSE: KO is listed twice; counted once",
    )
    # Live: no listing to check against (yfinance has none), and no `all`.
    assert resolve_universe(load_settings(tickers=["AAPL"], universe="ZZZZ")).tickers == (
        "AAPL",
        "ZZZZ",
    )
    with pytest.raises(ConfigError, match=r"^SENTINEL42_UNIVERSE=all needs a replay folder"):
        resolve_universe(load_settings(universe="all"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^SENTINEL42_UNIVERSE: @missing.txt: no such file"):
        resolve_universe(load_settings(universe="@missing.txt"))


# --- the universe's bars in the store ----------------------------------------------------------
def _multi_replay(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    own = root / "own"
    generate_replay(own, TICKERS, end=date(2026, 11, 25), sessions=5, seed=seed, news_rate=0)
    for ticker in TICKERS:
        write_price_csv(_daily_frame(rng, 120), own / "daily" / f"{ticker}.csv", time_column="Date")
    multi = root / "multi"
    _merge_into_multi(
        {t: own / "prices" / f"{t}.csv" for t in TICKERS}, multi / "prices" / "a.csv.gz", rng
    )
    _merge_into_multi(
        {t: own / "daily" / f"{t}.csv" for t in TICKERS}, multi / "daily" / "b.csv.gz", rng
    )
    return multi


@pytest.mark.parametrize("kind", ["intraday", "daily"])
def test_load_universe_bars_is_idempotent(tmp_path: Path, kind: str) -> None:
    from sentinel42.clock import resolve_as_of
    from sentinel42.market.universe import load_universe_bars, resolve_universe
    from sentinel42.persistence import open_store
    from sentinel42.settings import load_settings

    replay = _multi_replay(tmp_path, seed=5)
    settings = load_settings(
        data_source="replay", replay_dir=replay, tickers=["AAPL"], universe="all",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
    )  # fmt: skip
    as_of = resolve_as_of(settings)
    tickers = resolve_universe(settings).tickers
    assert set(tickers) == set(TICKERS)
    with open_store(settings) as store:
        written: list[int] = []
        upsert = store.upsert_bars_many

        def counting(interval: str, frames: Mapping[str, pd.DataFrame]) -> dict[str, UpsertCounts]:
            counts = upsert(interval, frames)
            written.append(sum(c.new + c.updated for c in counts.values()))
            return counts

        store.upsert_bars_many = counting  # type: ignore[method-assign]
        inputs = {"source": build_price_source(settings), "calendar": build_calendar(settings)}
        first = load_universe_bars(settings, tickers, kind, as_of, store=store, **inputs)
        stored = store.count_bars()
        assert sum(written) == stored > 0 and set(first) == set(TICKERS)
        written.clear()
        second = load_universe_bars(settings, tickers, kind, as_of, store=store, **inputs)
        assert sum(written) == 0 and store.count_bars() == stored
    for ticker in TICKERS:
        pd.testing.assert_frame_equal(second[ticker], first[ticker])
    source = ReplayPriceSource(replay)
    if kind == "daily":
        held = source.fetch_daily(TICKERS, datetime(2000, 1, 1, tzinfo=UTC), as_of)
    else:
        held = source.fetch_intraday(TICKERS, "15m", dict.fromkeys(TICKERS), as_of)
    for ticker in TICKERS:  # every bar the files hold (all in the session, none bad)
        assert first[ticker].index.equals(held.frames[ticker].index)
        assert np.array_equal(first[ticker]["close"].to_numpy(), held.frames[ticker]["close"])


def test_daily_universe_loads_from_a_replay_dir_of_daily_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentinel42.clock import resolve_as_of
    from sentinel42.market.universe import load_universe_bars, resolve_universe
    from sentinel42.settings import load_settings

    replay = _multi_replay(tmp_path, seed=8)
    for path in (replay / "prices").iterdir():
        path.unlink()
    monkeypatch.setenv("SENTINEL42_DATA_SOURCE", "replay")
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(replay))
    monkeypatch.setenv("SENTINEL42_TICKERS", "KO")
    monkeypatch.setenv("SENTINEL42_UNIVERSE", "all")
    monkeypatch.setenv("SENTINEL42_DAILY_HISTORY_YEARS", "1")
    settings = load_settings()
    as_of = resolve_as_of(settings)
    # The clock is the end of the newest daily session, not the wall clock.
    newest = ReplayPriceSource(replay).fetch_daily(["KO"], datetime(2000, 1, 1, tzinfo=UTC), as_of)
    assert as_of == pd.Timestamp(newest.frames["KO"].index[-1]).tz_convert(
        "America/New_York"
    ).replace(hour=16)
    tickers = resolve_universe(settings).tickers
    bars = load_universe_bars(
        settings,
        tickers,
        "daily",
        as_of,
        source=build_price_source(settings),
        calendar=build_calendar(settings),
    )
    assert set(bars) == set(TICKERS)
    assert all(len(frame) == 120 for frame in bars.values())


# --- live: batched downloads and `sentinel42 record --universe` --------------------------------
LIVE_AS_OF = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)


def _fake_yfinance(calls: list[dict[str, object]]) -> object:
    """yf.download's shape for any tickers: 3 bars of 15m (New York time) or 5 naive dates."""
    from tests.market.test_yahoo import download_frame

    def download(tickers: object, **kwargs: object) -> pd.DataFrame:
        names = tickers if isinstance(tickers, list) else [tickers]
        calls.append({"tickers": names, **kwargs})
        daily = kwargs["interval"] == "1d"
        days = ["2026-11-18", "2026-11-19", "2026-11-20", "2026-11-21", "2026-11-24"]
        index = (
            pd.DatetimeIndex(days).tz_localize("America/New_York")
            if daily
            else pd.date_range("2026-11-24 15:15", periods=3, freq="15min", tz="America/New_York")
        )
        data = {}
        for i, name in enumerate(names):
            close = 10.0 + i + np.arange(len(index))
            data[str(name)] = pd.DataFrame(
                {
                    "Open": close,
                    "High": close + 1,
                    "Low": close - 1,
                    "Close": close,
                    "Volume": 100.0,
                },
                index=index,
            )
        frame = download_frame(data, [str(n) for n in names])
        if daily:  # yfinance strips the timezone of daily bars
            frame.index = pd.DatetimeIndex(frame.index).tz_localize(None)
        return frame

    return download


def test_live_source_downloads_a_universe_in_chunks_of_100() -> None:
    from sentinel42.market.yahoo import YahooPriceSource

    calls: list[dict[str, object]] = []
    tickers = [f"T{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(250)]
    source = YahooPriceSource(download=_fake_yfinance(calls))  # type: ignore[arg-type]
    batch = source.fetch_intraday(tickers, "15m", dict.fromkeys(tickers), LIVE_AS_OF)
    assert [len(c["tickers"]) for c in calls] == [100, 100, 50]  # type: ignore[arg-type]
    assert [t for c in calls for t in c["tickers"]] == tickers  # type: ignore[attr-defined]
    assert not batch.errors and set(batch.frames) == set(tickers)
    assert all(len(f) == 3 for f in batch.frames.values())


def test_record_universe_writes_replay_files_of_every_ticker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from sentinel42 import factory
    from sentinel42.cli import app
    from sentinel42.market.yahoo import YahooPriceSource

    calls: list[dict[str, object]] = []
    tickers = [f"U{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(130)]
    (tmp_path / "universe.txt").write_text("\n".join(tickers) + "\n")
    fake = YahooPriceSource(download=_fake_yfinance(calls))  # type: ignore[arg-type]
    monkeypatch.setattr(factory, "build_price_source", lambda _settings: fake)
    monkeypatch.setattr(factory, "build_news_sources", lambda _settings, store=None: [])
    monkeypatch.chdir(tmp_path)
    env = {
        "SENTINEL42_TICKERS": "AAPL",
        "SENTINEL42_UNIVERSE": "@universe.txt",
        "SENTINEL42_DAILY_HISTORY_YEARS": "2",
        "SENTINEL42_DATA_DIR": str(tmp_path / "data"),
    }
    monkeypatch.setattr("sentinel42.clock.datetime", _FrozenClock)
    result = CliRunner().invoke(app, ["record", "--out", "rec", "--universe"], env=env)
    assert result.exit_code == 0, result.output
    intraday = [c for c in calls if c["interval"] == "15m"]
    daily = [c for c in calls if c["interval"] == "1d"]
    assert [len(c["tickers"]) for c in intraday] == [100, 31]  # type: ignore[arg-type]
    assert [len(c["tickers"]) for c in daily] == [100, 31]  # type: ignore[arg-type]
    assert intraday[0]["tickers"][0] == "AAPL"  # type: ignore[index]
    assert daily[0]["start"] == "2024-11-24"  # two years of daily bars
    replay = ReplayPriceSource(tmp_path / "rec")
    assert replay.held_tickers() == (sorted(["AAPL", *tickers]), [])
    bars = replay.fetch_intraday(["UAB"], "15m", {"UAB": None}, LIVE_AS_OF).frames["UAB"]
    assert bars.index[0] == pd.Timestamp("2026-11-24 20:15", tz=UTC)  # 15:15 New York
    assert bars["close"].tolist() == [
        12.0,
        13.0,
        14.0,
    ]  # the third name of the call, after AAPL and UAA
    days = replay.fetch_daily(["UAB"], datetime(2020, 1, 1, tzinfo=UTC), LIVE_AS_OF).frames["UAB"]
    assert len(days) == 5 and days.index[-1] == pd.Timestamp("2026-11-24 05:00", tz=UTC)


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz: object = None) -> _FrozenClock:  # type: ignore[override]
        return cls.fromtimestamp(LIVE_AS_OF.timestamp(), UTC)


# --- gzip news and the StockNet recordings -----------------------------------------------------
def test_news_replay_reads_jsonl_gz_files_beside_jsonl(tmp_path: Path) -> None:
    import json

    from sentinel42.news.replay import ReplayNewsSource

    news = tmp_path / "news"
    news.mkdir()

    def line(n: int) -> str:
        return json.dumps({"published_at": f"2026-11-24T14:0{n}:00+00:00",
                           "title": f"Apple story {n}", "url": f"https://news.example.com/{n}",
                           "source": "Wire", "tickers": ["AAPL"]})  # fmt: skip

    (news / "a.jsonl").write_text(line(1) + "\n")
    with gzip.open(news / "b.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(line(2) + "\n" + "not json\n" + line(3) + "\n")
    (news / "c.jsonl.gz").write_bytes(gzip.compress(line(4).encode())[:-6])  # truncated
    batch = ReplayNewsSource(tmp_path).fetch(["AAPL"], datetime(2026, 11, 25, tzinfo=UTC))
    assert sorted(item.title for item in batch.items) == [f"Apple story {n}" for n in (1, 2, 3)]
    assert batch.problems[0].startswith("news/b.jsonl.gz line 2: not JSON")
    assert batch.problems[1].startswith("news/c.jsonl.gz: unreadable after line 0")


def test_stocknet_daily_prices_and_tweets_replay_as_they_are(
    tmp_path: Path, shared_data: Path
) -> None:
    from sentinel42.news.replay import ReplayNewsSource

    prices = shared_data / "stocknet" / "prices_daily_2012-09-04_2017-09-01.csv.gz"
    tweets = shared_data / "stocknet" / "news" / "tweets_2014-01-01_2015-09-30.jsonl.gz"
    if not prices.is_file() or not tweets.is_file():
        pytest.skip(f"the StockNet recordings are not in {shared_data / 'stocknet'}")
    for folder, path in (("daily", prices), ("news", tweets)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / path.name).symlink_to(path.resolve())
    source = ReplayPriceSource(tmp_path)
    tickers, problems = source.held_tickers()
    assert len(tickers) == 88 and not problems
    clock = source.data_end()
    assert clock == datetime(2017, 9, 1, 20, 0, tzinfo=UTC)  # 16:00 New York, 1 September 2017
    days = source.fetch_daily(tickers, datetime(2012, 1, 1, tzinfo=UTC), clock)
    assert not days.errors
    assert sum(len(rows) for rows in days.rejected.values()) == 3  # rows without any price
    assert len(days.frames["AAPL"]) > 1_200
    tweets_source = ReplayNewsSource(tmp_path)
    first_day = tweets_source.fetch(["AAPL", "FB"], datetime(2014, 1, 2, tzinfo=UTC))
    assert first_day.items and not first_day.problems
    assert len(tweets_source._load()) == 92_207  # every line of the file, read through gzip
