"""A promoted ranking model in the trading run: numpy scores equal torch's, and decide() uses the
leg, says it is live, and never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime

import numpy as np
import pytest

from sentinel42 import pipeline
from sentinel42.model.ranking import features as F
from sentinel42.model.ranking.lstm import predict as torch_predict
from sentinel42.model.ranking.panel import build_panel
from sentinel42.model.ranking.predict import load, score_latest
from sentinel42.model.ranking.service import registry_for, train_kind
from sentinel42.model.ranking.train import TrainRequest
from sentinel42.persistence import open_store
from sentinel42.settings import load_settings

CLOSE = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
WATCHLIST = ("TA", "TB", "TC")


def _torch_ranks(network, model, panel, news=None):
    """The torch network's ranks at the newest row, context standardised as in training."""
    block = F.compute(panel, model.horizon, news)
    grid = block.grid.copy()
    k = block.n_context
    grid[:, :, -k:] = (grid[:, :, -k:] - model.context_mean) / model.context_std
    t = panel.shape[0] - 1
    cols = np.flatnonzero(F.usable_windows(block.valid, model.window)[t])
    raw = torch_predict(network, grid, np.full(cols.size, t), cols, model.window)
    return cols, F.cs_rank(raw[None, :])[0] / np.sqrt(3.0)


@pytest.fixture(scope="module")
def universe_replay(tmp_path_factory):
    from sentinel42.synthetic import generate_replay

    out = tmp_path_factory.mktemp("universe")
    tickers = ["T" + chr(65 + i) for i in range(24)]
    generate_replay(out, tickers, end=date(2026, 11, 25), sessions=34, seed=3, news_rate=0.0)
    return out


@pytest.fixture
def trained(monkeypatch, universe_replay):
    monkeypatch.setenv("SENTINEL42_DATA_SOURCE", "replay")
    monkeypatch.setenv("SENTINEL42_REPLAY_DIR", str(universe_replay))
    monkeypatch.setenv("SENTINEL42_TICKERS", ",".join(WATCHLIST))
    monkeypatch.setenv("SENTINEL42_UNIVERSE", "all")
    settings = load_settings()
    request = TrainRequest(kind="intraday", epochs=2, samples_per_epoch=4_000)
    doc = train_kind(settings, request, now=CLOSE, as_of=CLOSE)
    registry = registry_for(settings, "intraday")
    # Promoted by hand: this test is about using a promoted model, not about the gate.
    registry.promote(doc["version"])
    return settings, doc, registry


def test_numpy_scores_rank_the_universe_as_the_torch_network_does(trained):
    settings, doc, registry = trained
    model = load(registry, doc["version"])
    with open_store(settings) as store:
        bars = store.load_bars(list(model.tickers), settings.interval)
    ranked = score_latest(model, bars)
    # The torch network on the same newest windows.
    panel = build_panel(bars, "intraday")
    cols, expected = _torch_ranks(doc["_network"], model, panel)
    assert sorted(ranked) == sorted(panel.tickers[c] for c in cols)
    got = np.array([ranked[panel.tickers[c]] for c in cols])
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert got.min() >= -1 and got.max() <= 1


def test_decide_uses_the_promoted_ranking_leg_and_says_which_legs_are_live(trained):
    settings, doc, _ = trained
    result = pipeline.decide(settings, CLOSE, forced=True)
    assert result.legs["intraday"]["live"] is True
    assert result.legs["intraday"]["version"] == doc["version"]
    assert result.legs["daily"]["live"] is False
    assert "no promoted daily" in result.legs["daily"]["why"]
    assert sorted(d.ticker for d in result.decisions) == sorted(WATCHLIST)
    for d in result.decisions:
        leg = d.inputs["ranking"]["intraday"]
        assert -1.0 <= leg["score"] <= 1.0
        assert d.models["ranking_intraday"] == doc["version"]
        assert f"intraday ranking {doc['version']}" in d.reason
    assert "legs" in result.to_dict()


def test_an_expired_ranking_model_is_not_live(trained):
    settings = trained[0]
    later = datetime(2027, 1, 29, 21, 0, tzinfo=UTC)
    _, legs = pipeline.ranking_legs(settings, None, _calendar(settings), later)
    assert legs["intraday"]["live"] is False
    assert "expired" in legs["intraday"]["why"]


def _calendar(settings):
    from sentinel42.factory import build_calendar

    return build_calendar(settings)


@pytest.mark.usefixtures("trained")
def test_deciding_with_a_ranking_leg_imports_no_torch():
    code = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from sentinel42 import pipeline\n"
        "from sentinel42.settings import load_settings\n"
        "r = pipeline.decide(load_settings(), datetime(2026, 11, 25, 21, 0, tzinfo=UTC), "
        "forced=True)\n"
        "assert r.legs['intraday']['live'], r.legs\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_status_and_the_trading_summary_say_which_legs_are_live(trained):
    from typer.testing import CliRunner

    from sentinel42.cli import app
    from sentinel42.dashboard import trading_summary_markdown

    _settings, doc, _ = trained
    result = pipeline.decide(load_settings(), CLOSE, forced=True).to_dict()
    md = trading_summary_markdown(result, None, {}, {"version": None}, None)
    assert f"| intraday | live | {doc['version']} |" in md
    assert "| daily | off |" in md
    out = CliRunner().invoke(app, ["status", "--json"])
    assert out.exit_code == 0, out.output
    legs = json.loads(out.stdout)["legs"]
    assert legs["intraday"]["live"] is True and legs["intraday"]["version"] == doc["version"]
    assert legs["daily"]["live"] is False
    assert "news" in legs


def test_a_daily_model_with_news_features_scores_live_as_torch_does(tmp_path):
    from sentinel42.model.ranking.service import register
    from sentinel42.model.ranking.train import train_ranking
    from sentinel42.model.registry import ModelRegistry
    from tests.model.ranking.conftest import universe

    bars = universe("daily", seed=8, n_sessions=120, n_tickers=20)
    panel = build_panel(bars, "daily")
    rng = np.random.default_rng(8)
    news = {name: np.where(rng.random(panel.shape) < 0.3, rng.normal(size=panel.shape), np.nan)
            for name in F.NEWS_FEATURES}  # fmt: skip
    request = TrainRequest(kind="daily", epochs=1, samples_per_epoch=2_000)
    doc = train_ranking(panel, request, news=news)
    assert "ablations" in doc and "prices_only" in doc["ablations"]
    registry = ModelRegistry(tmp_path / "ranking-daily")
    version = register(registry, doc, request, panel, now=CLOSE, attempts=1)
    model = load(registry, version)
    assert model.uses_news
    with pytest.raises(Exception, match="needs the stored news features"):
        score_latest(model, bars)
    ranked = score_latest(model, bars, news=lambda p: news)
    cols, expected = _torch_ranks(doc["_network"], model, panel, news)
    got = np.array([ranked[panel.tickers[c]] for c in cols])
    np.testing.assert_allclose(got, expected, atol=1e-9)
