"""Ranking metrics: rank IC against pandas, the long-short book by hand, the bound's size, power."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from sentinel42.model.ranking.metrics import (
    average_ranks,
    block_sessions,
    evaluate,
    ic_bound,
    long_short_weights,
    n_bootstrap,
    quantile_returns,
    rank_ic,
    small_sample_factor,
    t_quantile,
)

PPY = 252


# --- rank IC --------------------------------------------------------------------------------
def _reference_ic(score: np.ndarray, target: np.ndarray, min_names: int = 5) -> np.ndarray:
    """Row by row through pandas' own Spearman (pairwise-complete, average ranks)."""
    out = []
    for s, y in zip(score, target, strict=True):
        pair = pd.DataFrame({"s": s, "y": y}).replace([np.inf, -np.inf], np.nan).dropna()
        if len(pair) < min_names:
            out.append(np.nan)
        else:
            out.append(pair.corr(method="spearman").iloc[0, 1])
    return np.array(out, dtype=np.float64)


@pytest.mark.parametrize(("seed", "t", "n"), [(0, 40, 12), (1, 60, 7), (2, 25, 50), (3, 80, 5)])
def test_rank_ic_matches_pandas_spearman_with_nans_and_ties(seed: int, t: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    score = np.round(rng.normal(size=(t, n)), 1)  # rounding makes ties
    target = np.round(0.3 * score + rng.normal(size=(t, n)), 1)
    score[rng.random((t, n)) < 0.2] = np.nan
    target[rng.random((t, n)) < 0.2] = np.nan
    target[0, :3] = np.inf  # infinite counts as missing
    score[1] = 1.0  # a constant side: no ranking
    target[2] = np.where(np.isnan(target[2]), np.nan, 0.5)
    score[3, : n - 3] = np.nan  # too few names
    ic = rank_ic(score, target)
    expected = _reference_ic(score, target)
    assert np.isnan(ic[1]) and np.isnan(ic[2]) and np.isnan(ic[3])
    np.testing.assert_array_equal(np.isnan(ic), np.isnan(expected))
    np.testing.assert_allclose(ic, expected, atol=1e-12, equal_nan=True)


def test_average_ranks_match_pandas_row_ranks() -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 6, size=(30, 20)).astype(np.float64)  # many ties
    x[rng.random(x.shape) < 0.25] = np.nan
    expected = pd.DataFrame(x).rank(axis=1, method="average").to_numpy()
    np.testing.assert_array_equal(average_ranks(x), expected)


def test_rank_ic_is_fast_on_a_large_panel() -> None:
    rng = np.random.default_rng(0)
    score = rng.normal(size=(10_000, 500))
    target = 0.05 * score + rng.normal(size=score.shape)
    start = time.perf_counter()
    ic = rank_ic(score, target)
    assert time.perf_counter() - start < 5.0  # ~1 s on one quiet core
    assert 0.04 < np.nanmean(ic) < 0.06


# --- the long-short book, by hand ------------------------------------------------------------
# Ten names, quintiles of two. Rows 0-1: long names 8, 9 / short 0, 1 (W0); row 2: long 7, 8 /
# short 0, 2 (W2: |W2 - W0| = 2); row 3: nine scores, too thin for a book (W3 = 0).
SCORE = np.array(
    [
        np.arange(10.0),
        np.arange(10.0),
        [0, 2, 1, 3, 4, 5, 6, 8, 9, 7],
        [0, 1, 2, 3, 4, np.nan, 6, 7, 8, 9],
    ]
)
_ = 0.3  # a name outside the book: its target must not matter
TARGET = np.array(
    [
        [-0.01, 0.01, _, _, _, _, _, _, 0.02, 0.04],  # r0 = .5*.06 - .5*0 = .03
        [0.02, 0.02, _, _, _, _, _, _, np.nan, 0.02],  # r1 = .5*.02 - .5*.04 = -.01
        [-0.01, _, -0.03, _, _, _, _, 0.01, 0.01, _],  # r2 = .5*.02 + .5*.04 = .03
        [_, _, _, _, _, _, _, _, _, _],  # no book: r3 = 0
    ]
)
W0 = np.array([-0.5, -0.5, 0, 0, 0, 0, 0, 0, 0.5, 0.5])


