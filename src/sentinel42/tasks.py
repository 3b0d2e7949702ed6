"""Prefect task wrappers: a few lines each around one plain function of ``sentinel42.pipeline``.

Only this module and ``flows/`` import Prefect. Retries sit on the I/O tasks and fire only for
errors that say retrying can help (:func:`sentinel42.errors.is_retryable`).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from sentinel42 import pipeline
from sentinel42.errors import is_retryable
from sentinel42.settings import Settings

NO_DATA_EVENT = "sentinel42.refresh.no-data"
DECISIONS_EVENT = "sentinel42.decisions.recorded"
MODEL_DEGRADED_EVENT = "sentinel42.model.degraded"


def retry_if_temporary(_task: Any, _task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only what may succeed later."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as error:  # the result itself could not be read: be conservative
        logging.getLogger(__name__).debug("could not read failed state: %s", error)
        return True
    return not isinstance(exc, BaseException) or is_retryable(exc)


IO_RETRIES = 2
IO_RETRY_DELAYS: list[float] = [10, 30]


@task(name="resolve-clock", cache_policy=NO_CACHE)
def resolve_as_of_task(settings: Settings) -> datetime:
    return pipeline.resolve_as_of(settings)


@task(
    name="refresh-prices",
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_if_temporary,
)
def refresh_prices_task(settings: Settings, as_of: datetime) -> Any:
    report = pipeline.refresh_prices(settings, as_of, progress=get_run_logger().info)
    if report.no_data:
        emit_event(
            event=NO_DATA_EVENT,
            resource={"prefect.resource.id": "sentinel42.watchlist"},
            payload={"as_of": as_of.isoformat(), "tickers": list(settings.tickers)},
        )
        get_run_logger().warning("no new bars for any ticker during the session at %s", as_of)
    return report


@task(
    name="refresh-news",
    cache_policy=NO_CACHE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=retry_if_temporary,
)
def refresh_news_task(settings: Settings, as_of: datetime) -> Any:
    return pipeline.refresh_news(settings, as_of)


@task(name="score-sentiment", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def score_sentiment_task(settings: Settings) -> pipeline.ScoringResult:
    return pipeline.score_sentiment(settings)


@task(name="summarize-refresh", cache_policy=NO_CACHE)
def summarize_refresh_task(
    prices: Any, news: Any, scoring: pipeline.ScoringResult, as_of: datetime
) -> dict[str, Any]:
    summary = {"as_of": as_of.isoformat(), **pipeline.refresh_summary(prices, news, scoring)}
    create_table_artifact(
        key="data-refresh",
        table=summary["tickers"],
        description=f"Refresh at {as_of.isoformat()}: {summary['headlines_new']} new headlines, "
        f"{summary['headlines_scored']} scored by {summary['scorer']}",
    )
    return summary


@task(name="market-gate", cache_policy=NO_CACHE)
def market_gate_task(settings: Settings, as_of: datetime, force: bool) -> pipeline.Gate:
    gate = pipeline.market_gate(settings, as_of, force=force)
    get_run_logger().info("as of %s: %s", as_of.isoformat(), gate.reason)
    return gate


@task(name="predict-fuse-decide", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def decide_task(settings: Settings, as_of: datetime, forced: bool) -> pipeline.TradingResult:
    # The flow run's id names the decisions: a retried task or flow run (same id) changes
    # nothing; another run for the same bar becomes a revision beside the standing decision.
    return pipeline.decide(settings, as_of, forced=forced, run_id=f"flow-{flow_run.id}")


@task(name="publish-decisions", cache_policy=NO_CACHE)
def publish_decisions_task(result: pipeline.TradingResult) -> dict[str, Any]:
    document = result.to_dict()
    create_table_artifact(
        key="trading-decisions",
        table=document["decisions"],
        description=f"Decisions as of {document['as_of']} (model {result.model_version or 'none'})."
        " Simulated; not investment advice.",
    )
    emit_event(
        event=DECISIONS_EVENT,
        resource={"prefect.resource.id": "sentinel42.watchlist"},
        payload={d["ticker"]: d["action"] for d in document["decisions"]},
    )
    return document


@task(
    name="update-portfolio",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=10,
    retry_condition_fn=retry_if_temporary,
)
def update_portfolio_task(settings: Settings, as_of: datetime) -> dict[str, Any]:
    return pipeline.update_portfolio(settings, as_of)


@task(name="validation-gate", cache_policy=NO_CACHE)
def validation_gate_task(settings: Settings, as_of: datetime, force: bool) -> pipeline.Gate:
    gate = pipeline.validation_gate(settings, as_of, force=force)
    get_run_logger().info("as of %s: %s", as_of.isoformat(), gate.reason)
    return gate


@task(
    name="validate-decisions",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=10,
    retry_condition_fn=retry_if_temporary,
)
def validate_task(settings: Settings, as_of: datetime) -> dict[str, Any]:
    report = pipeline.validate(settings, as_of)
    if report.get("newly_degraded"):
        model = report.get("model") or {}
        emit_event(
            event=MODEL_DEGRADED_EVENT,
            resource={"prefect.resource.id": f"sentinel42.model.{report['degraded_model']}"},
            payload=model,
        )
        get_run_logger().warning(
            "model %s degraded: live hit rate %s/%s against validated accuracy %s (p=%s); its "
            "fusion weight is zero until a retrained model is promoted",
            report["degraded_model"], model.get("live_hits"), model.get("live_n"),
            model.get("validated_accuracy"), model.get("p_value"),
        )  # fmt: skip
    return report


@task(name="model-status", cache_policy=NO_CACHE)
def current_model_task(settings: Settings) -> str | None:
    return pipeline.current_model_version(settings)


@task(name="train-model", cache_policy=NO_CACHE)
def train_model_task(settings: Settings, now: datetime) -> dict[str, Any]:
    report = pipeline.train_model(settings, now, progress=get_run_logger().info)
    model = report.get("model", {})
    create_markdown_artifact(
        key="model-training",
        markdown=(
            f"### Model {report.get('version')}: "
            f"{'promoted' if report.get('promoted') else 'not promoted'}\n\n"
            f"{report.get('reason', '')}\n\n"
            f"Out-of-sample accuracy {model.get('accuracy')}, log-loss {model.get('log_loss')}, "
            f"IC {model.get('ic')}"
        ),
    )
    return report
