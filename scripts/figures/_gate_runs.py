"""Shared by ``random_walk_gate.py`` and ``ticker_pairs.py``: one training, judged by every gate.

Not a figure script of its own (``make docs-figures`` runs only the names without a leading
underscore). A model is trained once through ``train_and_register`` (the real walk-forward,
registry and gate), then its deciding block, the last fold's test block, is judged again at each
confidence level from the registered checkpoint, and by the gate that stood before the test-block
gate (on the validation block: log-loss below every baseline's by the margin, 0 by default then,
and accuracy not below the best baseline's; ``git show 458c193^:src/sentinel42/model/evaluate.py``).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.model import baselines as bl
from sentinel42.model.config import TrainingConfig
from sentinel42.model.features import build_table, samples
from sentinel42.model.gate import decide
from sentinel42.model.walk_forward import forecast_split, plan_folds, train_and_register
from sentinel42.settings import load_settings

NOW = datetime(2025, 10, 1, 21, 0, tzinfo=UTC)  # names the versions only; pinned
LEVELS = (0.95, 0.99)


@dataclass(frozen=True)
class Judged:
    """One training judged by the old gate and by the test-block gate at each level."""

    n: int  # deciding windows
    edge: float  # accuracy edge over the best baseline on the deciding block
    lower: dict[float, float]  # confidence -> lower bound of the edge
    promoted: dict[float, bool]  # confidence -> the test-block gate's decision
    old_gate: bool  # the validation-block gate's decision


def old_gate(validation: Mapping[str, Any], margin: float = 0.0) -> bool:
    """The gate before commit 458c193, on the validation metrics of the registered fold."""
    model, base = validation["model"], validation["baselines"]
    gap = min(b["log_loss"] - model["log_loss"] for b in base.values())
    best_accuracy = max(b["accuracy"] for b in base.values())
    return bool(np.isfinite(model["log_loss"]) and gap >= margin and
                model["accuracy"] >= best_accuracy)  # fmt: skip


def judge(
    bars: Mapping[str, pd.DataFrame], *, n_folds: int, daily: Mapping[str, pd.DataFrame] | None,
    **model: Any,
) -> Judged:  # fmt: skip
    """Train on ``bars`` with the ``model_*`` settings given, in a fresh registry, and judge it.

    Raises:
        ModelError: too little history for ``n_folds`` folds.
    """
    with tempfile.TemporaryDirectory(prefix="s42-gate-") as tmp:
        settings = load_settings(
            data_dir=Path(tmp), tickers=list(bars), data_source="replay",
            require_replay_dir=False, model_gate_confidence=LEVELS[0], **model,
        )  # fmt: skip
        config = TrainingConfig.from_settings(settings)
        doc = train_and_register(config, bars, now=NOW, daily=daily, n_folds=n_folds)
        loaded = config.registry.open().load(doc["version"])
        spec = loaded.spec
        table = build_table(bars, spec, daily=daily if spec.use_daily else None)
        deciding = plan_folds(samples(table, spec), n_folds)[-1].test
        forecasts = forecast_split(loaded.network, loaded.normalizer,
                                   loaded.metadata["baselines"], table, spec, deciding)  # fmt: skip
    gates = {
        level: decide(
            forecasts["model"][0],
            {name: forecasts[name][0] for name in bl.BASELINES},
            deciding.target,
            deciding.ts,
            horizon=spec.horizon,
            confidence=level,
            seed=config.seed,
        )
        for level in LEVELS
    }
    first = gates[LEVELS[0]]
    # The checkpoint must reproduce the training's own decision, or the levels judge another model.
    if first["n"] != doc["gate"]["n"] or abs(first["edge_lower_bound"] -
                                             doc["gate"]["edge_lower_bound"]) > 1e-9:  # fmt: skip
        raise RuntimeError(f"re-judged gate {first} differs from the training's {doc['gate']}")
    return Judged(
        n=int(first["n"]),
        edge=float(first["edge"]),
        lower={level: float(g["edge_lower_bound"]) for level, g in gates.items()},
        promoted={level: bool(g["promoted"]) for level, g in gates.items()},
        old_gate=old_gate(doc["validation"]),
    )


def summary_rows(judged: Sequence[Judged]) -> list[tuple[str, int]]:
    """(gate, promoted count) rows of the markdown summary, old gate first."""
    rows = [("the old gate, on validation", sum(j.old_gate for j in judged))]
    rows += [(f"this gate at {level:.2f}", sum(j.promoted[level] for j in judged))
             for level in LEVELS]  # fmt: skip
    return rows


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
