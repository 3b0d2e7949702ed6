"""The Prometheus exporter, scraped over HTTP from a real server against a temp store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug import Request, Response

from sentinel42.domain import Action, Decision, DecisionScore, NewsItem, SentimentScore, text_hash
from sentinel42.ops.metrics import SentinelCollector, exporter
from sentinel42.persistence import open_store, score_ledger
from sentinel42.settings import load_settings

NOW = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)
BAR = timedelta(minutes=15)
VERSION = "20261120T220000Z-abcdef12"
ROOT = Path(__file__).resolve().parents[2]


def _bars(end: datetime, n: int = 4) -> pd.DataFrame:
    idx = pd.DatetimeIndex([end - (n - 1 - i) * BAR for i in range(n)], name="ts")
    c = [100.0 + i for i in range(n)]
    return pd.DataFrame(
        {"open": c, "high": c, "low": c, "close": c, "volume": [1.0] * n}, index=idx
    )


def _decision(ticker: str, bar_ts: datetime, action: Action, confidence: float) -> Decision:
    models = {"lstm": VERSION, "lstm_validated_accuracy": 0.56}
    decided_at = bar_ts + timedelta(minutes=17)  # the bar's end plus the trading delay, as live
    return Decision(
        ticker, bar_ts, action, confidence, "test", {"close": 100.0}, models, decided_at
    )


def _score(i: int, hit: bool) -> DecisionScore:
    return DecisionScore(
        ticker="AAPL",
        bar_ts=NOW - timedelta(days=3) + i * BAR,
        action=Action.BUY,
        close=100.0,
        exit_bar_ts=NOW - timedelta(days=3) + (i + 1) * BAR,
        exit_close=101.0,
        horizon_bars=1,
        forward_return=0.01,
        hit=hit,
        model_signal=1,
        model_signal_hit=hit,
        sentiment_signal=None,
        sentiment_signal_hit=None,
        model_version=VERSION,
        scored_at=NOW,
    )


@pytest.fixture
def settings(tmp_path):
    """A store with bars (AAPL fresh, MSFT old, NVDA none), news, decisions, a model, a backup."""
    settings = load_settings(tickers=["AAPL", "MSFT", "NVDA"], data_dir=tmp_path / "data")
    with open_store(settings) as store:
        store.upsert_bars("AAPL", "15m", _bars(NOW - 2 * BAR))  # newest started 30 min ago
        store.upsert_bars("MSFT", "15m", _bars(NOW - timedelta(days=2)))
        hour_ago = NOW - timedelta(hours=1)
        store.upsert_news(
            [NewsItem("https://x/1", "Apple beats", hour_ago, "w", tickers=("AAPL",))], NOW
        )
        store.save_scores(
            [SentimentScore(text_hash("Apple beats"), "positive", 0.8, 0.1, 0.1, "finbert", "r1")],
            NOW,
        )
        store.save_decisions(
            [
                _decision("AAPL", NOW - 3 * BAR, Action.HOLD, 0.2),
                _decision("AAPL", NOW - 2 * BAR, Action.BUY, 0.7),
                _decision("MSFT", NOW - 2 * BAR, Action.SELL, 0.6),
            ],
            run_id="run-1",
        )
        score_ledger.save_decision_scores(store, [_score(i, hit=i % 4 != 0) for i in range(8)])
    model = settings.models_dir / VERSION
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"")
    gate = {"model_accuracy": 0.56, "edge": 0.03}
    (model / "metadata.json").write_text(json.dumps({"gate": gate}), encoding="utf-8")
    (settings.models_dir / "current").write_text(VERSION + "\n", encoding="utf-8")
    backups = settings.data_dir / "backups"
    backups.mkdir()
    backup = backups / "sentinel42-20261125T150000Z.db"
    backup.write_bytes(b"")
    stamp = (NOW - timedelta(hours=1)).timestamp()
    os.utime(backup, (stamp, stamp))
    return settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(name: str, state: str, kind: str, ended: datetime | None, **extra) -> dict:
    return {
        "id": name,
        "flow_id": "f-trading",
        "deployment_id": "d-trading",
        "state_name": state,
        "state_type": kind,
        "run_count": 1,
        "total_run_time": 10.0,
        "start_time": None,
        "end_time": ended.isoformat() if ended else None,
        **extra,
    }


FINISHED = [
    _run("r1", "Completed", "COMPLETED", NOW - timedelta(hours=1), total_run_time=12.5),
    _run("r2", "Completed", "COMPLETED", NOW - timedelta(hours=2), run_count=2, total_run_time=40),
    _run("r3", "Failed", "FAILED", NOW - timedelta(hours=3)),
    _run("r4", "TimedOut", "FAILED", NOW - timedelta(hours=4), total_run_time=300.0),
]
ACTIVE = [_run("r5", "Running", "RUNNING", None)]


def _prefect_api(request: Request) -> Response:
    body = request.get_json(silent=True) or {}
    if request.path.endswith("/flows/filter"):
        data = [{"id": "f-trading", "name": "trading-flow"}, {"id": "f-val", "name": "validate"}]
    elif request.path.endswith("/deployments/filter"):
        data = [
            {"id": "d-trading", "name": "trading-production", "flow_id": "f-trading"},
            {"id": "d-val", "name": "validate-production", "flow_id": "f-val"},
        ]
    elif "end_time" in body.get("flow_runs", {}):
        assert body["sort"] == "END_TIME_DESC"
        data = FINISHED[body.get("offset", 0) :]
    else:
        data = ACTIVE
    return Response(json.dumps(data), content_type="application/json")


def _scrape(url: str) -> dict[str, dict[tuple, float]]:
    """``{sample name: {sorted label items: value}}`` from one scrape."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_scrape_reports_store_model_backups_and_prefect_runs(settings, httpserver) -> None:
    httpserver.expect_request("/api/flows/filter").respond_with_handler(_prefect_api)
    httpserver.expect_request("/api/deployments/filter").respond_with_handler(_prefect_api)
    httpserver.expect_request("/api/flow_runs/filter").respond_with_handler(_prefect_api)
    with open_store(settings) as store:
        collector = SentinelCollector(
            store, settings, prefect_api_url=httpserver.url_for("/api"), clock=lambda: NOW
        )
        with exporter(collector, "127.0.0.1", 0) as (_, port):
            m = _scrape(f"http://127.0.0.1:{port}/metrics")

    assert m["sentinel42_store_up"][()] == 1
    assert m["sentinel42_prefect_up"][()] == 1
    ages = m["sentinel42_bar_age_seconds"]
    assert ages[(("ticker", "AAPL"),)] == 30 * 60
    assert ages[(("ticker", "MSFT"),)] == 2 * 86400
    assert ages[(("ticker", "NVDA"),)] == float("inf")
    assert m["sentinel42_headline_age_seconds"][(("ticker", "AAPL"),)] == 3600
    assert m["sentinel42_headlines_scored"] == {(("scorer", "finbert"),): 1}
    assert m["sentinel42_sentiment_scorer_info"] == {(("revision", "r1"), ("scorer", "finbert")): 1}
    assert m["sentinel42_store_rows"][(("table", "bars"),)] == 8

    last = m["sentinel42_last_decision_action"]
    assert last == {
        (("action", "BUY"), ("ticker", "AAPL")): 1,
        (("action", "SELL"), ("ticker", "MSFT")): -1,
    }
    assert m["sentinel42_last_decision_confidence"][(("ticker", "AAPL"),)] == 0.7
    assert m["sentinel42_decisions"] == {
        (("action", "BUY"),): 1,
        (("action", "HOLD"),): 1,
        (("action", "SELL"),): 1,
    }

    v = (("version", VERSION),)
    assert m["sentinel42_model_info"] == {v: 1}
    assert m["sentinel42_model_validated_accuracy"][v] == 0.56
    assert m["sentinel42_model_edge"][v] == 0.03
    assert m["sentinel42_model_live_hit_rate"][v] == 6 / 8
    assert m["sentinel42_model_live_signals"][v] == 8
    assert m["sentinel42_model_degraded"][v] == 0
    assert m["sentinel42_backups"][()] == 1
    assert m["sentinel42_backup_age_seconds"][()] == pytest.approx(3600, abs=1)

    trading = (("deployment", "trading-production"), ("flow", "trading-flow"))
    runs = m["sentinel42_flow_runs"]
    assert runs[(*trading, ("state", "Completed"), ("state_type", "COMPLETED"))] == 2
    assert runs[(*trading, ("state", "Failed"), ("state_type", "FAILED"))] == 1
    assert runs[(*trading, ("state", "TimedOut"), ("state_type", "FAILED"))] == 1
    assert runs[(*trading, ("state", "Crashed"), ("state_type", "CRASHED"))] == 0
    validate = (("deployment", "validate-production"), ("flow", "validate"))
    assert runs[(*validate, ("state", "Failed"), ("state_type", "FAILED"))] == 0
    assert runs[(*validate, ("state", "TimedOut"), ("state_type", "FAILED"))] == 0
    assert m["sentinel42_flow_runs_retried"][trading] == 1
    assert m["sentinel42_flow_runs_active"] == {(*trading, ("state", "Running")): 1}
    assert m["sentinel42_flow_run_last_duration_seconds"][trading] == 12.5
    assert m["sentinel42_flow_run_max_duration_seconds"][trading] == 300
    success = m["sentinel42_flow_run_last_success_timestamp_seconds"][trading]
    assert success == (NOW - timedelta(hours=1)).timestamp()
    assert validate not in m["sentinel42_flow_run_last_duration_seconds"]


