"""CLI commands of this stage (registered by sentinel42.cli)."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this stage's commands to the root app and the ``bench`` group."""
