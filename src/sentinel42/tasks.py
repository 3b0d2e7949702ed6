"""Prefect task wrappers: a few lines each around one plain function of ``sentinel42.pipeline``.

Only this module and ``flows/`` import Prefect. Retries sit on the I/O tasks and fire only for
errors that say retrying can help (:func:`sentinel42.errors.is_retryable`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from prefect import State, Task, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from sentinel42 import clock, pipeline
from sentinel42.decision_scoring import ValidationReport
from sentinel42.domain import PortfolioUpdate, RefreshSummary
from sentinel42.errors import ModelError, TemporarySourceError, is_retryable
from sentinel42.events import (
    DECISION_ACTIONABLE_EVENT,
    DECISIONS_EVENT,
    MODEL_DEGRADED_EVENT,
    MODEL_RECOVERED_EVENT,
    MODEL_REFUSED_EVENT,
    NO_DATA_EVENT,
)
from sentinel42.model.ranking import weekly
from sentinel42.sentiment.service import ScoringResult
from sentinel42.settings import Settings

RANKING_KINDS = weekly.KINDS

P = ParamSpec("P")
R = TypeVar("R")


def retry_if_temporary(_task: Any, _task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only what may succeed later."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as error:  # the result itself could not be read: be conservative
        logging.getLogger(__name__).debug("could not read failed state: %s", error)
        return True
    return not isinstance(exc, BaseException) or is_retryable(exc)


# Retries are bounded end to end: the adapters retry a rate limit or a network error once with
# backoff, each I/O task once more, and the flow as its deployment says; only errors that say
# retrying can help are retried at all (a bad setting or symbol is not).
IO_RETRIES = 1
IO_RETRY_DELAYS: list[float] = [10]
# A hung download or store write is stopped rather than holding the deployment's slot.
IO_TIMEOUT_S = 600
TRAINING_TIMEOUT_S = 3600


def io_task(name: str) -> Callable[[Callable[P, R]], Task[P, R]]:
    """``@task`` for a network or store step: retried as above, stopped after ``IO_TIMEOUT_S``."""
    return task(
        name=name,
        cache_policy=NO_CACHE,
        retries=IO_RETRIES,
        retry_delay_seconds=IO_RETRY_DELAYS,
        retry_condition_fn=retry_if_temporary,
        timeout_seconds=IO_TIMEOUT_S,
    )


@contextmanager
def permanent_errors_skip_flow_retries() -> Iterator[None]:
    """Inside a flow: an error retrying cannot fix (a bad setting, a corrupt store) fails the run
    at once instead of after the flow's retries; other errors are re-raised untouched.

    Prefect decides flow retries on the server from the run's policy, so the policy of this run
    is set to no retries before the failure is reported.
    """
    try:
        yield
    except Exception as exc:
        if not is_retryable(exc) and flow_run.id is not None:
            _drop_flow_retries(str(flow_run.id))
        raise


def _drop_flow_retries(run: str) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    run_id = UUID(run)
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(run_id)
            policy = current.empirical_policy.model_copy(update={"retries": 0, "max_retries": 0})
            client.update_flow_run(run_id, empirical_policy=policy)
    except Exception as error:  # never hide the original failure behind this one
        logging.getLogger(__name__).warning("could not cancel this run's retries: %s", error)


@task(name="check-store", cache_policy=NO_CACHE)
def check_store_task(settings: Settings) -> None:
    """Refuse to write into a store that fails SQLite's quick check (not retried; it alerts).
    A locked or unreachable store fails as retryable instead."""
    from sentinel42.ops.doctor import store_integrity_error

    error = store_integrity_error(settings)
    if error is not None:
        raise error


@task(name="resolve-clock", cache_policy=NO_CACHE)
def resolve_as_of_task(settings: Settings) -> datetime:
    return clock.resolve_as_of(settings)


@io_task("refresh-prices")
def refresh_prices_task(settings: Settings, as_of: datetime) -> Any:
    report = pipeline.refresh_prices(settings, as_of, progress=get_run_logger().info)
    why = pipeline.refresh_summary(report, None, None, as_of).no_usable_data
    if why:
        emit_event(
            event=NO_DATA_EVENT,
            resource={"prefect.resource.id": "sentinel42.watchlist"},
            payload={"as_of": as_of.isoformat(), "tickers": list(settings.tickers), "why": why},
        )
        get_run_logger().warning("%s", why)
    return report


@io_task("refresh-news")
def refresh_news_task(settings: Settings, as_of: datetime) -> Any:
    return pipeline.refresh_news(settings, as_of)


@io_task("score-sentiment")
def score_sentiment_task(settings: Settings, as_of: datetime) -> ScoringResult:
    return pipeline.score_sentiment(settings, as_of)


@task(name="summarize-refresh", cache_policy=NO_CACHE)
def summarize_refresh_task(
    prices: Any, news: Any, scoring: ScoringResult, as_of: datetime
) -> RefreshSummary:
    summary = pipeline.refresh_summary(prices, news, scoring, as_of)
    failed = summary.failed_tickers
    if failed:
        get_run_logger().warning("price refresh failed for %d of %d ticker(s): %s", len(failed),
                                 len(summary.tickers), ", ".join(failed))  # fmt: skip
    create_table_artifact(
        key="data-refresh",
        table=[dict(row) for row in summary.tickers],
        description=f"Refresh at {as_of.isoformat()}: {summary.headlines_new} new headlines, "
        f"{summary.headlines_scored} scored by {summary.scorer}"
        + (f"; failed: {', '.join(failed)}" if failed else "")
        + (f". {summary.no_usable_data}" if summary.no_usable_data else ""),
    )
    return summary


@task(name="require-usable-data", cache_policy=NO_CACHE)
def require_usable_data_task(no_usable_data: str | None) -> None:
    """Fail the trading run when its refresh got no usable bars for any watchlist ticker
    (``no_usable_data``: the refresh summary's reason, None while a ticker is usable).

    Raised as a temporary source error, so the run's retries get their chance (the data may
    arrive); the run then ends Failed, which alerts. A partial failure passes.
    """
    if no_usable_data:
        raise TemporarySourceError(f"trading run refused: {no_usable_data}")


@task(name="market-gate", cache_policy=NO_CACHE)
def market_gate_task(settings: Settings, as_of: datetime, force: bool) -> pipeline.Gate:
    gate = pipeline.market_gate(settings, as_of, force=force)
    get_run_logger().info("as of %s: %s", as_of.isoformat(), gate.reason)
    return gate


@io_task("predict-fuse-decide")
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
    for d in document["decisions"]:  # a notice each when SENTINEL42_NOTIFY_DECISIONS is on
        if d["action"] != "HOLD":
            emit_event(
                event=DECISION_ACTIONABLE_EVENT,
                resource={"prefect.resource.id": f"sentinel42.ticker.{d['ticker']}"},
                payload={k: d[k] for k in ("ticker", "action", "confidence", "bar_ts")},
            )
    return document


@io_task("update-portfolio")
def update_portfolio_task(settings: Settings, as_of: datetime) -> PortfolioUpdate:
    return pipeline.update_portfolio(settings, as_of)


@task(name="validation-gate", cache_policy=NO_CACHE)
def validation_gate_task(settings: Settings, as_of: datetime, force: bool) -> pipeline.Gate:
    gate = pipeline.validation_gate(settings, as_of, force=force)
    get_run_logger().info("as of %s: %s", as_of.isoformat(), gate.reason)
    return gate


@io_task("validate-decisions")
def validate_task(settings: Settings, as_of: datetime) -> ValidationReport:
    """Score, monitor every leg, and emit ``sentinel42.model.degraded`` for each leg that
    degraded in this run and ``sentinel42.model.recovered`` for each that recovered (payload:
    the leg, its version and its figures)."""
    report = pipeline.validate(settings, as_of)
    log = _run_logger()
    for change in report.events:
        degraded = change["event"] == "degraded"
        emit_event(
            event=MODEL_DEGRADED_EVENT if degraded else MODEL_RECOVERED_EVENT,
            resource={"prefect.resource.id": f"sentinel42.{change['leg']}.{change['version']}"},
            payload=change,
        )
        (log.warning if degraded else log.info)(
            "%s leg %s %s: %s; its fusion weight is %s", change["leg"], change["version"],
            change["event"], change.get("note"), "zero" if degraded else "back",
        )  # fmt: skip
    return report


def _run_logger() -> Any:
    """The run's logger inside a flow or task run; the module's outside one (tests, CLI)."""
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@task(name="backup", cache_policy=NO_CACHE, timeout_seconds=IO_TIMEOUT_S)
def backup_task(settings: Settings) -> dict[str, Any]:
    from datetime import UTC

    from sentinel42.ops.backup import backup

    if settings.store_url.startswith("postgresql"):
        note = ("the store is on PostgreSQL: back it up with pg_dump -Fc on its server "
                "(docs/operations.md, 'Backups and restore'); nothing copied here")  # fmt: skip
        get_run_logger().warning(note)
        return {"skipped": note}
    # Named by the wall clock: a backup is made now, whatever the replay clock says.
    report = backup(settings, datetime.now(UTC))
    get_run_logger().info("backup %s in %s: %s sets kept", report["stamp"], report["dir"],
                          report["kept"])  # fmt: skip
    return {k: str(v) if hasattr(v, "name") else v for k, v in report.items()}


@io_task("prune")
def prune_task(settings: Settings, as_of: datetime) -> dict[str, Any]:
    from sentinel42.ops.retention import prune_store

    return prune_store(settings, as_of)


@task(name="publish-dashboard", cache_policy=NO_CACHE)
def publish_dashboard_task(
    settings: Settings, as_of: datetime, document: dict[str, Any], portfolio: PortfolioUpdate | None
) -> None:
    """The run's summary for people: portfolio, data freshness, the model's validated and live
    skill, what changed since the last run, and a chart embedded in the markdown."""
    from sentinel42 import dashboard

    book = portfolio.to_dict() if portfolio is not None else None
    markdown, description = dashboard.trading_dashboard(settings, as_of, document, book)
    create_markdown_artifact(key="trading-summary", markdown=markdown, description=description)


@task(name="publish-validate-report", cache_policy=NO_CACHE)
def publish_validate_report_task(settings: Settings, report: ValidationReport) -> None:
    """The validate report, keyed ``validate-report`` so its history shows the trend."""
    from sentinel42 import dashboard

    markdown, description = dashboard.validate_dashboard(settings, report.to_dict())
    create_markdown_artifact(key="validate-report", markdown=markdown, description=description)


@task(name="model-status", cache_policy=NO_CACHE)
def current_model_task(settings: Settings) -> str | None:
    return pipeline.current_model_version(settings)


@task(name="train-model", cache_policy=NO_CACHE, timeout_seconds=TRAINING_TIMEOUT_S)
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
    if not report.get("promoted"):
        emit_event(
            event=MODEL_REFUSED_EVENT,
            resource={"prefect.resource.id": f"sentinel42.model.{report.get('version')}"},
            payload={
                "version": report.get("version"),
                "reason": report.get("reason"),
                "tickers": settings.tickers,
            },
        )
    return report


@task(
    name="train-ranking",
    task_run_name="train-ranking-{kind}",
    cache_policy=NO_CACHE,
    timeout_seconds=TRAINING_TIMEOUT_S,
)
def train_ranking_task(settings: Settings, kind: str, as_of: datetime) -> dict[str, Any]:
    """Train, gate and register one ranking kind. Not retried: a retry would be another attempt
    at the gate, and a ModelError says the data cannot train this kind."""
    document = weekly.train(settings, kind, now=as_of, as_of=as_of, progress=get_run_logger().info)
    if not document["promoted"]:
        emit_event(
            event=MODEL_REFUSED_EVENT,
            resource={"prefect.resource.id": f"sentinel42.model.{document['version']}"},
            payload={"version": document["version"], "kind": kind, "reason": document["reason"],
                     "tickers": settings.tickers},
        )  # fmt: skip
    return document


@task(name="publish-ranking-report", task_run_name="publish-ranking-report-{kind}",
      cache_policy=NO_CACHE)  # fmt: skip
def publish_ranking_report_task(kind: str, document: dict[str, Any]) -> None:
    """The kind's training report, keyed ``ranking-<kind>`` so its history shows each week."""
    from sentinel42.dashboard.ranking_report import report_artifact

    markdown, description = report_artifact(document)
    create_markdown_artifact(key=f"ranking-{kind}", markdown=markdown, description=description)


def ranking_outcomes(as_of: datetime, trained: Mapping[str, State[Any]]) -> dict[str, Any]:
    """The training flow's result from each kind's final task state.

    A ModelError is that kind's outcome (not trained, and why); any other failure is raised
    once every kind has had its turn, so the run fails (and alerts) without costing the others.
    """
    outcomes: dict[str, Any] = {}
    unexpected: BaseException | None = None
    for kind, state in trained.items():
        if state.is_completed():
            outcomes[kind] = weekly.outcome(state.result())
            continue
        error = state.result(raise_on_failure=False)
        if not isinstance(error, BaseException):  # crashed or cancelled: no exception to read
            error = RuntimeError(f"{kind} training ended {state.name}: {state.message}")
        outcomes[kind] = weekly.failed(kind, error)
        if not isinstance(error, ModelError):
            unexpected = unexpected or error
    result = weekly.summary(as_of, outcomes)
    if unexpected is not None:
        get_run_logger().error("ranking training: %s", result["kinds"])
        raise unexpected
    return result
