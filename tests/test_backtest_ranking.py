"""The backtest with the cross-sectional ranking models trained walk-forward (``models``).

Generated universes (tests/model/ranking/conftest.py): 40 names of 15-minute bars over the 20
sessions of 2026-03-02 .. 2026-03-27 (no holiday), either random walks or with a planted
pattern no single-factor rule sees (continuation after two moves the same way, reversal after
a zigzag). The backtests decide 2026-03-25 and 03-26 bar by bar after one training on the 17
sessions before them (03-27 is there to leak from), as the weekly flow trains the ``intraday``
kind. The planted set's seed (30) is one whose market rises (about 1.5 %) over those two
sessions, so a book that beats it did not do so by sitting in cash while the market fell; the
decisions' own quality is measured apart from the market (the fill bar's return of BUYs against
SELLs, both net of the universe's).

The noise runs (a gate refusing noise, and ``ungated``) and the planted future are marked slow
(``make test-slow``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentinel42 import backtest as bt
from sentinel42.errors import ConfigError
from tests.model.ranking.conftest import session_stamps, universe
from tests.test_backtest import _clean_env, _figures
from tests.test_backtest_universe import _run as backtest_between

START, END = "2026-03-25", "2026-03-26"
N_TICKERS, N_SESSIONS = 40, 20


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    _clean_env(monkeypatch)


def _write_replay(out: Path, *, planted: float, seed: int) -> Path:
    """The generated universe as replay price files (no headlines)."""
    bars = universe(
        "intraday", seed=seed, n_tickers=N_TICKERS, n_sessions=N_SESSIONS, planted=planted
    )
    # The generator's sessions start in 2024; the same bars, moved onto March 2026's sessions.
    stamps = session_stamps("intraday", N_SESSIONS, start="2026-03-02")
    stamps = stamps.tz_convert("America/New_York").rename("Datetime")
    (out / "prices").mkdir(parents=True)
    (out / "news").mkdir()
    for j, frame in enumerate(bars.values()):  # symbols of letters: TAA, TAB, ...
        ticker = f"T{chr(65 + j // 26)}{chr(65 + j % 26)}"
        table = frame.set_axis(stamps).rename(columns=str.capitalize).reset_index()
        table.to_csv(out / "prices" / f"{ticker}.csv", index=False)
    return out


def _run(
    replay: Path, workdir: Path, models: tuple[str, ...] = ("intraday",), **kwargs
) -> bt.BacktestResult:
    tickers = sorted(p.stem for p in (replay / "prices").glob("*.csv"))
    return backtest_between(
        replay, workdir, tickers, START, END, models=models, retrain_sessions=10, **kwargs
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return _write_replay(tmp_path_factory.mktemp("planted"), planted=0.6, seed=30)


@pytest.fixture(scope="module")
def noise(tmp_path_factory) -> Path:
    return _write_replay(tmp_path_factory.mktemp("noise"), planted=0.0, seed=22)


@pytest.fixture(scope="module")
def planted_run(planted, tmp_path_factory) -> bt.BacktestResult:
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp)
        return _run(planted, tmp_path_factory.mktemp("planted_work"))


def _fill_bar_excess(replay: Path) -> pd.DataFrame:
    """Each bar's open-to-close log return minus the universe's mean, indexed by the bar two
    before it: the decision on bar t fills at bar t+2's open (bar t+1 began before it)."""
    closes, opens = {}, {}
    for path in (replay / "prices").glob("*.csv"):
        frame = pd.read_csv(path)
        frame.index = pd.to_datetime(frame["Datetime"], utc=True)
        closes[path.stem], opens[path.stem] = frame["Close"], frame["Open"]
    move = np.log(pd.DataFrame(closes) / pd.DataFrame(opens))
    excess = move.sub(move.mean(axis=1), axis=0)
    return excess.shift(-2)


