"""Recorded headlines: the replay source used by tests, the offline mode and backtests.

Format (``<replay_dir>/news/*.jsonl``, or ``*.jsonl.gz`` read through gzip), one item per line::

    {"published_at": "2025-06-04T13:05:00+00:00", "title": "...", "summary": "...",
     "url": "https://...", "source": "Reuters", "tickers": ["AAPL"],
     "first_seen_at": "2025-06-04T13:06:12+00:00"}

``summary``, ``tickers`` and ``first_seen_at`` are optional; ``published_at`` must carry an
offset, ``url`` must be an http(s) link. A line that breaks these rules is skipped and reported
with its number.

News latency: an item is served only once the clock reaches the moment Sentinel42 could have
seen it: its recorded ``first_seen_at`` (when ``sentinel42 record`` saw it), or, for a line
without one, ``published_at`` plus the latency (``SENTINEL42_REPLAY_NEWS_LATENCY_SECONDS``);
never before ``published_at``. A served item carries no ``first_seen_at``: the news refresh
that receives it records it as first seen at its own clock, which is never before the item's
serving time.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sentinel42.domain import NewsItem
from sentinel42.news.base import NewsBatch
from sentinel42.news.normalize import canonical_url, cut, item_problem, make_item, oversized
from sentinel42.settings import DEFAULT_REPLAY_NEWS_LATENCY_SECONDS

# Problem lines reported per file; past that, one line counts the rest.
MAX_REPORTED_LINES = 50


@dataclass(frozen=True, slots=True)
class _Line:
    """One readable line: when it may be served, and the record."""

    serve_at: datetime
    published: datetime
    recorded: bool  # served at a recorded first_seen_at (else at published_at + the latency)
    record: dict[str, object]


@dataclass(frozen=True, slots=True)
class LatencyCounts:
    """How the headlines served by some clock got their serving time."""

    latency_seconds: int
    recorded_first_seen: int  # served at their recorded first_seen_at
    published_plus_latency: int  # no first_seen_at: served at published_at + the latency

    def rule(self) -> str:
        return (
            f"recorded first_seen_at for {self.recorded_first_seen} headlines, "
            f"published_at + {self.latency_seconds} s for {self.published_plus_latency}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule(),
            "latency_seconds": self.latency_seconds,
            "recorded_first_seen": self.recorded_first_seen,
            "published_plus_latency": self.published_plus_latency,
        }


class ReplayNewsSource:
    """Reads ``news/*.jsonl`` and ``news/*.jsonl.gz`` under ``replay_dir`` (parsed once, then
    served by ``as_of``: each line at its recorded ``first_seen_at``, or ``latency_seconds``
    after its ``published_at`` when it has none; never before ``published_at``).

    A bad line loses only itself: it is skipped and reported in every batch's
    ``problems`` as ``news/<file> line <n>: <what was wrong>; line skipped`` (the first
    ``MAX_REPORTED_LINES`` of a file one by one, then a count). Items whose title or summary
    had to be cut are kept and reported the same way.
    """

    name = "replay"

    def __init__(
        self, replay_dir: Path, *, latency_seconds: int = DEFAULT_REPLAY_NEWS_LATENCY_SECONDS
    ) -> None:
        if latency_seconds < 0:
            raise ValueError(f"latency_seconds must be >= 0, not {latency_seconds}")
        self.replay_dir = Path(replay_dir)
        self.latency_seconds = latency_seconds
        self._lines: list[_Line] | None = None
        self._parsed = _Parsed([], [], [])
        self._problems: list[str] = []

    def _load(self) -> list[_Line]:
        if self._lines is not None:
            return self._lines
        folder = self.replay_dir / "news"
        paths = sorted({*folder.glob("*.jsonl"), *folder.glob("*.jsonl.gz")})
        versions = tuple(_version(path) for path in paths)
        parsed = _parse_cached(versions, self.latency_seconds)
        # Reported in every batch's problems, and logged once per refresh by refresh_news: not
        # here as well (a bad line was printed three times on stderr, issue 18).
        self._problems += parsed.problems
        self._lines = parsed.lines
        self._parsed = parsed
        return parsed.lines

    def served(self, tickers: Sequence[str], as_of: datetime) -> list[tuple[datetime, NewsItem]]:
        """``(serving time, item)`` of every item served by ``as_of``, by serving time: what a
        caller that replays many clocks from one read needs (the ranking news history).

        Each line is made into an item once per watchlist and process (the files parsed once
        per version), so a backtest's steps pay only for the lines new to them."""
        lines = self._load()
        served = bisect.bisect_right(self._parsed.serve_at, as_of)
        made = self._parsed.items.setdefault(tuple(tickers), [])
        for line in lines[len(made) : served]:
            made.append(_item(line, tickers))
        return [(line.serve_at, item) for line, item in zip(lines[:served], made, strict=False)
                if item is not None]  # fmt: skip

    def fetch(self, tickers: Sequence[str], as_of: datetime) -> NewsBatch:
        """Every recorded item served by ``as_of`` (see the class), normalized (without
        ``first_seen_at``: the refresh that stores it records its own clock)."""
        served = self.served(tickers, as_of)
        return NewsBatch(items=[item for _, item in served], problems=self.problems)

    @property
    def problems(self) -> list[str]:
        """The bad lines of the files read so far (each batch also reports them)."""
        return list(self._problems)

    def latency_counts(self, until: datetime) -> LatencyCounts:
        """How the items served by ``until`` got their serving time (a backtest names it)."""
        served = [line for line in self._load() if line.serve_at <= until]
        recorded = sum(line.recorded for line in served)
        return LatencyCounts(self.latency_seconds, recorded, len(served) - recorded)


@dataclass(slots=True)
class _Parsed:
    """The readable lines of a set of news files (by serving time), their problem lines, and
    each watchlist's items made so far from the first lines (None: a line make_item refused)."""

    lines: list[_Line]
    serve_at: list[datetime]
    problems: list[str]
    items: dict[tuple[str, ...], list[NewsItem | None]] = field(default_factory=dict)


def _version(path: Path) -> tuple[Path, int, int]:
    try:
        stat = path.stat()
    except OSError:  # gone since the listing: the parse reports it unreadable
        return path.absolute(), -1, -1
    return path.absolute(), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=16)
def _parse_cached(versions: tuple[tuple[Path, int, int], ...], latency_seconds: int) -> _Parsed:
    """The news files, parsed once per version of each (a backtest builds a source per step):
    keyed by path, mtime and size, a rewritten file is read again."""
    latency = timedelta(seconds=latency_seconds)
    lines: list[_Line] = []
    all_problems: list[str] = []
    for path, _mtime, _size in versions:
        label = f"{path.parent.name}/{path.name}"
        problems: list[str] = []
        number = 0
        try:
            with _open_lines(path) as fh:
                for number, raw in enumerate(fh, 1):
                    if not raw.strip():
                        continue
                    try:
                        published, seen, record, notes = _read_line(raw)
                    except ValueError as exc:
                        problems.append(f"{label} line {number}: {exc}; line skipped")
                        continue
                    problems += [f"{label} line {number}: {note}; item kept" for note in notes]
                    serve_at = published + latency if seen is None else max(seen, published)
                    lines.append(_Line(serve_at, published, seen is not None, record))
        except (OSError, EOFError) as exc:  # a truncated or corrupt .gz: keep what was read
            problems.append(f"{label}: unreadable after line {number} ({exc}); rest skipped")
        all_problems += _capped(label, problems)
    lines.sort(key=lambda line: line.serve_at)
    return _Parsed(lines, [line.serve_at for line in lines], all_problems)


def _item(line: _Line, tickers: Sequence[str]) -> NewsItem | None:
    record = line.record
    raw_tickers = record.get("tickers") or []
    return make_item(
        url=str(record["url"]),
        title=str(record["title"]),
        published_at=line.published,
        source=str(record.get("source") or "replay"),
        summary=str(record.get("summary") or ""),
        origin="replay",
        watchlist=tickers,
        hinted=[t for t in raw_tickers if isinstance(t, str)]
        if isinstance(raw_tickers, list)
        else [],
    )


def _open_lines(path: Path) -> IO[str]:
    """A news file as text lines; a ``.gz`` one read through gzip, as it is."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _read_line(raw: str) -> tuple[datetime, datetime | None, dict[str, object], list[str]]:
    """One line of a replay file: its publication time, its recorded first-seen time (None
    when it has none, or an unreadable one: a note says so), the record and what will be cut.

    Raises:
        ValueError: the line is not an item (the message says why).
    """
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object but {type(record).__name__}")
    stamp = record.get("published_at")
    if stamp is None or stamp == "":
        raise ValueError("no published_at")
    try:
        published = datetime.fromisoformat(str(stamp))
    except ValueError:
        raise ValueError(f"published_at {cut(str(stamp), 40)!r} is not an ISO 8601 time") from None
    if published.tzinfo is None:
        raise ValueError(f"published_at {stamp!r} has no UTC offset")
    title, url = record.get("title"), record.get("url")
    title, url = (v if isinstance(v, str) else "" for v in (title, url))
    problem = item_problem(url=url, title=title)
    if problem is not None:
        raise ValueError(problem)
    summary = record.get("summary")
    notes = oversized(title=title, summary=summary if isinstance(summary, str) else "")
    if "tickers" in record and not isinstance(record["tickers"], list | type(None)):
        notes.append("tickers is not a list (matched from the text instead)")
    seen = _first_seen(record.get("first_seen_at"), notes)
    return published, seen, record, notes


def _first_seen(stamp: object, notes: list[str]) -> datetime | None:
    """A line's recorded ``first_seen_at``; None (with a note) when it is there but unreadable."""
    if stamp is None or stamp == "":
        return None
    what = f"first_seen_at {cut(str(stamp), 40)!r}"
    try:
        seen = datetime.fromisoformat(str(stamp))
    except ValueError:
        notes.append(f"{what} is not an ISO 8601 time (served at published_at + the latency)")
        return None
    if seen.tzinfo is None:
        notes.append(f"{what} has no UTC offset (served at published_at + the latency)")
        return None
    return seen


def _capped(label: str, problems: list[str]) -> list[str]:
    if len(problems) <= MAX_REPORTED_LINES:
        return problems
    more = len(problems) - MAX_REPORTED_LINES
    return [*problems[:MAX_REPORTED_LINES], f"{label}: {more} more line(s) skipped or cut"]


def write_jsonl(items: Iterable[NewsItem], path: Path) -> int:
    """Append items in the replay format, skipping URLs already in the file (so a URL keeps
    the line, and the ``first_seen_at``, of its first recording).

    An item's ``first_seen_at`` is written when it has one; a replay serves a line without it
    at ``published_at`` plus the latency.

    Returns:
        How many lines were written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    if path.exists():
        with path.open(encoding="utf-8") as fh:
            for raw in fh:
                try:
                    seen.add(canonical_url(str(json.loads(raw)["url"])))
                except (ValueError, KeyError, TypeError):
                    continue
    written = 0
    with path.open("a", encoding="utf-8") as fh:
        for item in items:
            url = canonical_url(item.url)
            if url in seen:
                continue
            seen.add(url)
            record = {
                "published_at": item.published_at.isoformat(),
                "title": item.title,
                "summary": item.summary,
                "url": url,
                "source": item.source,
                "tickers": list(item.tickers),
            }
            if item.first_seen_at is not None:
                record["first_seen_at"] = item.first_seen_at.isoformat()
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    return written
