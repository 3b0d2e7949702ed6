"""Sentinel42's Prefect flows: thin wiring of tasks from ``sentinel42.tasks``.

Debug the trading path without a server: ``cd flows && uv run python sentinel_flows.py``
(runs a forced trading flow in-process against the configured data source).

Every flow has a timeout, so a hung run ends (TimedOut, which alerts) instead of holding its
deployment's slot; an error that retrying cannot fix skips the flow's retries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from sentinel42.settings import load_settings
from sentinel42.tasks import (
    RANKING_KINDS,
    backup_task,
    check_store_task,
    current_model_task,
    decide_task,
    market_gate_task,
    permanent_errors_skip_flow_retries,
    prune_task,
    publish_dashboard_task,
    publish_decisions_task,
    publish_ranking_report_task,
    publish_validate_report_task,
    ranking_outcomes,
    refresh_news_task,
    refresh_prices_task,
    require_usable_data_task,
    resolve_as_of_task,
    score_sentiment_task,
    summarize_refresh_task,
    train_model_task,
    train_ranking_task,
    update_portfolio_task,
    validate_task,
    validation_gate_task,
)

MINUTE = 60


@flow(name="data-refresh-flow", retries=2, retry_delay_seconds=30, timeout_seconds=10 * MINUTE)
def data_refresh_flow(as_of: datetime | None = None) -> dict[str, Any]:
    """Prices, then news, then sentiment, for the whole watchlist.

    ``as_of`` is the calling trading run's clock, so the headlines this refresh stores count in
    that run's decision; a scheduled refresh (no ``as_of``) reads the clock itself.
    """
    with permanent_errors_skip_flow_retries():
        settings = load_settings()
        as_of = as_of or resolve_as_of_task(settings)
        prices = refresh_prices_task(settings, as_of)
        news = refresh_news_task(settings, as_of)
        scoring = score_sentiment_task(settings, as_of)
        return summarize_refresh_task(prices, news, scoring, as_of).to_dict()


@flow(name="trading-flow", retries=1, retry_delay_seconds=60, timeout_seconds=15 * MINUTE)
def trading_flow(force: bool = False) -> dict[str, Any]:
    """Inside an NYSE session (or with force=true): refresh, predict, fuse, decide."""
    with permanent_errors_skip_flow_retries():
        settings = load_settings()
        as_of = resolve_as_of_task(settings)
        gate = market_gate_task(settings, as_of, force)
        if not gate.proceed:
            return {"as_of": as_of.isoformat(), "skipped": gate.reason, "decisions": []}
        check_store_task(settings)  # never write into a corrupted store
        # One clock for the whole run; the trading run's own retry covers the refresh.
        refresh = data_refresh_flow.with_options(retries=0)(as_of=as_of)
        # No usable bars for any ticker fails the run (after its retry); a partial failure
        # decides on the rest and names the failed tickers.
        require_usable_data_task(refresh["no_usable_data"])
        result = decide_task(settings, as_of, force)
        portfolio = update_portfolio_task(settings, as_of)
        document = publish_decisions_task(result)
        # The dashboard is for people: a chart that fails to draw must not fail the decisions.
        publish_dashboard_task(settings, as_of, document, portfolio, return_state=True)
        return document | {
            "portfolio": portfolio.to_dict(),
            "failed_tickers": refresh["failed_tickers"],
        }


@flow(name="validate-flow", retries=1, retry_delay_seconds=60, timeout_seconds=15 * MINUTE)
def validate_flow(force: bool = False) -> dict[str, Any]:
    """After the close (or with force=true): score past decisions against what the price did,
    and zero a decaying model's weight."""
    with permanent_errors_skip_flow_retries():
        settings = load_settings()
        as_of = resolve_as_of_task(settings)
        gate = validation_gate_task(settings, as_of, force)
        if not gate.proceed:
            return {"as_of": as_of.isoformat(), "skipped": gate.reason}
        report = validate_task(settings, as_of)
        publish_validate_report_task(settings, report, return_state=True)
        return report.to_dict()


@flow(name="model-training-flow", retries=1, retry_delay_seconds=300, timeout_seconds=90 * MINUTE)
def model_training_flow() -> dict[str, Any]:
    """Weekly: train the intraday and the daily ranking model over the universe, each gated and
    reported on its own; a kind the data cannot train does not stop the other."""
    with permanent_errors_skip_flow_retries():
        settings = load_settings()
        as_of = resolve_as_of_task(settings)
        trained = {}
        for kind in RANKING_KINDS:
            trained[kind] = train_ranking_task(settings, kind, as_of, return_state=True)
            if trained[kind].is_completed():
                # The report is for people: a chart that fails to draw must not fail the model.
                publish_ranking_report_task(kind, trained[kind].result(), return_state=True)
        return ranking_outcomes(as_of, trained)


@flow(name="backup-flow", retries=1, retry_delay_seconds=300, timeout_seconds=60 * MINUTE)
def backup_flow() -> dict[str, Any]:
    """Daily: a backup of the store, the models and Prefect's database (keeping the newest N),
    then bars, headlines and model versions past their retention are pruned."""
    with permanent_errors_skip_flow_retries():
        settings = load_settings()
        backup = backup_task(settings)
        pruned = prune_task(settings, resolve_as_of_task(settings))
        return {"backup": backup, "pruned": pruned}


@flow(name="full-system-flow", timeout_seconds=120 * MINUTE)
def full_system_flow() -> dict[str, Any]:
    """Bootstrap: full refresh, a model if there is none, and a first (forced) decision."""
    settings = load_settings()
    refresh = data_refresh_flow()
    if current_model_task(settings) is None:
        training = train_model_task(settings, resolve_as_of_task(settings))
        get_run_logger().info("model training: %s", training.get("reason"))
    trading = trading_flow(force=True)
    return {"refresh": refresh, "trading": trading}


if __name__ == "__main__":
    import json

    print(json.dumps(trading_flow(force=True), indent=2, default=str))
