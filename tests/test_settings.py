import subprocess
import sys
from pathlib import Path

import pytest

from sentinel42.errors import ConfigError
from sentinel42.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("SENTINEL42_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_the_documented_watchlist_and_store(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL42_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.tickers == ["AAPL", "MSFT", "NVDA", "AMZN", "SPY"]
    assert settings.store_url == f"sqlite:///{tmp_path / 'sentinel42.db'}"
    assert settings.models_dir == tmp_path / "models"


def test_tickers_are_split_upper_cased_and_deduplicated(monkeypatch):
    monkeypatch.setenv("SENTINEL42_TICKERS", " aapl, MSFT ,brk-b,AAPL")
    assert load_settings().tickers == ["AAPL", "MSFT", "BRK-B"]


def test_a_dotted_share_class_is_the_hyphenated_ticker_yfinance_expects(monkeypatch):
    monkeypatch.setenv("SENTINEL42_TICKERS", "brk.b,AAPL,BF.B")
    assert load_settings().tickers == ["BRK-B", "AAPL", "BF-B"]
    monkeypatch.setenv("SENTINEL42_TICKERS", "BRK.B,AAPL,BRK-B")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("SENTINEL42_TICKERS: ") and "\n" not in message
    assert "BRK.B and BRK-B are one ticker (BRK-B); list it once" in message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SENTINEL42_TICKERS": ""}, "SENTINEL42_TICKERS: the watchlist is empty"),
        (
            {"SENTINEL42_TICKERS": "AAPL,TOOLONGSYM"},
            "SENTINEL42_TICKERS: 'TOOLONGSYM' is not a ticker",
        ),
        (
            {"SENTINEL42_RSS_MARKET_FEEDS": "ftp//x"},
            "SENTINEL42_RSS_MARKET_FEEDS: 'ftp//x' is not an http(s) URL",
        ),
        ({"SENTINEL42_RSS_TICKER_FEEDS": "https://x.com/rss"}, "no {ticker} placeholder"),
        ({"SENTINEL42_INTERVAL": "7m"}, "SENTINEL42_INTERVAL:"),
        ({"SENTINEL42_BUY_THRESHOLD": "2"}, "SENTINEL42_BUY_THRESHOLD:"),
        ({"SENTINEL42_REPLAY_AS_OF": "2025-08-28T16:00:00"}, "needs a UTC offset"),
        ({"SENTINEL42_DATA_SOURCE": "replay"}, "SENTINEL42_REPLAY_DIR: required"),
        (
            {"SENTINEL42_DATA_SOURCE": "replay", "SENTINEL42_REPLAY_DIR": "/nonexistent/replay"},
            "SENTINEL42_REPLAY_DIR: /nonexistent/replay does not exist",
        ),
        ({"SENTINEL42_EXTRA_EARLY_CLOSES": "2026-12-24"}, "SENTINEL42_EXTRA_EARLY_CLOSES:"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_setting(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_commands_that_create_the_replay_dir_do_not_require_it(monkeypatch):
    monkeypatch.setenv("SENTINEL42_DATA_SOURCE", "replay")
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", "/nonexistent/replay")
    assert load_settings(require_replay_dir=False).replay_dir == Path("/nonexistent/replay")


def test_secret_is_not_shown(monkeypatch):
    monkeypatch.setenv("SENTINEL42_NEWSAPI_KEY", "sekrit-123")
    settings = load_settings()
    assert "sekrit-123" not in repr(settings)
    assert settings.newsapi_key.get_secret_value() == "sekrit-123"


def test_every_setting_has_a_description():
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_configuration_doc_is_up_to_date():
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_config_docs.py"), "--check"], check=False
    )
    assert check.returncode == 0, "run: uv run python scripts/gen_config_docs.py"


def test_cli_reports_a_bad_setting_in_one_line_without_traceback(tmp_path):
    env = {"SENTINEL42_TICKERS": "", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "sentinel42"), "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    expected = "the watchlist is empty; give at least one symbol, e.g. AAPL,MSFT"
    assert result.stderr.strip() == f"error: SENTINEL42_TICKERS: {expected}"


@pytest.mark.parametrize(
    "cron", ["30 17 * * 5", "*/15 9-16 * * 1-5", "0 0 1 jan mon", "45 18 * * *", "0,30 9 * * 1-5"]
)
def test_valid_crons_are_accepted(cron):
    assert load_settings(require_replay_dir=False, model_training_cron=cron).model_training_cron


@pytest.mark.parametrize("cron", ["30 17 * *", "61 17 * * 5", "30 25 * * 5", "x 1 * * *",
                                  "*/0 1 * * *", "30 17 * * 5 1"])  # fmt: skip
def test_a_bad_training_cron_stops_start_up_with_one_line(cron, monkeypatch):
    from sentinel42.errors import ConfigError

    monkeypatch.setenv("SENTINEL42_MODEL_TRAINING_CRON", cron)
    with pytest.raises(ConfigError, match="SENTINEL42_MODEL_TRAINING_CRON"):
        load_settings(require_replay_dir=False)
