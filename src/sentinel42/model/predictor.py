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
from sentinel42.market.calendar import SESSION_MINUTES
from sentinel42.model.config import InferenceConfig
from sentinel42.model.features import build_table, windows
from sentinel42.model.registry import LoadedModel

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
    tail = spec.inference_bars  # the same statistics as in training
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
        p_up, ret = loaded.lstm.predict(x)  # numpy: a trading run never imports torch
        accuracy, edge = loaded.accuracy, model_edge(loaded)
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
                model_edge=edge,
            )
    return PredictionResult(predictions, skipped, loaded.version)


def load_promoted(
    config: InferenceConfig, as_of: datetime, calendar: Any | None = None
) -> tuple[LoadedModel | None, str | None]:
    """The promoted model if it may decide at ``as_of``, else None and the reason.

    A model is refused when there is none, when its checkpoint cannot be loaded, when it was
    trained on another bar interval than the watchlist runs at, and when its training data
    ended more than ``config.max_age_sessions`` NYSE sessions before ``as_of``
    (counted on ``calendar``; without one the age is not checked).
    """
    registry = config.registry.open()
    version = registry.current_version()
    if version is None:
        return None, NO_MODEL
    try:
        loaded = registry.load(version)
    except ModelError as exc:
        logger.error("promoted model %s cannot be used: %s", version, exc)
        return None, f"model {version} unusable: {exc}"
    if loaded.spec.interval_minutes != config.interval_minutes:
        return None, (
            f"model {version} was trained on {loaded.spec.interval_minutes}-minute bars, the "
            f"watchlist runs at {config.interval_minutes}m; retrain with `sentinel42 model train`"
        )
    data_end = model_data_end(loaded)
    if calendar is not None and data_end is not None:
        if data_end > as_of:
            return None, (
                f"model {version} was trained on data up to {data_end.isoformat()}, after the "
                f"clock {as_of.isoformat()}"
            )
        age = calendar.sessions_since(data_end, as_of)
        if age > config.max_age_sessions:
            return None, (
                f"model {version} expired: its data ends {data_end.date().isoformat()}, "
                f"{age} sessions ago (limit SENTINEL42_MODEL_MAX_AGE_SESSIONS="
                f"{config.max_age_sessions}); retrain with `sentinel42 model train`"
            )
    return loaded, None


def model_data_end(loaded: LoadedModel) -> datetime | None:
    """When the newest data the model's training run saw ended (aware UTC), if recorded."""
    meta = loaded.metadata
    raw = meta.get("data_end") or meta.get("ranges", {}).get("test", {}).get("target_end")
    return pd.Timestamp(raw).tz_convert("UTC").to_pydatetime() if raw else None


def model_edge(loaded: LoadedModel) -> float | None:
    """The model's accuracy edge over the best baseline on the block that decided its gate."""
    edge = loaded.metadata.get("gate", {}).get("edge")
    return float(edge) if edge is not None else None


def predict_latest(
    config: InferenceConfig,
    bars: Mapping[str, pd.DataFrame],
    as_of: datetime,
    *,
    daily: Mapping[str, pd.DataFrame] | None = None,
    calendar: Any | None = None,
) -> PredictionResult:
    """Predict with the promoted model of ``config.registry``.

    With no usable promoted model every ticker is skipped with the reason and nothing raises,
    so a trading run can go on with sentiment alone. The caller passes every bar (and the daily
    bars a daily-feature model needs): this function opens no store.
    """
    loaded, reason = load_promoted(config, as_of, calendar)
    if loaded is None:
        return PredictionResult({}, dict.fromkeys(bars, reason or NO_MODEL), None)
    return predict_with(loaded, bars, as_of, interval_minutes=config.interval_minutes, daily=daily)


def inference_start(
    calendar: Any, as_of: datetime, bars_needed: int, interval_minutes: int
) -> datetime:
    """Open of the oldest session whose bars a decision at ``as_of`` needs.

    Counted in NYSE sessions, not calendar days, so a holiday week or an early close never
    leaves the model fewer bars than it was trained with; one session more than the bars fill
    covers a session still in progress.
    """
    per_session = max(1, SESSION_MINUTES // interval_minutes)
    sessions = -(-bars_needed // per_session) + 1
    return calendar.session_open_back(as_of, sessions)
