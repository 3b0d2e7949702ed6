"""Features and targets of the ranking models: ranks, no look-ahead, sessions, seasonality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentinel42.model.ranking import features as F
from sentinel42.model.ranking.panel import build_panel
from tests.model.ranking.conftest import universe


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cs_rank_is_pandas_average_ranks_mapped_to_unit_variance(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=(8, 11)).astype(float)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[5, :10] = np.nan  # a row with one name
    ranks = pd.DataFrame(x).rank(axis=1).to_numpy()
    n = np.isfinite(x).sum(axis=1, keepdims=True)
    with np.errstate(all="ignore"):
        expected = ((ranks - 0.5) / n - 0.5) * np.sqrt(12 * n * n / np.maximum(n * n - 1, 1))
    expected = np.where(n > 1, expected, np.where(np.isnan(x), np.nan, 0.0))
    np.testing.assert_allclose(F.cs_rank(x), expected, equal_nan=True)
    wide = F.cs_rank(rng.normal(size=(3, 500)))
    np.testing.assert_allclose(np.nanstd(wide, axis=1), 1.0, rtol=1e-3)


@pytest.mark.parametrize("kind", ["daily", "intraday"])
def test_features_at_t_do_not_change_when_later_bars_do(kind: str) -> None:
    bars = universe(kind, seed=4, n_sessions=40 if kind == "daily" else 14, n_tickers=12)
    panel = build_panel(bars, kind)
    cut = panel.shape[0] - 30
    later = {t: f.copy() for t, f in bars.items()}
    for f in later.values():
        f.iloc[cut + 1 :, :4] *= 1.7  # every later price moves; volumes too
        f.iloc[cut + 1 :, 4] *= 9.0
    a = F.compute(panel, 2)
    b = F.compute(build_panel(later, kind), 2)
    np.testing.assert_array_equal(a.grid[: cut + 1], b.grid[: cut + 1])


def test_intraday_targets_start_at_the_fill_and_never_cross_the_close() -> None:
    """Row t's target runs from the open of row t+2 (its order's fill: row t+1 began before
    the decision) to the close of row t+1+h, inside t's session."""
    panel = build_panel(universe("intraday", seed=1, n_sessions=5, n_tickers=6), "intraday")
    lag = F.INTRADAY_FILL_LAG
    assert lag == 1
    for h in (1, 4):
        fwd, end_ts = F.forward_log_return(panel, h)
        has = np.isfinite(fwd).any(axis=1)
        for t in np.flatnonzero(has):
            assert panel.session[t + lag + h] == panel.session[t]
            assert end_ts[t] == panel.ts[t + lag + h]
            expected = np.log(panel.close[t + lag + h] / panel.open[t + lag + 1])
            np.testing.assert_allclose(fwd[t], expected)
        # The last h + 1 bars of every session have no target.
        last = np.r_[panel.session[1:] != panel.session[:-1], True]
        for t in np.flatnonzero(last):
            assert not has[t - h - lag + 1 : t + 1].any()
            assert has[t - h - lag].all()


def test_the_bar_that_began_before_the_decision_is_not_in_its_target() -> None:
    """A jump inside row t+1 (open to close) leaves row t's target alone: no decision on row t
    can trade it. It moves the target of row t-1, whose order fills at row t+1's open."""
    for seed in (3, 4):
        bars = universe("intraday", seed=seed, n_sessions=4, n_tickers=5)
        t = 30  # in the second session, away from its ends
        jumped = {k: f.copy() for k, f in bars.items()}
        frame = jumped["T002"]
        frame.iloc[t + 1, frame.columns.get_loc("close")] *= 1.05
        frame.iloc[t + 1, frame.columns.get_loc("high")] *= 1.05
        a, _ = F.forward_log_return(build_panel(bars, "intraday"), 1)
        b, _ = F.forward_log_return(build_panel(jumped, "intraday"), 1)
        j = 2
        assert a[t, j] == b[t, j]
        assert b[t - 1, j] > a[t - 1, j]


def test_excess_target_has_zero_cross_sectional_mean_and_the_dead_zone_drops() -> None:
    rng = np.random.default_rng(3)
    fwd = rng.normal(scale=0.01, size=(20, 30))
    y = F.target(fwd, "excess")
    np.testing.assert_allclose(np.nanmean(y, axis=1), 0.0, atol=1e-15)
    raw = F.target(fwd, "raw", dead_zone=(-0.005, 0.0055))
    inside = (fwd > -0.005) & (fwd < 0.0055)
    assert np.isnan(raw[inside]).all()
    np.testing.assert_array_equal(raw[~inside], fwd[~inside])
    with pytest.raises(Exception, match="unknown target"):
        F.target(fwd, "log")


def test_seasonality_is_the_mean_same_slot_target_of_the_previous_ten_sessions() -> None:
    """The same slot's target (open of the bar after next to its close, for h = 1) on each of
    the ten sessions before."""
    bars = universe("intraday", seed=6, n_sessions=16, n_tickers=5)
    panel = build_panel(bars, "intraday")
    block = F.compute(panel, 1)
    close = pd.DataFrame(panel.close, columns=panel.tickers)
    open_ = pd.DataFrame(panel.open, columns=panel.tickers)
    day = pd.Series(panel.session)
    slot = pd.Series(panel.slot())
    same_day = np.broadcast_to((day.shift(-2) == day).to_numpy()[:, None], close.shape)
    nxt = np.log(close.shift(-2) / open_.shift(-2)).where(same_day)
    for t in (26 * 12 + 3, 26 * 15 + 10):
        same = (slot == slot[t]) & (day < day[t]) & (day >= np.unique(panel.session)[
            np.searchsorted(np.unique(panel.session), day[t]) - 10])  # fmt: skip
        expected = nxt[same.to_numpy()].mean(axis=0).to_numpy()
        np.testing.assert_allclose(block.raw["seasonality_10"][t], expected, rtol=1e-12)


def test_a_suspect_bar_leaves_windows_but_not_the_targets_that_reach_it() -> None:
    bars = universe("daily", seed=2, n_sessions=80, n_tickers=8)
    t0 = 40
    frame = bars["T003"].copy()
    frame["flagged"] = False
    frame.iloc[t0, frame.columns.get_loc("flagged")] = True  # the refresh's range spike
    bars["T003"] = frame
    panel = build_panel(bars, "daily")
    j = panel.tickers.index("T003")
    fwd, _ = F.forward_log_return(panel, 1)
    assert np.isfinite(fwd[t0 - 1, j])  # the outcome holding the spike is not dropped
    usable = F.usable_windows(F.compute(panel, 1).valid, 20)
    assert not usable[t0 : t0 + 20, j].any()  # no input window holds it
    assert usable[t0 - 1, j] and usable[t0 + 20, j]
    assert panel.flag_counts["stored_flag"] == 1
