"""``sentinel42 backup`` and ``sentinel42 restore`` (registered by sentinel42.cli).

Both call the plain functions of :mod:`sentinel42.ops.backup`, as the backup deployment does.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sentinel42.cli.common import emit_json, get_settings, user_errors


def backup_command(
    to: Path | None = typer.Option(
        None,
        "--to",
        help="Folder of the backup sets (default: SENTINEL42_BACKUP_DIR, <data dir>/backups).",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Back up the store, the model registry and Prefect's SQLite database, consistently while
    the flows run; keep the newest SENTINEL42_BACKUP_KEEP sets.
    """
    from datetime import UTC, datetime

    from sentinel42.ops.backup import backup

    settings = get_settings()
    with user_errors():
        # A backup is named by when it was made: the wall clock, even in replay mode (the
        # replay clock stands still, so every backup would get the same name).
        report = backup(settings, datetime.now(UTC), to)
    if as_json:
        emit_json(report)
        return
    size_mb = report["store_bytes"] / 1e6
    typer.echo(
        f"backup {report['stamp']} in {report['dir']}: {report['store'].name} ({size_mb:.1f} MB, "
        f"sha256 {report['sha256'][:12]}...)"
        + "".join(f", {report[k].name}" for k in ("models", "prefect") if report[k] is not None)
    )
    for note in report["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(f"{report['kept']} sets kept, {len(report['deleted'])} old files deleted")


def restore_command(
    file: Path = typer.Argument(..., help="A sentinel42-<stamp>.db of a backup set."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Replace the store with a backup (checksum and integrity checked first); the replaced
    store is kept beside it. Stop the flows first (`make prefect-stop`): a process that had the
    store open fails at its next write.
    """
    from sentinel42.ops.backup import restore, running_prefect, sqlite_store

    settings = get_settings()
    with user_errors():
        target = sqlite_store(settings, "restore")
        if not yes and not running_prefect(settings):
            typer.confirm(
                f"Replace the store {target} with {file}? The current file is kept beside it",
                abort=True,
            )
        report = restore(settings, file)
    if as_json:
        emit_json(report)
        return
    if report["created"]:
        typer.echo(f"created a new store at {report['restored']}")
    typer.echo(f"restored {report['restored']} from {report['from']} (schema {report['revision']})")
    if report["replaced"] is not None:
        typer.echo(f"the replaced store is kept as {report['replaced']}")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``backup`` and ``restore`` to the root app."""
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)
