"""The pipeline clock: the one place that decides what "now" is for a run.

Everything below takes ``as_of`` as an input; only the flow entry (through the task wrapper), the
CLI and the benchmarks call :func:`resolve_as_of`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sentinel42.settings import Settings


def resolve_as_of(settings: Settings, now: datetime | None = None) -> datetime:
    """The wall clock live; the replay clock (or the data's end) in replay."""
    if settings.data_source == "replay":
        if settings.replay_as_of is not None:
            return settings.replay_as_of.astimezone(UTC)
        from sentinel42.factory import build_price_source

        end = build_price_source(settings).data_end()
        if end is not None:
            return end.astimezone(UTC)
    return (now or datetime.now(UTC)).astimezone(UTC)
