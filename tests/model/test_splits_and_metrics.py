from __future__ import annotations

import numpy as np
import pytest

from sentinel42.errors import ModelError
from sentinel42.model import baselines
from sentinel42.model.evaluate import hits, log_losses, metrics, spearman
from sentinel42.model.features import FeatureSpec, build_table, samples
from sentinel42.model.walk_forward import plan_folds
from sentinel42.synthetic import synthetic_bars

SPEC = FeatureSpec(window=8, horizon=4)


def _samples(sessions: int, tickers: int = 3):
    bars = synthetic_bars([f"T{i}" for i in range(tickers)], sessions, seed=1)
    table = build_table(bars, SPEC)
    return table, samples(table, SPEC)


def test_every_validation_and_test_window_starts_after_the_previous_targets_end() -> None:
    _, s = _samples(40)
    folds = plan_folds(s, 3)
    assert len(folds) == 3
    for fold in folds:
        assert fold.val.window_start.min() > fold.train.target_end.max()
        assert fold.test.window_start.min() > fold.val.target_end.max()
        assert fold.val.ts.min() > fold.train.ts.max()
        assert fold.test.ts.min() > fold.val.ts.max()
    # walk-forward: training windows expand and test blocks move forward in time
    assert [len(f.train) for f in folds] == sorted(len(f.train) for f in folds)
    assert folds[0].test.ts.max() < folds[1].test.ts.min()


def test_short_history_plans_fewer_folds() -> None:
    _, s = _samples(12, tickers=2)
    folds = plan_folds(s, 3)
    assert 1 <= len(folds) < 3


@pytest.mark.parametrize("sessions", [3, 0])
def test_too_little_history_raises_a_clear_model_error(sessions: int) -> None:
    """Even none at all (a backtest that trains on its data's first day): not an IndexError."""
    _, s = _samples(3, tickers=1)
    if sessions == 0:
        s = s.subset(np.zeros(len(s), dtype=bool))
        assert len(s) == 0
    with pytest.raises(ModelError, match="too little history"):
        plan_folds(s, 3)


def test_metrics_on_hand_computed_values() -> None:
    p = np.array([0.9, 0.2, 0.6, 0.4])
    realized = np.array([0.01, -0.02, -0.01, 0.03])
    m = metrics(p, p - 0.5, realized)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.36) / 4)
    ll = -(np.log(0.9) + np.log(0.8) + np.log(0.4) + np.log(0.4)) / 4
    assert m["log_loss"] == pytest.approx(ll)
    assert m["n"] == 4
    assert spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
    assert spearman(np.ones(5), np.arange(5.0)) == 0.0


def test_per_window_hits_and_losses_average_to_the_metrics() -> None:
    rng = np.random.default_rng(0)
    p, realized = rng.random(50), rng.normal(size=50)
    realized[:3] = 0.0  # a zero return is "not up"
    m = metrics(p, p, realized)
    assert hits(p, realized).mean() == m["accuracy"]
    assert log_losses(p, realized).mean() == m["log_loss"]
    assert hits(np.array([0.7]), np.array([0.0]))[0] == 0.0


def test_baseline_probabilities_come_from_training_hit_rates() -> None:
    table, s = _samples(20, tickers=2)
    train = s.subset(np.arange(len(s)) < len(s) // 2)
    params = baselines.fit(table, train, SPEC.window)
    assert params["majority"]["p_up"] == pytest.approx(np.mean(train.target > 0))
    sig = np.log(table.close[train.ends] / table.close[train.ends - 1])
    hit = np.mean((sig > 0) == (train.target > 0))
    assert params["persistence"]["hit_rate"] == pytest.approx(hit)
    preds = baselines.predict(params, table, train, SPEC.window)
    p, _ = preds["persistence"]
    np.testing.assert_allclose(p, np.where(sig > 0, hit, 1 - hit))
    assert set(preds) == set(baselines.BASELINES)
