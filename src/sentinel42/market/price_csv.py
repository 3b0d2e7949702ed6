"""Price CSV files in the shape of yfinance's exports: read row by row, written atomically.

A file is read into a domain bar frame; a row that cannot become a bar (a garbage line, a
timestamp without a UTC offset, a price that is not a finite positive number, high below low...)
is skipped and returned as a :class:`~sentinel42.market.base.RejectedRow` naming the file, the
line and what was wrong, and the rest of the file is kept. Only a file that lacks a price column
altogether is refused as a whole.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import logging
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from sentinel42.domain import BAR_COLUMNS
from sentinel42.errors import DataError
from sentinel42.market.base import RejectedRow
from sentinel42.market.calendar import SESSION_TZ
from sentinel42.market.validate import bar_rules
from sentinel42.settings import normalize_ticker

logger = logging.getLogger(__name__)

_TIME_COLUMNS = ("datetime", "date", "price", "timestamp", "ts", "")
# Rejected rows logged per file; the rest are counted in one more line (the report has them all).
MAX_LOGGED_ROWS = 20
_OFFSET = r"(?:[+-]\d{2}:?\d{2}|Z)$"
_DATE_ONLY = r"\d{4}-\d{2}-\d{2}"
_HAS_OFFSET = re.compile(_OFFSET)
# Header names of the column that says whose row it is, in order of preference (any case).
TICKER_COLUMNS = ("ticker", "symbol", "name")
DUPLICATE = "duplicate timestamp"


@dataclass(frozen=True)
class PriceFile:
    """What one CSV file held.

    Attributes:
        frame: the readable rows as a domain bar frame (see :func:`read_price_csv`).
        rejected: the rows skipped, in file order.
    """

    frame: pd.DataFrame
    rejected: tuple[RejectedRow, ...] = ()


@dataclass(frozen=True)
class MultiPriceFile:
    """What one CSV file of many tickers held (a ``ticker``, ``symbol`` or ``Name`` column).

    Attributes:
        files: ticker -> its rows as a per-ticker file of the same rows would give them (bars in
            file order, rejected rows in line order, each naming this file and its line).
        unattributed: rows whose ticker cell is empty (no ticker to report them under).
    """

    files: dict[str, PriceFile] = field(default_factory=dict)
    unattributed: tuple[RejectedRow, ...] = ()


def is_gzip(path: Path) -> bool:
    """A ``.gz`` file: read through gzip, as it is."""
    return path.name.lower().endswith(".gz")


def _open_text(path: Path, *, newline: str | None = None) -> IO[str]:
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline=newline)
    return path.open(encoding="utf-8-sig", errors="replace", newline=newline)


def ticker_column(names: Sequence[str]) -> int | None:
    """Position of the column naming each row's ticker (``ticker``, ``symbol``, ``Name``)."""
    lower = [n.strip().lower() for n in names]
    for wanted in TICKER_COLUMNS:
        if wanted in lower:
            return lower.index(wanted)
    return None


def read_header(path: Path) -> list[str]:
    """The column names of a price CSV (plain or ``.gz``), as :func:`read_price_file` sees them.

    Raises:
        OSError: the file cannot be read.
    """
    return _header_rows(path)[0]


def _header_rows(path: Path) -> tuple[list[str], int]:
    """Column names and how many header lines precede the data."""
    with _open_text(path) as fh:
        lines = [fh.readline().rstrip("\r\n") for _ in range(3)]
    first = lines[0].split(",")
    second = lines[1].split(",") if lines[1] else []
    skip = 1
    # yf.download(...).to_csv() with a MultiIndex: "Price,Close,..." / "Ticker,AAPL,..." /
    # "Datetime,,,,," -- the time column's real name is on the third line.
    if second and second[0].strip().lower() == "ticker":
        skip = 2
        third = lines[2].split(",")
        if third and third[0].strip() and all(not x.strip() for x in third[1:]):
            skip = 3
            first[0] = third[0]
    # A mangled MultiIndex export: the second line repeats the ticker under each column.
    elif second and not second[0].strip() and any(x.strip() for x in second[1:]):
        skip = 2
    return [c.strip() for c in first], skip


