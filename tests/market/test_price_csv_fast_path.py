"""The fast path of the price file reader gives what the careful path gives, bad rows and all."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentinel42.market import price_csv
from sentinel42.market.price_csv import PriceFile, read_price_file
from sentinel42.synthetic import generate_replay

# Lines that each break one rule of the reader, or bend one (spaces, "Z", other offsets).
SPOILERS = [
    "<html>this is not a bar, not at all</html>,,,,,,,,",
    "garbage,1,2,3,4,5",
    "2026-11-16 13:30,1,2,0.5,1,10",
    "2026-11-16,100,101,99,100,10",
    ",100,101,99,100,10",
    "{stamp},100,inf,99,100,10",
    "{stamp},100,101,99,NaN,10",
    "{stamp},100,101,99,,10",
    "{stamp},100,101,99,abc,10",
    "{stamp},-100,101,99,100,10",
    "{stamp},100,98,99,100,10",
    "{stamp},100,101,99,100,-5",
    "{stamp},100,101,99,100,inf",
    "{stamp},1e2,1.01e2, 99 ,100.,1_0",
    "{stamp},-0,101,99,100,-0",
    "{stamp},100,101,99,100,123456789012345678901",
    "{stamp},100,101,99,100",
    "{stamp},100,101,99,100,10,,",
    "{stamp},100,101,99,100,10,extra",
    "  {stamp}  ,100,101,99,100,10",
    "{stamp_z},100,101,99,100,10",
    "{stamp_compact},100,101,99,100,10",
    "{stamp_t},100,101,99,100,10",
    "3000-01-01 10:00:00+00:00,100,101,99,100,10",
    "2026-02-30 10:00:00+00:00,100,101,99,100,10",
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate_replay(out, ("AAPL", "MSFT", "XOM"), end=date(2026, 11, 25), sessions=4, seed=11)
    return out


def _careful(path: Path, monkeypatch: pytest.MonkeyPatch) -> PriceFile | Exception:
    with monkeypatch.context() as m:
        m.setattr(price_csv, "_offset_timestamps", lambda _raw: None)
        try:
            return read_price_file(path)
        except Exception as exc:  # the fast path must fail the same way
            return exc


def _assert_same(path: Path, monkeypatch: pytest.MonkeyPatch) -> PriceFile | None:
    expected = _careful(path, monkeypatch)
    if isinstance(expected, Exception):
        with pytest.raises(type(expected)) as info:
            read_price_file(path)
        assert str(info.value) == str(expected)
        return None
    got = read_price_file(path)
    pd.testing.assert_frame_equal(got.frame, expected.frame, check_exact=True, check_freq=True)
    assert str(got.frame.index.tz) == str(expected.frame.index.tz)
    assert got.frame.index.name == expected.frame.index.name == "ts"
    # Bit for bit, signed zeros included.
    assert got.frame.to_numpy().tobytes() == expected.frame.to_numpy().tobytes()
    assert got.rejected == expected.rejected
    return got


def _spoiled(src: Path, dst: Path, lines: dict[int, str]) -> Path:
    rows = src.read_text(encoding="utf-8").splitlines()
    stamp = rows[5].split(",")[0]
    stamps = {
        "stamp": stamp,
        "stamp_z": pd.Timestamp(stamp).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stamp_compact": stamp[:-3] + stamp[-2:],
        "stamp_t": stamp.replace(" ", "T"),
    }
    for line, text in lines.items():
        rows[line - 1] = text.format(**stamps)
    dst.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return dst


@pytest.mark.parametrize("ticker", ["AAPL", "MSFT", "XOM"])
def test_clean_generated_file_reads_the_same_on_both_paths(
    generated: Path, ticker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = generated / "prices" / f"{ticker}.csv"
    got = _assert_same(path, monkeypatch)
    assert got is not None and len(got.frame) > 50 and not got.rejected
    stamps = [line.split(",")[0] for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    assert price_csv._offset_timestamps(tuple(stamps)) is not None  # the fast path was taken


@pytest.mark.parametrize("spoiler", SPOILERS)
def test_each_kind_of_bad_row_reads_the_same_on_both_paths(
    generated: Path, tmp_path: Path, spoiler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _spoiled(generated / "prices" / "AAPL.csv", tmp_path / "AAPL.csv", {17: spoiler})
    _assert_same(path, monkeypatch)


@pytest.mark.parametrize("seed", range(6))
def test_files_with_random_bad_rows_read_the_same_on_both_paths(
    generated: Path, tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(seed)
    src = generated / "prices" / ("AAPL", "MSFT", "XOM")[seed % 3]
    n_lines = len(src.with_suffix(".csv").read_text(encoding="utf-8").splitlines())
    picks = rng.choice(np.arange(2, n_lines + 1), size=int(rng.integers(1, 8)), replace=False)
    lines = {int(line): SPOILERS[int(rng.integers(len(SPOILERS)))] for line in picks}
    path = _spoiled(src.with_suffix(".csv"), tmp_path / "X.csv", lines)
    _assert_same(path, monkeypatch)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "2026-11-16,100,101,99,100,10\n2026-11-17,100,101,99,100,10\n",
        "2026-11-16,100,101,99,100,10\n2026-11-17 14:30:00+00:00,100,101,99,100,10\n",
        "2026-11-16 09:30:00-05:00,100,101,99,100,10\n2026-11-16 14:45:00Z,100,101,99,100,10\n",
        "2026-11-16 09:30:00.250-05:00,100,101,99,100,10\n",
        "2026-11-16T14:30:00+0000,100,101,99,100,10\n2026-11-16T14:45+01:00,1,2,0.5,1,0\n",
        "2026-07-01 09:30:00-04:00,100,101,99,100,10\n2026-12-01 09:30:00-05:00,1,2,0.5,1,1\n",
    ],
)
def test_small_files_of_mixed_stamps_read_the_same_on_both_paths(
    tmp_path: Path, body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "prices" / "T.csv"
    path.parent.mkdir()
    path.write_text("Datetime,Open,High,Low,Close,Volume\n" + body, encoding="utf-8")
    _assert_same(path, monkeypatch)
