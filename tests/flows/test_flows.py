"""The flows through Prefect's engine (one session-scoped test server), on a replay set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    from sentinel42 import clock

    close = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    monkeypatch.setenv("SENTINEL42_SENTIMENT_WINDOW_HOURS", "96")  # 7 of the set's 39 stories
    ticks = itertools.count()
    monkeypatch.setattr(
        clock, "resolve_as_of", lambda settings, now=None: close + timedelta(seconds=next(ticks))
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


# --- the weekly training of the ranking models --------------------------------------------------
RANKING_END = datetime(2026, 3, 28, tzinfo=UTC)  # the day after Friday 2026-03-27's session


def ranking_replay(out: Path, *, tickers: int, daily_sessions: int, intraday_sessions: int) -> Path:
    """A generated universe as a replay folder: ``daily/`` and ``prices/`` (15-minute) files of
    ``tickers`` names (random walks with a planted pattern) on the NYSE sessions before
    :data:`RANKING_END`; the watchlist is its first two names."""
    import pandas as pd

    from sentinel42.market.calendar import NEW_YORK, NyseCalendar
    from sentinel42.market.replay import write_price_csv
    from tests.model.ranking.conftest import universe

    names = [f"Q{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(tickers)]
    calendar = NyseCalendar()
    most = max(daily_sessions, intraday_sessions)
    sessions = calendar.sessions_between(RANKING_END - timedelta(days=2 * most + 20), RANKING_END)
    days = pd.DatetimeIndex(
        [pd.Timestamp(o.astimezone(NEW_YORK).date()) for o, _ in sessions[-daily_sessions:]]
    )
    daily_index = days.tz_localize(NEW_YORK).tz_convert(UTC)
    starts = pd.DatetimeIndex(
        [s for o, c in sessions[-intraday_sessions:]
         for s in pd.date_range(o, c, freq="15min", inclusive="left")]
    )  # fmt: skip
    for kind, index, folder, column in (("daily", daily_index, "daily", "Date"),
                                        ("intraday", starts, "prices", "Datetime")):  # fmt: skip
        frames = universe(kind, seed=31, planted=0.5, n_tickers=tickers,
                          n_sessions=-(-len(index) // (1 if kind == "daily" else 26)))  # fmt: skip
        for name, frame in zip(names, frames.values(), strict=True):
            frame = frame.iloc[: len(index)].set_axis(pd.DatetimeIndex(index, name="ts"))
            write_price_csv(frame, out / folder / f"{name}.csv", time_column=column)
    (out / ".watchlist").write_text(",".join(names[:2]), encoding="utf-8")
    return out


@pytest.fixture
def ranking_env(monkeypatch, tmp_path):
    """The replay universe of 30 names (130 daily sessions, 30 of 15-minute bars) in replay
    mode, and training short enough for a test (2 epochs of 4,000 windows: the flow's wiring is
    under test here, the models' power in tests/model/ranking)."""
    from dataclasses import replace

    from sentinel42.model.ranking import weekly

    def configure(daily_sessions: int = 130, intraday_sessions: int = 30) -> Path:
        replay = ranking_replay(tmp_path / "universe", tickers=30, daily_sessions=daily_sessions,
                                intraday_sessions=intraday_sessions)  # fmt: skip
        monkeypatch.setenv("SENTINEL42_DATA_SOURCE", "replay")
        monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(replay))
        monkeypatch.setenv("SENTINEL42_UNIVERSE", "all")
        monkeypatch.setenv("SENTINEL42_TICKERS", (replay / ".watchlist").read_text())
        return replay

    real = weekly.ranking_request
    monkeypatch.setattr(weekly, "ranking_request",
                        lambda settings, kind: replace(real(settings, kind), epochs=2,
                                                       samples_per_epoch=4_000))  # fmt: skip
    return configure


