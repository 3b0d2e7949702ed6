from __future__ import annotations

import json

from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.synthetic import synthetic_bars
from tests.model.conftest import TICKERS

METRICS = {"accuracy", "log_loss", "brier", "ic", "n"}


def _env(tmp_path) -> dict[str, str]:
    return {
        "SENTINEL42_DATA_DIR": str(tmp_path),
        "SENTINEL42_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "SENTINEL42_TICKERS": ",".join(TICKERS),
        "SENTINEL42_DATA_SOURCE": "live",
        "SENTINEL42_MODEL_WINDOW": "8",
        "SENTINEL42_MODEL_HORIZON": "1",
        "SENTINEL42_MODEL_HIDDEN_SIZE": "8",
        "SENTINEL42_MODEL_EPOCHS": "2",
        "SENTINEL42_MODEL_BATCH_SIZE": "128",
    }


def test_model_train_evaluate_and_list_print_one_json_document_each(tmp_path) -> None:
    from sentinel42.persistence import open_store
    from sentinel42.settings import load_settings

    env = _env(tmp_path)
    settings = load_settings(
        data_dir=tmp_path, database_url=env["SENTINEL42_DATABASE_URL"], tickers=list(TICKERS)
    )
    with open_store(settings) as store:
        for ticker, frame in synthetic_bars(TICKERS, 30, pattern="random_walk").items():
            store.upsert_bars(ticker, "15m", frame)
    runner = CliRunner()

    trained = runner.invoke(app, ["model", "train", "--json"], env=env)
    assert trained.exit_code == 0, trained.output
    doc = json.loads(trained.stdout)
    assert set(doc["model"]) == METRICS | {"version"}
    assert set(doc["baselines"]) == {"majority", "persistence", "momentum"}
    assert all(set(b) == METRICS for b in doc["baselines"].values())
    assert isinstance(doc["promoted"], bool) and doc["reason"] and doc["folds"]
    gate = doc["gate"]  # which block decided, on which numbers, and why
    assert gate["block"] == "test" and gate["n"] == doc["model"]["n"]
    assert gate["promoted"] is doc["promoted"] is False  # a random walk
    assert gate["reason"] == doc["reason"] and "test block" in doc["reason"]
    assert {"edge", "edge_lower_bound", "confidence", "best_baseline", "incumbent"} <= set(gate)
    assert doc["data_end"] >= doc["ranges"]["test"]["target_end"]

    evaluated = runner.invoke(app, ["model", "evaluate", "--json"], env=env)
    assert evaluated.exit_code == 0, evaluated.output
    ev = json.loads(evaluated.stdout)
    assert ev["model"]["version"] == doc["version"]
    assert ev["model"]["n"] == doc["model"]["n"]

    listed = runner.invoke(app, ["model", "list", "--json"], env=env)
    rows = json.loads(listed.stdout)["models"]
    assert [r["version"] for r in rows] == [doc["version"]]
    assert rows[0]["edge"] == gate["edge"]
    table = runner.invoke(app, ["model", "list"], env=env)
    assert doc["version"] in table.stdout

    text = runner.invoke(app, ["model", "train"], env=env)
    assert text.exit_code == 0, text.output
    assert "gate on the test block" in text.stdout and "NOT promoted" in text.stdout


def test_model_evaluate_without_a_model_fails_with_one_line(tmp_path) -> None:
    from sentinel42.persistence import open_store
    from sentinel42.settings import load_settings

    env = _env(tmp_path)
    settings = load_settings(data_dir=tmp_path, database_url=env["SENTINEL42_DATABASE_URL"])
    with open_store(settings) as store:
        store.upsert_bars("AAA", "15m", synthetic_bars(["AAA"], 3)["AAA"])
    result = CliRunner().invoke(app, ["model", "evaluate", "--json"], env=env)
    assert result.exit_code == 1
    assert "no trained model" in result.output