def _data_rows(
    path: Path, skip: int, width: int, cols: list[int], tag: int | None = None
) -> tuple[list[int], list[tuple[str, ...]], list[tuple[int, str, str]]]:
    """Line numbers and the ``cols`` cells of the data rows; rows of the wrong width apart.

    A row may be longer than the header only by empty cells, and shorter only where no column
    the reader needs is missing. Blank lines (and rows of empty cells) are not data. A row of the
    wrong width comes with its line, why, and its ``tag`` cell (the ticker) where it has one.
    """
    pick = operator.itemgetter(*cols)
    needed = max(cols)
    lines: list[int] = []
    picked: list[tuple[str, ...]] = []
    bad: list[tuple[int, str, str]] = []
    with _open_text(path, newline="") as fh:
        reader = csv.reader(fh)
        for _ in itertools.islice(reader, skip):
            pass
        for row in reader:
            if not row or (not row[0] and not "".join(row).strip()):
                continue
            n = len(row)
            if n <= needed or (n > width and "".join(row[width:]).strip()):
                cell = row[tag] if tag is not None and tag < n else ""
                bad.append((reader.line_num, f"has {n} field(s), the header has {width}", cell))
                continue
            lines.append(reader.line_num)
            picked.append(pick(row))
    return lines, picked, bad


def _fast_rows(
    path: Path, skip: int, width: int, cols: list[int]
) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """:func:`_data_rows` by pandas' C parser, for the clean file: line numbers and columns.

    None for any file the careful reader must see row by row: a quoted cell, a line of another
    width, a blank line, a row of empty cells, an undecodable byte.
    """
    raw = gzip.decompress(path.read_bytes()) if is_gzip(path) else path.read_bytes()
    buf = np.frombuffer(raw, dtype=np.uint8)
    if not len(buf) or (buf == ord('"')).any():
        return None
    ends = np.flatnonzero(buf == ord("\n"))
    n_lines = len(ends) + (0 if raw.endswith(b"\n") else 1)
    commas = np.bincount(np.searchsorted(ends, np.flatnonzero(buf == ord(","))), minlength=n_lines)
    if len(commas) != n_lines or not (commas[skip:] == width - 1).all():
        return None  # a short or long row, a blank line: the careful reader says which
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            header=None,
            names=list(range(width)),
            skiprows=skip,
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
            encoding="utf-8",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError):
        return None
    n = len(frame)
    if skip + n != n_lines:
        return None
    first = frame[0].to_numpy(dtype=object)
    for pos in np.flatnonzero(first == "").tolist():
        if not "".join(frame.iloc[pos].tolist()).strip():
            return None  # a row of empty cells is not data: the careful reader skips it
    return np.arange(skip + 1, skip + 1 + n), [frame[c].to_numpy(dtype=object) for c in cols]


def _columns(names: list[str], label: str) -> tuple[list[int], list[str]]:
    """Positions of the time column and the five bar columns, and their names as written.

    Raises:
        DataError: a price column is missing.
    """
    lower = [n.lower() for n in names]
    missing = [c for c in BAR_COLUMNS if c not in lower]
    if missing:
        raise DataError(f"{label}: no column(s) {', '.join(missing)}")
    time_idx = next((i for i, n in enumerate(lower) if n in _TIME_COLUMNS), 0)
    cols = [time_idx, *(lower.index(c) for c in BAR_COLUMNS)]
    return cols, [names[i] for i in cols]


