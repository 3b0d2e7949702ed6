"""Batched inference with the promoted model: one call for every ticker of a trading run."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.domain import Prediction
from sentinel42.errors import ModelError
from sentinel42.model.features import VOLUME_LOOKBACK, WARMUP_BARS, build_table, windows
from sentinel42.model.registry import LoadedModel, ModelRegistry

logger = logging.getLogger(__name__)

NO_MODEL = "no promoted model"


@dataclass(frozen=True, slots=True)
class PredictionResult:
    """Predictions per ticker, reasons for the tickers without one, and the model used."""

    predictions: dict[str, Prediction] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    model_version: str | None = None


def predict_with(
    loaded: LoadedModel,
    bars: Mapping[str, pd.DataFrame],
    as_of: datetime,
    *,
    interval_minutes: int,
    daily: Mapping[str, pd.DataFrame] | None = None,
) -> PredictionResult:
    """Predict every ticker with one forward pass of ``loaded``.

    Only bars that have closed by ``as_of`` (start + interval <= as_of) are used; the
    prediction is for the ``horizon`` bars after the newest of them. A ticker with too little
    history, a flagged bar in its window or missing daily bars (when the model uses them) is
    skipped with the reason, never guessed.
    """
    if as_of.tzinfo is None:
        raise ModelError("as_of must be timezone-aware")
    spec = loaded.spec
    cutoff = pd.Timestamp(as_of - timedelta(minutes=interval_minutes))
    tail = VOLUME_LOOKBACK + spec.window + WARMUP_BARS  # the same statistics as in training
    skipped: dict[str, str] = {}
    ready: dict[str, pd.DataFrame] = {}
    for ticker, frame in bars.items():
        if frame is None or frame.empty:
            skipped[ticker] = "no bars"
            continue
        closed = frame.iloc[-tail:] if frame.index[-1] <= cutoff else frame.loc[:cutoff]
        if len(closed) < spec.min_history:
            skipped[ticker] = (
                f"too little history: {len(closed)} closed bars, need {spec.min_history}"
            )
        elif spec.use_daily and (daily is None or daily.get(ticker) is None
                                 or daily[ticker].empty):  # fmt: skip
            skipped[ticker] = "the model uses daily bars and none were given"
        else:
            ready[ticker] = closed
    predictions: dict[str, Prediction] = {}
    if ready:
        table = build_table(ready, spec, daily=daily, tail=tail)
        last = np.flatnonzero(np.r_[table.ticker_index[1:] != table.ticker_index[:-1], True])
        ok = table.usable[last]
        for row in last[~ok]:
            ticker = table.tickers[table.ticker_index[row]]
            skipped[ticker] = "a flagged or incomplete bar lies in the input window"
        ends = last[ok]
        x = windows(loaded.normalizer.apply(table.features), ends, spec.window)
        from sentinel42.model.trainer import predict, torch_threads

        torch_threads()
        p_up, ret = predict(loaded.network, x)
        accuracy = loaded.accuracy
        for row, p, r in zip(ends, p_up, ret, strict=True):
            ticker = table.tickers[table.ticker_index[row]]
            predictions[ticker] = Prediction(
                ticker=ticker,
                bar_ts=pd.Timestamp(int(table.ts[row]), tz="UTC").to_pydatetime(),
                p_up=float(p),
                expected_return=float(r * loaded.normalizer.target_std),
                model_version=loaded.version,
                model_accuracy=accuracy,
                horizon_bars=spec.horizon,
            )
    return PredictionResult(predictions, skipped, loaded.version)


def predict_latest(
    settings: Any,
    bars: Mapping[str, pd.DataFrame],
    as_of: datetime,
    *,
    daily: Mapping[str, pd.DataFrame] | None = None,
) -> PredictionResult:
    """Predict with the promoted model from ``settings.models_dir``.

    With no promoted model (or one that cannot be loaded) every ticker is skipped with the
    reason and nothing raises, so a trading run can go on with sentiment alone.
    """
    registry = ModelRegistry(settings.models_dir)
    version = registry.current_version()
    if version is None:
        return PredictionResult({}, {t: NO_MODEL for t in bars}, None)
    try:
        loaded = registry.load(version)
    except ModelError as exc:
        logger.error("promoted model %s cannot be used: %s", version, exc)
        return PredictionResult({}, {t: f"model {version} unusable: {exc}" for t in bars}, None)
    if loaded.spec.use_daily and daily is None:
        daily = _stored_daily(settings, list(bars), as_of)
    return predict_with(
        loaded, bars, as_of, interval_minutes=settings.interval_minutes, daily=daily
    )


def _stored_daily(
    settings: Any, tickers: list[str], as_of: datetime
) -> dict[str, pd.DataFrame] | None:
    """Daily bars from the store for a model trained with daily features (callers may pass
    ``daily`` themselves; the trading run does not, so the predictor fetches them)."""
    from sentinel42.persistence import open_store

    try:
        with open_store(settings) as store:
            return store.load_bars(tickers, "1d", end=as_of)
    except Exception as exc:  # the store is optional here: those tickers get skipped instead
        logger.warning("daily bars unavailable for the model's daily features: %s", exc)
        return None
