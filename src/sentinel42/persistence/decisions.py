"""Predictions and decisions: what the model said and what was decided, per ticker and bar.

A prediction is idempotent on ``(ticker, bar_ts, model_version)``. A decision is keyed by
``(ticker, bar_ts, run_id)``: the first run to decide a ticker and bar records the standing
decision (revision 0), which nothing rewrites; a later run (say a forced one on a weekend, at
Friday's last bar) adds revision 1, 2, ... beside it; the same run saving again (a retry)
changes nothing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Connection, Engine, and_, bindparam, func, or_, select
from sqlalchemy.orm import aliased

from sentinel42.domain import Action, Decision, Prediction
from sentinel42.persistence.tables import DecisionRow, PredictionRow

# Each lost race for a revision number means another run committed a decision for that bar, so
# the attempts needed grow with the runs writing the same bar at once (PostgreSQL; SQLite has one
# writer at a time), not with time. More losses than this mean something else is wrong.
_NUMBERING_ATTEMPTS = 20
_RUN_ID_MAX = 64  # DecisionRow.run_id's length
# Test-only, off unless set: a FIFO the decision write reads after its first row, so
# tests/e2e/test_restart.py can kill a run in the middle of the transaction.
HOLD_DECISIONS_ENV = "SENTINEL42_TEST_HOLD_DECISIONS"
_DECISION_VALUES = ("action", "confidence", "reason", "inputs", "models", "decided_at", "forced")

_DECISION_COLUMNS = (
    DecisionRow.ticker,
    DecisionRow.bar_ts,
    DecisionRow.action,
    DecisionRow.confidence,
    DecisionRow.reason,
    DecisionRow.inputs,
    DecisionRow.models,
    DecisionRow.decided_at,
    DecisionRow.revision,
    DecisionRow.run_id,
)


def _decision(r: Any) -> Decision:
    """A :class:`Decision` from a row of ``_DECISION_COLUMNS``."""
    return Decision(
        ticker=r.ticker,
        bar_ts=r.bar_ts,
        action=Action(r.action),
        confidence=r.confidence,
        reason=r.reason,
        inputs=r.inputs,
        models=r.models,
        decided_at=r.decided_at,
        revision=r.revision,
        run_id=r.run_id,
    )


@dataclass(frozen=True, slots=True)
class SavedDecisions:
    """What one :meth:`DecisionStore.save_decisions` call stored."""

    standing: int = 0  # new revision-0 rows: the first decision for their ticker and bar
    revisions: int = 0  # new rows beside a standing decision (revision >= 1)
    unchanged: int = 0  # already stored for this run_id (a retry): nothing written


class DecisionStore:
    """The predictions and decisions part of :class:`~sentinel42.persistence.store.Store`."""

    engine: Engine
    _insert: Callable[..., Any]  # the dialect's insert (for ON CONFLICT)

    def save_predictions(self, predictions: Sequence[Prediction], created_at: datetime) -> int:
        if not predictions:
            return 0
        records = [
            {
                "ticker": p.ticker,
                "bar_ts": p.bar_ts,
                "model_version": p.model_version,
                "p_up": float(p.p_up),
                "expected_return": float(p.expected_return),
                "model_accuracy": p.model_accuracy,
                "horizon_bars": p.horizon_bars,
                "created_at": created_at,
            }
            for p in predictions
        ]
        stmt = self._insert(PredictionRow).on_conflict_do_nothing().returning(PredictionRow.id)
        with self.engine.begin() as conn:
            return len(conn.execute(stmt, records).all())

    def save_decisions(
        self, decisions: Sequence[Decision], *, forced: bool = False, run_id: str | None = None
    ) -> SavedDecisions:
        """Record one run's decisions; never rewrite a stored one.

        The first decision for a ticker and bar stands (revision 0). A decision for the same bar
        from another run is stored beside it as the next revision; one already stored for this
        ``run_id`` is left as it is, so a retried run changes nothing. ``forced`` is stored on
        each new row. The decisions' own ``revision`` and ``run_id`` are ignored: the store
        numbers them.

        Args:
            decisions: At most one per ticker and bar.
            forced: The run bypassed the market gate.
            run_id: The run's id (the Prefect flow-run id); ``None`` makes a fresh one, so the
                call counts as a new run.

        Raises:
            ValueError: ``run_id`` is empty or longer than 64 characters, or a decision has no
                ``decided_at`` (the store does not read the clock); nothing of the batch is
                stored.
        """
        if run_id is None:
            run_id = str(uuid.uuid4())
        if not run_id or len(run_id) > _RUN_ID_MAX:
            raise ValueError(f"run_id must be 1 to {_RUN_ID_MAX} characters, got {run_id!r}")
        for d in decisions:
            if d.decided_at is None:
                raise ValueError(
                    f"decision for {d.ticker} at {d.bar_ts.isoformat()} has no decided_at: "
                    "the caller records when it decided (the store has no clock)"
                )
        standing = revisions = unchanged = 0
        insert, stored_for_run = self._decision_statements()
        with self.engine.begin() as conn:
            # One order for every writer: concurrent runs wait on each other's rows, never in
            # a cycle (a deadlock).
            for i, d in enumerate(sorted(decisions, key=lambda d: (d.ticker, d.bar_ts))):
                revision = self._insert_decision(
                    conn, insert, stored_for_run, d, forced=forced, run_id=run_id
                )
                if i == 0 and os.environ.get(HOLD_DECISIONS_ENV):
                    with open(os.environ[HOLD_DECISIONS_ENV], "rb") as hold:
                        hold.read()
                if revision is None:
                    unchanged += 1
                elif revision == 0:
                    standing += 1
                else:
                    revisions += 1
        return SavedDecisions(standing=standing, revisions=revisions, unchanged=unchanged)

    def _decision_statements(self) -> tuple[Any, Any]:
        """The insert of the next revision and the lookup of this run's row, with bound
        parameters: built once per call and executed per decision (building them per decision
        cost 2 ms each)."""
        prior = aliased(DecisionRow)
        ticker: BindParameter[Any] = bindparam("p_ticker")
        bar_ts: BindParameter[Any] = bindparam("p_bar_ts")
        run_id: BindParameter[Any] = bindparam("p_run")
        # The revision number is computed in the INSERT itself, so the read and the write
        # are one statement (on SQLite it takes the write lock: the number cannot go stale).
        next_revision = (
            select(func.coalesce(func.max(prior.revision) + 1, 0))
            .where(prior.ticker == ticker, prior.bar_ts == bar_ts)
            .scalar_subquery()
        )
        insert = (
            self._insert(DecisionRow)
            .values(
                ticker=ticker,
                bar_ts=bar_ts,
                run_id=run_id,
                revision=next_revision,
                **{c: bindparam(f"p_{c}") for c in _DECISION_VALUES},
            )
            .on_conflict_do_nothing()  # any unique key: (bar, revision) or (bar, run_id)
            .returning(DecisionRow.revision)
        )
        stored_for_run = select(DecisionRow.revision).where(
            DecisionRow.ticker == ticker,
            DecisionRow.bar_ts == bar_ts,
            DecisionRow.run_id == run_id,
        )
        return insert, stored_for_run

    @staticmethod
    def _insert_decision(
        conn: Connection,
        insert: Any,
        stored_for_run: Any,
        d: Decision,
        *,
        forced: bool,
        run_id: str,
    ) -> int | None:
        """Insert ``d`` as the next revision of its bar: its revision, or None if already stored.

        Under PostgreSQL a concurrent writer may take the same number first: the insert then
        does nothing, and unless this run's row is what is there, it numbers again.
        """
        key = {"p_ticker": d.ticker, "p_bar_ts": d.bar_ts, "p_run": run_id}
        values = {
            "p_action": d.action.value,
            "p_confidence": float(d.confidence),
            "p_reason": d.reason,
            "p_inputs": d.inputs,
            "p_models": d.models,
            "p_decided_at": d.decided_at,
            "p_forced": forced,
        }
        for _ in range(_NUMBERING_ATTEMPTS):
            revision = conn.execute(insert, key | values).scalar_one_or_none()
            if revision is not None:
                return int(revision)
            if conn.execute(stored_for_run, key).scalar_one_or_none() is not None:
                return None
        raise RuntimeError(
            f"{d.ticker} at {d.bar_ts.isoformat()}: lost the race for a revision number "
            f"{_NUMBERING_ATTEMPTS} times in a row"
        )

    def decisions(
        self, ticker: str | None = None, limit: int = 50, *, all_revisions: bool = False
    ) -> list[Decision]:
        """Stored decisions, newest bar first.

        Args:
            ticker: Only this ticker.
            limit: At most this many.
            all_revisions: Every revision, ordered by bar (newest first), ticker and revision;
                by default only the standing decision (revision 0) per ticker and bar.
        """
        query = select(*_DECISION_COLUMNS).order_by(DecisionRow.bar_ts.desc(), DecisionRow.ticker)
        if all_revisions:
            query = query.order_by(DecisionRow.revision)
        else:
            query = query.where(DecisionRow.revision == 0)
        if ticker is not None:
            query = query.where(DecisionRow.ticker == ticker)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [_decision(r) for r in rows]

    def standing_decided(self, after: datetime, until: datetime) -> list[Decision]:
        """Standing decisions (revision 0) decided in ``(after, until]``, oldest bar first.

        Filtered in SQL on the decision clock, so the portfolio's step reads only what is new
        to it, however long the history.
        """
        query = (
            select(*_DECISION_COLUMNS)
            .where(
                DecisionRow.revision == 0,
                DecisionRow.decided_at > after,
                DecisionRow.decided_at <= until,
            )
            .order_by(DecisionRow.bar_ts, DecisionRow.ticker)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_decision(r) for r in rows]

    def standing_before(self, bars: Mapping[str, datetime]) -> dict[str, Decision]:
        """Each ticker's newest standing decision for a bar before its own bar, in one query.

        The fusion's hysteresis reads the position the previous bar left from it. Revisions are
        ignored: they never move the position (the portfolio trades standing decisions only).

        Args:
            bars: ticker -> the bar about to be decided (UTC, tz-aware).

        Returns:
            ticker -> its decision; a ticker without an earlier standing decision is absent.
        """
        if not bars:
            return {}
        # One clause per distinct bar (the watchlist mostly shares one), not one per ticker: a
        # universe-sized OR would exceed SQLite's expression depth.
        by_bar: dict[datetime, list[str]] = {}
        for ticker, bar_ts in bars.items():
            by_bar.setdefault(bar_ts, []).append(ticker)
        newest_first = (
            func.row_number()
            .over(partition_by=DecisionRow.ticker, order_by=DecisionRow.bar_ts.desc())
            .label("newest_first")
        )
        earlier = (
            select(*_DECISION_COLUMNS, newest_first)
            .where(DecisionRow.revision == 0)
            .where(
                or_(
                    *(
                        and_(DecisionRow.ticker.in_(tickers), DecisionRow.bar_ts < bar_ts)
                        for bar_ts, tickers in by_bar.items()
                    )
                )
            )
            .subquery()
        )
        query = select(earlier).where(earlier.c.newest_first == 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {r.ticker: _decision(r) for r in rows}

    def count_decisions(self, *, all_revisions: bool = False) -> int:
        """Standing decisions (one per ticker and bar), or every revision."""
        query = select(func.count(DecisionRow.id))
        if not all_revisions:
            query = query.where(DecisionRow.revision == 0)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
