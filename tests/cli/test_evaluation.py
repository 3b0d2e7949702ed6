"""``sentinel42 validate`` and ``sentinel42 portfolio``: one JSON document, or rich tables."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.persistence import open_store
from tests.test_decision_scoring import BAR, CLOSES, DECISIONS, T0, _bars


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url=url) as store:
        store.upsert_bars("AAA", "15m", _bars(CLOSES))
        store.save_decisions(DECISIONS)
    return {
        "SENTINEL42_DATABASE_URL": url,
        "SENTINEL42_TICKERS": "AAA",
        "SENTINEL42_MODEL_HORIZON": "1",
        "SENTINEL42_DATA_SOURCE": "replay",
        "SENTINEL42_REPLAY_DIR": str(tmp_path),
        "SENTINEL42_REPLAY_AS_OF": (T0 + 6 * BAR).isoformat(),
    }


def test_validate_json_scores_once_and_prints_one_document(env) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["validate", "--json"], env=env)
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert (doc["newly_scored"], doc["scored"], doc["pending"]) == (5, 5, 1)
    # The five scored decisions: two BUYs (one hit), two SELLs (both hits) and a HOLD (no hit).
    counts = {action: (v["n"], v["hits"]) for action, v in doc["actions"].items()}
    assert counts == {"BUY": (2, 1), "SELL": (2, 2), "HOLD": (1, None)}, doc["actions"]
    assert doc["model"]["version"] == "m1"
    second = json.loads(runner.invoke(app, ["validate", "--json"], env=env).stdout)
    assert (second["newly_scored"], second["scored"]) == (0, 5)


def test_validate_prints_a_table(env) -> None:
    result = CliRunner().invoke(app, ["validate"], env=env)
    assert result.exit_code == 0, result.output
    for text in ("Decisions and signals", "BUY", "model alone", "news alone", "model m1"):
        assert text in result.stdout


def test_portfolio_json_then_table(env) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["portfolio", "--json"], env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["applied"] == 6
    assert doc["bar_ts"] == (T0 + 6 * BAR).isoformat()  # the newest decision's clock
    # BUY, SELL, BUY, HOLD, SELL, BUY without shorting, each decided at the next bar's start
    # and filled at its open; the last BUY waits for a bar after as_of. Newest first.
    assert [t["side"] for t in doc["recent_trades"]] == ["sell", "buy", "sell", "buy"]
    assert [t["fill_bar"] for t in doc["trades"]] == [
        (T0 + i * BAR).isoformat() for i in (1, 2, 3, 5)
    ]
    assert [o["action"] for o in doc["pending"]] == ["BUY"]
    again = json.loads(runner.invoke(app, ["portfolio", "--json"], env=env).stdout)
    assert again["applied"] == 0 and again["equity"] == pytest.approx(doc["equity"])

    table = runner.invoke(app, ["portfolio"], env=env)
    assert table.exit_code == 0, table.output
    assert "equity" in table.stdout and "Trades" in table.stdout
