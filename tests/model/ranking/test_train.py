"""The ranking model end to end on generated universes: the gate's power and size, no look-ahead,
and the baselines' figures against independent pandas computations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sentinel42.model.ranking.panel import build_panel
from sentinel42.model.ranking.train import TrainRequest, train_ranking
from tests.model.ranking.conftest import universe

FAST = {"epochs": 8, "samples_per_epoch": 20_000}


def _ics(doc: dict) -> dict[str, float]:
    return {"model": doc["model"]["rank_ic_mean"]} | {
        k: v["rank_ic_mean"] for k, v in doc["baselines"].items()
    }


def test_a_pattern_no_single_factor_baseline_sees_is_promoted() -> None:
    panel = build_panel(universe("daily", seed=3, planted=0.6, n_sessions=260), "daily")
    doc = train_ranking(panel, TrainRequest(kind="daily", **FAST))
    ics = _ics(doc)
    assert doc["promoted"], doc["reason"]
    assert doc["gate"]["checks"] == {
        "ic_lower_positive": True, "not_worse_than_best": True, "long_short_positive": True,
    }  # fmt: skip
    # The rules see nothing of it; the sequence model does.
    best_rule = max(abs(ics[r]) for r in ("reversal_1", "reversal_5", "momentum_12_1"))
    assert best_rule < 0.08, ics
    assert ics["model"] > 3 * best_rule, ics


@pytest.mark.parametrize(("kind", "seed"), [("daily", 11), ("daily", 12), ("intraday", 13)])
def test_random_walks_are_refused(kind: str, seed: int) -> None:
    sessions = 200 if kind == "daily" else 30
    panel = build_panel(universe(kind, seed=seed, n_sessions=sessions, n_tickers=50), kind)
    doc = train_ranking(panel, TrainRequest(kind=kind, **FAST))
    assert not doc["promoted"], doc["reason"]
    assert not all(doc["gate"]["checks"].values())
    assert doc["reason"].startswith("refused")


def test_rows_after_the_test_period_change_no_figure() -> None:
    bars = universe("daily", seed=5, planted=0.3, n_sessions=180, n_tickers=40)
    cut = bars["T000"].index[-8]
    past = {t: f[f.index <= cut] for t, f in bars.items()}
    # The future: a pattern so strong that a model seeing it would be perfect.
    future = {t: f.copy() for t, f in bars.items()}
    rng = np.random.default_rng(0)
    for f in future.values():
        late = f.index > cut
        f.loc[late, ["open", "high", "low", "close"]] *= np.exp(rng.normal(0, 0.2, late.sum()))[
            :, None
        ]
        f.loc[late, "high"] = f.loc[late, ["open", "high", "low", "close"]].max(axis=1) * 1.01
        f.loc[late, "low"] = f.loc[late, ["open", "high", "low", "close"]].min(axis=1) * 0.99
    test_end = (cut.tz_convert("America/New_York") - pd.Timedelta(days=3)).date()
    request = TrainRequest(kind="daily", test_end=test_end, **FAST)
    a = train_ranking(build_panel(past, "daily"), request)
    b = train_ranking(build_panel(future, "daily"), request)
    for key in ("model", "baselines", "test", "gate", "folds"):
        assert json.dumps(a[key], sort_keys=True) == json.dumps(b[key], sort_keys=True), key


def test_reversal_1_rank_ic_equals_an_independent_pandas_computation() -> None:
    bars = universe("daily", seed=9, n_sessions=120, n_tickers=30)
    # A few holes: a ticker missing days must simply drop out of those dates.
    bars["T003"] = bars["T003"].drop(bars["T003"].index[50:53])
    doc = train_ranking(build_panel(bars, "daily"), TrainRequest(kind="daily", epochs=1,
                        samples_per_epoch=2_000))  # fmt: skip
    close = pd.DataFrame({t: f["close"] for t, f in bars.items()})
    close.index = close.index.tz_convert("America/New_York").date
    ret = np.log(close / close.shift(1))
    fwd = np.log(close.shift(-1) / close)
    excess = fwd.sub(fwd.mean(axis=1), axis=0)
    # A window of 20 whole bars must end at the date, as for every scorer.
    whole = close.notna().astype(float).rolling(20).sum() == 20
    lo, hi = (pd.Timestamp(doc["test"][k]).date() for k in ("start", "end"))
    ics = []
    for day in close.index:
        if not lo <= day <= hi:
            continue
        ok = whole.loc[day] & ret.loc[day].notna() & excess.loc[day].notna()
        if ok.sum() >= 5:
            ics.append((-ret.loc[day][ok]).corr(excess.loc[day][ok], method="spearman"))
    assert doc["baselines"]["reversal_1"]["rank_ic_mean"] == pytest.approx(np.mean(ics), abs=1e-12)
    assert doc["baselines"]["reversal_1"]["n_periods"] == len(ics)
