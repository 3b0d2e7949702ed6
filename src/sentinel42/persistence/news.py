"""Headlines, their sentiment scores, feed state and request budgets: the news part of the Store.

A story is stored once, keyed by its normalized title and first publication day; a score once per
``(text_hash, scorer, revision)``. Writes are idempotent and safe with concurrent writers
(``ON CONFLICT`` on the natural keys), so a retried or parallel refresh changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, and_, case, func, select
from sqlalchemy.orm import Session

from sentinel42.domain import (
    FALLBACK_SCORER,
    STORY_WINDOW,
    NewsItem,
    SentimentScore,
    story_key,
    text_hash,
    title_hash,
)
from sentinel42.persistence.tables import (
    FeedStateRow,
    NewsRow,
    NewsTickerRow,
    RequestCountRow,
    SentimentRow,
)


class NewsStore:
    """The news part of :class:`~sentinel42.persistence.store.Store`."""

    engine: Engine
    _insert: Callable[..., Any]  # the dialect's insert (for ON CONFLICT)
    session: Callable[[], AbstractContextManager[Session]]

    # --- news ------------------------------------------------------------------------------
    def upsert_news(self, items: Sequence[NewsItem], seen_at: datetime) -> list[NewsItem]:
        """Store each story once; return the items that were new (with ``first_seen_at``).

        A story is its normalized title: an item whose title matches a stored story published
        within :data:`STORY_WINDOW` of it is that story (another source, a later refresh, a
        feed that re-dated it) and only adds its tickers; the same title further apart in time
        ("Stocks making the biggest moves midday") is a new story.

        Safe with concurrent writers: a story is inserted with ``ON CONFLICT DO NOTHING`` on its
        key and read back, so a story another process stored meanwhile is joined, not
        duplicated, and is not new here. (Two processes storing the same story under
        different publication days at the same moment may still keep it twice.) Stories are
        written in the order of their keys whatever the order of ``items``, so concurrent
        writers on PostgreSQL wait for each other instead of deadlocking.
        """
        if not items:
            return []
        hashes = {title_hash(item.title) for item in items}
        new_items: dict[int, NewsItem] = {}  # by position in ``items``
        # One order for every writer (stories by key, tickers sorted): a writer waits on another
        # one's uncommitted story or ticker link with the same key until that one commits, so two
        # writers meeting the same stories in different orders (two feeds) would each wait for
        # the other (PostgreSQL then aborts one: "deadlock detected").
        order = sorted(
            range(len(items)),
            key=lambda i: (story_key(items[i].title, items[i].published_at), items[i].published_at),
        )
        with self.session() as s:
            known: dict[str, list[NewsRow]] = {}
            for stored in s.scalars(select(NewsRow).where(NewsRow.title_hash.in_(list(hashes)))):
                known.setdefault(stored.title_hash or "", []).append(stored)
            for index in order:
                item = items[index]
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
                    row, inserted = self._insert_story(s, item, th, first_seen)
                    known.setdefault(th, []).append(row)
                    if inserted:
                        new_items[index] = replace(item, first_seen_at=first_seen)
                    elif first_seen < row.first_seen_at:
                        row.first_seen_at = first_seen
                elif first_seen < row.first_seen_at:
                    row.first_seen_at = first_seen
                if item.tickers:
                    stmt = self._insert(NewsTickerRow).on_conflict_do_nothing()
                    links = [{"news_id": row.id, "ticker": t} for t in sorted(set(item.tickers))]
                    s.execute(stmt, links)
        return [new_items[i] for i in sorted(new_items)]

    def _insert_story(
        self, s: Session, item: NewsItem, th: str, first_seen: datetime
    ) -> tuple[NewsRow, bool]:
        """Insert a story unless its key is stored (by another process meanwhile); read it back."""
        key = story_key(item.title, item.published_at)
        stmt = (
            self._insert(NewsRow)
            .values(
                dedupe_key=key,
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
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(NewsRow.id)
        )
        inserted = s.execute(stmt).scalar_one_or_none() is not None
        row = s.scalars(select(NewsRow).where(NewsRow.dedupe_key == key)).one()
        return row, inserted

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

    def unscored_headlines(
        self, tickers: Sequence[str], *, seen_by: datetime, since: datetime, until: datetime
    ) -> list[tuple[str, str]]:
        """(text_hash, text) of headlines of ``tickers`` first seen by ``seen_by`` and published
        in ``[since, until]`` that no scorer has scored: what a decision at ``seen_by`` would
        silently leave out."""
        scored = select(SentimentRow.id).where(SentimentRow.text_hash == NewsRow.text_hash)
        query = (
            select(NewsRow.text_hash, func.min(NewsRow.title))
            .join(NewsTickerRow, NewsTickerRow.news_id == NewsRow.id)
            .where(
                NewsTickerRow.ticker.in_(list(tickers)),
                NewsRow.first_seen_at <= seen_by,
                NewsRow.published_at >= since,
                NewsRow.published_at <= until,
                ~scored.exists(),
            )
            .group_by(NewsRow.text_hash)
            .order_by(NewsRow.text_hash)
        )
        with self.engine.connect() as conn:
            return [(h, t) for h, t in conn.execute(query).all()]

    def save_scores(self, scores: Sequence[SentimentScore], as_of: datetime) -> int:
        """Store each score once per ``(text_hash, scorer, revision)``, stamped ``as_of`` (the
        run's clock); return how many rows this call inserted. A score another process stored
        first is kept as it is and not counted: the save is idempotent, and 0 means "already
        stored", not "failed"."""
        if not scores:
            return 0
        at = as_of
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
