"""The Store: every read and write Sentinel42 makes, idempotent on natural keys.

A retried or repeated run changes nothing: bars upsert on ``(ticker, interval, ts)`` and only
rows whose values changed are written; headlines on their normalized title; scores on
``(text_hash, scorer, revision)``; predictions on ``(ticker, bar_ts, model_version)``; decisions
on ``(ticker, bar_ts, run_id)``, a later run's decision for a bar being a revision beside the
standing one (:mod:`sentinel42.persistence.decisions`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, and_, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from sentinel42.domain import (
    BAR_COLUMNS,
    FALLBACK_SCORER,
    STORY_WINDOW,
    NewsItem,
    SentimentScore,
    story_key,
    text_hash,
    title_hash,
)
from sentinel42.persistence.db import make_engine, migrate
from sentinel42.persistence.decisions import DecisionStore, SavedDecisions
from sentinel42.persistence.tables import (
    BarRow,
    EventRow,
    FeedStateRow,
    NewsRow,
    NewsTickerRow,
    RequestCountRow,
    SentimentRow,
)

if TYPE_CHECKING:
    from sentinel42.settings import Settings

__all__ = ["SavedDecisions", "Store", "UpsertCounts", "open_store"]

_BAR_VALUES = (*BAR_COLUMNS, "flagged")


@dataclass(frozen=True, slots=True)
class UpsertCounts:
    new: int = 0
    updated: int = 0


def _to_epoch_seconds(index: pd.DatetimeIndex) -> np.ndarray:
    if index.tz is None:
        raise ValueError("bar index must be tz-aware UTC")
    return index.tz_convert("UTC").as_unit("s").asi8


def _bar_records(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """All tickers' bars as one flat frame (ticker, ts epoch seconds, values).

    Built from numpy arrays and concatenated once: a DataFrame per ticker costs ~1.5 ms each,
    which dominates a 500-ticker incremental refresh.
    """
    tickers, ts, flagged, reasons = [], [], [], []
    values: dict[str, list[np.ndarray]] = {c: [] for c in BAR_COLUMNS}
    for ticker, frame in frames.items():
        if frame.empty:
            continue
        n = len(frame)
        tickers.append(np.full(n, ticker, dtype=object))
        ts.append(_to_epoch_seconds(frame.index))  # type: ignore[arg-type]
        for c in BAR_COLUMNS:
            values[c].append(frame[c].to_numpy(dtype=float))
        flagged.append(
            frame["flagged"].to_numpy(dtype=bool) if "flagged" in frame else np.zeros(n, bool)
        )
        if "flag_reason" in frame:
            col = frame["flag_reason"].astype(object)
            reasons.append(col.where(col.notna(), None).to_numpy())
        else:
            reasons.append(np.full(n, None, dtype=object))
    if not tickers:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "ticker": np.concatenate(tickers),
            "ts": np.concatenate(ts),
            **{c: np.concatenate(v) for c, v in values.items()},
            "flagged": np.concatenate(flagged),
            "flag_reason": np.concatenate(reasons),
        }
    )


class Store(DecisionStore):
    """Repository over one SQLAlchemy engine. Use :func:`open_store` to get one.

    Predictions and decisions are in :class:`~sentinel42.persistence.decisions.DecisionStore`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        backend = engine.dialect.name
        self._insert = postgresql.insert if backend == "postgresql" else sqlite.insert

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # --- bars ------------------------------------------------------------------------------
    def upsert_bars(self, ticker: str, interval: str, frame: pd.DataFrame) -> UpsertCounts:
        """Insert new bars and rewrite changed ones; identical bars are not touched."""
        return self.upsert_bars_many(interval, {ticker: frame}).get(ticker, UpsertCounts())

    def upsert_bars_many(
        self, interval: str, frames: Mapping[str, pd.DataFrame]
    ) -> dict[str, UpsertCounts]:
        """:meth:`upsert_bars` for many tickers in one read and one write (one transaction)."""
        with self.session() as s:
            return self._upsert_many(s, interval, frames)

    def replace_bars(self, ticker: str, interval: str, frame: pd.DataFrame) -> int:
        """Atomically replace a ticker's whole history of one interval (after a rewrite)."""
        with self.session() as s:
            s.execute(delete(BarRow).where(BarRow.ticker == ticker, BarRow.interval == interval))
            counts = self._upsert_many(s, interval, {ticker: frame})
        return counts.get(ticker, UpsertCounts()).new

    def _upsert_many(
        self, s: Session, interval: str, frames: Mapping[str, pd.DataFrame]
    ) -> dict[str, UpsertCounts]:
        incoming = _bar_records(frames)
        if incoming.empty:
            return {t: UpsertCounts() for t in frames}
        rows = s.execute(
            select(BarRow.ticker, BarRow.ts, *[getattr(BarRow, c) for c in _BAR_VALUES]).where(
                BarRow.ticker.in_(list(incoming["ticker"].unique())),
                BarRow.interval == interval,
                BarRow.ts.between(int(incoming["ts"].min()), int(incoming["ts"].max())),
            )
        ).all()
        existing = pd.DataFrame(rows, columns=["ticker", "ts", *_BAR_VALUES])
        merged = incoming.merge(
            existing, on=["ticker", "ts"], how="left", suffixes=("", "_old"), indicator=True
        )
        known = (merged["_merge"] == "both").to_numpy()
        new_vals = merged[list(BAR_COLUMNS)].to_numpy(float)
        old_vals = merged[[f"{c}_old" for c in BAR_COLUMNS]].to_numpy(float)
        same = np.isclose(new_vals, old_vals, rtol=1e-9, atol=0.0).all(axis=1)
        flag_changed = merged["flagged"].to_numpy(bool) != merged["flagged_old"].fillna(
            False
        ).to_numpy(bool)
        changed = known & (~same | flag_changed)
        write = merged.loc[~known | changed, ["ticker", "ts", *_BAR_VALUES, "flag_reason"]]
        if not write.empty:
            records = write.assign(interval=interval).to_dict("records")
            for record in records:  # numpy scalars -> Python for the DB driver
                record["ts"] = int(record["ts"])
                record["flagged"] = bool(record["flagged"])
            stmt = self._insert(BarRow)
            stmt = stmt.on_conflict_do_update(
                index_elements=["ticker", "interval", "ts"],
                set_={c: stmt.excluded[c] for c in (*_BAR_VALUES, "flag_reason")},
            )
            s.execute(stmt, records)
        tickers = merged["ticker"].to_numpy()
        out = {t: UpsertCounts() for t in frames}
        for ticker in np.unique(tickers):
            mask = tickers == ticker
            out[str(ticker)] = UpsertCounts(
                new=int((~known & mask).sum()), updated=int((changed & mask).sum())
            )
        return out

    def load_bars(
        self,
        tickers: Sequence[str],
        interval: str,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, pd.DataFrame]:
        """Domain bar frames (plus ``flagged``) per ticker, ``start <= ts <= end`` (bar starts)."""
        query = select(BarRow.ticker, BarRow.ts, *[getattr(BarRow, c) for c in _BAR_VALUES]).where(
            BarRow.ticker.in_(list(tickers)), BarRow.interval == interval
        )
        if start is not None:
            query = query.where(BarRow.ts >= int(start.timestamp()))
        if end is not None:
            query = query.where(BarRow.ts <= int(end.timestamp()))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(BarRow.ticker, BarRow.ts)).all()
        if not rows:
            return {}
        frame = pd.DataFrame(rows, columns=["ticker", "ts", *_BAR_VALUES])
        # Nanosecond resolution, like every other timestamp in pandas code.
        frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True).dt.as_unit("ns")
        frame["flagged"] = frame["flagged"].astype(bool)
        out: dict[str, pd.DataFrame] = {}
        for ticker, group in frame.groupby("ticker", sort=False):
            out[str(ticker)] = group.drop(columns="ticker").set_index("ts")
        return out

    def newest_bar_ts(self, tickers: Sequence[str], interval: str) -> dict[str, datetime | None]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(BarRow.ticker, func.max(BarRow.ts))
                .where(BarRow.ticker.in_(list(tickers)), BarRow.interval == interval)
                .group_by(BarRow.ticker)
            ).all()
        found = {t: datetime.fromtimestamp(ts, UTC) for t, ts in rows}
        return {t: found.get(t) for t in tickers}

    def count_bars(self, interval: str | None = None) -> int:
        query = select(func.count(BarRow.id))
        if interval is not None:
            query = query.where(BarRow.interval == interval)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # --- events ----------------------------------------------------------------------------
    def record_event(
        self, kind: str, ticker: str | None, details: dict[str, Any], at: datetime
    ) -> None:
        with self.session() as s:
            s.add(EventRow(kind=kind, ticker=ticker, details=details, at=at))

    def events(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = select(EventRow).order_by(EventRow.at.desc(), EventRow.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(EventRow.kind == kind)
        with self.session() as s:
            return [
                {"kind": e.kind, "ticker": e.ticker, "details": e.details, "at": e.at}
                for e in s.scalars(query)
            ]

    # --- news ------------------------------------------------------------------------------
    def upsert_news(self, items: Sequence[NewsItem], seen_at: datetime) -> list[NewsItem]:
        """Store each story once; return the items that were new (with ``first_seen_at``).

        A story is its normalized title: an item whose title matches a stored story published
        within :data:`STORY_WINDOW` of it is that story (another source, a later refresh, a
        feed that re-dated it) and only adds its tickers; the same title further apart in time
        ("Stocks making the biggest moves midday") is a new story.
        """
        if not items:
            return []
        hashes = {title_hash(item.title) for item in items}
        new_items: list[NewsItem] = []
        with self.session() as s:
            known: dict[str, list[NewsRow]] = {}
            for stored in s.scalars(select(NewsRow).where(NewsRow.title_hash.in_(list(hashes)))):
                known.setdefault(stored.title_hash or "", []).append(stored)
            for item in items:
                th = title_hash(item.title)
                first_seen = item.first_seen_at or seen_at
                row: NewsRow | None = next(
                    (
                        r
                        for r in known.get(th, [])
                        if abs(r.published_at - item.published_at) <= STORY_WINDOW
                    ),
                    None,
                )
                if row is None:
                    row = NewsRow(
                        dedupe_key=story_key(item.title, item.published_at),
                        title_hash=th,
                        url=item.url,
                        title=item.title,
                        summary=item.summary,
                        source=item.source,
                        origin=item.origin,
                        published_at=item.published_at,
                        first_seen_at=first_seen,
                        text_hash=text_hash(item.title),
                    )
                    s.add(row)
                    s.flush()
                    known.setdefault(th, []).append(row)
                    new_items.append(replace(item, first_seen_at=first_seen))
                elif first_seen < row.first_seen_at:
                    row.first_seen_at = first_seen
                if item.tickers:
                    stmt = self._insert(NewsTickerRow).on_conflict_do_nothing()
                    s.execute(stmt, [{"news_id": row.id, "ticker": t} for t in item.tickers])
        return new_items

    def pending_texts(
        self, scorer: str, revision: str, limit: int | None = None
    ) -> list[tuple[str, str]]:
        """(text_hash, text) of stored headlines that this scorer+revision has not scored."""
        query = (
            select(NewsRow.text_hash, func.min(NewsRow.title))
            .outerjoin(
                SentimentRow,
                and_(
                    SentimentRow.text_hash == NewsRow.text_hash,
                    SentimentRow.scorer == scorer,
                    SentimentRow.revision == revision,
                ),
            )
            .where(SentimentRow.id.is_(None))
            .group_by(NewsRow.text_hash)
            .order_by(NewsRow.text_hash)
        )
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [(h, t) for h, t in conn.execute(query).all()]

    def save_scores(
        self, scores: Sequence[SentimentScore], scored_at: datetime | None = None
    ) -> int:
        if not scores:
            return 0
        at = scored_at or datetime.now(UTC)
        records = [
            {
                "text_hash": sc.text_hash,
                "scorer": sc.scorer,
                "revision": sc.revision,
                "label": sc.label,
                "p_positive": sc.p_positive,
                "p_negative": sc.p_negative,
                "p_neutral": sc.p_neutral,
                "score": sc.score,
                "scored_at": at,
            }
            for sc in scores
        ]
        stmt = self._insert(SentimentRow).on_conflict_do_nothing().returning(SentimentRow.id)
        with self.engine.begin() as conn:
            return len(conn.execute(stmt, records).all())

    def count_scores(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count(SentimentRow.id))).scalar_one())

    def headlines(
        self,
        tickers: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Headlines (one row per headline and ticker) with their newest score, newest first."""
        # One score per headline: the newest by a model, else the newest by the fallback.
        # (The fallback re-scoring a headline while FinBERT is briefly unavailable must not
        # hide FinBERT's score of it once FinBERT is back.)
        by_model = func.max(case((SentimentRow.scorer != FALLBACK_SCORER, SentimentRow.id)))
        latest = (
            select(
                SentimentRow.text_hash,
                func.coalesce(by_model, func.max(SentimentRow.id)).label("sid"),
            )
            .group_by(SentimentRow.text_hash)
            .subquery()
        )
        query = (
            select(
                NewsTickerRow.ticker,
                NewsRow.published_at,
                NewsRow.first_seen_at,
                NewsRow.title,
                NewsRow.summary,
                NewsRow.url,
                NewsRow.source,
                NewsRow.text_hash,
                SentimentRow.score,
                SentimentRow.label,
                SentimentRow.scorer,
            )
            .select_from(NewsRow)
            .outerjoin(NewsTickerRow, NewsTickerRow.news_id == NewsRow.id)
            .outerjoin(latest, latest.c.text_hash == NewsRow.text_hash)
            .outerjoin(SentimentRow, SentimentRow.id == latest.c.sid)
            .order_by(NewsRow.published_at.desc(), NewsRow.id.desc())
        )
        if tickers is not None:
            query = query.where(NewsTickerRow.ticker.in_(list(tickers)))
        if since is not None:
            query = query.where(NewsRow.published_at >= since)
        if until is not None:
            query = query.where(NewsRow.published_at <= until)
        if limit is not None:
            query = query.limit(limit)
        with self.session() as s:
            rows = s.execute(query).all()
        columns = [
            "ticker",
            "published_at",
            "first_seen_at",
            "title",
            "summary",
            "url",
            "source",
            "text_hash",
            "score",
            "label",
            "scorer",
        ]
        return pd.DataFrame([tuple(r) for r in rows], columns=columns)

    def count_news(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count(NewsRow.id))).scalar_one())

    def newest_headline_ts(self, tickers: Sequence[str]) -> dict[str, datetime | None]:
        with self.session() as s:
            rows = s.execute(
                select(NewsTickerRow.ticker, func.max(NewsRow.published_at))
                .join(NewsRow, NewsRow.id == NewsTickerRow.news_id)
                .where(NewsTickerRow.ticker.in_(list(tickers)))
                .group_by(NewsTickerRow.ticker)
            ).all()
        # func.max bypasses the column type on some backends: normalize to aware UTC.
        found = {t: _aware(v) for t, v in rows}
        return {t: found.get(t) for t in tickers}

    # --- feed state and request budgets -----------------------------------------------------
    def get_feed_state(self, url: str) -> tuple[str | None, str | None]:
        with self.session() as s:
            row = s.get(FeedStateRow, url)
            return (row.etag, row.last_modified) if row else (None, None)

    def set_feed_state(self, url: str, etag: str | None, last_modified: str | None) -> None:
        stmt = self._insert(FeedStateRow).values(url=url, etag=etag, last_modified=last_modified)
        stmt = stmt.on_conflict_do_update(
            index_elements=["url"], set_={"etag": etag, "last_modified": last_modified}
        )
        with self.session() as s:
            s.execute(stmt)

    def count_requests(self, source: str, day: date) -> int:
        with self.session() as s:
            row = s.get(RequestCountRow, (source, day.isoformat()))
            return row.count if row else 0

    def add_requests(self, source: str, day: date, n: int = 1) -> None:
        stmt = self._insert(RequestCountRow).values(source=source, day=day.isoformat(), count=n)
        stmt = stmt.on_conflict_do_update(
            index_elements=["source", "day"], set_={"count": RequestCountRow.count + n}
        )
        with self.session() as s:
            s.execute(stmt)


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@contextmanager
def open_store(settings: Settings | None = None, *, url: str | None = None) -> Iterator[Store]:
    """Open (and create or migrate, on first use) the store named by the settings or ``url``."""
    target = url or (settings.store_url if settings is not None else None)
    if target is None:
        raise ValueError("open_store needs settings or a url")
    engine = make_engine(target)
    try:
        migrate(engine)
        yield Store(engine)
    finally:
        engine.dispose()
