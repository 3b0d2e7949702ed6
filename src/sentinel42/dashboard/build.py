"""One call per artifact: what the Prefect tasks publish, read from the store and composed.

Each function opens the store it needs (as ``sentinel42.pipeline``'s steps do) and returns the
artifact's markdown and a one-line description; the description is what the UI's artifact
cards show on a run's page, so it carries the headline numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sentinel42.dashboard.charts import decisions_chart_png, validate_chart_png
from sentinel42.dashboard.data import freshness, model_status, previous_result, score_trend
from sentinel42.dashboard.markdown import (
    DISCLAIMER,
    trading_summary_markdown,
    validate_report_markdown,
)
from sentinel42.persistence import open_store

if TYPE_CHECKING:
    from sentinel42.settings import Settings


def trading_dashboard(
    settings: Settings,
    as_of: datetime,
    result: Mapping[str, Any],
    portfolio: Mapping[str, Any] | None,
) -> tuple[str, str]:
    """The trading run's summary with its chart embedded, and a card description.

    Args:
        settings: the run's settings.
        as_of: the run's clock (aware UTC).
        result: ``TradingResult.to_dict()``; its decisions are already stored.
        portfolio: ``update_portfolio``'s snapshot (None if the portfolio was not updated).

    Returns:
        ``(markdown, description)``.
    """
    with open_store(settings) as store:
        fresh = freshness(store, settings, as_of)
        model = model_status(store, settings)
        previous = previous_result(store, str(result.get("run_id") or ""))
        chart = decisions_chart_png(store, settings, as_of)
    markdown = trading_summary_markdown(result, portfolio, fresh, model, previous, chart=chart)
    actions = " · ".join(f"{d['ticker']} {d['action']}" for d in result.get("decisions", []))
    description = actions or "no decisions"
    if portfolio:
        description += f" · paper equity ${portfolio['equity']:,.0f} ({portfolio['return']:+.2%})"
    return markdown, f"{description}. {DISCLAIMER}"


def validate_dashboard(settings: Settings, report: Mapping[str, Any]) -> tuple[str, str]:
    """The validate run's report with its trend chart embedded, and a card description.

    Args:
        settings: the run's settings.
        report: ``ValidationReport.to_dict()``.

    Returns:
        ``(markdown, description)``.
    """
    with open_store(settings) as store:
        trend = score_trend(store)
        chart = validate_chart_png(store, settings, trend)
    markdown = validate_report_markdown(report, trend, chart=chart)
    actions = report.get("actions") or {}
    n = sum(int(actions.get(a, {}).get("n") or 0) for a in ("BUY", "SELL"))
    hits = sum(int(actions.get(a, {}).get("hits") or 0) for a in ("BUY", "SELL"))
    parts = [f"{report.get('scored', 0)} scored"]
    parts.append(f"BUY/SELL hit rate {hits / n:.1%} ({hits}/{n})" if n else "no BUY/SELL scored")
    if report.get("portfolio"):
        parts.append(f"excess over buy-and-hold {report['portfolio']['excess_return']:+.2%}")
    if report.get("degraded_model"):
        parts.append(f"model {report['degraded_model']} DEGRADED")
    return markdown, " · ".join(parts)
