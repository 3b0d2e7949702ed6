"""Training on the real recorded 15-minute bars in ../shared/data/prices (slow; not in the
default run). Prints the out-of-sample table and the gate; asserts the shape of the result and
that a promotion, if any, was earned on the test block, not the data's luck."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentinel42.model.config import RegistryConfig, TrainingConfig
from sentinel42.model.walk_forward import evaluate_model, train_and_register
from sentinel42.settings import load_settings
from tests.model.conftest import NOW

PRICES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "prices"


def load_real_bars() -> tuple[dict, dict]:
    """Regular-session 15-minute bars and daily bars of every ticker with a 15m export."""
    if not PRICES.is_dir():
        pytest.skip(f"recorded prices not found at {PRICES} (they live beside the checkout)")
    from sentinel42.market.calendar import NyseCalendar
    from sentinel42.market.replay import read_price_csv

    calendar = NyseCalendar()
    bars, daily = {}, {}
    for path in sorted(PRICES.glob("*_15m_*_prepost.csv")):
        ticker = path.name.split("_")[0]
        frame = read_price_csv(path).sort_index()
        frame = frame[~frame.index.duplicated()]
        bars[ticker] = frame[calendar.session_mask(frame.index, 15)]
        for day_path in PRICES.glob(f"{ticker}_1d_*.csv"):
            daily[ticker] = read_price_csv(day_path).sort_index()
    return bars, daily


@pytest.mark.slow
def test_real_15_minute_bars_train_and_evaluate_out_of_sample(tmp_path: Path) -> None:
    bars, daily = load_real_bars()
    settings = load_settings(data_dir=tmp_path, tickers=list(bars), require_replay_dir=False)
    doc = train_and_register(TrainingConfig.from_settings(settings), bars, now=NOW, daily=daily)
    print(json.dumps({k: doc[k] for k in ("model", "baselines", "gate", "data_end")}, indent=1))
    for fold in doc["folds"]:
        print(fold["fold"], fold["ranges"]["test"], fold["model"], fold["baselines"])
    assert set(doc["baselines"]) == {"majority", "persistence", "momentum"}
    assert doc["model"]["n"] > 100 and len(doc["folds"]) >= 2
    gate = doc["gate"]  # decided on the last fold's test block, never on validation
    assert gate["block"] == "test" and gate["n"] == doc["model"]["n"]
    assert gate["model_accuracy"] == doc["model"]["accuracy"]
    assert gate["promoted"] is doc["promoted"] and gate["reason"] == doc["reason"]
    if gate["promoted"]:  # whatever the luck of the data, a promotion needs a significant edge
        assert gate["edge_lower_bound"] > 0
        assert gate["model_log_loss"] <= gate["best_baseline_log_loss"]
    again = evaluate_model(
        RegistryConfig.from_settings(settings), bars, version=doc["version"], daily=daily
    )
    assert again["model"]["accuracy"] == pytest.approx(doc["model"]["accuracy"], abs=1e-6)
