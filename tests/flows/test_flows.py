"""The flows through Prefect's engine (one session-scoped test server), on a replay set."""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness

from sentinel42.persistence import open_store
from sentinel42.settings import load_settings


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_trading_flow_outside_the_session_records_nothing(harness, replay_env, monkeypatch):
    from flows.sentinel_flows import trading_flow

    # 16:20 New York: the run that decided the session's last bar (16:02) has passed.
    monkeypatch.setenv("SENTINEL42_REPLAY_AS_OF", "2026-11-25T16:20:00-05:00")
    result = trading_flow(force=False)
    assert "market closed" in result["skipped"]
    with open_store(load_settings()) as store:
        assert store.decisions() == []
        assert store.count_bars() == 0  # the gate comes before the refresh


def test_forced_trading_flow_refreshes_and_decides_for_every_ticker(harness, replay_env):
    from flows.sentinel_flows import trading_flow

    result = trading_flow(force=True)
    settings = load_settings()
    assert sorted(d["ticker"] for d in result["decisions"]) == sorted(settings.tickers)
    with open_store(settings) as store:
        assert len(store.decisions()) == len(settings.tickers)
        assert store.count_news() > 0


def test_data_refresh_flow_reports_per_ticker_counts(harness, replay_env):
    from flows.sentinel_flows import data_refresh_flow

    first = data_refresh_flow()
    second = data_refresh_flow()
    assert all(row["bars_new"] > 0 for row in first["tickers"])
    assert all(row["bars_new"] == 0 for row in second["tickers"])
    assert second["headlines_scored"] == 0


def test_the_trading_run_counts_the_headlines_its_own_refresh_just_stored(
    harness, replay_env, monkeypatch
):
    """With a clock that moves (as live), the refresh subflow must use the trading run's clock:
    with two clocks its headlines were first seen after the decision's as_of and left out."""
    import itertools
    from datetime import UTC, datetime, timedelta

    from flows.sentinel_flows import trading_flow
    from sentinel42 import pipeline

    close = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    monkeypatch.setenv("SENTINEL42_SENTIMENT_WINDOW_HOURS", "96")  # 7 of the set's 39 stories
    ticks = itertools.count()
    monkeypatch.setattr(
        pipeline, "resolve_as_of", lambda settings, now=None: close + timedelta(seconds=next(ticks))
    )
    result = trading_flow(force=True)
    as_of = datetime.fromisoformat(result["as_of"])
    settings = load_settings()
    with open_store(settings) as store:
        stored = store.headlines(settings.tickers, since=as_of - timedelta(hours=96), until=as_of)
        decisions = {d.ticker: d for d in store.decisions()}
    assert len(stored) > 0
    assert (stored["first_seen_at"] == as_of).all()  # the refresh ran on the trading clock
    for ticker, count in stored.groupby("ticker").size().items():
        assert decisions[ticker].inputs["headlines"] == count


def test_validate_flow_scores_and_the_trading_flow_keeps_a_portfolio(harness, replay_env):
    from flows.sentinel_flows import trading_flow, validate_flow

    trading = trading_flow(force=True)
    assert trading["portfolio"]["equity"] > 0
    report = validate_flow(force=True)
    for key in ("newly_scored", "actions", "model_signal", "sentiment_signal", "portfolio"):
        assert key in report
    again = validate_flow(force=True)
    assert again["newly_scored"] == 0


def test_a_bad_setting_fails_the_run_at_once_without_the_flow_retries(
    harness, replay_env, monkeypatch
):
    """The refresh deployment retries twice after 30 s; a bad setting would fail the same way
    every time, so those retries are skipped (the alert then fires a minute sooner)."""
    import time

    from prefect.client.orchestration import get_client

    from flows.sentinel_flows import data_refresh_flow

    monkeypatch.setenv("SENTINEL42_TICKERS", "not a ticker!")
    began = time.monotonic()
    state = data_refresh_flow(return_state=True)
    assert state.is_failed()
    assert "SENTINEL42_TICKERS" in str(state.message) + repr(state.result(raise_on_failure=False))
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.run_count == 1
    assert time.monotonic() - began < 30  # the first retry would have waited 30 s


def test_backup_flow_writes_a_verified_set_and_prunes(harness, replay_env):
    import hashlib

    from flows.sentinel_flows import backup_flow, data_refresh_flow

    data_refresh_flow()
    report = backup_flow()
    store_copy = __import__("pathlib").Path(report["backup"]["store"])
    digest = hashlib.sha256(store_copy.read_bytes()).hexdigest()
    assert report["backup"]["sha256"] == digest
    assert store_copy.stat().st_mode & 0o077 == 0  # owner-only
    assert "bars" in str(report["pruned"])


SECRETS = {
    "SENTINEL42_NEWSAPI_KEY": "newsapi-key-S3CR3T-1111",
    "SENTINEL42_NOTIFY_WEBHOOK_URL": "https://hooks.example.com/services/S3CR3T-2222",
    "SENTINEL42_SMTP_PASSWORD": "smtp-password-S3CR3T-3333",
}


def test_no_secret_reaches_logs_artifacts_parameters_outputs_or_databases(
    harness, replay_env, monkeypatch, caplog, tmp_path
):
    """Runs the flows and the read commands with secrets set, then greps everything a person or
    another process can read: logs, CLI output, Prefect's runs, artifacts and database, the
    store and the data folder."""
    import logging
    from pathlib import Path

    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings
    from typer.testing import CliRunner

    from flows.sentinel_flows import trading_flow, validate_flow
    from sentinel42.cli import app

    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SENTINEL42_SMTP_HOST", "127.0.0.1")
    # Prefect configures its own logging (no propagation to pytest's capture): listen on the
    # loggers themselves.
    lines: list[str] = []
    sink = logging.Handler(logging.DEBUG)
    sink.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    watched = [logging.getLogger(name) for name in ("sentinel42", "prefect")]
    levels = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(sink)
        logger.setLevel(logging.DEBUG)
    try:
        trading_flow(force=True)
        validate_flow(force=True)
        logging.getLogger("sentinel42.test").info("canary %s", "S3CR3T-canary")
    finally:
        for logger, level in zip(watched, levels, strict=True):
            logger.removeHandler(sink)
            logger.setLevel(level)
    log_text = "\n".join(lines)
    assert "S3CR3T-canary" in log_text and "predict-fuse-decide" in log_text  # it does listen
    texts = [log_text, caplog.text]
    runner = CliRunner()
    for command in (["status", "--json"], ["decisions", "--json"], ["doctor", "--json"],
                    ["portfolio", "--json"], ["validate", "--json"]):  # fmt: skip
        texts.append(runner.invoke(app, command).output)
    with get_client(sync_client=True) as client:
        texts += [r.model_dump_json() for r in client.read_flow_runs(limit=200)]
        texts += [a.model_dump_json() for a in client.read_artifacts(limit=200)]
    url = get_current_settings().server.database.connection_url.get_secret_value()
    prefect_db = Path(url.split("///", 1)[1]) if "sqlite" in url else None
    blobs = [p.read_bytes() for p in Path(load_settings().data_dir).rglob("*") if p.is_file()]
    if prefect_db is not None:
        assert prefect_db.exists(), prefect_db  # the test server's own database is read too
        blobs += [p.read_bytes() for p in prefect_db.parent.glob(prefect_db.name + "*")]
    assert len(texts) > 5 and blobs
    for value in SECRETS.values():
        assert not any(value in text for text in texts), value
        assert not any(value.encode() in blob for blob in blobs), value
