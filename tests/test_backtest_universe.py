"""The backtest over a universe: the cadence, the market benchmark, Sharpe from the step length,
and the planted future with a promoted model.

The generated set ends Tuesday 2026-12-01; the backtests cover the days around Thanksgiving
(Friday 2026-11-27 closes early, at 13:00 New York), so later data exists to leak from.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sentinel42 import backtest as bt
from sentinel42 import pipeline
from sentinel42.factory import build_calendar
from sentinel42.market.replay import ReplayPriceSource
from sentinel42.model.registry import ModelRegistry
from sentinel42.persistence import open_store
from sentinel42.settings import load_settings
from tests.test_backtest import _clean_env, _figures

UNIVERSE = ("AAPL", "AMZN", "MSFT", "NVDA")
WATCHLIST = ("AAPL", "MSFT")
SMALL_MODEL = {
    "SENTINEL42_MODEL_WINDOW": "8",
    "SENTINEL42_MODEL_EPOCHS": "4",
    "SENTINEL42_MODEL_HIDDEN_SIZE": "8",
}


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    _clean_env(monkeypatch)
    # Sentiment alone reaches these, so the books trade and the Sharpe ratio is defined.
    monkeypatch.setenv("SENTINEL42_BUY_THRESHOLD", "0.02")
    monkeypatch.setenv("SENTINEL42_SELL_THRESHOLD", "-0.02")
    monkeypatch.setenv("SENTINEL42_EXIT_THRESHOLD", "0.01")


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    from sentinel42.synthetic import generate_replay

    out = tmp_path_factory.mktemp("universe_replay")
    generate_replay(out, UNIVERSE, end=date(2026, 12, 1), sessions=14, seed=5, news_rate=0.2)
    return out


def _run(
    replay: Path,
    workdir: Path,
    tickers=WATCHLIST,
    start: str = "2026-11-24",
    end: str = "2026-11-27",
    **kwargs,
) -> bt.BacktestResult:
    settings = bt.backtest_settings(replay, workdir, tickers)
    calendar = build_calendar(settings)
    return bt.run_backtest(
        settings,
        bt.parse_bound(start, calendar, end=False),
        bt.parse_bound(end, calendar, end=True),
        **kwargs,
    )


# --- the cadence and the Sharpe ratio ------------------------------------------------------------
def test_the_session_cadence_steps_once_after_each_close():
    calendar = build_calendar(load_settings())
    start = bt.parse_bound("2026-11-24", calendar, end=False)
    end = bt.parse_bound("2026-11-30", calendar, end=True)
    steps = bt.step_clocks(calendar, start, end, 15, 2, "session")
    # Tue, Wed, (Thanksgiving), Fri's early close, Mon: each close + 2 minutes.
    assert [s.clock for s in steps] == [
        datetime(2026, 11, 24, 21, 2, tzinfo=UTC),
        datetime(2026, 11, 25, 21, 2, tzinfo=UTC),
        datetime(2026, 11, 27, 18, 2, tzinfo=UTC),
        datetime(2026, 11, 30, 21, 2, tzinfo=UTC),
    ]
    assert [s.session for s in steps] == [0, 1, 2, 3]
    assert [s.bar_end for s in steps] == [s.clock.replace(minute=0) for s in steps]
    # An exact end inside a session: that session's step follows its last bar inside it.
    short = bt.step_clocks(
        calendar, start, datetime(2026, 11, 25, 17, 0, tzinfo=UTC), 15, 2, "session"
    )
    assert [s.clock for s in short] == [steps[0].clock, datetime(2026, 11, 25, 17, 2, tzinfo=UTC)]
    with pytest.raises(bt.ConfigError, match="cadence"):
        bt.step_clocks(calendar, start, end, 15, 2, "hourly")


def test_periods_per_year_count_steps_not_bars():
    assert bt.periods_per_year("bar", 15) == 252 * 26
    assert bt.periods_per_year("bar", 5) == 252 * 78
    assert bt.periods_per_year("session", 15) == 252
    assert bt.periods_per_year("session", 5) == 252


@pytest.mark.parametrize(("cadence", "per_year"), [("bar", 252 * 26), ("session", 252)])
def test_sharpe_is_annualised_from_the_step_length(replay, tmp_path, cadence, per_year):
    result = _run(replay, tmp_path / "work", use_model=False, cadence=cadence)
    summary = result.summary
    assert summary["cadence"] == cadence
    # Tuesday, Wednesday and Friday's early close: 26 + 26 + 14 bars, or three closes.
    assert summary["steps"] == (3 if cadence == "session" else 66)
    assert summary["periods_per_year"] == per_year
    assert summary["n_trades"] > 0, "the books must trade for a defined Sharpe ratio"
    returns = pd.Series(result.equity).pct_change().dropna()
    expected = returns.mean() / returns.std(ddof=1) * per_year**0.5
    assert summary["sharpe"] == pytest.approx(expected, rel=1e-9)


def test_a_session_step_decides_the_sessions_last_bar(replay, tmp_path):
    result = _run(replay, tmp_path / "work", use_model=False, cadence="session")
    assert result.summary["steps"] == result.summary["sessions"] == 3
    bars = {r.bar_ts for r in result.records}
    assert bars == {
        datetime(2026, 11, 24, 20, 45, tzinfo=UTC),
        datetime(2026, 11, 25, 20, 45, tzinfo=UTC),
        datetime(2026, 11, 27, 17, 45, tzinfo=UTC),
    }
    assert len(result.records) == 3 * len(WATCHLIST)


# --- the market ----------------------------------------------------------------------------------
def test_the_market_is_the_whole_universe_in_equal_weight(replay, tmp_path):
    """Equal slices bought once: the market's return is the mean of the single-name
    buy-and-holds of the universe, the undecided names included."""
    result = _run(replay, tmp_path / "a", use_model=False, cadence="session", universe=UNIVERSE)
    rest = [t for t in UNIVERSE if t not in WATCHLIST]
    others = _run(replay, tmp_path / "b", tickers=rest, use_model=False, cadence="session")
    summary = result.summary
    singles = [summary["per_ticker"][t]["buy_and_hold_return"] for t in WATCHLIST]
    singles += [others.summary["per_ticker"][t]["buy_and_hold_return"] for t in rest]
    assert summary["universe"] == list(WATCHLIST) + rest
    assert summary["universe_size"] == 4
    assert summary["market_return"] == pytest.approx(sum(singles) / 4, abs=1e-12)
    # The universe's other names moved differently: the market is not the watchlist's.
    assert abs(summary["market_return"] - summary["buy_and_hold_return"]) > 1e-4
    assert summary["excess_return_vs_market"] == pytest.approx(
        summary["total_return"] - summary["market_return"]
    )
    assert summary["excess_return_vs_buy_and_hold"] == pytest.approx(
        summary["total_return"] - summary["buy_and_hold_return"]
    )
    # No universe given: the market is the watchlist, and equals buy-and-hold.
    alone = _run(replay, tmp_path / "c", use_model=False, cadence="session")
    assert alone.summary["universe"] == list(WATCHLIST)
    assert alone.summary["market_return"] == pytest.approx(alone.summary["buy_and_hold_return"])


def test_spec_tickers_reads_a_spec_without_the_watchlist(replay, tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL42_TICKERS", "AAPL,SPY")  # never added to a spec's tickers
    assert bt.spec_tickers(replay, "all") == (sorted(UNIVERSE), [])
    assert bt.spec_tickers(replay, "NVDA,MSFT")[0] == ["MSFT", "NVDA"]
    listing = tmp_path / "names.txt"
    listing.write_text("# two names\nnvda\nAMZN\nQQQ\n", encoding="utf-8")
    names, problems = bt.spec_tickers(replay, f"@{listing}")
    assert names == ["AMZN", "NVDA"]
    assert problems == [f"{listing} line 4: QQQ is not in the replay data; line skipped"]
    with pytest.raises(bt.ConfigError, match="no ticker"):
        bt.spec_tickers(replay, "QQQ")


def _cli(replay: Path, workdir: Path, *extra: str) -> dict:
    from sentinel42.cli import app

    args = ["backtest", "--start", "2026-11-24", "--end", "2026-11-25", "--no-model"]
    args += ["--replay-dir", str(replay), "--workdir", str(workdir), "--json", *extra]
    result = CliRunner().invoke(app, args, env={"SENTINEL42_TICKERS": "AAPL,SPY"})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_universe_alone_trades_the_universe(replay, tmp_path):
    doc = _cli(replay, tmp_path / "w1", "--universe", "all", "--cadence", "session")
    assert doc["tickers"] == list(UNIVERSE) and doc["universe"] == list(UNIVERSE)
    assert doc["steps"] == 2 and doc["cadence"] == "session" and doc["periods_per_year"] == 252
    assert doc["n_decisions"] == 2 * len(UNIVERSE)
    assert sorted(doc["per_ticker"]) == sorted(UNIVERSE)
    for key in ("market_return", "excess_return_vs_market", "excess_return_vs_buy_and_hold"):
        assert isinstance(doc[key], float)


def test_cli_tickers_with_a_universe_trade_the_tickers_against_it(replay, tmp_path):
    doc = _cli(replay, tmp_path / "w2", "--tickers", "NVDA", "--universe", "MSFT,AMZN")
    assert doc["tickers"] == ["NVDA"]
    assert doc["universe"] == ["NVDA", "AMZN", "MSFT"]
    assert doc["cadence"] == "bar" and doc["steps"] == 52 and doc["periods_per_year"] == 6552


def test_cli_refuses_an_unknown_cadence_and_an_empty_universe(replay, tmp_path):
    from sentinel42.cli import app

    base = ["backtest", "--start", "2026-11-24", "--end", "2026-11-25", "--no-model"]
    base += ["--replay-dir", str(replay), "--workdir", str(tmp_path / "w")]
    bad = CliRunner().invoke(app, [*base, "--cadence", "hourly"])
    assert bad.exit_code != 0 and "--cadence" in bad.output and "hourly" in bad.output
    empty = CliRunner().invoke(app, [*base, "--universe", "QQQ"])
    assert empty.exit_code != 0 and "no ticker" in empty.output
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


# --- the planted future, with a promoted model ---------------------------------------------------
TRAINED_AT = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)  # Wednesday's close
LAST = "2026-11-27T12:00:00-05:00"  # Friday, mid-session: later bars of the day exist


def _promoted_model(replay: Path, folder: Path, at: datetime) -> tuple[Path, str]:
    """Train the direction LSTM as the weekly run after ``at``'s close would, on a store of its
    own, and promote it through the real registry (the gate's own tests are in tests/model; on
    synthetic data it may refuse, and then nothing here would use a model)."""
    settings = bt.backtest_settings(replay, folder, WATCHLIST)
    pipeline.refresh_all(settings, at)
    report = pipeline.train_model(settings, now=at)
    version = report["version"]
    registry = ModelRegistry(settings.models_dir)
    if not report.get("promoted"):
        registry.promote(version)
    assert registry.current_version() == version
    assert pd.Timestamp(registry.load(version).metadata["data_end"]) <= at
    return settings.models_dir, version


def _plant_after(src: Path, dst: Path, clock: datetime) -> None:
    """Copy ``src``; every bar not ended by ``clock`` five times dearer; glowing headlines."""
    shutil.copytree(src, dst)
    for ticker in UNIVERSE:
        path = dst / "prices" / f"{ticker}.csv"
        raw = pd.read_csv(path, dtype=str)
        later = pd.to_datetime(raw["Datetime"], utc=True) + pd.Timedelta(minutes=15) > clock
        for column in ("Open", "High", "Low", "Close"):
            raw.loc[later, column] = (raw.loc[later, column].astype(float) * 5).map(str)
        raw.to_csv(path, index=False)
    with (dst / "news" / "synthetic.jsonl").open("a", encoding="utf-8") as fh:
        for i, minutes in enumerate((1, 60, 4000)):
            at = clock + pd.Timedelta(minutes=minutes)
            line = {
                "published_at": at.isoformat(),
                "title": f"Apple and Microsoft soar on record blowout profits ({i})",
                "url": f"https://news.example.com/planted/{i}",
                "source": "Planted Wire",
                "tickers": list(UNIVERSE),
            }
            fh.write(json.dumps(line) + "\n")


def _with_model(replay: Path, workdir: Path, models: Path, **kwargs) -> bt.BacktestResult:
    shutil.copytree(models, workdir / "models")
    return _run(replay, workdir, start="2026-11-27", end=LAST, use_model=False, **kwargs)


@pytest.fixture(scope="module")
def trained(replay, tmp_path_factory) -> tuple[Path, str]:
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp)
        for key, value in SMALL_MODEL.items():
            mp.setenv(key, value)
        return _promoted_model(replay, tmp_path_factory.mktemp("trained"), TRAINED_AT)


def test_data_after_the_last_step_changes_no_figure_with_a_promoted_model(
    replay, trained, tmp_path, monkeypatch
):
    for key, value in SMALL_MODEL.items():
        monkeypatch.setenv(key, value)
    models, version = trained
    base = _with_model(replay, tmp_path / "base", models, universe=UNIVERSE)
    last = base.steps[-1]
    assert last.clock == datetime(2026, 11, 27, 17, 2, tzinfo=UTC)
    # Every decision went through the promoted model: its prediction is among the inputs, its
    # version among the models.
    assert base.summary["n_with_model"] == base.summary["n_decisions"] > 0
    settings = bt.backtest_settings(replay, tmp_path / "base", WATCHLIST)
    with open_store(settings) as store:
        stored = store.decisions(limit=1000)
    assert len(stored) == base.summary["n_decisions"]
    assert {d.models.get("lstm") for d in stored} == {version}
    assert all(d.inputs.get("p_up") is not None for d in stored)

    planted = tmp_path / "planted"
    _plant_after(replay, planted, last.clock)
    # The plant is real: the 12:00 bar (ends 12:15, after the last clock) is five times dearer.
    later = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    seen = ReplayPriceSource(planted).fetch_intraday(["AAPL"], "15m", {"AAPL": None}, later)
    plain = ReplayPriceSource(replay).fetch_intraday(["AAPL"], "15m", {"AAPL": None}, later)
    assert seen.frames["AAPL"]["close"].iloc[-1] == pytest.approx(
        5 * plain.frames["AAPL"]["close"].iloc[-1]
    )
    again = _with_model(planted, tmp_path / "again", models, universe=UNIVERSE)
    assert again.summary["n_with_model"] == base.summary["n_with_model"]
    assert _figures(again.summary) == _figures(base.summary)
    assert again.records == base.records
    assert again.equity == base.equity


def _decide_at_the_clock(
    replay: Path, models: Path, tmp_path: Path, run_id: str
) -> pipeline.TradingResult:
    """Refresh and decide once at Friday 2026-11-27 15:02 UTC with ``models`` as the registry."""
    folder = tmp_path / "live"
    shutil.copytree(models, folder / "models")
    settings = bt.backtest_settings(replay, folder, WATCHLIST)
    clock = datetime(2026, 11, 27, 15, 2, tzinfo=UTC)
    pipeline.refresh_all(settings, clock)
    return pipeline.decide(settings, clock, run_id=run_id)


def test_a_decision_at_the_clock_uses_the_promoted_model(replay, trained, tmp_path, monkeypatch):
    for key, value in SMALL_MODEL.items():
        monkeypatch.setenv(key, value)
    models, version = trained
    result = _decide_at_the_clock(replay, models, tmp_path, "test-model")
    assert result.model_version == version
    assert result.legs["direction"] == {"live": True, "version": version}
    for d in result.decisions:
        assert d.models["lstm"] == version and d.inputs["p_up"] is not None
        assert f"LSTM {version}" in d.reason
        assert d.bar_ts == datetime(2026, 11, 27, 14, 45, tzinfo=UTC)


def test_decide_refuses_a_model_trained_on_data_after_the_clock(replay, tmp_path, monkeypatch):
    """A model whose training data ends Monday may not decide Friday: the tickers decide
    without it and say why."""
    for key, value in SMALL_MODEL.items():
        monkeypatch.setenv(key, value)
    monday = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
    models, version = _promoted_model(replay, tmp_path / "trained", monday)
    result = _decide_at_the_clock(replay, models, tmp_path, "test-refused")
    assert result.model_version is None
    why = result.legs["direction"]["why"]
    assert f"model {version} was trained on data up to" in why and "after the clock" in why
    assert result.decisions
    for d in result.decisions:
        assert d.inputs.get("p_up") is None and d.models.get("lstm") is None
        assert "after the clock" in d.reason
