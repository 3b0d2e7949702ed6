"""CLI commands for operations (registered by sentinel42.cli).

Each group is its own typer sub-app: ``sentinel42 alerts ...``, ``sentinel42 metrics ...``.
Heavy imports stay inside commands.
"""

from __future__ import annotations

import typer

from sentinel42.cli.common import emit_json, fail, get_settings, user_errors

# --- alerts ------------------------------------------------------------------------------------

alerts_app = typer.Typer(
    help="Alerts: Prefect automations and their notification channels.", no_args_is_help=True
)


@alerts_app.command("install")
def alerts_install(
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Create or update Sentinel42's automations and notification blocks on the Prefect server.

    Idempotent: a second run changes nothing. Talks to the server at PREFECT_API_URL.
    """
    settings = get_settings(require_replay_dir=False)
    with user_errors():
        from sentinel42.ops.alerts import install

        report = install(settings)
    if as_json:
        emit_json(
            {
                "channels": [
                    {"kind": c.kind, "block": c.block_name, "id": str(c.block_document_id)}
                    for c in report.channels
                ],
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "removed": report.removed,
                "automations": {name: str(i) for name, i in report.ids.items()},
            }
        )
        return
    if report.channels:
        channels = ", ".join(f"{c.kind} ({c.block_name})" for c in report.channels)
        typer.echo(f"notification channels: {channels}")
    else:
        typer.echo(
            "no notification channel configured (SENTINEL42_NOTIFY_WEBHOOK_URL, "
            "SENTINEL42_SMTP_HOST): alerts are installed and show in the UI, nothing is sent"
        )
    typer.echo(
        f"alerts: {len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed "
        f"({', '.join(report.ids)})"
    )


# --- metrics -----------------------------------------------------------------------------------

metrics_app = typer.Typer(help="Prometheus metrics of Sentinel42.", no_args_is_help=True)


@metrics_app.command("serve")
def metrics_serve(
    host: str | None = typer.Option(
        None, "--host", help="Listen address (default: SENTINEL42_METRICS_HOST, 127.0.0.1)."
    ),
    port: int | None = typer.Option(
        None,
        "--port",
        min=0,
        max=65535,
        help="Listen port (default: SENTINEL42_METRICS_PORT, 9420); 0 picks a free one.",
    ),
    prefect_api_url: str = typer.Option(
        "http://127.0.0.1:4200/api",
        "--prefect-api-url",
        envvar="PREFECT_API_URL",
        help="Prefect API read at each scrape.",
    ),
    runs_window_hours: float = typer.Option(
        24.0, "--runs-window-hours", min=0.1, max=24 * 90, help="Lookback of the flow-run counts."
    ),
    prefect_timeout: float = typer.Option(
        4.0,
        "--prefect-timeout",
        min=0.1,
        max=60,
        help="Seconds one scrape may spend on the Prefect API.",
    ),
) -> None:
    """Serve /metrics until SIGTERM or SIGINT (the store and Prefect read at scrape time)."""
    from datetime import timedelta

    from sentinel42.ops.metrics import serve

    settings = get_settings(require_replay_dir=False)
    address = (host or settings.metrics_host, settings.metrics_port if port is None else port)
    with user_errors():
        try:
            serve(
                settings,
                host=address[0],
                port=address[1],
                prefect_api_url=prefect_api_url,
                runs_window=timedelta(hours=runs_window_hours),
                prefect_timeout=prefect_timeout,
            )
        except OSError as exc:
            fail(f"cannot listen on {address[0]}:{address[1]}: {exc}", 1)


# --- retention -----------------------------------------------------------------------------------


def prune(
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Delete bars, headlines and model versions past their retention settings."""
    from sentinel42.clock import resolve_as_of
    from sentinel42.ops.retention import prune_store
    from sentinel42.persistence.db import require_existing

    settings = get_settings()
    with user_errors():
        require_existing(settings.store_url)  # nothing to prune in a store that is not there
        report = prune_store(settings, resolve_as_of(settings))
    if as_json:
        emit_json(report)
        return
    typer.echo(
        f"deleted {report['bars_deleted']} bars before {report['bars_cutoff']}, "
        f"{report['daily_bars_deleted']} daily bars before {report['daily_bars_cutoff']}, "
        f"{report['news_deleted']} headlines before {report['news_cutoff']} "
        f"({report['scores_deleted']} scores), "
        f"{len(report['models_deleted'])} model versions"
    )
    if report["held_for_decision"]:
        typer.echo(f"bars kept from {report['held_for_decision']}: a decision there is unscored")


# --- registration ------------------------------------------------------------------------------


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the operations groups to the root app."""
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(metrics_app, name="metrics")
    app.command("prune")(prune)
