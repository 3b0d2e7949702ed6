"""The weekly training of the ranking models: both kinds, each on its own, and what came of it.

The training flow trains every kind of :data:`KINDS` through
:func:`~sentinel42.model.ranking.service.train_kind` with the request ``model train --kind``
uses (the settings' cost, gate confidence and seed, every other field at its default), so a
scheduled model and one trained by hand are the same model. A kind that cannot be trained (a
:class:`~sentinel42.errors.ModelError`: too little history, no samples) is recorded as failed
and the other kind still trains; :func:`summary` is the flow's result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sentinel42.model.config import TrainingConfig
from sentinel42.model.ranking.panel import KINDS
from sentinel42.model.ranking.train import TrainRequest

if TYPE_CHECKING:
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["KINDS", "failed", "outcome", "ranking_request", "summary", "train"]


def ranking_request(config: TrainingConfig, kind: str) -> TrainRequest:
    """The request of one kind: the config's cost, gate confidence and seed; defaults else."""
    return TrainRequest(
        kind=kind,
        cost_bps=config.cost_bps,
        confidence=config.gate_confidence,
        seed=config.seed,
    )


def train(
    settings: Settings,
    kind: str,
    *,
    now: datetime,
    as_of: datetime,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train, gate and register one kind; its document without the network.

    The network is saved in the registry by then; what is handed back keeps ``_report`` (the
    report's per-row figures) and drops the network, so the flow holds no model in memory.

    Raises:
        ModelError: the kind cannot be trained on the data there is.
    """
    from sentinel42.model.ranking.service import train_kind

    request = ranking_request(TrainingConfig.from_settings(settings), kind)
    document = train_kind(settings, request, now=now, as_of=as_of, progress=progress)
    return {k: v for k, v in document.items() if k != "_network"}


def outcome(document: Mapping[str, Any]) -> dict[str, Any]:
    """One trained kind in the flow's result: version, verdict, reason and headline figures."""
    model = document["model"]
    return {
        "kind": document["kind"],
        "attempted": True,
        "version": document.get("version"),
        "promoted": bool(document["promoted"]),
        "reason": document["reason"],
        "best_baseline": document["best_baseline"],
        "rank_ic_mean": model.get("rank_ic_mean"),
        "rank_ic_lower": model.get("rank_ic_lower"),
        "long_short_net_annual": model.get("long_short_net_annual"),
        "test": document.get("test"),
    }


def failed(kind: str, error: BaseException) -> dict[str, Any]:
    """A kind whose training raised: not promoted, and the error's one line as the reason."""
    return {
        "kind": kind,
        "attempted": True,
        "version": None,
        "promoted": False,
        "reason": f"not trained: {error}",
        "error": type(error).__name__,
    }


def summary(as_of: datetime, outcomes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The flow's result: every kind's outcome, and which kinds were promoted, refused, failed."""
    kinds = {kind: dict(row) for kind, row in outcomes.items()}
    document = {
        "as_of": as_of.isoformat(),
        "kinds": kinds,
        "promoted": [k for k, row in kinds.items() if row["promoted"]],
        "refused": [k for k, row in kinds.items() if not row["promoted"] and "error" not in row],
        "failed": [k for k, row in kinds.items() if "error" in row],
    }
    for kind, row in kinds.items():
        logger.info("%s ranking model: %s", kind, row["reason"])
    return document
