"""The live monitor's statistics: per-bar figures, and a CUSUM over whole sessions that leaves a
healthy leg alone, flags a decayed one within the documented number of sessions, and lets it
recover (issue 17, item 6). Generated histories: a market factor, overlapping horizons and
persistent scores, so bars inside a session are not independent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sentinel42 import monitor

# The documented configuration (docs/validation.md, scripts/figures/monitor_power.py): a leg
# validated at rank IC 0.10 over a 20-name watchlist, 8 scored bars a session.
IC, NAMES, BARS, MIN_SESSIONS, ALPHA = 0.10, 20, 8, 20, 0.05
YEAR = monitor.LOOKS_PER_YEAR
DETECT_WITHIN = 60  # sessions: the documented bound on the delay for this configuration


def _series(rng: np.random.Generator, path: np.ndarray) -> np.ndarray:
    return monitor.leg_sessions(
        *monitor.simulate_bars(rng, sessions=len(path), bars=BARS, names=NAMES, ic=path)
    ).ic


def _run(series: np.ndarray) -> monitor.Verdict:
    return monitor.run_monitor(series, IC, 0.0, min_sessions=MIN_SESSIONS, alpha_year=ALPHA)


def test_spearman_and_long_short_by_hand() -> None:
    scores = np.array([3.0, 1.0, 2.0, np.nan, 4.0])
    returns = np.array([0.03, -0.01, 0.0, 0.5, 0.01])
    # Ranks of scores (2, 0, 1, 3) against returns (3, 0, 1, 2): d^2 = 1 + 0 + 0 + 1.
    assert monitor.spearman_ic(scores, returns) == pytest.approx(1 - 6 * 2 / (4 * 15))
    # Top half (scores 4, 3): 0.01, 0.03; bottom half (1, 2): -0.01, 0.0.
    assert monitor.long_short(scores, returns) == pytest.approx(0.02 - (-0.005))
    assert math.isnan(monitor.spearman_ic(scores[:2], returns[:2]))
    ties = np.array([0.0, 0.0, 1.0, 1.0])
    assert monitor.spearman_ic(ties, np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(
        np.corrcoef([0.5, 0.5, 2.5, 2.5], [0, 1, 2, 3])[0, 1]
    )
    assert monitor.hit_rate(np.array([0.7, 0.3, 0.5, 0.6]), np.array([0.1, 0.1, 0.1, -0.1])) == (
        pytest.approx(1 / 3)
    )


def test_the_vectorised_bar_figures_match_one_bar_at_a_time() -> None:
    rng = np.random.default_rng(3)
    scores, returns = rng.standard_normal((40, 9)), rng.standard_normal((40, 9))
    scores[4, 2] = scores[4, 5]  # a tie
    returns[7, 0] = np.nan
    ic, ls = monitor.bar_figures(scores, returns)
    for i in range(40):
        assert ic[i] == pytest.approx(monitor.spearman_ic(scores[i], returns[i]))
        assert ls[i] == pytest.approx(monitor.long_short(scores[i], returns[i]))


def test_sessions_average_their_bars() -> None:
    s = monitor.session_series(
        np.array(["a", "a", "b", "c"]), np.array([0.1, 0.3, np.nan, -0.2]),
        np.array([1.0, 3.0, 5.0, np.nan]),
    )  # fmt: skip
    assert s.sessions == ["a", "c"] and s.ic == pytest.approx([0.2, -0.2])
    assert s.long_short[0] == pytest.approx(2.0) and math.isnan(s.long_short[1])


def test_the_threshold_gives_the_in_control_run_length_it_was_set_for() -> None:
    arl0 = monitor.in_control_arl(ALPHA)
    assert arl0 == pytest.approx(YEAR / -math.log(0.95))
    for k in (0.05, 0.2, 0.5):
        h = monitor.threshold(k, arl0)
        assert monitor.siegmund_arl(-k, h) == pytest.approx(arl0, rel=1e-6)


def test_too_few_sessions_or_no_validated_edge_is_not_tested() -> None:
    rng = np.random.default_rng(0)
    short = _series(rng, np.zeros(MIN_SESSIONS - 1))
    v = _run(short)
    assert (v.tested, v.degraded) == (False, False) and "not tested yet" in v.note
    v = monitor.run_monitor(np.zeros(40), None, 0.0, min_sessions=MIN_SESSIONS, alpha_year=ALPHA)
    assert (v.tested, v.degraded) == (False, False)


def test_a_healthy_leg_is_not_degraded_over_a_year_of_daily_looks_in_95_percent_of_seeds() -> None:
    """Scores carry exactly the validated IC; everything else is noise (the market, the overlap
    of horizons, persistent scores). Looked at after every session for a year."""
    seeds = 40
    alarms = sum(_run(_series(np.random.default_rng(s), np.full(YEAR, IC))).degraded
                 for s in range(seeds))  # fmt: skip
    assert alarms / seeds <= 0.05


def test_a_leg_whose_edge_is_switched_off_is_degraded_within_the_documented_sessions() -> None:
    seeds, decay_at = 40, 40
    caught = 0
    for s in range(seeds):
        path = np.where(np.arange(decay_at + DETECT_WITHIN) < decay_at, IC, 0.0)
        v = _run(_series(np.random.default_rng(100 + s), path))
        caught += any(what == "degraded" and t >= decay_at for t, what in v.transitions)
    assert caught / seeds >= 0.90


def test_a_degraded_leg_whose_edge_comes_back_recovers_and_does_not_flap() -> None:
    seeds, recovered, gaps = 20, 0, []
    for s in range(seeds):
        path = np.r_[np.full(40, IC), np.zeros(80), np.full(120, IC)]
        v = _run(_series(np.random.default_rng(200 + s), path))
        kinds = [what for _, what in v.transitions]
        recovered += kinds[:2] == ["degraded", "recovered"] and v.transitions[1][0] >= 120
        gaps += [b - a for (a, _), (b, _) in zip(v.transitions, v.transitions[1:], strict=False)]
    assert recovered / seeds >= 0.90
    assert min(gaps) >= 10  # each change of state needs weeks of evidence: no flapping


def test_a_degraded_verdict_needs_a_full_threshold_of_evidence_to_clear() -> None:
    """Hysteresis: once degraded, one good session does not bring the weight back."""
    series = np.r_[np.full(10, 0.1), np.full(30, -0.1)] + np.tile([0.02, -0.02], 20)
    v = monitor.run_monitor(series, 0.1, 0.0, min_sessions=10, alpha_year=ALPHA)
    assert v.degraded
    one_good = monitor.run_monitor(np.r_[series, 0.3], 0.1, 0.0, min_sessions=10,
                                   alpha_year=ALPHA)  # fmt: skip
    assert one_good.degraded and 0 < one_good.recovery < one_good.threshold  # type: ignore[operator]