def test_prefect_unreachable_exports_prefect_up_0_and_the_rest(settings) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/api"
    with open_store(settings) as store:
        collector = SentinelCollector(store, settings, prefect_api_url=dead, clock=lambda: NOW)
        with exporter(collector, "127.0.0.1", 0) as (_, port):
            started = time.monotonic()
            m = _scrape(f"http://127.0.0.1:{port}/metrics")
            assert time.monotonic() - started < 5

    assert m["sentinel42_prefect_up"][()] == 0
    assert "sentinel42_flow_runs" not in m
    assert m["sentinel42_store_up"][()] == 1
    assert m["sentinel42_bar_age_seconds"][(("ticker", "AAPL"),)] == 30 * 60
    assert m["sentinel42_model_info"] == {(("version", VERSION),): 1}


def test_prefect_slower_than_its_budget_counts_as_down(settings, httpserver) -> None:
    def slow(request: Request) -> Response:
        time.sleep(2)
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/api/flows/filter").respond_with_handler(slow)
    with open_store(settings) as store:
        collector = SentinelCollector(
            store, settings, prefect_api_url=httpserver.url_for("/api"), prefect_timeout=0.5
        )
        with exporter(collector, "127.0.0.1", 0) as (_, port):
            m = _scrape(f"http://127.0.0.1:{port}/metrics")
    assert m["sentinel42_prefect_up"][()] == 0
    assert m["sentinel42_store_up"][()] == 1


