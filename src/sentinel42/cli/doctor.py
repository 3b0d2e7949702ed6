"""``sentinel42 doctor``: settings, data folder, store, migrations, model, Prefect server."""

from __future__ import annotations

import typer

from sentinel42.cli.common import emit_json


def doctor(
    prefect_api_url: str | None = typer.Option(
        None,
        "--prefect-api-url",
        envvar="PREFECT_API_URL",
        help="The Prefect API to ask for /health (default http://127.0.0.1:4200/api).",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Check the installation; one line per check (OK, WARN, FAIL) with what to do.

    Only reads: the store is opened read-only (never created or migrated). Exit 1 when any check
    fails, else 0 (warnings included).
    """
    from sentinel42.ops.doctor import run_checks
    from sentinel42.ops.metrics import DEFAULT_PREFECT_API_URL

    checks = run_checks(prefect_api_url or DEFAULT_PREFECT_API_URL)
    failed = any(c.status == "FAIL" for c in checks)
    if as_json:
        emit_json(
            {
                "ok": not failed,
                "checks": [
                    {"name": c.name, "status": c.status, "message": c.message} for c in checks
                ],
            }
        )
    else:
        for c in checks:
            typer.echo(f"{c.status:<4}  {c.name:<10}  {c.message}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add ``doctor`` to the root app."""
    app.command("doctor")(doctor)
