"""``sentinel42 trade`` checks the store before any work, as the trading flow's check-store task
does (issue 18 item 5): a page damaged mid-file stops it before the refresh runs."""

from __future__ import annotations

from typer.testing import CliRunner

from sentinel42.cli import app
from sentinel42.persistence import open_store
from tests.conftest import REPLAY_TICKERS


def _scribble(path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(bytes((i * 151 + 7) % 256 for i in range(4096)))  # 4 KB of noise


def test_trade_on_a_store_damaged_mid_file_fails_before_the_pipeline_runs(tmp_path, replay_env):
    env = {"SENTINEL42_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    first = runner.invoke(app, ["refresh"], env=env)
    assert first.exit_code == 0, first.output
    store = tmp_path / "data" / "sentinel42.db"
    with open_store(url=f"sqlite:///{store}") as opened:
        bars = opened.count_bars()
    assert bars > 0
    _scribble(store, (store.stat().st_size // 2) // 4096 * 4096)

    result = runner.invoke(app, ["trade", "--force", "--json"], env=env)

    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: store {store} is corrupted (")
    assert "restore the newest backup" in errors[0]
    assert result.stdout == ""  # no decision document
    # Nothing ran: the refresh prints a progress line per stage, and none was printed.
    assert not [t for t in REPLAY_TICKERS if t in result.stderr]
    assert "refresh" not in result.stderr.lower().replace("sentinel42 refresh", "")
