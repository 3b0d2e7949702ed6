"""Helpers every CLI command shares: settings with one-line errors, JSON on stdout, logs on stderr.

Every ``--json`` prints exactly one JSON document on stdout (or JSON lines where a command says
so); progress, logs and warnings go to stderr, so scripts can parse stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import typer

from sentinel42.errors import ConfigError, Sentinel42Error, StoreError
from sentinel42.settings import Settings, load_settings


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, datetimes, enums, paths and numpy scalars to JSON-able values."""
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(document), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit_json_line(document: Any) -> None:
    """Print one line of a JSON-lines stream on stdout."""
    emit_json(document)


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, no traceback, then exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def get_settings(*, require_replay_dir: bool = True, **overrides: Any) -> Settings:
    """Load settings for a CLI command; a bad value exits with one line naming the setting."""
    try:
        return load_settings(require_replay_dir=require_replay_dir, **overrides)
    except ConfigError as exc:
        fail(str(exc))


# Store errors that are the caller's to fix before anything can run: exit 2, like a bad setting.
_STORE_SETUP_KINDS = frozenset({"missing", "driver", "schema"})


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn Sentinel42's own errors, and store failures, into one line on stderr and an exit.

    Exit 2: a bad setting, no store where one was expected, a missing driver, a schema this
    code cannot read. Exit 1: any other error of Sentinel42's (the store read-only, locked,
    full, corrupted or unreachable included).
    """
    try:
        yield
    except ConfigError as exc:
        fail(str(exc), 2)
    except StoreError as exc:
        fail(str(exc), 2 if exc.kind in _STORE_SETUP_KINDS else 1)
    except Sentinel42Error as exc:
        fail(str(exc), 1)
    except Exception as exc:
        # A driver or OS error that escaped the store's own translation (open_store does it).
        from sentinel42.persistence.failures import translate

        translated = translate(exc, None) if _from_store(exc) else None
        if translated is None:
            raise
        fail(str(translated), 2 if translated.kind in _STORE_SETUP_KINDS else 1)


def _from_store(exc: BaseException) -> bool:
    """True for SQLAlchemy's errors (an OSError may come from anything: left alone here)."""
    return type(exc).__module__.startswith("sqlalchemy")


def setup_logging(verbose: bool = False) -> None:
    """Package logs to stderr (never stdout, which belongs to --json)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "urllib3", "yfinance", "peewee", "filelock", "alembic", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
