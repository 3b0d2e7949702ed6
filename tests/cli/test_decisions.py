"""``sentinel42 decisions``: the standing decision per ticker and bar, or every revision."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.domain import Action, Decision
from sentinel42.persistence import open_store

BAR = datetime(2026, 11, 27, 17, 45, tzinfo=UTC)  # Friday's last bar (half day)
SATURDAY = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url=url) as store:
        store.save_decisions(
            [Decision("AAPL", BAR, Action.BUY, 0.7, "friday", {}, {}, BAR)], run_id="friday"
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
    assert rows[0]["decided_at"] == BAR.isoformat()


def test_decisions_all_revisions_table_shows_revision_numbers(env) -> None:
    result = CliRunner().invoke(app, ["decisions", "--all-revisions"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "r0" in lines[0] and "friday" in lines[0]
    assert "r1" in lines[1] and "forced" in lines[1]
    standing = CliRunner().invoke(app, ["decisions"], env=env)
    assert standing.stdout.splitlines() == [lines[0].replace("r0   ", "")]