def read_price_file(path: Path, *, label: str | None = None) -> PriceFile:
    """Read a yfinance CSV export of any of the known shapes, skipping the rows that are bad.

    A row is skipped when it has the wrong number of fields, its timestamp is empty, unreadable
    or without a UTC offset, a value is not a number, or it breaks a rule of
    :func:`~sentinel42.market.validate.bar_rules` (a missing, non-finite or non-positive price,
    high/low not bounding open/close, a missing, non-finite or negative volume). A ``.gz`` file
    is read through gzip.

    Args:
        path: the CSV file.
        label: how rejections name the file; default ``<folder>/<file name>``
            (``prices/AAPL.csv``).

    Returns:
        The bar frame of every good row (see :func:`read_price_csv`) and a
        :class:`RejectedRow` for every skipped one, in line order, each logged (the first
        ``MAX_LOGGED_ROWS`` one by one).

    Raises:
        DataError: the file lacks a price column, or is a truncated gzip file.
        OSError: the file cannot be read.
    """
    label = label or f"{path.parent.name}/{path.name}"
    try:
        names, skip = _header_rows(path)
        cols, shown = _columns(names, label)
        line_nos, rows, short = _data_rows(path, skip, len(names), cols)
    except EOFError as exc:
        raise DataError(f"{label}: truncated gzip file ({exc})") from None
    rejected = [RejectedRow(label, n, why, "wrong number of fields") for n, why, _ in short]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in cols]
    index, values, keep, bad = _to_bars(label, line_nos, columns, shown)
    rejected += [row for _, row in bad]
    rejected.sort(key=lambda r: r.line)
    _log(label, rejected)
    frame = pd.DataFrame(values[keep], columns=list(BAR_COLUMNS), index=index[keep])
    return PriceFile(frame, tuple(rejected))


def _to_bars(
    label: str,
    line_nos: Sequence[int] | np.ndarray,
    columns: Sequence[Any],
    shown: list[str],
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, list[tuple[int, RejectedRow]]]:
    """Bars of the data rows: (UTC index, ``[rows, 5]`` values, which rows to keep, and the
    rejected ones as ``(position, RejectedRow)``).

    ``columns`` holds the time column's cells, then the five bar columns' cells, row by row.
    """
    n = len(columns[0])
    index = _offset_timestamps(columns[0])
    bad_ts: dict[int, tuple[str, str]] = {}
    if index is None:
        index, bad_ts = _timestamps(pd.Series(columns[0], dtype=object).str.strip(), shown[0])
    keep = np.ones(n, dtype=bool)
    rejected: list[tuple[int, RejectedRow]] = []
    for pos, (why, rule) in bad_ts.items():
        keep[pos] = False
        rejected.append((pos, RejectedRow(label, int(line_nos[pos]), why, rule)))

    texts = columns[1:]
    values = np.zeros((n, len(BAR_COLUMNS)))
    unreadable = np.zeros(values.shape, dtype=bool)
    for j, text in enumerate(texts):
        # An object array takes the same path through to_numeric as a Series, without building one.
        values[:, j] = pd.to_numeric(np.array(text, dtype=object), errors="coerce")
        for pos in np.flatnonzero(np.isnan(values[:, j])).tolist():
            unreadable[pos, j] = text[pos].strip().lower() not in ("", "nan")
    rules = [("not a number", unreadable.any(axis=1), unreadable), *bar_rules(values)]
    for rule, bad, at_fault in rules:
        for pos in np.flatnonzero(keep & bad).tolist():
            quoted = " ".join(
                f"{shown[j + 1]}={texts[j][pos].strip()!r}"
                for j in np.flatnonzero(at_fault[pos]).tolist()
            )
            ts = index[pos].to_pydatetime()
            row = RejectedRow(label, int(line_nos[pos]), f"{rule}: {quoted}", rule, ts)
            rejected.append((pos, row))
        keep &= ~bad
    return index, values, keep, rejected


