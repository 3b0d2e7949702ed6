"""The backtest on a generated replay set: live's code path, nothing after the clock, same figures.

The set ends Tuesday 2026-12-01; the backtest covers Friday 2026-11-27, the early close (13:00
New York) after Thanksgiving, so later data exists to leak from.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sentinel42 import backtest as bt
from sentinel42 import pipeline
from sentinel42.factory import build_calendar
from sentinel42.market.replay import ReplayPriceSource, read_price_csv
from sentinel42.news.replay import ReplayNewsSource
from sentinel42.settings import load_settings
from tests.conftest import UNVALIDATED_NEWS_COUNTS

TICKERS = ("AAPL", "MSFT")
DAY = "2026-11-27"  # early close, 13:00 New York = 18:00 UTC
OPEN = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
EARLY_CLOSE = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
# Figures that must not depend on anything but the data up to the clock.
NOT_FIGURES = ("workdir", "timing", "trainings")


def _figures(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in NOT_FIGURES}


def _clean_env(mp: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("SENTINEL42_"):
            mp.delenv(key)
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv(*UNVALIDATED_NEWS_COUNTS)


def _run(
    replay: Path, workdir: Path, start: str = DAY, end: str = DAY, **kwargs
) -> bt.BacktestResult:
    settings = bt.backtest_settings(replay, workdir, TICKERS)
    calendar = build_calendar(settings)
    return bt.run_backtest(
        settings,
        bt.parse_bound(start, calendar, end=False),
        bt.parse_bound(end, calendar, end=True),
        **kwargs,
    )


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    from sentinel42.synthetic import generate_replay

    out = tmp_path_factory.mktemp("bt_replay")
    generate_replay(out, TICKERS, end=date(2026, 12, 1), sessions=14, seed=11)
    return out


@pytest.fixture(scope="module")
def trading(replay, tmp_path_factory) -> bt.BacktestResult:
    """The same session with thresholds low enough that sentiment alone trades, shorts on."""
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp)
        mp.setenv("SENTINEL42_BUY_THRESHOLD", "0.02")
        mp.setenv("SENTINEL42_SELL_THRESHOLD", "-0.02")
        mp.setenv("SENTINEL42_EXIT_THRESHOLD", "0.01")
        mp.setenv("SENTINEL42_PORTFOLIO_ALLOW_SHORT", "true")
        return _run(replay, tmp_path_factory.mktemp("bt_trading"), use_model=False)


@pytest.fixture(scope="module")
def base(replay, tmp_path_factory) -> bt.BacktestResult:
    """The early-close session on sentiment alone (no training keeps it fast)."""
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp)
        return _run(replay, tmp_path_factory.mktemp("bt_base"), use_model=False)


# --- the period ----------------------------------------------------------------------------------
def test_bare_dates_mean_whole_sessions_with_the_early_close():
    calendar = build_calendar(load_settings())
    assert bt.parse_bound(DAY, calendar, end=False) == OPEN
    assert bt.parse_bound(DAY, calendar, end=True) == EARLY_CLOSE
    # Thanksgiving: a start moves to the next open, an end back to the previous close.
    assert bt.parse_bound("2026-11-26", calendar, end=False) == OPEN
    assert bt.parse_bound("2026-11-26", calendar, end=True) == datetime(
        2026, 11, 25, 21, 0, tzinfo=UTC
    )
    steps = bt.step_clocks(calendar, OPEN, EARLY_CLOSE, 15, 2)
    assert len(steps) == 14  # 09:30 .. 13:00 in 15-minute bars
    assert steps[0].clock == datetime(2026, 11, 27, 14, 47, tzinfo=UTC)
    assert steps[-1].bar_end == EARLY_CLOSE
    assert steps[-1].clock == datetime(2026, 11, 27, 18, 2, tzinfo=UTC)  # the run after the close
    settings = load_settings()
    assert all(pipeline.market_gate(settings, s.clock, force=False).proceed for s in steps)
    regular = bt.step_clocks(
        calendar,
        bt.parse_bound("2026-11-24", calendar, end=False),
        bt.parse_bound("2026-11-25", calendar, end=True),
        15,
        2,
    )
    assert len(regular) == 2 * 26
    assert [s.session for s in regular[25:27]] == [0, 1]


def test_a_bare_date_decides_exactly_that_sessions_bars(base, replay):
    for ticker in TICKERS:
        bars = read_price_csv(replay / "prices" / f"{ticker}.csv")
        session = bars.index[(bars.index >= OPEN) & (bars.index < EARLY_CLOSE)]
        decided = [r.bar_ts for r in base.records if r.ticker == ticker]
        assert len(session) == 14
        assert decided == [ts.to_pydatetime() for ts in session]


def test_bounds_without_an_offset_are_refused():
    from sentinel42.errors import ConfigError

    with pytest.raises(ConfigError, match="UTC offset"):
        bt.parse_bound("2026-11-27T10:00:00", build_calendar(load_settings()), end=False)


# --- no look-ahead and determinism ---------------------------------------------------------------
def _plant_after(src: Path, dst: Path, after: datetime) -> None:
    """Copy ``src``; make every bar after ``after`` five times dearer; add glowing headlines."""
    shutil.copytree(src, dst)
    for ticker in TICKERS:
        path = dst / "prices" / f"{ticker}.csv"
        raw = pd.read_csv(path, dtype=str)
        later = pd.to_datetime(raw["Datetime"], utc=True) > after
        for column in ("Open", "High", "Low", "Close"):
            raw.loc[later, column] = (raw.loc[later, column].astype(float) * 5).map(str)
        raw.to_csv(path, index=False)
    with (dst / "news" / "synthetic.jsonl").open("a", encoding="utf-8") as fh:
        for i, at in enumerate(("2026-11-27T18:05:00+00:00", "2026-11-30T14:40:00+00:00")):
            fh.write(
                json.dumps(
                    {
                        "published_at": at,
                        "title": f"Apple and Microsoft soar on record blowout profits ({i})",
                        "url": f"https://news.example.com/planted/{i}",
                        "source": "Planted Wire",
                        "tickers": list(TICKERS),
                    }
                )
                + "\n"
            )


def test_data_after_the_last_step_changes_no_figure(base, replay, tmp_path):
    last_clock = base.steps[-1].clock
    planted = tmp_path / "planted"
    _plant_after(replay, planted, last_clock)
    later = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    # The plant is real: a later clock sees the dear bars and the headlines.
    seen = ReplayPriceSource(planted).fetch_intraday(["AAPL"], "15m", {"AAPL": None}, later)
    assert seen.frames["AAPL"]["close"].iloc[-1] > 4 * seen.frames["AAPL"]["close"].iloc[0]
    assert len(ReplayNewsSource(planted).fetch(TICKERS, later).items) > len(
        ReplayNewsSource(replay).fetch(TICKERS, later).items
    )
    again = _run(planted, tmp_path / "work", use_model=False)
    assert _figures(again.summary) == _figures(base.summary)
    assert again.records == base.records


def test_two_runs_give_the_same_figures(base, replay, tmp_path):
    again = _run(replay, tmp_path / "work", use_model=False)
    assert _figures(again.summary) == _figures(base.summary)
    assert again.equity == base.equity


# --- the backtest is the live path ---------------------------------------------------------------
def test_the_backtest_decides_what_live_decide_records_at_the_same_clock(base, replay, tmp_path):
    step = 6
    clock = base.steps[step].clock
    live = load_settings(
        data_source="replay", replay_dir=replay, tickers=list(TICKERS), data_dir=tmp_path / "live"
    )
    pipeline.refresh_all(live, clock)
    decided = {d.ticker: d for d in pipeline.decide(live, clock).decisions}
    mine = {r.ticker: r for r in base.records if r.step == step}
    assert sorted(mine) == sorted(decided) == sorted(TICKERS)
    for ticker, record in mine.items():
        assert record.bar_ts == decided[ticker].bar_ts
        assert record.action == decided[ticker].action.value
        assert record.fused == decided[ticker].inputs["fused"]


@pytest.mark.parametrize("name", ["base", "trading"])
def test_the_live_store_backed_portfolio_ends_where_the_backtest_book_ends(name, request):
    """Each step also runs live's own portfolio step (``pipeline.update_portfolio``) on the
    backtest's store: its equity is the backtest's final equity (``trading`` trades)."""
    result = request.getfixturevalue(name)
    assert result.summary["portfolio"]["equity"] == pytest.approx(result.equity[-1], rel=1e-9)
    assert result.summary["n_trades"] > 0 or name == "base"


def _replay_bars(replay: Path) -> dict[str, pd.DataFrame]:
    return {t: read_price_csv(replay / "prices" / f"{t}.csv") for t in TICKERS}


def test_the_in_memory_book_is_the_live_book_after_every_step(trading):
    """Live saves an equity point at the newest bar of each step (and nothing later rewrites
    it): the in-memory book's equity after that step is that point."""
    from sentinel42.persistence import ledger, open_store

    folder = Path(trading.summary["workdir"])
    settings = load_settings(database_url=f"sqlite:///{folder / bt.STORE_FILE}")
    with open_store(settings, create=False) as store:
        curve = {p.ts: p.equity for p in ledger.equity_curve(store)}
    compared = 0
    for i, step in enumerate(trading.steps):
        newest = step.bar_end - timedelta(minutes=15)
        if newest in curve:
            assert trading.equity[i + 1] == pytest.approx(curve[newest], rel=1e-12)
            compared += 1
    assert compared >= len(trading.steps) - 1


