"""``sentinel42 model train --kind``: the JSON contract, on a fresh data dir, and bad options."""

from __future__ import annotations

import json
from datetime import date

import pytest
from typer.testing import CliRunner

from sentinel42.cli import app

METRIC_KEYS = {"rank_ic_mean", "icir", "rank_ic_lower", "long_short_net_annual", "turnover",
               "hit_rate", "accuracy", "mcc"}  # fmt: skip


@pytest.fixture
def universe_env(monkeypatch, tmp_path):
    from sentinel42.synthetic import generate_replay

    replay = tmp_path / "replay"
    tickers = ["U" + chr(65 + i) + chr(65 + j) for i in range(4) for j in range(5)]
    generate_replay(replay, tickers, end=date(2026, 11, 25), sessions=30, seed=5, news_rate=0.0)
    monkeypatch.setenv("SENTINEL42_DATA_SOURCE", "replay")
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(replay))
    monkeypatch.setenv("SENTINEL42_TICKERS", "UAA,UAB")
    monkeypatch.setenv("SENTINEL42_UNIVERSE", "all")
    return tickers


def test_train_kind_json_document_on_a_fresh_data_dir(universe_env, tmp_path):
    out = CliRunner().invoke(
        app, ["model", "train", "--kind", "intraday", "--horizon", "2", "--json"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["kind"] == "intraday"
    assert isinstance(doc["promoted"], bool)
    assert doc["features"][:2] == ["ret_1", "ret_4"]
    assert doc["best_baseline"] in doc["baselines"]
    assert set(doc["baselines"]) == {"reversal_1", "seasonality", "lightgbm"}
    assert {"reason", "confidence", "attempts"} <= set(doc["gate"])
    assert doc["gate"]["attempts"] == 1
    assert {"start", "end", "n_periods", "n_samples"} <= set(doc["test"])
    for metrics in [doc["model"], *doc["baselines"].values()]:
        assert set(metrics) >= METRIC_KEYS
        for key in ("accuracy", "hit_rate"):
            assert metrics[key] is None or 0.0 <= metrics[key] <= 1.0
    assert doc["model"]["n_samples"] == doc["test"]["n_samples"] > 0
    assert doc["timing"]["train_s"] > 0 and doc["timing"]["peak_rss_mb"] > 0
    assert doc["data"]["tickers"] == len(universe_env)
    # A second attempt within the window is counted: the confidence it must reach rises.
    again = json.loads(
        CliRunner().invoke(app, ["model", "train", "--kind", "intraday", "--json"]).stdout
    )
    assert again["gate"]["attempts"] == 2
    assert again["gate"]["confidence"] > doc["gate"]["confidence"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "weekly"], "--kind must be one of intraday, daily"),
        (["--kind", "daily", "--target", "log"], "--target must be excess or raw"),
        (["--kind", "daily", "--dead-zone=0.01"], "--dead-zone takes LOW,HIGH"),
        (["--kind", "daily", "--dead-zone=0.01,-0.01"], "LOW must be below HIGH"),
        (["--kind", "daily", "--test-start", "01/08/2015"], "--test-start takes a date"),
    ],
)
def test_bad_options_give_one_clear_line(universe_env, args, message):
    out = CliRunner().invoke(app, ["model", "train", *args])
    assert out.exit_code == 2
    assert message in out.output
    assert "Traceback" not in out.output
