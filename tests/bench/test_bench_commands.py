"""Smoke tests of the benchmarks with tiny sizes: they run and count the same work both ways.

No timing is asserted: benchmarks print figures, they do not pass or fail on them.
"""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from sentinel42.bench.cycle import run_case
from sentinel42.bench.cycle_setup import prepare
from sentinel42.bench.refresh import bench_refresh
from sentinel42.cli import app

TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def test_cycle_batched_and_naive_do_the_same_work_on_one_new_bar_and_headline_per_ticker(
    tmp_path,
):
    case = prepare(tmp_path, 3, bert_overrides=TINY_BERT)
    assert case["backlog_scored"] > 0  # the store starts in steady state

    batched = run_case(case, "batched")
    naive = run_case(case, "naive")

    expected = {
        "bars_new": 3,
        "headlines_new": 3,
        "headlines_scored": 3,
        "predictions": 3,
        "decisions": 3,
        "portfolio_applied": 3,
    }
    assert batched["counts"] == expected
    assert naive["counts"] == expected
    stages = [
        "imports",
        "refresh_prices",
        "refresh_news",
        "sentiment_model_load",
        "sentiment_score",
        "decide",
        "portfolio",
    ]
    assert list(batched["stages"]) == stages
    assert list(naive["stages"]) == stages
    assert batched["stages"]["decide"]["parts"]["predict"]["calls"] == 1
    assert naive["stages"]["decide"]["parts"]["predict"]["calls"] == 3
    for way in (batched, naive):
        assert way["total_s"] >= way["warm_total_s"] >= 0
        assert all(s["cpu_s"] >= 0 and s["peak_rss_mb"] > 0 for s in way["stages"].values())


def test_bench_refresh_reports_cpu_wall_and_peak_rss_per_phase():
    result = bench_refresh(n_tickers=3, days=2)
    for phase in ("backfill", "incremental", "incremental_naive"):
        figures = result["phases"][phase]
        assert figures["bars"] > 0
        assert figures["peak_rss_mb"] > 0
        assert figures["cpu_s"] >= 0 and figures["wall_s"] >= 0
    assert result["phases"]["incremental"]["bars_new"] == 3
    assert result["phases"]["incremental_naive"]["bars_new"] == 3  # the same work, per ticker


def test_bench_group_lists_cycle_and_trigger_beside_the_stage_benchmarks():
    result = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("refresh", "sentiment", "model", "cycle", "trigger"):
        assert f" {name} " in result.stdout


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bench_trigger_without_a_server_says_so_in_one_line_and_starts_nothing():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = f"http://127.0.0.1:{_closed_port()}/api"
    # Prefect read its settings when imported: the environment alone would not reach it here.
    with temporary_settings(updates={PREFECT_API_URL: url}):
        result = CliRunner().invoke(app, ["bench", "trigger", "--json"])
    assert result.exit_code == 2
    assert f"no Prefect server answers at {url}" in result.stderr
    assert result.stdout == ""


def test_bench_model_times_batched_and_per_ticker_inference_of_the_same_tickers(monkeypatch):
    from sentinel42.bench.model import bench_model

    monkeypatch.setenv("SENTINEL42_MODEL_EPOCHS", "2")
    result = bench_model(train_tickers=3, sessions=20, infer_tickers=5, repeats=1)
    inference = result["inference"]
    assert inference["predicted"] == inference["predicted_naive"] == 5
    assert list(result["stages"]) == [
        "imports",
        "train",
        "inference",
        "inference_with_model_load",
        "inference_naive_per_ticker",
    ]
