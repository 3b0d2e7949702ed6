"""Leg health: the live monitor of each fusion leg, per model version, per validate run.

A row is keyed ``(leg, version, as_of)``: a retried or repeated run with the same ``as_of``
rewrites its own row (nothing duplicated), and the newest row of a ``(leg, version)`` says
whether that leg is degraded now. A version with no row (a newly promoted model) is healthy.
Legs: ``direction`` (the LSTM), ``ranking_<kind>``, ``news``. All datetimes are tz-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from sentinel42.persistence.tables import LegHealthRow, ModelHealthRow

if TYPE_CHECKING:
    from sentinel42.persistence.store import Store


@dataclass(frozen=True, slots=True)
class LegHealth:
    """One leg's monitor after the validate run at ``as_of`` (``figures``: JSON-able numbers)."""

    leg: str
    version: str
    as_of: datetime
    tested: bool
    degraded: bool
    sessions: int
    figures: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def save_leg_health(store: Store, health: LegHealth) -> None:
    """Upsert on ``(leg, version, as_of)``: the same run saved twice leaves one row."""
    t = LegHealthRow
    values = {
        "tested": health.tested, "degraded": health.degraded, "sessions": health.sessions,
        "figures": health.figures, "note": health.note,
    }  # fmt: skip
    stmt = store._insert(t).values(leg=health.leg, version=health.version, as_of=health.as_of,
                                   **values)  # fmt: skip
    stmt = stmt.on_conflict_do_update(
        index_elements=["leg", "version", "as_of"], set_={c: stmt.excluded[c] for c in values}
    )
    with store.session() as s:
        s.execute(stmt)


def latest_leg_health(
    store: Store, leg: str, version: str, *, before: datetime | None = None
) -> LegHealth | None:
    """The newest row of ``(leg, version)`` (with ``as_of < before`` when given), or None."""
    t = LegHealthRow
    query = select(t).where(t.leg == leg, t.version == version)
    if before is not None:
        query = query.where(t.as_of < before)
    with store.session() as s:
        row = s.scalars(query.order_by(t.as_of.desc()).limit(1)).first()
        return None if row is None else _health(row)


def leg_history(store: Store, leg: str, version: str) -> list[LegHealth]:
    """Every row of ``(leg, version)``, oldest run first."""
    t = LegHealthRow
    query = select(t).where(t.leg == leg, t.version == version).order_by(t.as_of)
    with store.session() as s:
        return [_health(r) for r in s.scalars(query)]


def _health(row: LegHealthRow) -> LegHealth:
    return LegHealth(
        leg=row.leg, version=row.version, as_of=row.as_of, tested=bool(row.tested),
        degraded=bool(row.degraded), sessions=row.sessions, figures=dict(row.figures),
        note=row.note,
    )  # fmt: skip


def is_leg_degraded(store: Store, leg: str, version: str) -> bool:
    """Whether the newest monitor of this leg's version found it degraded."""
    health = latest_leg_health(store, leg, version)
    return bool(health and health.degraded)


def mirror_model_health(
    store: Store, version: str, *, degraded: bool, live_hits: int, live_n: int,
    validated_accuracy: float | None, at: datetime,
) -> None:  # fmt: skip
    """Keep ``model_health`` (read by ``status``, the metrics and the dashboard) in step with
    the direction leg's monitor, recovery included (the ledger's own upsert never clears
    ``degraded``; that rule predates recovery)."""
    t = ModelHealthRow
    values = {"degraded": degraded, "live_hits": live_hits, "live_n": live_n,
              "validated_accuracy": validated_accuracy, "threshold": None, "p_value": None,
              "at": at}  # fmt: skip
    stmt = store._insert(t).values(model_version=version, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["model_version"], set_={c: stmt.excluded[c] for c in values}
    )
    with store.session() as s:
        s.execute(stmt)