def test_long_short_weights_by_hand() -> None:
    w = long_short_weights(SCORE)
    np.testing.assert_array_equal(w[0], W0)
    np.testing.assert_array_equal(w[1], W0)
    np.testing.assert_array_equal(w[2], [-0.5, 0, -0.5, 0, 0, 0, 0, 0.5, 0.5, 0])
    np.testing.assert_array_equal(w[3], np.zeros(10))


def test_long_short_weights_uneven_groups_and_ties() -> None:
    score = np.array([np.arange(12.0), np.full(12, 1.0)])
    w = long_short_weights(score)
    # 12 names in quintiles: floor(r * 5 / 12) puts ranks 0-2 at the bottom, 10-11 at the top
    np.testing.assert_allclose(w[0, :3], -1 / 3)
    np.testing.assert_allclose(w[0, 10:], 0.5)
    np.testing.assert_array_equal(w[0, 3:10], 0.0)
    np.testing.assert_array_equal(w[1], 0.0)  # all tied: no top, no bottom, no book


def test_quantile_returns_by_hand() -> None:
    q = quantile_returns(SCORE, TARGET)
    np.testing.assert_allclose(q[0], [0.0, 0.3, 0.3, 0.3, 0.03])
    np.testing.assert_allclose(q[1], [0.02, 0.3, 0.3, 0.3, 0.02])  # name 8's NaN left out
    np.testing.assert_allclose(q[2], [-0.02, 0.3, 0.3, 0.3, 0.01])
    assert np.isnan(q[3]).all()  # too thin to group


def _book(horizon: int, session: list[int], flat_at_close: bool) -> dict:
    return evaluate(
        SCORE,
        TARGET,
        np.array(session),
        horizon=horizon,
        periods_per_year=PPY,
        cost_bps=10.0,
        flat_at_close=flat_at_close,
    )


@pytest.mark.parametrize(
    ("horizon", "session", "flat", "traded"),
    [
        # rolls: |W0 - 0|, |W1 - W0|, |W2 - W1|, |0 - W2|
        (1, [0, 1, 2, 3], False, [2, 0, 2, 2]),
        # daily, flat at the close: every book opens from and closes to flat
        (1, [0, 1, 2, 3], True, [4, 4, 4, 0]),
        # two sessions of two rows: open 2; roll 0 + close 2; open 2; |0 - W2| (its close)
        (1, [0, 0, 1, 1], True, [2, 2, 2, 2]),
        # two sleeves: rows 2, 3 roll from rows 0, 1: |W0|, |W1|, |W2 - W0|, |0 - W1|
        (2, [0, 1, 2, 3], False, [2, 2, 2, 2]),
        # two sleeves, flat at the close: no sleeve's next row is in its session
        (2, [0, 0, 1, 1], True, [4, 4, 4, 0]),
    ],
)
def test_long_short_book_by_hand(
    horizon: int, session: list[int], flat: bool, traded: list[float]
) -> None:
    gross = np.array([0.03, -0.01, 0.03, 0.0]) / horizon
    cost = np.array(traded) / horizon * 10.0 / 1e4
    doc = _book(horizon, session, flat)
    assert doc["long_short_gross_annual"] == pytest.approx(gross.mean() * PPY)
    assert doc["long_short_net_annual"] == pytest.approx((gross - cost).mean() * PPY)
    assert doc["turnover"] == pytest.approx(np.mean(traded) / (2 * horizon))
    assert doc["hit_rate"] == pytest.approx(2 / 3)  # rows 0 and 2 of the three with a book


def test_long_short_book_headline_numbers() -> None:
    """The same book's numbers written out, so a wrong formula cannot hide in a shared one."""
    doc = _book(1, [0, 1, 2, 3], False)
    assert doc["long_short_gross_annual"] == pytest.approx(3.15)  # 0.0125 * 252
    assert doc["long_short_net_annual"] == pytest.approx(2.772)  # (0.0125 - 0.0015) * 252
    assert doc["turnover"] == pytest.approx(0.75)
    doc = _book(2, [0, 0, 1, 1], True)
    assert doc["long_short_gross_annual"] == pytest.approx(1.575)
    assert doc["long_short_net_annual"] == pytest.approx(1.197)  # (0.00625 - 0.0015) * 252
    assert doc["turnover"] == pytest.approx(0.75)


