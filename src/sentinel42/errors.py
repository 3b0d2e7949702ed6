"""Exception hierarchy: every error says whether retrying can help.

``ConfigError`` stops start-up and is shown to the user as one line. ``TemporarySourceError``
is the only family that Prefect retries (see ``sentinel42.tasks.retry_if_temporary``).
"""

from __future__ import annotations


class Sentinel42Error(Exception):
    """Root of every error Sentinel42 raises on purpose."""

    retryable: bool = False


class ConfigError(Sentinel42Error):
    """A setting is missing or invalid. Fix the configuration; retrying will not help."""


class SourceError(Sentinel42Error):
    """An outside data source (prices, news) failed."""


class TemporarySourceError(SourceError):
    """Network trouble, a timeout, a rate limit: the same call may work later."""

    retryable = True


class PermanentSourceError(SourceError):
    """A bad symbol, an invalid API key, an unparseable payload: retrying will not help."""


class DataError(Sentinel42Error):
    """Stored or received data breaks an invariant (schema, ordering, look-ahead)."""


class ModelError(Sentinel42Error):
    """A model cannot be trained, loaded or used (missing checkpoint, mismatched spec)."""


class StoreError(Sentinel42Error):
    """The store cannot be opened, read or written; the message names it and what to do.

    Attributes:
        kind: ``missing``, ``driver``, ``unreachable``, ``read-only``, ``locked``, ``full``,
            ``corrupt``, ``schema`` or ``other``.
        retryable: True where waiting can help (``locked``, ``unreachable``).
    """

    def __init__(self, message: str, *, kind: str = "other", retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


def is_retryable(exc: BaseException) -> bool:
    """True when ``exc`` (or the error it wraps) is worth retrying."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, Sentinel42Error):
            return current.retryable
        current = current.__cause__
    # Unknown failures (bugs, OS errors) in I/O tasks: retry, the flow's budget bounds it.
    return not isinstance(exc, (ValueError, TypeError, KeyError, AttributeError))
