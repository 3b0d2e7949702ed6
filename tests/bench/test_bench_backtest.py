"""Smoke test of ``sentinel42 bench backtest`` on a tiny generated set: it runs the backtest of
the first N tickers in a fresh process and counts the work. No timing is asserted."""

from __future__ import annotations

import json
from datetime import date

import pytest
from typer.testing import CliRunner

from sentinel42.cli import app

TICKERS = ("AAPL", "AMZN", "MSFT")


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    from sentinel42.synthetic import generate_replay

    out = tmp_path_factory.mktemp("bench_bt_replay")
    generate_replay(out, TICKERS, end=date(2026, 12, 1), sessions=6, seed=3)
    return out


def _bench(replay, *extra: str):
    args = ["bench", "backtest", "--replay-dir", str(replay), "--start", "2026-11-24"]
    args += ["--end", "2026-11-25", *extra]
    return CliRunner().invoke(app, args, env={"SENTINEL42_TICKERS": "SPY"})


def test_bench_backtest_counts_the_steps_and_ticker_steps_of_the_first_n_tickers(replay):
    result = _bench(replay, "--tickers", "2", "--cadence", "session", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["tickers"], doc["first_ticker"], doc["last_ticker"]) == (2, "AAPL", "AMZN")
    assert doc["cadence"] == "session" and doc["use_model"] is False
    assert doc["steps"] == doc["sessions"] == 2
    assert doc["ticker_steps"] == 4
    assert doc["n_decisions"] == 4  # one per ticker and step: the two chosen tickers only
    assert doc["total_s"] >= doc["steps_s"] > 0
    assert doc["per_step_s"] == pytest.approx(doc["total_s"] / 2, abs=1e-3)
    assert doc["per_ticker_step_ms"] == pytest.approx(1000 * doc["total_s"] / 4, abs=1e-3)
    assert doc["peak_rss_mb"] > 0 and doc["cpu_s"] > 0
    for when in ("before", "after"):
        assert len(doc["machine"][when]["load_avg_1_5_15"]) == 3
    assert doc["target"] == {"tickers": 500, "months": 3, "seconds": 900.0}


def test_bench_backtest_prints_its_figures(replay):
    result = _bench(replay, "--tickers", "3")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "backtest of 3 tickers (AAPL .. MSFT)" in text and "cadence bar" in text
    assert "steps 52 over 2 sessions, 156 ticker-steps, 156 decisions" in text
    for words in ("per step", "per ticker-step", "peak RSS", "load (1/5/15 min) before"):
        assert words in text
    assert "100 tickers x 1 month(s) within 1800 s" in text


def test_bench_backtest_refuses_more_tickers_than_the_folder_holds(replay, tmp_path):
    result = _bench(replay, "--tickers", "4")
    assert result.exit_code == 2
    assert "--tickers 4" in result.output and "holds 3 ticker(s)" in result.output
    args = ["bench", "backtest", "--replay-dir", str(tmp_path / "nothing"), "--tickers", "1"]
    missing = CliRunner().invoke(app, [*args, "--start", "2026-11-24", "--end", "2026-11-25"])
    assert missing.exit_code != 0 and "no such folder" in missing.output


def test_bench_backtest_keeps_its_store_in_workdir_and_reports_the_trading_figures(
    replay, tmp_path
):
    kept = tmp_path / "kept"
    result = _bench(replay, "--tickers", "2", "--cadence", "session", "--json", "--workdir",
                    str(kept))  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (kept / "backtest.db").is_file()  # sentinel42 validate can score its decisions
    assert doc["models"] == [] and doc["ungated"] is False
    figures = doc["figures"]
    assert figures["n_with_model"] == 0 and figures["turnover"] == 0
    assert figures["market_return"] == figures["buy_and_hold_return"]
    again = _bench(replay, "--tickers", "2", "--cadence", "session", "--workdir", str(kept))
    assert again.exit_code == 2 and "is not empty" in again.output
