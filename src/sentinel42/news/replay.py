"""Recorded headlines: the replay source used by tests, the offline mode and backtests.

Format (``<replay_dir>/news/*.jsonl``), one item per line::

    {"published_at": "2025-06-04T13:05:00+00:00", "title": "...", "summary": "...",
     "url": "https://...", "source": "Reuters", "tickers": ["AAPL"]}

``summary`` and ``tickers`` are optional; ``published_at`` must carry an offset. The source
serves only items published at or before ``as_of``, so a replay never sees the future.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from sentinel42.domain import NewsItem
from sentinel42.news.base import NewsBatch
from sentinel42.news.normalize import canonical_url, make_item

logger = logging.getLogger(__name__)


class ReplayNewsSource:
    """Reads ``news/*.jsonl`` under ``replay_dir`` (parsed once, then served by ``as_of``)."""

    name = "replay"

    def __init__(self, replay_dir: Path) -> None:
        self.replay_dir = Path(replay_dir)
        self._lines: list[tuple[datetime, dict[str, object]]] | None = None
        self._problems: list[str] = []

    def _load(self) -> list[tuple[datetime, dict[str, object]]]:
        if self._lines is not None:
            return self._lines
        lines: list[tuple[datetime, dict[str, object]]] = []
        for path in sorted((self.replay_dir / "news").glob("*.jsonl")):
            bad = 0
            with path.open(encoding="utf-8") as fh:
                for raw in fh:
                    if not raw.strip():
                        continue
                    try:
                        record = json.loads(raw)
                        published = datetime.fromisoformat(str(record["published_at"]))
                        if published.tzinfo is None:
                            raise ValueError("published_at has no UTC offset")
                    except (ValueError, KeyError, TypeError):
                        bad += 1
                        continue
                    lines.append((published, record))
            if bad:
                self._problems.append(f"replay {path.name}: {bad} unreadable lines dropped")
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
                url=str(record.get("url") or ""),
                title=str(record.get("title") or ""),
                published_at=published,
                source=str(record.get("source") or "replay"),
                summary=str(record.get("summary") or ""),
                origin="replay",
                watchlist=tickers,
                hinted=[str(t) for t in raw_tickers] if isinstance(raw_tickers, list) else [],
            )
            if item is not None:
                batch.items.append(item)
        return batch


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