def test_accuracy_and_mcc_by_hand() -> None:
    # the median is over names with both a score and a target: 3.5 (name 6's 100 is out)
    score = np.array([[1.0, 2, 3, 4, 5, 6, 100]])
    target = np.array([[-1.0, 1, 0, 1, 1, -1, np.nan]])
    doc = evaluate(score, target, np.array([0]), horizon=1, periods_per_year=PPY, cost_bps=0)
    # the zero target is left out; calls F F T T T vs ups F T T T F: tp 2, tn 1, fp 1, fn 1
    assert doc["accuracy"] == pytest.approx(3 / 5)
    assert doc["mcc"] == pytest.approx((2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2))
    assert doc["n_samples"] == 6


def test_evaluate_ic_summary_and_json() -> None:
    rng = np.random.default_rng(3)
    score = rng.normal(size=(120, 40))
    target = 0.2 * score + rng.normal(size=score.shape)
    target[5] = np.nan  # a row without targets has no IC
    session = np.arange(120)
    doc = evaluate(score, target, session, horizon=1, periods_per_year=PPY, cost_bps=5)
    ic = rank_ic(score, target)
    ok = np.isfinite(ic)
    assert doc["n_periods"] == 119 == doc["n_sessions"]
    assert doc["n_samples"] == 119 * 40
    assert doc["rank_ic_mean"] == pytest.approx(ic[ok].mean())
    assert doc["rank_ic_std"] == pytest.approx(ic[ok].std(ddof=1))
    assert doc["icir"] == pytest.approx(ic[ok].mean() / ic[ok].std(ddof=1))
    assert doc["rank_ic_t"] == pytest.approx(doc["icir"] * math.sqrt(119))
    assert 0 < doc["rank_ic_lower"] < doc["rank_ic_mean"]
    assert doc["long_short_net_annual"] < doc["long_short_gross_annual"]
    assert all(type(v) in {float, int} for v in doc.values())  # not numpy scalars
    json.dumps(doc, allow_nan=False)


# --- the bootstrap bound --------------------------------------------------------------------
def test_bootstrap_sizes() -> None:
    assert n_bootstrap(0.99) == 2000
    assert n_bootstrap(0.9998) == 100_000
    assert block_sessions(250, 5, 1.0) == 7  # ceil(250^(1/3)) beats the 5-day horizon
    assert block_sessions(60, 10, 1.0) == 10  # the horizon beats ceil(60^(1/3)) = 4
    assert block_sessions(40, 4, 26.0) == 4  # a 4-bar target stays inside one session
    assert block_sessions(40, 60, 26.0) == 4  # ... a 60-bar one spans 3 sessions
    assert block_sessions(3, 10, 1.0) == 3


def test_t_quantile_and_small_sample_factor() -> None:
    for p, df, table in [(0.99, 1, 31.821), (0.99, 2, 6.965), (0.99, 5, 3.365), (0.975, 30, 2.042)]:
        assert t_quantile(p, df) == pytest.approx(table, abs=1e-3)
    assert small_sample_factor(0.99, 10) > small_sample_factor(0.99, 36) > 1.0
    assert small_sample_factor(0.99, 100_000) == pytest.approx(1.0, abs=1e-3)


def test_ic_bound_basics() -> None:
    rng = np.random.default_rng(0)
    ic = 0.03 + 0.1 * rng.normal(size=300)
    session = np.repeat(np.arange(100), 3)
    lo = ic_bound(ic, session, horizon=1, confidence=0.99, seed=4)
    hi = ic_bound(ic, session, horizon=1, confidence=0.99, seed=4, upper=True)
    assert lo < ic.mean() < hi
    assert lo == ic_bound(ic, session, horizon=1, confidence=0.99, seed=4)  # seeded
    assert ic_bound(ic, session, horizon=1, confidence=0.999, seed=4) < lo  # surer, lower
    with_gaps = ic.copy()
    with_gaps[::7] = np.nan
    assert math.isfinite(ic_bound(with_gaps, session, horizon=1, confidence=0.99))
    assert math.isnan(ic_bound(np.full(300, np.nan), session, horizon=1, confidence=0.99))
    # the whole sample in one block: nothing to resample, no bound
    assert math.isnan(ic_bound(ic[:6], session[:6], horizon=5, confidence=0.99))


