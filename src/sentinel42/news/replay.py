"""Recorded headlines: the replay source used by tests, the offline mode and backtests.

Format (``<replay_dir>/news/*.jsonl``, or ``*.jsonl.gz`` read through gzip), one item per line::

    {"published_at": "2025-06-04T13:05:00+00:00", "title": "...", "summary": "...",
     "url": "https://...", "source": "Reuters", "tickers": ["AAPL"]}

``summary`` and ``tickers`` are optional; ``published_at`` must carry an offset, ``url`` must
be an http(s) link. The source serves only items published at or before ``as_of``, so a replay
never sees the future. A line that breaks these rules is skipped and reported with its number.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from sentinel42.domain import NewsItem
from sentinel42.news.base import NewsBatch
from sentinel42.news.normalize import canonical_url, cut, item_problem, make_item, oversized

logger = logging.getLogger(__name__)
# Problem lines reported per file; past that, one line counts the rest.
MAX_REPORTED_LINES = 50


class ReplayNewsSource:
    """Reads ``news/*.jsonl`` and ``news/*.jsonl.gz`` under ``replay_dir`` (parsed once, then
    served by ``as_of``).

    A bad line loses only itself: it is skipped, logged and reported in every batch's
    ``problems`` as ``news/<file> line <n>: <what was wrong>; line skipped`` (the first
    ``MAX_REPORTED_LINES`` of a file one by one, then a count). Items whose title or summary
    had to be cut are kept and reported the same way.
    """

    name = "replay"

    def __init__(self, replay_dir: Path) -> None:
        self.replay_dir = Path(replay_dir)
        self._lines: list[tuple[datetime, dict[str, object]]] | None = None
        self._problems: list[str] = []

    def _load(self) -> list[tuple[datetime, dict[str, object]]]:
        if self._lines is not None:
            return self._lines
        lines: list[tuple[datetime, dict[str, object]]] = []
        folder = self.replay_dir / "news"
        paths = sorted({*folder.glob("*.jsonl"), *folder.glob("*.jsonl.gz")})
        for path in paths:
            label = f"{path.parent.name}/{path.name}"
            problems: list[str] = []
            number = 0
            try:
                with _open_lines(path) as fh:
                    for number, raw in enumerate(fh, 1):
                        if not raw.strip():
                            continue
                        try:
                            published, record, notes = _read_line(raw)
                        except ValueError as exc:
                            problems.append(f"{label} line {number}: {exc}; line skipped")
                            continue
                        problems += [f"{label} line {number}: {note}; item kept" for note in notes]
                        lines.append((published, record))
            except (OSError, EOFError) as exc:  # a truncated or corrupt .gz: keep what was read
                problems.append(f"{label}: unreadable after line {number} ({exc}); rest skipped")
            self._problems += _capped(label, problems)
        for problem in self._problems:
            logger.warning("replay news: %s", problem)
        lines.sort(key=lambda pair: pair[0])
        self._lines = lines
        return lines

    def fetch(self, tickers: Sequence[str], as_of: datetime) -> NewsBatch:
        """Every recorded item published at or before ``as_of``, normalized."""
        lines = self._load()
        batch = NewsBatch(problems=list(self._problems))
        for published, record in lines:
            if published > as_of:
                break  # sorted by time
            raw_tickers = record.get("tickers") or []
            item = make_item(
                url=str(record["url"]),
                title=str(record["title"]),
                published_at=published,
                source=str(record.get("source") or "replay"),
                summary=str(record.get("summary") or ""),
                origin="replay",
                watchlist=tickers,
                hinted=[t for t in raw_tickers if isinstance(t, str)]
                if isinstance(raw_tickers, list)
                else [],
            )
            if item is not None:
                batch.items.append(item)
        return batch


def _open_lines(path: Path) -> IO[str]:
    """A news file as text lines; a ``.gz`` one read through gzip, as it is."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace")


def _read_line(raw: str) -> tuple[datetime, dict[str, object], list[str]]:
    """One line of a replay file: its publication time, the record and what will be cut.

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
    return published, record, notes


def _capped(label: str, problems: list[str]) -> list[str]:
    if len(problems) <= MAX_REPORTED_LINES:
        return problems
    more = len(problems) - MAX_REPORTED_LINES
    return [*problems[:MAX_REPORTED_LINES], f"{label}: {more} more line(s) skipped or cut"]


def write_jsonl(items: Iterable[NewsItem], path: Path) -> int:
    """Append items in the replay format, skipping URLs already in the file.

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
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += 1
    return written
