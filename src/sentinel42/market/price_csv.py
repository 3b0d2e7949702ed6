"""Price CSV files in the shape of yfinance's exports: read row by row, written atomically.

A file is read into a domain bar frame; a row that cannot become a bar (a garbage line, a
timestamp without a UTC offset, a price that is not a finite positive number, high below low...)
is skipped and returned as a :class:`~sentinel42.market.base.RejectedRow` naming the file, the
line and what was wrong, and the rest of the file is kept. Only a file that lacks a price column
altogether is refused as a whole.
"""

from __future__ import annotations

import csv
import itertools
import logging
import operator
import re
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import numpy as np
import pandas as pd

from sentinel42.domain import BAR_COLUMNS
from sentinel42.errors import DataError
from sentinel42.market.base import RejectedRow
from sentinel42.market.validate import bar_rules

logger = logging.getLogger(__name__)

_TIME_COLUMNS = ("datetime", "date", "price", "timestamp", "ts", "")
NY = "America/New_York"
# Rejected rows logged per file; the rest are counted in one more line (the report has them all).
MAX_LOGGED_ROWS = 20
_OFFSET = r"(?:[+-]\d{2}:?\d{2}|Z)$"
_DATE_ONLY = r"\d{4}-\d{2}-\d{2}"
_HAS_OFFSET = re.compile(_OFFSET)


@dataclass(frozen=True)
class PriceFile:
    """What one CSV file held.

    Attributes:
        frame: the readable rows as a domain bar frame (see :func:`read_price_csv`).
        rejected: the rows skipped, in file order.
    """

    frame: pd.DataFrame
    rejected: tuple[RejectedRow, ...] = ()


def _header_rows(path: Path) -> tuple[list[str], int]:
    """Column names and how many header lines precede the data."""
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
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
    path: Path, skip: int, width: int, cols: list[int]
) -> tuple[list[int], list[tuple[str, ...]], list[tuple[int, str]]]:
    """Line numbers and the ``cols`` cells of the data rows; rows of the wrong width apart.

    A row may be longer than the header only by empty cells, and shorter only where no column
    the reader needs is missing. Blank lines (and rows of empty cells) are not data.
    """
    pick = operator.itemgetter(*cols)
    needed = max(cols)
    lines: list[int] = []
    picked: list[tuple[str, ...]] = []
    bad: list[tuple[int, str]] = []
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        for _ in itertools.islice(reader, skip):
            pass
        for row in reader:
            if not row or (not row[0] and not "".join(row).strip()):
                continue
            n = len(row)
            if n <= needed or (n > width and "".join(row[width:]).strip()):
                bad.append((reader.line_num, f"has {n} field(s), the header has {width}"))
                continue
            lines.append(reader.line_num)
            picked.append(pick(row))
    return lines, picked, bad


def read_price_file(path: Path, *, label: str | None = None) -> PriceFile:
    """Read a yfinance CSV export of any of the known shapes, skipping the rows that are bad.

    A row is skipped when it has the wrong number of fields, its timestamp is empty, unreadable
    or without a UTC offset, a value is not a number, or it breaks a rule of
    :func:`~sentinel42.market.validate.bar_rules` (a missing, non-finite or non-positive price,
    high/low not bounding open/close, a missing, non-finite or negative volume).

    Args:
        path: the CSV file.
        label: how rejections name the file; default ``<folder>/<file name>``
            (``prices/AAPL.csv``).

    Returns:
        The bar frame of every good row (see :func:`read_price_csv`) and a
        :class:`RejectedRow` for every skipped one, in line order, each logged (the first
        ``MAX_LOGGED_ROWS`` one by one).

    Raises:
        DataError: the file lacks a price column.
        OSError: the file cannot be read.
    """
    label = label or f"{path.parent.name}/{path.name}"
    names, skip = _header_rows(path)
    lower = [n.lower() for n in names]
    missing = [c for c in BAR_COLUMNS if c not in lower]
    if missing:
        raise DataError(f"{label}: no column(s) {', '.join(missing)}")
    time_idx = next((i for i, n in enumerate(lower) if n in _TIME_COLUMNS), 0)
    cols = [time_idx, *(lower.index(c) for c in BAR_COLUMNS)]
    shown = [names[i] for i in cols]
    line_nos, rows, short = _data_rows(path, skip, len(names), cols)
    rejected = [RejectedRow(label, n, why, "wrong number of fields") for n, why in short]

    columns = list(zip(*rows, strict=True)) if rows else [() for _ in cols]
    index = _offset_timestamps(columns[0])
    bad_ts: dict[int, tuple[str, str]] = {}
    if index is None:
        index, bad_ts = _timestamps(pd.Series(columns[0], dtype=object).str.strip(), shown[0])
    keep = np.ones(len(rows), dtype=bool)
    for pos, (why, rule) in bad_ts.items():
        keep[pos] = False
        rejected.append(RejectedRow(label, line_nos[pos], why, rule))

    texts = columns[1:]
    values = np.zeros((len(rows), len(BAR_COLUMNS)))
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
                f"{shown[j + 1]}={texts[j][pos].strip()!r}" for j in np.flatnonzero(at_fault[pos])
            )
            ts = index[pos].to_pydatetime()
            rejected.append(RejectedRow(label, line_nos[pos], f"{rule}: {quoted}", rule, ts))
        keep &= ~bad

    rejected.sort(key=lambda r: r.line)
    _log(label, rejected)
    frame = pd.DataFrame(values[keep], columns=list(BAR_COLUMNS), index=index[keep])
    return PriceFile(frame, tuple(rejected))


def _offset_timestamps(raw: tuple[str, ...]) -> pd.DatetimeIndex | None:
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
        parsed[date_only] = days.dt.tz_localize(NY).dt.tz_convert(UTC).dt.as_unit("ns")
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