@pytest.mark.parametrize(("horizon", "daily_horizon"), [(1, 1), (26, 1), (60, 3)])
def test_bound_resamples_whole_sessions(horizon: int, daily_horizon: int) -> None:
    """Intraday rows bound exactly like their session means as daily rows: a session is one
    unit, and a target spanning sessions (60 bars of 26: 3 sessions) lengthens the blocks."""
    rng = np.random.default_rng(5)
    n_sessions, rows = 200, 26
    ic = np.repeat(0.01 + 0.1 * rng.normal(size=n_sessions), rows) + rng.normal(size=200 * 26)
    session = np.repeat(np.arange(100, 100 + n_sessions), rows)
    means = ic.reshape(n_sessions, rows).mean(axis=1)
    for upper in (False, True):
        intraday = ic_bound(ic, session, horizon=horizon, confidence=0.99, seed=3, upper=upper)
        daily = ic_bound(
            means, np.arange(n_sessions), horizon=daily_horizon, confidence=0.99, seed=3,
            upper=upper,
        )  # fmt: skip
        assert intraday == pytest.approx(daily, rel=1e-9)


def _noise_panel(
    seed: int, n_sessions: int, rows: int, names: int, horizon: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores that know nothing, but persist (AR(1) 0.9, plus a per-session part intraday),
    against overlapping forward targets with a per-session, per-name drift intraday: rows of
    one session share their IC's error, and neighbouring rows share target periods."""
    rng = np.random.default_rng(seed)
    t = n_sessions * rows
    session = np.repeat(np.arange(n_sessions), rows)
    step = rng.normal(size=(t + horizon, names))
    if rows > 1:
        drift = np.repeat(rng.normal(size=(n_sessions + 1, names)), rows, axis=0)
        step += 0.5 * drift[: t + horizon]
    level = np.vstack((np.zeros((1, names)), np.cumsum(step, axis=0)))
    target = level[1 + horizon : t + 1 + horizon] - level[1 : t + 1]
    noise = rng.normal(size=(t, names))
    score = np.empty((t, names))
    score[0] = noise[0]
    for i in range(1, t):
        score[i] = 0.9 * score[i - 1] + math.sqrt(1 - 0.81) * noise[i]
    if rows > 1:
        score += np.repeat(rng.normal(size=(n_sessions, names)), rows, axis=0)
    return score, target, session


SHAPES = [  # sessions, rows per session, names, horizon
    (250, 1, 40, 5),  # a year of daily rows, a weekly target
    (60, 1, 30, 10),  # a short daily block: six blocks of ten sessions
    (30, 26, 30, 4),  # six weeks of 15-minute bars, an hour's target
]


def test_bound_size_on_noise() -> None:
    """On scores that know nothing, the 99% lower bound clears 0 in about 1% of samples."""
    passed = 0
    trials = 0
    for shape in SHAPES:
        for seed in range(40):
            score, target, session = _noise_panel(1000 * seed + 7, *shape)
            ic = rank_ic(score, target)
            passed += ic_bound(ic, session, horizon=shape[3], confidence=0.99, seed=seed) > 0
            trials += 1
    assert passed <= 3, f"noise cleared the 99% bound in {passed} of {trials} samples"


def test_bound_power_on_a_planted_signal() -> None:
    """An IC of ~0.05 over 250 daily sessions of 50 names clears the 99% bound nearly always."""
    passed = 0
    means = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        score = rng.normal(size=(250, 50))
        target = 0.05 * score + rng.normal(size=score.shape)
        ic = rank_ic(score, target)
        means.append(np.nanmean(ic))
        passed += ic_bound(ic, np.arange(250), horizon=1, confidence=0.99, seed=seed) > 0
    assert 0.035 < np.mean(means) < 0.065
    assert passed >= 19
