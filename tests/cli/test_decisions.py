"""``sentinel42 decisions``: the standing decision per ticker and bar, or every revision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.domain import Action, Decision
from sentinel42.persistence import open_store

BAR = datetime(2026, 11, 27, 17, 45, tzinfo=UTC)  # Friday's last bar (half day)
SATURDAY = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
DECIDED = BAR + timedelta(minutes=17)  # the bar's end plus the trading delay, as live records


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url=url) as store:
        store.save_decisions(
            [Decision("AAPL", BAR, Action.BUY, 0.7, "friday", {}, {}, DECIDED)], run_id="friday"
        )
        store.save_decisions(
            [Decision("AAPL", BAR, Action.SELL, 0.6, "forced", {}, {}, SATURDAY)],
            forced=True,
            run_id="saturday",
        )
    return {"SENTINEL42_DATA_DIR": str(tmp_path), "SENTINEL42_DATABASE_URL": url}


def test_decisions_json_lists_only_the_standing_decision(env) -> None:
    result = CliRunner().invoke(app, ["decisions", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["action"], r["reason"], r["revision"], r["run_id"]) for r in rows] == [
        ("BUY", "friday", 0, "friday")
    ]


def test_decisions_all_revisions_json_lists_the_history_in_revision_order(env) -> None:
    result = CliRunner().invoke(app, ["decisions", "--all-revisions", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["revision"], r["run_id"], r["action"]) for r in rows] == [
        (0, "friday", "BUY"),
        (1, "saturday", "SELL"),
    ]
    assert rows[1]["decided_at"] == SATURDAY.isoformat()
    assert rows[0]["decided_at"] == DECIDED.isoformat()


def _table_rows(output: str) -> list[list[str]]:
    """The cells of the rich table's body rows."""
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in output.splitlines()
        if line.startswith("│")
    ]


def test_decisions_all_revisions_table_shows_revision_numbers(env) -> None:
    result = CliRunner().invoke(app, ["decisions", "--all-revisions"], env=env)
    assert result.exit_code == 0, result.output
    rows = _table_rows(result.stdout)
    assert [(r[1], r[2], r[3], r[-1]) for r in rows] == [
        ("AAPL", "0", "BUY", "friday"),
        ("AAPL", "1", "SELL", "forced"),
    ]
    standing = _table_rows(CliRunner().invoke(app, ["decisions"], env=env).stdout)
    assert [(r[1], r[2], r[-1]) for r in standing] == [("AAPL", "BUY", "friday")]
    assert standing[0][-2] == "pending"  # not scored yet


def test_decisions_show_whether_a_scored_decision_was_right(env, tmp_path) -> None:
    from datetime import timedelta

    from sentinel42.domain import DecisionScore
    from sentinel42.persistence import score_ledger

    with open_store(url=env["SENTINEL42_DATABASE_URL"]) as store:
        score_ledger.save_decision_scores(
            store,
            [DecisionScore("AAPL", BAR, Action.BUY, 100.0, BAR + timedelta(hours=1), 101.0, 4,
                           0.01, True, None, None, None, None, None, BAR)],
        )  # fmt: skip
    result = CliRunner().invoke(app, ["decisions", "--json"], env=env)
    (row,) = json.loads(result.stdout)
    assert row["outcome"]["hit"] is True and row["outcome"]["forward_return"] == 0.01
    table = _table_rows(CliRunner().invoke(app, ["decisions"], env=env).stdout)
    assert table[0][-2] == "right (+1.00%)"
