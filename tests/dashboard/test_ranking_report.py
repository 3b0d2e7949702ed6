"""The ranking model's report: its figures come from the same numbers as the document's metrics."""

from __future__ import annotations

import io

import numpy as np
import pytest

from sentinel42.dashboard import ranking_report as report
from sentinel42.model.ranking.panel import build_panel
from sentinel42.model.ranking.train import TRADING_DAYS, TrainRequest, train_ranking
from tests.model.ranking.conftest import universe

FAST = {"epochs": 2, "samples_per_epoch": 5_000}


@pytest.fixture(scope="module", params=["daily", "intraday"])
def document(request: pytest.FixtureRequest) -> dict:
    kind = request.param
    sessions = 120 if kind == "daily" else 30
    bars = universe(kind, seed=21, planted=0.4, n_sessions=sessions, n_tickers=30)
    doc = train_ranking(build_panel(bars, kind), TrainRequest(kind=kind, **FAST))
    doc["version"] = f"test-{kind}"
    return doc


def test_the_report_is_a_png_of_three_panels_800_px_wide(document: dict) -> None:
    from PIL import Image

    png = report.report_png(document)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.verify()
    assert image.size == (800, 900)


def test_each_cumulative_ic_ends_at_its_periods_times_its_mean_ic(document: dict) -> None:
    curves = report.cumulative_ic(document)
    scorers = {"model": document["model"]} | document["baselines"]
    assert next(iter(curves)) == "model"
    assert set(curves) == {name for name, m in scorers.items() if m["n_periods"] > 0}
    rows = document["_report"]["rows"].shape[0]
    for name, curve in curves.items():
        m = scorers[name]
        assert curve.shape == (rows,)
        assert curve[-1] == pytest.approx(m["n_periods"] * m["rank_ic_mean"], rel=1e-9), name


def test_the_equity_curve_averages_to_the_documents_annual_long_short(document: dict) -> None:
    book = report.long_short_curve(document)
    session = document["_report"]["session"]
    periods_per_year = TRADING_DAYS * session.shape[0] / np.unique(session).shape[0]
    model = document["model"]
    assert np.mean(book["gross"]) * periods_per_year == pytest.approx(
        model["long_short_gross_annual"], rel=1e-9, abs=1e-12
    )
    assert np.mean(book["net"]) * periods_per_year == pytest.approx(
        model["long_short_net_annual"], rel=1e-9, abs=1e-12
    )
    assert book["cum_net"][-1] == pytest.approx(np.sum(book["net"]))
    assert np.all(book["net"] <= book["gross"] + 1e-15)  # costs only take away


def test_quintile_means_rise_from_bottom_to_top_for_a_model_that_sees_the_pattern() -> None:
    bars = universe("daily", seed=3, planted=0.6, n_sessions=200, n_tickers=40)
    doc = train_ranking(build_panel(bars, "daily"), TrainRequest(kind="daily", epochs=8,
                        samples_per_epoch=20_000))  # fmt: skip
    means = report.quintile_means(doc, "model")
    assert means.shape == (5,) and np.isfinite(means).all()
    assert means[-1] > means[0]
    assert report.quintile_means(doc, doc["best_baseline"]).shape == (5,)


def test_the_markdown_carries_every_scorer_the_gate_reason_and_the_chart(document: dict) -> None:
    png = report.report_png(document)
    page = report.report_markdown(document, png)
    assert document["reason"] in page
    assert "data:image/png;base64," in page
    for name in ("model", *document["baselines"]):
        assert f"| {name}" in page
    for metric in report.TABLE_METRICS:
        assert metric in page
    assert document["kind"] in report.report_description(document)