def read_multi_price_file(path: Path, *, label: str | None = None) -> MultiPriceFile:
    """Read a CSV of many tickers (a ``ticker``, ``symbol`` or ``Name`` column), split by ticker.

    Each ticker's rows come out exactly as :func:`read_price_file` gives a file of only those
    rows: the same bars, the same rejected rows (with this file's name and line numbers). Ticker
    cells are stripped and upper-cased. A second row for the same ticker and bar start is
    rejected (rule ``duplicate timestamp``), the first one kept. A clean file is parsed by
    pandas in one pass; a file with rows of another width or blank lines is read row by row.

    Raises:
        DataError: the file has no ticker column or lacks a price column, or is a truncated
            gzip file.
        OSError: the file cannot be read.
    """
    label = label or f"{path.parent.name}/{path.name}"
    try:
        names, skip = _header_rows(path)
        tag = ticker_column(names)
        if tag is None:
            raise DataError(f"{label}: no ticker column ({', '.join(TICKER_COLUMNS)})")
        cols, shown = _columns(names, label)
        fast = _fast_rows(path, skip, len(names), [*cols, tag])
        short: list[tuple[int, str, str]] = []
        if fast is not None:
            line_nos, columns = fast
        else:
            lines, rows, short = _data_rows(path, skip, len(names), [*cols, tag], tag)
            line_nos = np.asarray(lines, dtype=np.int64)
            picked = list(zip(*rows, strict=True)) if rows else [() for _ in range(len(cols) + 1)]
            columns = [np.array(c, dtype=object) for c in picked]
    except EOFError as exc:
        raise DataError(f"{label}: truncated gzip file ({exc})") from None

    # Cleaned once per distinct cell, not per row (two spellings may be one ticker: " aapl",
    # and BRK.B is BRK-B, as yfinance writes it: a row of both is a duplicate).
    raw_codes, raw_names = pd.factorize(np.asarray(columns[-1], dtype=object))
    codes, uniques = pd.factorize(np.array([normalize_ticker(str(u)) for u in raw_names] or [""]))
    codes = codes[raw_codes] if len(raw_codes) else raw_codes
    tickers = np.asarray(uniques, dtype=object)[codes]
    index, values, keep, bad = _to_bars(label, line_nos, columns[:-1], shown)
    owner: list[tuple[str, RejectedRow]] = [
        (normalize_ticker(cell), RejectedRow(label, line, why, "wrong number of fields"))
        for line, why, cell in short
    ]
    owner += [(str(tickers[pos]), row) for pos, row in bad]
    no_ticker = tickers == ""
    for pos in np.flatnonzero(keep & no_ticker).tolist():
        owner.append(
            ("", RejectedRow(label, int(line_nos[pos]), "the ticker is empty", "no ticker"))
        )
    keep &= ~no_ticker
    kept = np.flatnonzero(keep)
    keys = pd.DataFrame({"t": codes[kept], "ts": index.asi8[kept], "pos": kept})
    dup = keys.duplicated(["t", "ts"], keep="first").to_numpy()
    if dup.any():
        first = keys.groupby(["t", "ts"], sort=False)["pos"].transform("first").to_numpy()
        for pos, orig in zip(kept[dup].tolist(), first[dup].tolist(), strict=True):
            why = (
                f"{tickers[pos]} {index[pos].isoformat()} again (first at line "
                f"{int(line_nos[orig])}); the first row is kept"
            )
            row = RejectedRow(label, int(line_nos[pos]), why, DUPLICATE, index[pos].to_pydatetime())
            owner.append((str(tickers[pos]), row))
            keep[pos] = False

    every = sorted((row for _, row in owner), key=lambda r: r.line)
    _log(label, every)
    by_ticker: dict[str, list[RejectedRow]] = {}
    for ticker, row in owner:
        by_ticker.setdefault(ticker, []).append(row)
    kept = np.flatnonzero(keep)
    order = kept[np.argsort(codes[kept], kind="stable")]
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    files: dict[str, PriceFile] = {}
    for part in np.split(order, cuts) if len(order) else []:
        ticker = str(uniques[codes[part[0]]])
        frame = pd.DataFrame(values[part], columns=list(BAR_COLUMNS), index=index[part])
        skipped = by_ticker.pop(ticker, [])
        files[ticker] = PriceFile(frame, tuple(sorted(skipped, key=lambda r: r.line)))
    for ticker, skipped in by_ticker.items():  # every row of these was rejected
        if ticker:
            frame = pd.DataFrame(
                np.zeros((0, len(BAR_COLUMNS))), columns=list(BAR_COLUMNS), index=index[:0]
            )
            files[ticker] = PriceFile(frame, tuple(sorted(skipped, key=lambda r: r.line)))
    unattributed = tuple(sorted(by_ticker.get("", []), key=lambda r: r.line))
    return MultiPriceFile(files, unattributed)


def _offset_timestamps(raw: Sequence[str] | np.ndarray) -> pd.DatetimeIndex | None:
    """:func:`_timestamps` for the common file, where every stamp has a UTC offset and parses.

    None for any other file (an empty one, a stamp without an offset, an unreadable one...): the
    careful :func:`_timestamps` then decides. The parse is the one :func:`_timestamps` makes of
    stamps with an offset, without its per-file Series (about 1 ms a file, 500 files a refresh).
    """
    stamps = [s.strip() for s in raw]
    if not stamps or not all(map(_HAS_OFFSET.search, stamps)):
        return None
    try:
        parsed = pd.to_datetime(
            np.array(stamps, dtype=object), utc=True, format="ISO8601", errors="coerce"
        )
        if parsed.hasnans:
            return None
        return pd.DatetimeIndex(parsed.as_unit("ns"), name="ts").tz_convert(UTC).as_unit("ns")
    except (ValueError, OverflowError):
        return None


