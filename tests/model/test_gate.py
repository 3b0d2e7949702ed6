"""The promotion gate: decided on the untouched test block, never promoting a random walk."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentinel42.model import gate as gate_module
from sentinel42.model.config import TrainingConfig
from sentinel42.model.evaluate import hits
from sentinel42.model.features import FeatureSpec, build_table, samples
from sentinel42.model.gate import Incumbent, block_bars, decide, mean_bound
from sentinel42.model.registry import METADATA_FILE, ModelRegistry
from sentinel42.model.walk_forward import train_and_register
from sentinel42.synthetic import synthetic_bars
from tests.model.conftest import NOW, TICKERS, fast_settings

NAMES = ("AAA", "BBB", "CCC", "DDD", "EEE", "FFF")


# --- the bootstrap bound --------------------------------------------------------------------
def _no_skill_trial(seed: int, bar_times: int = 300, tickers: int = 2, horizon: int = 4):
    """Overlapping horizon-4 targets of correlated random walks, called by a persistent rule
    (the sign of the last 16 bars' move) that carries no information about the future."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=bar_times + 40)
    ts, realized, model, baseline = [], [], [], []
    for _ in range(tickers):
        path = np.cumsum(0.7 * common + 0.7 * rng.normal(size=bar_times + 40))
        t = np.arange(20, 20 + bar_times)
        ts.append(t)
        realized.append(path[t + horizon] - path[t])
        model.append(np.where(path[t] - path[t - 16] > 0, 0.55, 0.45))
        baseline.append(np.full(bar_times, 0.51))
    return [np.concatenate(a) for a in (ts, realized, model, baseline)]


def _false_edges(trials: int) -> float:
    found = 0
    for seed in range(trials):
        ts, realized, model, baseline = _no_skill_trial(seed)
        diff = hits(model, realized) - hits(baseline, realized)
        found += mean_bound(diff, ts, horizon=4, confidence=0.95, seed=seed, n_boot=500) > 0
    return found / trials


def test_block_bootstrap_keeps_its_level_on_overlapping_windows(monkeypatch) -> None:
    # 95% one-sided: about 5% of no-skill samples may show a positive lower bound by chance
    assert _false_edges(200) <= 0.07
    # resampling single bar times ignores the overlap and would find "edges" far more often
    monkeypatch.setattr(gate_module, "block_bars", lambda n_times, horizon: 1)
    assert _false_edges(200) >= 0.10


@pytest.mark.parametrize(("n_times", "horizon"), [(10, 4), (300, 1), (300, 4), (5000, 4)])
def test_bootstrap_blocks_are_at_least_the_horizon_long(n_times: int, horizon: int) -> None:
    length = block_bars(n_times, horizon)
    assert min(n_times, horizon) <= length <= n_times


def test_mean_bound_brackets_a_clear_mean_and_is_reproducible() -> None:
    rng = np.random.default_rng(0)
    ts = np.repeat(np.arange(400), 2)
    values = rng.normal(0.3, 1.0, ts.shape[0])
    lower = mean_bound(values, ts, horizon=4, confidence=0.95, seed=1)
    upper = mean_bound(values, ts, horizon=4, confidence=0.95, seed=1, upper=True)
    assert 0.0 < lower < values.mean() < upper
    assert lower == mean_bound(values, ts, horizon=4, confidence=0.95, seed=1)
    assert np.isnan(mean_bound(np.zeros(0), np.zeros(0, dtype=np.int64), horizon=1,
                               confidence=0.95))  # fmt: skip


# --- the decision rule ----------------------------------------------------------------------
def _block(n: int = 800, skill: float = 0.0, seed: int = 0):
    """A deciding block: realized returns, a model right with probability 0.5 + skill, and
    baselines at coin-flip level."""
    rng = np.random.default_rng(seed)
    realized = rng.normal(size=n)
    up = realized > 0
    right = rng.random(n) < 0.5 + skill
    p_model = np.where(up == right, 0.62, 0.38)
    base = {
        "majority": np.full(n, 0.52),
        "persistence": np.where(rng.random(n) < 0.5, 0.51, 0.49),
        "momentum": np.where(rng.random(n) < 0.5, 0.51, 0.49),
    }
    return p_model, base, realized, np.arange(n, dtype=np.int64)


def test_a_clear_edge_on_the_test_block_is_promoted() -> None:
    p, base, realized, ts = _block(skill=0.15)
    doc = decide(p, base, realized, ts, horizon=1, confidence=0.95)
    assert doc["promoted"] is True, doc["reason"]
    assert doc["block"] == "test" and doc["n"] == 800 and doc["incumbent"] is None
    assert doc["edge"] == pytest.approx(doc["model_accuracy"] - doc["best_baseline_accuracy"])
    assert 0 < doc["edge_lower_bound"] < doc["edge"]
    assert doc["best_baseline_accuracy"] == max(np.mean(hits(b, realized)) for b in base.values())
    assert "no incumbent" in doc["reason"]


def test_no_skill_is_refused_with_the_bound_in_the_reason() -> None:
    p, base, realized, ts = _block(skill=0.0)
    doc = decide(p, base, realized, ts, horizon=1, confidence=0.95)
    assert doc["promoted"] is False
    assert doc["edge_lower_bound"] <= 0
    assert "95% lower bound" in doc["reason"] and "is not above 0" in doc["reason"]


def test_an_accuracy_edge_with_a_worse_log_loss_than_a_baseline_is_refused() -> None:
    p, base, realized, ts = _block(skill=0.15)
    overconfident = np.where(p > 0.5, 0.999, 0.001)  # right 65% of the time, ruinous when wrong
    doc = decide(overconfident, base, realized, ts, horizon=1, confidence=0.95)
    assert doc["edge_lower_bound"] > 0
    assert doc["promoted"] is False
    assert "log-loss" in doc["reason"] and "is above the best baseline's" in doc["reason"]


def _incumbent(p_up: np.ndarray, shared: np.ndarray) -> Incumbent:
    return Incumbent("20250101T000000Z-inc", p_up[shared], shared, "2025-01-01T00:00:00+00:00")


def test_a_candidate_significantly_worse_than_the_incumbent_is_refused() -> None:
    p, base, realized, ts = _block(skill=0.10, seed=1)
    strong = np.where(realized > 0, 0.7, 0.3)  # the incumbent is right every time
    shared = ts >= 200  # the first 200 windows are not out of sample for the incumbent
    doc = decide(p, base, realized, ts, horizon=1, confidence=0.95,
                 incumbent=_incumbent(strong, shared))  # fmt: skip
    assert doc["promoted"] is False
    inc = doc["incumbent"]
    assert inc["version"] == "20250101T000000Z-inc" and inc["n"] == 600
    assert inc["accuracy"] == 1.0 and inc["edge_upper_bound"] < 0
    assert "incumbent" in doc["reason"] and "significantly worse" in doc["reason"]


def test_a_candidate_as_good_as_the_incumbent_is_promoted() -> None:
    p, base, realized, ts = _block(skill=0.15, seed=2)
    doc = decide(p, base, realized, ts, horizon=1, confidence=0.95,
                 incumbent=_incumbent(p.copy(), ts >= 100))  # fmt: skip
    assert doc["promoted"] is True, doc["reason"]
    assert doc["incumbent"]["edge"] == 0.0 and "not worse" in doc["reason"]


def test_an_incumbent_that_does_not_defend_is_named_in_the_reason() -> None:
    p, base, realized, ts = _block(skill=0.15)
    why = "incumbent X does not defend: incompatible feature spec"
    doc = decide(p, base, realized, ts, horizon=1, confidence=0.95, incumbent_ignored=why)
    assert doc["promoted"] is True and doc["incumbent"] is None
    assert doc["incumbent_ignored"] == why and why in doc["reason"]


# --- trained end to end ---------------------------------------------------------------------
# Pure random walks: nothing to learn. Every one of these was promoted by the old gate (decided
# on the validation block that also chose the early-stopping epoch).
RANDOM_WALKS = [
    # (seed, sigma, sessions, tickers, horizon, window, folds)
    (1013, 0.002, 40, 2, 1, 8, 1),
    (1015, 0.0005, 63, 1, 1, 8, 1),
    (1017, 0.01, 40, 4, 4, 16, 1),
    (1043, 0.0005, 40, 2, 4, 16, 1),
    (1078, 0.0005, 30, 4, 4, 16, 1),
    (1122, 0.01, 30, 4, 1, 16, 1),
    (1110, 0.002, 63, 2, 4, 16, 3),  # the independent check: 2 tickers, 3 months, 1-hour target
]


@pytest.mark.parametrize(
    ("seed", "sigma", "sessions", "tickers", "horizon", "window", "folds"), RANDOM_WALKS
)
def test_a_random_walk_is_never_promoted(
    tmp_path: Path, seed: int, sigma: float, sessions: int, tickers: int, horizon: int,
    window: int, folds: int,
) -> None:  # fmt: skip
    names = list(NAMES[:tickers])
    bars = synthetic_bars(names, sessions, pattern="random_walk", seed=seed, sigma=sigma)
    settings = fast_settings(tmp_path, tickers=names, model_horizon=horizon, model_window=window)
    doc = train_and_register(TrainingConfig.from_settings(settings), bars, now=NOW, n_folds=folds)
    gate = doc["gate"]
    assert doc["promoted"] is False, doc["reason"]
    assert gate["promoted"] is False and gate["block"] == "test"
    assert gate["n"] == doc["model"]["n"]  # the registered fold's test block decided
    assert ModelRegistry(settings.models_dir).current_version() is None


def test_the_gate_and_data_end_are_recorded_with_the_checkpoint(
    trained: dict, pattern_bars: dict
) -> None:
    settings, doc = trained["settings"], trained["doc"]
    gate = doc["gate"]
    assert gate["promoted"] is True and gate["block"] == "test", gate["reason"]
    assert gate["edge_lower_bound"] > 0 and gate["confidence"] == settings.model_gate_confidence
    assert gate["model_accuracy"] == doc["model"]["accuracy"]
    assert gate["model_log_loss"] == doc["model"]["log_loss"]
    assert gate["best_baseline_accuracy"] == max(b["accuracy"] for b in doc["baselines"].values())
    assert gate["best_baseline_log_loss"] == min(b["log_loss"] for b in doc["baselines"].values())
    spec = FeatureSpec(settings.model_window, settings.model_horizon)
    newest = samples(build_table(pattern_bars, spec), spec).target_end.max()
    assert doc["data_end"] == pd.Timestamp(int(newest), tz="UTC").isoformat()

    loaded = ModelRegistry(settings.models_dir).load(doc["version"])
    assert loaded.metadata["gate"] == gate and loaded.metadata["data_end"] == doc["data_end"]
    assert loaded.edge == gate["edge"] and loaded.accuracy == gate["model_accuracy"]
    assert loaded.data_end == pd.Timestamp(doc["data_end"]).to_pydatetime()
    assert loaded.data_end is not None and loaded.data_end.utcoffset() is not None
    decision = ModelRegistry(settings.models_dir).decisions()[-1]
    assert decision["gate"] == gate


def test_an_older_checkpoint_without_a_gate_record_falls_back(trained: dict, tmp_path) -> None:
    src = trained["settings"].models_dir
    shutil.copytree(src, tmp_path / "models")
    registry = ModelRegistry(tmp_path / "models")
    version = trained["doc"]["version"]
    path = tmp_path / "models" / version / METADATA_FILE
    meta = json.loads(path.read_text())
    del meta["gate"], meta["data_end"]  # written before the gate moved to the test block
    path.write_text(json.dumps(meta))
    loaded = registry.load(version)
    assert loaded.edge is None
    assert loaded.accuracy == meta["metrics"]["test"]["model"]["accuracy"]
    assert loaded.data_end == pd.Timestamp(meta["ranges"]["test"]["target_end"]).to_pydatetime()


def _registry_with_incumbent(trained: dict, tmp_path: Path, **overrides) -> tuple:
    shutil.copytree(trained["settings"].models_dir, tmp_path / "models")
    settings = fast_settings(tmp_path, **overrides)
    return settings, ModelRegistry(settings.models_dir), trained["doc"]["version"]


def test_the_incumbent_is_judged_only_on_test_windows_after_its_data_end(
    trained: dict, tmp_path: Path
) -> None:
    # NOW is 22 sessions after the incumbent's data end: keep it inside its age limit here.
    settings, registry, incumbent = _registry_with_incumbent(
        trained, tmp_path, model_max_age_sessions=60
    )
    # six more sessions than the incumbent saw: its test block straddles the incumbent's data end
    bars = synthetic_bars(TICKERS, 46, pattern="sign_product", p=0.7, seed=5)
    doc = train_and_register(TrainingConfig.from_settings(settings), bars, now=NOW, n_folds=1)
    gate, inc = doc["gate"], doc["gate"]["incumbent"]
    assert inc is not None and inc["version"] == incumbent
    assert inc["data_end"] == trained["doc"]["data_end"]
    assert 50 <= inc["n"] < gate["n"]
    assert inc["accuracy"] > 0.55  # the incumbent learned the same rule: it defends for real
    assert doc["promoted"] is True, doc["reason"]
    assert f"against incumbent {incumbent}" in doc["reason"] and "not worse" in doc["reason"]
    assert registry.current_version() == doc["version"]


def test_an_incompatible_incumbent_does_not_defend(trained: dict, tmp_path: Path) -> None:
    settings, registry, incumbent = _registry_with_incumbent(trained, tmp_path, model_window=6)
    bars = synthetic_bars(TICKERS, 46, pattern="sign_product", p=0.7, seed=5)
    doc = train_and_register(TrainingConfig.from_settings(settings), bars, now=NOW, n_folds=1)
    assert doc["gate"]["incumbent"] is None
    assert f"incumbent {incumbent} does not defend: incompatible" in doc["reason"]
    assert doc["promoted"] is True and registry.current_version() == doc["version"]


def test_an_expired_incumbent_does_not_defend(trained: dict, tmp_path: Path) -> None:
    """It no longer decides anything (the predictor ignores it), so it cannot block a newer
    model either."""
    settings, _registry, incumbent = _registry_with_incumbent(
        trained, tmp_path, model_max_age_sessions=15
    )
    bars = synthetic_bars(TICKERS, 46, pattern="sign_product", p=0.7, seed=5)
    doc = train_and_register(TrainingConfig.from_settings(settings), bars, now=NOW, n_folds=1)
    assert doc["gate"]["incumbent"] is None
    assert f"incumbent {incumbent} does not defend: expired" in doc["reason"]