def test_empty_store_without_model_or_backups_still_scrapes(tmp_path) -> None:
    settings = load_settings(tickers=["AAPL"], data_dir=tmp_path / "empty")
    dead = f"http://127.0.0.1:{_free_port()}/api"
    with open_store(settings) as store:
        collector = SentinelCollector(store, settings, prefect_api_url=dead, clock=lambda: NOW)
        with exporter(collector, "127.0.0.1", 0) as (_, port):
            m = _scrape(f"http://127.0.0.1:{port}/metrics")
    assert m["sentinel42_bar_age_seconds"] == {(("ticker", "AAPL"),): float("inf")}
    assert m["sentinel42_backups"][()] == 0
    assert "sentinel42_backup_age_seconds" not in m
    assert "sentinel42_model_info" not in m
    assert m["sentinel42_models_stored"][()] == 0
    assert m["sentinel42_decisions"][(("action", "BUY"),)] == 0


def test_cli_serves_on_loopback_and_stops_on_sigterm(settings) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "SENTINEL42_DATA_DIR": str(settings.data_dir),
        "SENTINEL42_TICKERS": "AAPL,MSFT,NVDA",
        "SENTINEL42_METRICS_PORT": str(port),
        "PREFECT_API_URL": f"http://127.0.0.1:{_free_port()}/api",
    }
    cli = Path(sys.executable).parent / "sentinel42"
    cmd = [str(cli), "metrics", "serve", "--prefect-timeout", "1"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                m = _scrape(f"http://127.0.0.1:{port}/metrics")
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the exporter did not start in 60 s"
                time.sleep(0.3)
        assert m["sentinel42_prefect_up"][()] == 0
        assert m["sentinel42_bar_age_seconds"][(("ticker", "AAPL"),)] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
