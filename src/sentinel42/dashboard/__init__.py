"""The dashboard: what a person sees on a run's page in the Prefect UI.

Plain functions, no Prefect (the task wrappers in :mod:`sentinel42.tasks` publish the artifacts):
:mod:`.data` reads the store and the model registry, :mod:`.markdown` writes the text,
:mod:`.charts` draws PNGs, and :mod:`.build` composes one artifact per call.

Prefect 3.9's UIs (the default v2 and v1) render a markdown artifact's ``data:image/png;base64``
images and strip inline ``<svg>`` (checked in headless Chromium; tests/e2e/test_dashboard.py
keeps checking), so a chart travels inside its artifact (:func:`chart_markdown`): no file
server to run, nothing that breaks when the data folder moves.
"""

from sentinel42.dashboard.build import trading_dashboard, validate_dashboard
from sentinel42.dashboard.charts import decisions_chart_png, validate_chart_png
from sentinel42.dashboard.data import freshness, model_status, previous_result, score_trend
from sentinel42.dashboard.markdown import (
    chart_markdown,
    trading_summary_markdown,
    validate_report_markdown,
)

__all__ = [
    "chart_markdown",
    "decisions_chart_png",
    "freshness",
    "model_status",
    "previous_result",
    "score_trend",
    "trading_dashboard",
    "trading_summary_markdown",
    "validate_chart_png",
    "validate_dashboard",
    "validate_report_markdown",
]
