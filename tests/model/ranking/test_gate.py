"""The ranking gate: promotes a planted signal, refuses noise, a weaker model and a costly book."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from sentinel42.model.ranking.gate import corrected_confidence, decide
from sentinel42.model.ranking.metrics import evaluate, rank_ic

SESSIONS = 250
NAMES = 60
PPY = 252


def _market(seed: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """[sessions, names] a hidden signal and next-day returns that load ``strength`` on it."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(SESSIONS, NAMES))
    target = 0.01 * (strength * signal + rng.normal(size=signal.shape))
    return signal, target


def _judge(
    model: np.ndarray,
    baselines: dict[str, np.ndarray],
    target: np.ndarray,
    *,
    cost_bps: float = 1.0,
    attempts: int = 3,
    seed: int = 0,
) -> dict:
    session = np.arange(SESSIONS)

    def doc(score: np.ndarray) -> dict:
        return evaluate(
            score, target, session, horizon=1, periods_per_year=PPY, cost_bps=cost_bps, seed=seed
        )

    return decide(
        rank_ic(model, target),
        {name: rank_ic(score, target) for name, score in baselines.items()},
        session,
        model_metrics=doc(model),
        baseline_metrics={name: doc(score) for name, score in baselines.items()},
        horizon=1,
        confidence=0.99,
        attempts=attempts,
        seed=seed,
    )


def _noise(seed: int) -> np.ndarray:
    return np.random.default_rng(10_000 + seed).normal(size=(SESSIONS, NAMES))


def test_corrected_confidence() -> None:
    assert corrected_confidence(0.99, 1) == pytest.approx(0.99)
    assert corrected_confidence(0.99, 2) == pytest.approx(0.99**0.5)
    levels = [corrected_confidence(0.99, k) for k in range(1, 30)]
    assert all(a < b for a, b in itertools.pairwise(levels))
    # k tries at the corrected level pass noise as often as one at the nominal level
    assert 1 - levels[9] ** 10 == pytest.approx(0.01)
    with pytest.raises(ValueError, match="attempts"):
        corrected_confidence(0.99, 0)


def test_promotes_a_planted_signal() -> None:
    signal, target = _market(0, strength=0.15)
    half = signal + 2.0 * _noise(1)  # a baseline that knows part of it
    doc = _judge(signal, {"noise": _noise(0), "half": half}, target)
    assert doc["promoted"], doc["reason"]
    assert doc["checks"] == {
        "ic_lower_positive": True,
        "not_worse_than_best": True,
        "long_short_positive": True,
    }
    assert doc["best_baseline"] == "half"
    assert doc["confidence"] == pytest.approx(0.99 ** (1 / 3))
    assert doc["nominal_confidence"] == 0.99 and doc["attempts"] == 3
    assert 0 < doc["rank_ic_lower"] < doc["rank_ic_mean"]
    assert doc["paired_lower"] > 0  # better than the baseline, and surely so
    assert doc["reason"].startswith("promoted")
    for part in ("lower bound", "half", "long-short net"):
        assert part in doc["reason"]
    json.dumps(doc, allow_nan=False)


@pytest.mark.parametrize("seed", range(5))
def test_refuses_noise(seed: int) -> None:
    _, target = _market(100 + seed, strength=0.15)
    doc = _judge(_noise(seed), {"noise": _noise(50 + seed)}, target, seed=seed)
    assert not doc["promoted"]
    assert not doc["checks"]["ic_lower_positive"]
    assert doc["rank_ic_lower"] <= 0
    assert (
        f"rank IC 99.67% lower bound {doc['rank_ic_lower']:+.4f} is not above 0" in (doc["reason"])
    )


def test_refuses_a_model_worse_than_a_strong_baseline() -> None:
    signal, target = _market(1, strength=0.3)
    weak = signal + 4.0 * _noise(2)  # a real but much weaker signal
    doc = _judge(weak, {"momentum": signal, "noise": _noise(3)}, target)
    assert doc["checks"]["ic_lower_positive"], doc["reason"]  # its own IC is bounded above 0
    assert doc["checks"]["long_short_positive"]
    assert not doc["checks"]["not_worse_than_best"]
    assert not doc["promoted"]
    assert doc["best_baseline"] == "momentum"
    assert doc["paired_upper"] < 0
    assert "momentum" in doc["reason"] and "significantly worse" in doc["reason"]
    assert "lower bound" not in doc["reason"]  # a refusal names only what failed


def test_refuses_a_book_that_does_not_pay_its_costs() -> None:
    signal, target = _market(2, strength=0.15)
    doc = _judge(signal, {"noise": _noise(4)}, target, cost_bps=500.0)
    assert doc["checks"]["ic_lower_positive"] and doc["checks"]["not_worse_than_best"]
    assert not doc["checks"]["long_short_positive"]
    assert not doc["promoted"]
    assert "long-short net" in doc["reason"] and "is not above 0" in doc["reason"]


def test_refusal_names_every_failed_check() -> None:
    signal, target = _market(3, strength=0.3)
    doc = _judge(_noise(5), {"momentum": signal}, target, cost_bps=500.0, attempts=1)
    assert doc["checks"] == {
        "ic_lower_positive": False,
        "not_worse_than_best": False,
        "long_short_positive": False,
    }
    reason = doc["reason"]
    assert reason.startswith("refused: rank IC 99% lower bound")
    assert reason.count(";") == 2
    assert "momentum" in reason and "long-short net" in reason


def test_best_baseline_is_the_highest_mean_ic() -> None:
    signal, target = _market(4, strength=0.2)
    strong = signal + 0.5 * _noise(6)
    weak = signal + 3.0 * _noise(7)
    doc = _judge(signal, {"weak": weak, "strong": strong, "noise": _noise(8)}, target)
    assert doc["best_baseline"] == "strong"
    with pytest.raises(ValueError, match="baseline"):
        decide(
            rank_ic(signal, target),
            {},
            np.arange(SESSIONS),
            model_metrics={"long_short_net_annual": 1.0},
            baseline_metrics={},
            horizon=1,
            confidence=0.99,
            attempts=1,
        )