def test_every_backtest_fill_is_at_the_open_of_the_first_bar_after_its_decision(trading, replay):
    """The store-backed book the backtest ran (live's own step): each fill's bar starts at or
    after its decision's clock, and its price is that bar's open plus or minus half the spread."""
    from sentinel42.persistence import ledger, open_store

    folder = Path(trading.summary["workdir"])
    settings = load_settings(database_url=f"sqlite:///{folder / bt.STORE_FILE}")
    with open_store(settings, create=False) as store:
        trades = ledger.portfolio_trades(store, limit=None)
    assert trading.summary["n_trades"] > 0 and len(trades) == trading.summary["n_trades"]
    bars = _replay_bars(replay)
    half = settings.portfolio_spread_bps / 2e4
    for t in trades:
        decided, filled = pd.Timestamp(t["decided_at"]), pd.Timestamp(t["fill_bar"])
        frame = bars[t["ticker"]]
        assert filled == frame.index[frame.index >= decided][0]
        side = 1 if t["side"] == "buy" else -1
        assert t["fill_price"] == pytest.approx(frame.loc[filled, "open"] * (1 + side * half))


def test_buy_and_hold_buys_at_the_first_bar_open_after_the_first_step(base, replay):
    settings = load_settings()
    first, last = base.steps[0].clock, base.steps[-1].clock - timedelta(minutes=15)
    slice_ = settings.portfolio_starting_cash / len(TICKERS)
    cost = (1 + settings.portfolio_spread_bps / 2e4) * (1 + settings.portfolio_fee_bps / 1e4)
    value = 0.0
    for frame in _replay_bars(replay).values():
        fill = frame.index[frame.index >= first][0]
        assert fill == pd.Timestamp(first + timedelta(minutes=13))  # 14:47 -> the 15:00 bar
        shares = slice_ / (frame.loc[fill, "open"] * cost)
        value += shares * frame.loc[frame.index <= last, "close"].iloc[-1]
    assert base.summary["buy_and_hold_return"] == pytest.approx(
        value / settings.portfolio_starting_cash - 1
    )
    assert base.summary["portfolio"]["buy_and_hold_equity"] == pytest.approx(value)


