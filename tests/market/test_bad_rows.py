"""Bad data loses only itself: a bad row of a price file is skipped and reported by line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.errors import ConfigError, ModelError
from sentinel42.market.calendar import NyseCalendar
from sentinel42.market.refresh import refresh_prices
from sentinel42.market.replay import ReplayPriceSource, read_price_file
from sentinel42.market.validate import validate_bars
from sentinel42.settings import load_settings
from sentinel42.synthetic import generate_replay

BAD_LINE = 17  # a data line in the middle of the first session


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded replay folder (AAPL, MSFT; 8 sessions) that tests copy before spoiling it."""
    out = tmp_path_factory.mktemp("generated")
    generate_replay(out, ("AAPL", "MSFT"), end=date(2026, 11, 25), sessions=8, seed=7)
    return out


@pytest.fixture
def folder(tmp_path: Path, generated: Path) -> Path:
    for sub in ("prices", "news"):
        (tmp_path / sub).mkdir()
        for path in (generated / sub).iterdir():
            (tmp_path / sub / path.name).write_bytes(path.read_bytes())
    return tmp_path


def _spoil(path: Path, line: int, text: str) -> str:
    """Replace 1-based ``line`` of ``path`` with ``text``; return the original line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    original = lines[line - 1]
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return original


def _good_rows(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) - 1


def test_price_file_with_one_garbage_line_keeps_every_other_row_and_reports_its_line(
    folder: Path,
) -> None:
    path = folder / "prices" / "AAPL.csv"
    rows = _good_rows(path)
    _spoil(path, BAD_LINE, "<html>this is not a bar, not at all</html>,,,,,,,,")
    read = read_price_file(path)
    assert len(read.frame) == rows - 1
    [rejected] = read.rejected
    assert rejected.line == BAD_LINE
    assert str(rejected).startswith(f"prices/AAPL.csv line {BAD_LINE}: ")
    assert str(rejected).endswith("; row skipped")


def test_garbage_timestamp_is_reported_as_not_a_timestamp(folder: Path) -> None:
    path = folder / "prices" / "AAPL.csv"
    rows = _good_rows(path)
    _spoil(path, BAD_LINE, "garbage,1,2,3,4,5")
    read = read_price_file(path)
    assert len(read.frame) == rows - 1
    assert [str(r) for r in read.rejected] == [
        f"prices/AAPL.csv line {BAD_LINE}: Datetime 'garbage' is not a timestamp; row skipped"
    ]


def test_line_of_undecodable_bytes_loses_only_itself(folder: Path) -> None:
    path = folder / "prices" / "AAPL.csv"
    rows = _good_rows(path)
    lines = path.read_bytes().split(b"\n")
    lines[BAD_LINE - 1] = b"\xff\xfe\x00garbage\x80"
    path.write_bytes(b"\n".join(lines))
    read = read_price_file(path)
    assert len(read.frame) == rows - 1
    assert [r.line for r in read.rejected] == [BAD_LINE]


def test_row_without_utc_offset_is_skipped_alone_and_named_with_its_value(folder: Path) -> None:
    path = folder / "prices" / "AAPL.csv"
    rows = _good_rows(path)
    original = path.read_text(encoding="utf-8").splitlines()[BAD_LINE - 1]
    stamp, rest = original.split(",", 1)
    naive = stamp[:16]  # "2026-11-16 13:30", the offset cut off
    _spoil(path, BAD_LINE, f"{naive},{rest}")
    read = read_price_file(path)
    assert len(read.frame) == rows - 1
    assert [str(r) for r in read.rejected] == [
        f"prices/AAPL.csv line {BAD_LINE}: Datetime '{naive}' has no UTC offset; row skipped"
    ]
    assert read.rejected[0].rule == "timestamp without a UTC offset"


@pytest.mark.parametrize(
    ("values", "rule", "quoted"),
    [
        ("100,inf,99,100,10", "non-finite price (inf)", "High='inf'"),
        ("100,101,99,NaN,10", "missing price (NaN)", "Close='NaN'"),
        ("100,101,99,,10", "missing price (NaN)", "Close=''"),
        ("100,101,99,abc,10", "not a number", "Close='abc'"),
        ("-100,101,99,100,10", "non-positive price", "Open='-100'"),
        ("100,98,99,100,10", "inconsistent OHLC", "High='98' Low='99'"),
        ("100,101,99,100,-5", "negative volume", "Volume='-5'"),
        ("100,101,99,100,inf", "non-finite volume (inf)", "Volume='inf'"),
    ],
)
def test_bad_value_rejects_its_row_with_the_rule_and_the_value(
    folder: Path, values: str, rule: str, quoted: str
) -> None:
    path = folder / "prices" / "AAPL.csv"
    rows = _good_rows(path)
    stamp = path.read_text(encoding="utf-8").splitlines()[BAD_LINE - 1].split(",")[0]
    _spoil(path, BAD_LINE, f"{stamp},{values}")
    read = read_price_file(path)
    assert len(read.frame) == rows - 1
    [rejected] = read.rejected
    assert rejected.line == BAD_LINE and rejected.rule.startswith(rule)
    assert quoted in rejected.reason
    assert rejected.ts == pd.Timestamp(stamp).tz_convert(UTC)
    assert np.isfinite(read.frame.to_numpy()).all()


def test_validation_rejects_infinite_price_from_any_source(calendar: NyseCalendar) -> None:
    index = pd.date_range("2026-11-24 14:30", periods=3, freq="15min", tz=UTC, name="ts")
    frame = pd.DataFrame(
        {"open": 100.0, "high": [101.0, np.inf, 101.0], "low": 99.0, "close": 100.0,
         "volume": 10.0},
        index=index,
    )  # fmt: skip
    result = validate_bars(
        frame,
        ticker="AAPL",
        interval_minutes=15,
        calendar=calendar,
        as_of=datetime(2026, 11, 24, 21, 0, tzinfo=UTC),
    )
    assert len(result.frame) == 2
    assert result.rejected == {"non-finite price (inf)": 1}
    assert not result.frame["flagged"].any()


def test_replay_serves_the_good_rows_and_reports_the_bad_one_once(folder: Path) -> None:
    path = folder / "prices" / "AAPL.csv"
    rows = _good_rows(path)
    _spoil(path, BAD_LINE, "2026-11-16 13:30,1,2,0.5,1,10")
    source = ReplayPriceSource(folder)
    clock = source.data_end()
    assert clock is not None
    first = source.fetch_intraday(["AAPL", "MSFT"], "15m", {"AAPL": None, "MSFT": None}, clock)
    assert len(first.frames["AAPL"]) == rows - 1
    assert [r.line for r in first.rejected["AAPL"]] == [BAD_LINE]
    assert "MSFT" not in first.rejected
    since = {"AAPL": first.frames["AAPL"].index[-1].to_pydatetime()}
    later = source.fetch_intraday(["AAPL"], "15m", since, clock)
    assert "AAPL" not in later.rejected  # an incremental fetch does not repeat it


def test_refresh_report_counts_and_lists_each_skipped_row(
    folder: Path, store: object, calendar: NyseCalendar
) -> None:
    path = folder / "prices" / "AAPL.csv"
    stamp = path.read_text(encoding="utf-8").splitlines()[BAD_LINE - 1].split(",")[0]
    _spoil(path, BAD_LINE, f"{stamp},100,inf,99,100,10")
    _spoil(path, BAD_LINE + 2, "not,a,bar")
    settings = load_settings(
        data_source="replay", replay_dir=folder, tickers=["AAPL", "MSFT"], data_dir=folder
    )
    source = ReplayPriceSource(folder)
    clock = source.data_end()
    assert clock is not None
    report = refresh_prices(settings, source, store, calendar, clock)  # type: ignore[arg-type]
    aapl, msft = report.tickers
    assert aapl.error is None and aapl.bars_new > 0
    assert aapl.problems == [
        f"prices/AAPL.csv line {BAD_LINE}: non-finite price (inf): High='inf'; row skipped",
        f"prices/AAPL.csv line {BAD_LINE + 2}: has 3 field(s), the header has 6; row skipped",
    ]
    assert aapl.rejected_reasons["non-finite price (inf)"] == 1
    assert aapl.rejected_reasons["wrong number of fields"] == 1
    assert aapl.bars_new == msft.bars_new - 2
    assert report.problems == aapl.problems and not msft.problems
    assert report.to_dict()["tickers"][0]["problems"] == aapl.problems


def test_a_file_of_plain_dates_is_still_read_as_new_york_days(tmp_path: Path) -> None:
    path = tmp_path / "daily" / "AAPL.csv"
    path.parent.mkdir()
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n2026-11-23,1,2,0.5,1,10\n"
        "2026-11-24 16:00,1,2,0.5,1,10\n2026-11-25,1,2,0.5,1,10\n",
        encoding="utf-8",
    )
    read = read_price_file(path)
    assert list(read.frame.index) == [
        pd.Timestamp("2026-11-23 05:00", tz=UTC),
        pd.Timestamp("2026-11-25 05:00", tz=UTC),
    ]
    assert [str(r) for r in read.rejected] == [
        "daily/AAPL.csv line 3: Date '2026-11-24 16:00' has no UTC offset; row skipped"
    ]


# --- the CLI -------------------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sentinel42.sentiment.finbert as finbert

    def no_finbert(options: object) -> object:
        raise ModelError("no FinBERT in this test")

    # Scoring falls back to the offline scorer instead of importing transformers.
    monkeypatch.setattr(finbert, "load_finbert", no_finbert)
    monkeypatch.setenv("SENTINEL42_DATA_SOURCE", "replay")
    monkeypatch.setenv("SENTINEL42_TICKERS", "AAPL,MSFT")
    monkeypatch.setenv("SENTINEL42_DATA_DIR", str(tmp_path / "data"))


def test_refresh_exits_non_zero_when_every_ticker_failed(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "replay"
    (empty / "prices").mkdir(parents=True)
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(empty))
    result = CliRunner().invoke(app, ["refresh", "--json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    assert [row["ticker"] for row in document["tickers"] if row["error"]] == ["AAPL", "MSFT"]
    assert "every ticker failed (2)" in result.stderr


def test_refresh_exits_zero_and_names_the_failure_when_one_of_two_failed(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    (folder / "prices" / "MSFT.csv").unlink()
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(folder))
    result = CliRunner().invoke(app, ["refresh", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["ticker"]: row for row in json.loads(result.stdout)["tickers"]}
    assert rows["AAPL"]["error"] is None and rows["AAPL"]["bars_new"] > 0
    assert "prices/MSFT.csv" in rows["MSFT"]["error"]


def test_empty_replay_dir_is_one_line_naming_the_setting(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # "" would otherwise mean this folder
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", "")
    result = CliRunner().invoke(app, ["refresh", "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: SENTINEL42_REPLAY_DIR: ")
    assert "empty" in line
    with pytest.raises(ConfigError, match="SENTINEL42_REPLAY_DIR"):
        load_settings(replay_dir="  ", require_replay_dir=False)
