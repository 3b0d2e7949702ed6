"""A promoted ranking model's scores for the newest timestamp, in numpy (no torch import).

The trading run loads the kind's promoted checkpoint (safetensors weights, JSON metadata), builds
the universe's panel from the stored bars, computes the same features as training and runs the
LSTM's forward pass in numpy (:class:`~sentinel42.model.numpy_lstm.NumpyLSTM`). The score of a
ticker is its cross-sectional rank among the universe's scores at that timestamp, in [-1, 1]:
+1 is the name the model expects to do best over its horizon, relative to the others.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.errors import ModelError
from sentinel42.model.config import RegistryConfig
from sentinel42.model.numpy_lstm import NumpyLSTM
from sentinel42.model.ranking import features as F
from sentinel42.model.ranking.panel import Panel, build_panel

logger = logging.getLogger(__name__)

# Rows of history behind the newest window: the longest feature lookback plus the window.
LOOKBACK_ROWS = {"daily": 260, "intraday": (F.SEASONAL_SESSIONS + 2) * 26}


@dataclass(frozen=True)
class RankingModel:
    """A loaded ranking checkpoint."""

    kind: str
    version: str
    horizon: int
    window: int
    features: tuple[str, ...]
    context_mean: np.ndarray
    context_std: np.ndarray
    lstm: NumpyLSTM
    tickers: tuple[str, ...]
    data_end: datetime | None
    validated: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_needed(self) -> int:
        return LOOKBACK_ROWS[self.kind] + self.window

    @property
    def uses_news(self) -> bool:
        return any(n in self.features for n in F.NEWS_FEATURES)


def load(registry: Any, version: str) -> RankingModel:
    """Rebuild a ranking checkpoint from its folder, refusing one this code cannot compute.

    Raises:
        ModelError: missing or mismatched files, or features this code does not produce.
    """
    from safetensors.numpy import load_file

    folder = registry.models_dir / version
    try:
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        spec = meta["ranking"]
        kind, window = str(spec["kind"]), int(spec["window"])
        names = tuple(spec["features"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"ranking model {version}: unreadable metadata: {exc}") from exc
    news = any(n in names for n in F.NEWS_FEATURES)
    if names != F.feature_names(kind, news=news):
        raise ModelError(
            f"ranking model {version}: features {list(names)} are not the ones this code "
            "computes; retrain with `sentinel42 model train --kind " + kind + "`"
        )
    tensors = load_file(str(folder / "model.safetensors"))
    lstm = NumpyLSTM.from_tensors(
        tensors, input_size=len(names), hidden_size=int(spec["hidden_size"]), layers=1
    )
    end = meta.get("data_end")
    report = meta.get("report", {})
    return RankingModel(
        kind=kind, version=version, horizon=int(spec["horizon"]), window=window,
        features=names, context_mean=np.asarray(spec["context"]["mean"], dtype=np.float32),
        context_std=np.asarray(spec["context"]["std"], dtype=np.float32), lstm=lstm,
        tickers=tuple(meta.get("tickers", [])),
        data_end=datetime.fromisoformat(end) if end else None,
        validated={k: report.get("model", {}).get(k) for k in
                   ("rank_ic_mean", "rank_ic_lower", "long_short_net_annual")},
    )  # fmt: skip


def load_promoted(registry_config: RegistryConfig, kind: str) -> tuple[RankingModel | None, str]:
    """The kind's promoted model, or None and why there is none."""
    registry = registry_config.open(kind)
    version = registry.current_version()
    if version is None:
        return None, f"no promoted {kind} ranking model"
    try:
        return load(registry, version), ""
    except ModelError as exc:
        logger.warning("%s", exc)
        return None, str(exc)


def score_latest(
    model: RankingModel,
    bars: Mapping[str, pd.DataFrame],
    *,
    news: Callable[[Panel], dict[str, np.ndarray] | None] | None = None,
) -> dict[str, float]:
    """Each ticker's cross-sectional rank in [-1, 1] at the newest timestamp of ``bars``.

    Tickers without a full window of valid bars ending at that timestamp get no score.

    Args:
        news: for a model with news features, the panel's features from the stored headlines
            (``news.daily_news_features``); a session without headlines is neutral, as in
            training.

    Raises:
        ModelError: the model uses news features and no ``news`` was given.
    """
    panel = build_panel(bars, model.kind)
    features = None
    if model.uses_news:
        if news is None:
            raise ModelError(f"ranking model {model.version} needs the stored news features")
        features = news(panel)
        if features is None:  # no headline in the span: every session neutral
            features = {name: np.full(panel.shape, np.nan) for name in F.NEWS_FEATURES}
    block = F.compute(panel, model.horizon, features)
    grid = block.grid
    k = block.n_context
    t = panel.shape[0] - 1
    usable = F.usable_windows(block.valid, model.window)[t]
    cols = np.flatnonzero(usable)
    if cols.size == 0 or t + 1 < model.window:
        return {}
    x = grid[t - model.window + 1 : t + 1][:, cols, :].transpose(1, 0, 2).copy()
    if k:
        x[:, :, -k:] = (x[:, :, -k:] - model.context_mean) / model.context_std
    _, raw = model.lstm.forward(x)
    ranked = F.cs_rank(raw.astype(np.float64)[None, :])[0] / np.sqrt(3.0)  # uniform [-1, 1]
    return {panel.tickers[c]: float(r) for c, r in zip(cols, ranked, strict=True)}
