"""The live monitor's size on noise and delay on decay, on generated histories.

uv run --frozen python scripts/figures/monitor_power.py [--seeds N] [--json]

For each configuration (a leg validated at rank IC ``ic``, a watchlist of ``names`` tickers,
``bars`` scored bars a session), on generated sessions (``sentinel42.monitor.simulate_bars``: a
market factor twice the names' own volatility, 4-bar forward returns overlapping from bar to
bar, scores whose noise persists from bar to bar) and the settings' defaults
(``SENTINEL42_VALIDATE_MIN_SESSIONS`` 20, ``SENTINEL42_VALIDATE_ALPHA`` 0.05), it prints:

- ``false alarms``: the share of seeds in which a healthy leg (scores at the validated IC
  throughout) is degraded within a year of daily looks (252 sessions);
- ``delay``: sessions from the edge switching off (after 40 healthy sessions) to the leg being
  degraded: median and 90th percentile; ``within N``: the share degraded within N sessions;
- ``recovered``: the share that recover within 2N sessions of the edge coming back.

The first row is the configuration tests/test_monitor.py checks.

For comparison it also runs the retired rule (a one-sided exact binomial test of the direction
model's newest ``validate_window`` = 100 scored signals against validated accuracy minus a 0.02
margin, alpha 0.05, after every session, degraded for good) on healthy histories of the second
configuration, its validated accuracy set to the hit rate those histories really have.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from sentinel42.monitor import operating_characteristics, simulate_bars
from sentinel42.settings import Settings

# (ic, names, bars, within): within is the bound on the delay the docs state for that row.
CONFIGS = [(0.10, 20, 8, 60), (0.05, 20, 26, 60), (0.03, 10, 26, 250)]


def _binomial_cdf(k: int, n: int, p: float) -> float:
    return math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def retired_rule(seeds: int, *, ic: float = 0.05, names: int = 20, bars: int = 26) -> dict:
    """Share of healthy histories the retired binomial rule degrades within a year."""

    def hits(rng: np.random.Generator, sessions: int) -> np.ndarray:
        _, scores, fwd = simulate_bars(rng, sessions=sessions, bars=bars, names=names,
                                       ic=np.full(sessions, ic))  # fmt: skip
        return (np.sign(scores) * fwd > 0).reshape(sessions, bars * names)

    accuracy = float(hits(np.random.default_rng(10**6), 2_000).mean())
    degraded = 0
    for i in range(seeds):
        h = hits(np.random.default_rng(i), 252)
        for s in range(1, 253):
            newest = h[:s].ravel()[-100:]  # the newest 100 scored signals at the session's end
            if len(newest) == 100 and _binomial_cdf(int(newest.sum()), 100, accuracy - 0.02) < 0.05:
                degraded += 1
                break
    return {"seeds": seeds, "accuracy": accuracy, "false_alarm_rate": degraded / seeds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    defaults = Settings.model_fields
    min_sessions = int(defaults["validate_min_sessions"].default)
    alpha = float(defaults["validate_alpha"].default)
    rows = [
        operating_characteristics(seeds=args.seeds, ic=ic, names=names, bars=bars,
                                  min_sessions=min_sessions, alpha_year=alpha, within=within)
        for ic, names, bars, within in CONFIGS
    ]  # fmt: skip
    old = retired_rule(args.seeds)
    if args.json:
        print(json.dumps({"monitor": rows, "retired_binomial_rule": old}, indent=2))
        return
    print(f"{args.seeds} seeds; min sessions {min_sessions}; {alpha:.0%} false alarms a year "
          "by design")  # fmt: skip
    print("   IC  names  bars  false alarms/yr  delay median  delay p90  within N  recovered")
    for r in rows:
        print(
            f"{r['ic']:5.2f}  {r['names']:5d}  {r['bars']:4d}  {r['false_alarm_rate']:15.1%}  "
            f"{r['delay_median']:12.0f}  {r['delay_p90']:9.0f}  "
            f"{r['detected_within_rate']:5.1%} of {r['within']:<3d} {r['recovered_rate']:8.1%}"
        )
    print(
        f"retired binomial rule, healthy legs (IC 0.05, 20 names, 26 bars, validated accuracy "
        f"{old['accuracy']:.3f}): degraded within a year in {old['false_alarm_rate']:.1%}"
    )


if __name__ == "__main__":
    main()