def _run_artifacts_and_tasks(state) -> tuple[dict, list[str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    return {a.key: a for a in artifacts}, sorted(t.name for t in tasks)


def test_the_training_flow_trains_both_ranking_kinds_and_publishes_a_report_each(
    harness, ranking_env
):
    import base64

    from flows.sentinel_flows import model_training_flow
    from sentinel42.model.ranking.service import registry_for

    ranking_env()
    state = model_training_flow(return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert set(result["kinds"]) == {"intraday", "daily"}
    assert sorted(result["promoted"] + result["refused"]) == ["daily", "intraday"]
    assert result["failed"] == []
    settings = load_settings()
    for kind, row in result["kinds"].items():
        assert row["attempted"] and row["version"] and row["reason"]
        assert row["reason"].startswith("promoted" if row["promoted"] else "refused")
        registry = registry_for(settings, kind)
        assert row["version"] in registry.versions()
        assert (registry.current_version() == row["version"]) == row["promoted"]
    artifacts, tasks = _run_artifacts_and_tasks(state)
    assert {"train-ranking-intraday", "train-ranking-daily"} <= set(tasks)
    for kind in ("intraday", "daily"):
        page = artifacts[f"ranking-{kind}"]
        assert page.type == "markdown"
        assert result["kinds"][kind]["reason"] in page.data
        assert "| rank_ic_mean | icir | rank_ic_lower | long_short_net_annual |" in page.data
        png = base64.b64decode(page.data.split("data:image/png;base64,", 1)[1].split(")", 1)[0])
        assert png.startswith(b"\x89PNG")
        assert result["kinds"][kind]["version"] in page.description


def test_a_kind_the_data_cannot_train_leaves_the_other_trained_and_says_why(harness, ranking_env):
    from flows.sentinel_flows import model_training_flow

    ranking_env(daily_sessions=12, intraday_sessions=30)  # too little daily history
    state = model_training_flow(return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["failed"] == ["daily"]
    daily = result["kinds"]["daily"]
    assert daily == daily | {"attempted": True, "promoted": False, "error": "ModelError"}
    assert daily["reason"].startswith("not trained: ") and "samples" in daily["reason"]
    assert result["kinds"]["intraday"]["version"] and "error" not in result["kinds"]["intraday"]
    artifacts, tasks = _run_artifacts_and_tasks(state)
    assert {"train-ranking-intraday", "train-ranking-daily"} <= set(tasks)
    assert "ranking-intraday" in artifacts and "ranking-daily" not in artifacts


# --- a failed data source fails the trading run (issue 18, item 1) ---------------------------
def _replay_without(tmp_path: Path, replay_dir: Path, missing: tuple[str, ...]) -> Path:
    """A copy of the replay set whose price files of ``missing`` are gone (their source fails:
    "no replay file")."""
    import shutil

    out = tmp_path / "replay-missing"
    shutil.copytree(replay_dir, out)
    for ticker in missing:
        (out / "prices" / f"{ticker}.csv").unlink()
    return out


@pytest.fixture
def no_prices_env(monkeypatch, tmp_path, replay_env):
    from tests.conftest import REPLAY_TICKERS

    out = _replay_without(tmp_path, replay_env, REPLAY_TICKERS)
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(out))
    return out


@pytest.fixture
def msft_missing_env(monkeypatch, tmp_path, replay_env):
    out = _replay_without(tmp_path, replay_env, ("MSFT",))
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(out))
    return out


def test_trading_flow_with_no_usable_bars_for_any_ticker_fails_and_records_nothing(
    harness, no_prices_env
):
    from flows.sentinel_flows import trading_flow
    from sentinel42.errors import TemporarySourceError

    state = trading_flow.with_options(retries=0)(force=True, return_state=True)
    assert state.is_failed()
    with pytest.raises(TemporarySourceError, match="no usable bars for any of the 3 watchlist"):
        state.result()
    assert "AAPL: no replay file" in str(state.result(raise_on_failure=False))
    with open_store(load_settings()) as store:
        assert store.decisions() == []


def test_trading_flow_with_one_ticker_failing_decides_the_rest_and_names_it(
    harness, msft_missing_env
):
    from flows.sentinel_flows import data_refresh_flow, trading_flow

    result = trading_flow(force=True)
    assert result["failed_tickers"] == ["MSFT"]
    assert sorted(d["ticker"] for d in result["decisions"]) == ["AAPL", "NVDA"]
    state = data_refresh_flow(return_state=True)
    artifacts, _ = _run_artifacts_and_tasks(state)
    assert "failed: MSFT" in artifacts["data-refresh"].description
    assert state.result()["no_usable_data"] is None


def test_cli_trade_with_no_usable_bars_exits_1_with_one_line(no_prices_env):
    from typer.testing import CliRunner

    from sentinel42.cli import app

    result = CliRunner().invoke(app, ["trade", "--force"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: no decision: no usable bars for any of the 3 watchlist ticker(s): 3 failed, "
        "e.g. AAPL: no replay file prices/AAPL.csv (nor AAPL in a multi-ticker file)"
    ]
    with open_store(load_settings()) as store:
        assert store.decisions() == []


def test_cli_trade_with_one_ticker_failing_decides_the_rest_and_names_it(msft_missing_env):
    from typer.testing import CliRunner

    from sentinel42.cli import app

    result = CliRunner().invoke(app, ["trade", "--force", "--json"])
    assert result.exit_code == 0, result.output
    document = __import__("json").loads(result.stdout)
    assert document["failed_tickers"] == ["MSFT"]
    assert sorted(d["ticker"] for d in document["decisions"]) == ["AAPL", "NVDA"]
    assert "note: MSFT refresh failed: no replay file" in result.stderr


def _report(rows, *, no_data=False):
    from sentinel42.market.refresh import PriceRefreshReport, TickerPrices

    as_of = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    tickers = [
        TickerPrices(ticker=t, error=err, newest_bar_ts=as_of - timedelta(hours=h) if h else None)
        for t, err, h in rows
    ]
    return PriceRefreshReport(as_of=as_of, tickers=tickers, no_data=no_data, market_open=no_data)


@pytest.mark.parametrize(
    ("rows", "no_data", "why"),
    [
        ([("AAPL", "timeout", 2), ("MSFT", "bad symbol", None)], False,
         "no usable bars for any of the 2 watchlist ticker(s): 2 failed, e.g. AAPL: timeout"),
        ([("AAPL", None, None), ("MSFT", None, None)], False,
         "no usable bars for any of the 2 watchlist ticker(s): none has a stored bar"),
        ([("AAPL", None, 3), ("MSFT", None, 2)], True,
         "no new bar for any of the 2 watchlist ticker(s) during the session at "
         "2026-11-25T15:00:00+00:00 (newest stored bar 2026-11-25T13:00:00+00:00)"),
        ([("AAPL", "timeout", None), ("MSFT", None, 1)], False, None),
    ],
    ids=["every-ticker-failed", "nothing-stored", "stale-in-session", "partial"],
)  # fmt: skip
def test_refresh_summary_says_why_no_watchlist_ticker_is_usable(rows, no_data, why):
    from sentinel42 import pipeline

    as_of = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    summary = pipeline.refresh_summary(_report(rows, no_data=no_data), None, None, as_of)
    assert summary.no_usable_data == why
    assert summary.failed_tickers == tuple(t for t, err, _ in rows if err)