# --- news latency --------------------------------------------------------------------------------
def _news_lines(replay: Path) -> list[dict]:
    raw = (replay / "news" / "synthetic.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in raw if line.strip()]


def test_the_summary_names_the_news_latency_rule(base, replay):
    """The generated set records no first_seen_at: each headline served by the last step came
    at its published_at + the default 60 s."""
    last = base.steps[-1].clock
    served = sum(
        datetime.fromisoformat(line["published_at"]) + timedelta(seconds=60) <= last
        for line in _news_lines(replay)
    )
    assert served > 0
    assert base.summary["news_latency"] == {
        "rule": f"recorded first_seen_at for 0 headlines, published_at + 60 s for {served}",
        "latency_seconds": 60,
        "recorded_first_seen": 0,
        "published_plus_latency": served,
    }


def test_the_news_latency_counts_recorded_first_seen_at_apart(replay, tmp_path, monkeypatch):
    _clean_env(monkeypatch)
    monkeypatch.setenv("SENTINEL42_REPLAY_NEWS_LATENCY_SECONDS", "120")
    copy = tmp_path / "replay"
    shutil.copytree(replay, copy)
    lines = _news_lines(replay)
    for line in lines[::2]:  # every other one recorded as seen five minutes after publication
        line["first_seen_at"] = (
            datetime.fromisoformat(line["published_at"]) + timedelta(minutes=5)
        ).isoformat()
    with (copy / "news" / "synthetic.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(line) + "\n" for line in lines)
    until = EARLY_CLOSE
    recorded = sum(
        datetime.fromisoformat(str(line["first_seen_at"])) <= until for line in lines[::2]
    )
    plain = sum(
        datetime.fromisoformat(line["published_at"]) + timedelta(seconds=120) <= until
        for line in lines[1::2]
    )
    assert recorded > 0 and plain > 0
    settings = bt.backtest_settings(copy, tmp_path / "work", TICKERS)
    assert bt.news_latency(settings, until)["rule"] == (
        f"recorded first_seen_at for {recorded} headlines, published_at + 120 s for {plain}"
    )


def test_a_headline_reaches_the_decisions_only_after_the_latency(base, replay, tmp_path):
    """A glowing headline published 30 s before a step's clock is not news at that step (the
    default 60 s latency), and is at the next."""
    step = 1
    clock = base.steps[step].clock
    planted = tmp_path / "planted"
    shutil.copytree(replay, planted)
    with (planted / "news" / "synthetic.jsonl").open("a", encoding="utf-8") as fh:
        line = {
            "published_at": (clock - timedelta(seconds=30)).isoformat(),
            "title": "Apple and Microsoft soar on record blowout profits",
            "url": "https://news.example.com/planted/latency",
            "source": "Planted Wire",
            "tickers": list(TICKERS),
        }
        fh.write(json.dumps(line) + "\n")
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp)
        short = _run(planted, tmp_path / "work", end="2026-11-27T10:15:00-05:00", use_model=False)
    assert [s.clock for s in short.steps] == [s.clock for s in base.steps[: step + 2]]

    def sentiment(result: bt.BacktestResult, i: int) -> dict[str, float | None]:
        return {r.ticker: r.sentiment for r in result.records if r.step == i}

    assert sentiment(short, step) == sentiment(base, step)  # served 30 s too early: not yet
    later = sentiment(short, step + 1)
    before = sentiment(base, step + 1)
    for ticker in TICKERS:
        assert later[ticker] is not None
        assert before[ticker] is None or later[ticker] > before[ticker], ticker


# --- figures -------------------------------------------------------------------------------------
def test_sharpe_is_undefined_for_a_flat_or_too_short_equity_curve():
    assert bt.sharpe_ratio([100.0] * 30, 6552) is None
    assert bt.sharpe_ratio([100.0, 101.0], 6552) is None
    rising = bt.sharpe_ratio([100.0, 101.0, 101.5, 103.0], 6552)
    assert rising is not None and rising > 0


def test_drawdown_and_hit_rate_on_small_series():
    assert bt.max_drawdown([100.0, 120.0, 90.0, 130.0]) == pytest.approx(0.25)
    index = pd.date_range("2026-11-27 14:30", periods=5, freq="15min", tz="UTC")
    closes = {"AAPL": pd.Series([10.0, 11.0, 12.0, 11.0, 10.0], index=index)}

    def rec(i: int, action: str) -> bt.DecisionRecord:
        return bt.DecisionRecord(i, "AAPL", index[i].to_pydatetime(), action, 0.0, 0.0, None, False)

    # horizon 2: BUY at 0 (10 -> 12) hits, SELL at 1 (11 -> 11) misses, SELL at 2 hits,
    # BUY at 3 has no bar 2 ahead, HOLD never counts.
    records = [rec(0, "BUY"), rec(1, "SELL"), rec(2, "SELL"), rec(3, "BUY"), rec(0, "HOLD")]
    assert bt.hit_rate(records, closes, 2) == (pytest.approx(2 / 3), 3)


def test_cli_json_names_its_figures_and_sharpe_is_null_when_nothing_trades(replay, tmp_path):
    from sentinel42.cli import app

    env = {
        "SENTINEL42_REPLAY_DIR": str(replay),
        "SENTINEL42_TICKERS": ",".join(TICKERS),
        "SENTINEL42_BUY_THRESHOLD": "1.0",  # sentiment alone never reaches it: no trade
        "SENTINEL42_SELL_THRESHOLD": "-1.0",
    }
    png = tmp_path / "bt.png"
    args = [
        "backtest",
        "--start",
        "2026-11-27T10:00:00-05:00",
        "--end",
        "2026-11-27T11:00:00-05:00",
    ]
    args += ["--no-model", "--workdir", str(tmp_path / "work"), "--json", "--plot", str(png)]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    figures = ("total_return", "sharpe", "max_drawdown", "hit_rate", "turnover")
    for key in (*figures, "buy_and_hold_return", "n_decisions", "per_ticker", "start", "end",
                "steps", "models_trained", "workdir"):  # fmt: skip
        assert key in doc
    assert doc["steps"] == 4
    assert doc["n_decisions"] == 4 * len(TICKERS)
    assert doc["sharpe"] is None and doc["total_return"] == 0.0 and doc["turnover"] == 0.0
    assert doc["workdir"] == str(tmp_path / "work")
    assert sorted(doc["per_ticker"]) == sorted(TICKERS)
    assert all(key in doc["per_ticker"]["AAPL"] for key in figures)
    assert png.stat().st_size > 10_000
    again = CliRunner().invoke(app, args, env=env)
    assert again.exit_code != 0 and "not empty" in again.output


# --- with the model (trains, so slow) ------------------------------------------------------------
SMALL_MODEL = {
    "SENTINEL42_MODEL_WINDOW": "8",
    "SENTINEL42_MODEL_EPOCHS": "4",
    "SENTINEL42_MODEL_HIDDEN_SIZE": "8",
}


@pytest.fixture
def small_model(monkeypatch):
    for key, value in SMALL_MODEL.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def promote_every_model(monkeypatch):
    """Promote whatever trains, so the decisions below go through the model (the gate's own
    tests are in tests/model; here a refusal would leave nothing to compare)."""
    from sentinel42.model import walk_forward as training

    real = training.decide

    def promote(*args, **kwargs):
        return {**real(*args, **kwargs), "promoted": True, "reason": "promoted by the test"}

    monkeypatch.setattr(training, "decide", promote)


@pytest.mark.slow
def test_with_a_model_the_backtest_and_live_agree_and_the_model_never_saw_the_session(
    replay, tmp_path, small_model, promote_every_model
):
    from sentinel42.model.registry import ModelRegistry

    result = _run(replay, tmp_path / "work")
    assert result.summary["models_trained"] == 1
    trained = result.trainings[0]
    registry = ModelRegistry(tmp_path / "work" / "models")
    data_end = pd.Timestamp(registry.load(trained["version"]).metadata["data_end"])
    assert data_end <= OPEN  # trained after Wednesday's close, before Friday's first bar
    assert result.summary["n_with_model"] > 0

    step = 6
    clock = result.steps[step].clock
    live = load_settings(
        data_source="replay", replay_dir=replay, tickers=list(TICKERS), data_dir=tmp_path / "live"
    )
    trained_at = datetime.fromisoformat(trained["at"])
    pipeline.refresh_all(live, trained_at)  # the weekly training run after a close
    pipeline.train_model(live, now=trained_at)
    pipeline.refresh_all(live, clock)
    decided = {d.ticker: d for d in pipeline.decide(live, clock).decisions}
    for record in (r for r in result.records if r.step == step):
        d = decided[record.ticker]
        assert d.inputs.get("p_up") is not None
        assert (record.action, record.fused) == (d.action.value, d.inputs["fused"])


@pytest.mark.slow
def test_two_runs_with_walk_forward_training_give_the_same_figures(replay, tmp_path, small_model):
    runs = [
        _run(replay, tmp_path / f"work{i}", start="2026-11-25", retrain_sessions=1)
        for i in range(2)
    ]
    assert runs[0].summary["models_trained"] == 2
    assert _figures(runs[0].summary) == _figures(runs[1].summary)
    assert [t["version"] for t in runs[0].trainings] == [t["version"] for t in runs[1].trainings]
    assert not any(math.isnan(x) for x in runs[0].equity)
