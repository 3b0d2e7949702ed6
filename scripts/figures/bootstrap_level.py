"""How often the gate's 95% block-bootstrap bound finds a false edge in no-skill calls.

uv run --frozen python scripts/figures/bootstrap_level.py [--trials N] [--quick]

Runs the simulation of ``tests/model/test_gate.py`` (``_no_skill_trial``: two correlated random
walks, 300 bar times, overlapping 4-bar targets, called by a persistent rule that carries no
information; 500 bootstrap resamples per trial) ``--trials`` times (default 200), and counts the
trials whose 95% lower bound of the accuracy edge is above zero: with the gate's blocks
(``model.gate.block_bars``), and with single bar times as the resampled unit, which ignores the
overlap. A bound that keeps its level finds about 5%. ``--quick``: 50 trials. Markdown on stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the simulation lives in the test module, which imports ``tests``

from sentinel42.model import gate as gate_module  # noqa: E402
from tests.model.test_gate import _false_edges  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, help="no-skill samples (default 200)")
    parser.add_argument("--quick", action="store_true", help="50 trials")
    args = parser.parse_args(argv)
    trials = args.trials or (50 if args.quick else 200)
    if trials < 1:
        parser.error("--trials must be at least 1")
    blocks = _false_edges(trials)
    original = gate_module.block_bars
    gate_module.block_bars = lambda n_times, horizon: 1  # what the tests' monkeypatch does
    try:
        single = _false_edges(trials)
    finally:
        gate_module.block_bars = original
    print(f"### False edges of the 95% bound on no-skill calls ({trials} trials)\n")
    print("| resampled unit | trials with a lower bound above 0 | share |\n|---|---:|---:|")
    print(f"| blocks of bar times (the gate) | {round(blocks * trials)} | {blocks:.1%} |")
    print(f"| single bar times | {round(single * trials)} | {single:.1%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
