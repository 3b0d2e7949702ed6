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


def test_trading_flow_outside_the_session_records_nothing(harness, replay_env):
    from flows.sentinel_flows import trading_flow

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