def test_a_planted_pattern_is_promoted_by_the_gate_traded_and_beats_the_market(
    planted, planted_run
):
    summary = planted_run.summary
    (training,) = summary["trainings"]
    assert training["kind"] == "intraday"
    assert training["promoted"], training["reason"]
    assert training["rank_ic_lower"] > 0
    assert summary["gate"] == "enforced"
    assert summary["models_traded"] == 1
    # Every decision ranked its name among the universe.
    assert summary["n_with_model"] == summary["n_decisions"] == 2 * 26 * N_TICKERS
    # The bars the BUYs fill at beat the SELLs' (each against the universe), by a margin noise
    # would not give.
    excess = _fill_bar_excess(planted)
    side = {"BUY": [], "SELL": []}
    for r in planted_run.records:
        value = excess.at[pd.Timestamp(r.bar_ts), r.ticker] if r.action in side else np.nan
        if not np.isnan(value):
            side[r.action].append(value)
    assert len(side["BUY"]) > 200 and len(side["SELL"]) > 200
    assert np.mean(side["BUY"]) - np.mean(side["SELL"]) > 0.003, side
    # The book traded on them and, net of the spread and fees, beat a rising market by more
    # than a point in two sessions (a model of the bar that began before the decision, which
    # no fill can trade, trailed it: scripts/figures/planted_backtest.py --lag 0).
    assert summary["market_return"] > 0
    assert summary["n_trades"] > 0 and summary["turnover"] > 1
    assert summary["excess_return_vs_market"] > 0.01, summary["excess_return_vs_market"]


def test_the_ranking_model_decides_only_bars_after_its_data(planted_run):
    (training,) = planted_run.summary["trainings"]
    trained_at = pd.Timestamp(training["at"])
    assert trained_at == pd.Timestamp("2026-03-24T16:00", tz="America/New_York")
    assert min(r.bar_ts for r in planted_run.records) >= trained_at


@pytest.mark.slow
def test_noise_is_refused_and_then_nothing_trades(noise, tmp_path):
    summary = _run(noise, tmp_path / "work").summary
    (training,) = summary["trainings"]
    assert not training["promoted"], training["reason"]
    assert training["reason"].startswith("refused")
    assert not training["traded"]
    assert summary["models_traded"] == 0
    assert summary["n_with_model"] == 0
    assert summary["n_trades"] == 0 and summary["total_return"] == 0


@pytest.mark.slow
def test_ungated_trades_the_refused_model_and_says_so(noise, tmp_path):
    summary = _run(noise, tmp_path / "work", ungated=True).summary
    (training,) = summary["trainings"]
    assert not training["promoted"]
    assert training["traded"]
    assert summary["gate"].startswith("ignored")
    assert summary["models_traded"] == 1
    assert summary["n_with_model"] == summary["n_decisions"]


def test_an_unknown_model_kind_is_refused(noise, tmp_path):
    with pytest.raises(ConfigError, match="--models: weekly"):
        _run(noise, tmp_path / "work", models=("weekly",))


@pytest.mark.slow
def test_bars_after_the_last_step_change_nothing_with_the_ranking_model(
    planted, planted_run, tmp_path
):
    """Every bar that ends after the last step's clock five times dearer: the same training,
    decisions, figures and equity."""
    last = planted_run.steps[-1].clock
    copy = tmp_path / "replay"
    shutil.copytree(planted, copy)
    for path in (copy / "prices").glob("*.csv"):
        raw = pd.read_csv(path, dtype=str)
        later = pd.to_datetime(raw["Datetime"], utc=True) + pd.Timedelta(minutes=15) > last
        assert later.any()
        for column in ("Open", "High", "Low", "Close"):
            raw.loc[later, column] = (raw.loc[later, column].astype(float) * 5).map(str)
        raw.to_csv(path, index=False)
    again = _run(copy, tmp_path / "work")

    def trained(run):
        return [{k: v for k, v in t.items() if k != "train_s"} for t in run.summary["trainings"]]

    assert trained(again) == trained(planted_run)
    assert again.records == planted_run.records
    assert again.equity == planted_run.equity
    assert _figures(again.summary) == _figures(planted_run.summary)