def _timestamps(
    stamps: pd.Series, column: str
) -> tuple[pd.DatetimeIndex, dict[int, tuple[str, str]]]:
    """UTC bar starts of ``stamps`` (NaT where unusable) and, by position, why each is unusable.

    Every timestamp must carry its UTC offset, except in a file of plain dates (``YYYY-MM-DD``
    outnumber the timestamps): those are daily bars, taken as New York midnight.
    """
    n = len(stamps)
    if n == 0:
        return pd.DatetimeIndex([], tz=UTC, name="ts").as_unit("ns"), {}
    has_offset = stamps.str.contains(_OFFSET, regex=True).to_numpy(dtype=bool)
    date_only = stamps.str.fullmatch(_DATE_ONLY).to_numpy(dtype=bool)
    parsed = pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    if has_offset.any():
        parsed[has_offset] = pd.to_datetime(
            stamps[has_offset], utc=True, format="ISO8601", errors="coerce"
        ).dt.as_unit("ns")
    if date_only.sum() > has_offset.sum():
        days = pd.to_datetime(stamps[date_only], format="%Y-%m-%d", errors="coerce")
        parsed[date_only] = days.dt.tz_localize(SESSION_TZ).dt.tz_convert(UTC).dt.as_unit("ns")
    bad: dict[int, tuple[str, str]] = {}
    for pos in np.flatnonzero(parsed.isna().to_numpy()).tolist():
        raw = stamps.iloc[pos]
        if not raw:
            bad[pos] = (f"{column} is empty", "no timestamp")
        elif has_offset[pos] or pd.isna(pd.to_datetime(raw, format="ISO8601", errors="coerce")):
            bad[pos] = (f"{column} {raw!r} is not a timestamp", "unreadable timestamp")
        else:
            bad[pos] = (f"{column} {raw!r} has no UTC offset", "timestamp without a UTC offset")
    index = pd.DatetimeIndex(parsed, name="ts").tz_convert(UTC).as_unit("ns")
    return index, bad


def _log(label: str, rejected: list[RejectedRow]) -> None:
    for row in rejected[:MAX_LOGGED_ROWS]:
        logger.warning("%s", row)
    if len(rejected) > MAX_LOGGED_ROWS:
        logger.warning(
            "%s: %d more row(s) skipped (the refresh report lists them)",
            label,
            len(rejected) - MAX_LOGGED_ROWS,
        )


def read_price_csv(path: Path) -> pd.DataFrame:
    """The bars of a yfinance CSV export of any of the known shapes (bad rows skipped).

    Args:
        path: the CSV file.

    Returns:
        Columns ``open, high, low, close, volume`` (float64), index ``ts`` of tz-aware UTC bar
        starts, sorted as in the file (validation sorts and checks). Date-only rows (daily bars
        without a time) are taken as New York midnight. Skipped rows are logged; see
        :func:`read_price_file` for them.

    Raises:
        DataError: the file has no header or lacks a price column.
    """
    return read_price_file(path).frame


def write_price_csv(frame: pd.DataFrame, path: Path, *, time_column: str = "Datetime") -> None:
    """Write bars in the replay shape: ``Datetime,Open,High,Low,Close,Volume`` (UTC offsets).

    Args:
        frame: domain bar frame (extra columns such as ``flagged`` are not written).
        path: destination; its folder is created.
        time_column: ``Datetime`` for intraday bars, ``Date`` for daily bars.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    out = frame[list(BAR_COLUMNS)].copy()
    out.index = out.index.tz_convert(UTC).rename(time_column)
    out.columns = [c.capitalize() for c in BAR_COLUMNS]
    tmp = path.with_suffix(path.suffix + ".tmp")
    out.to_csv(tmp, date_format="%Y-%m-%d %H:%M:%S%z")
    tmp.replace(path)  # atomic: a reader never sees half a file
