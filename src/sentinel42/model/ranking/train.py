"""Walk-forward training and evaluation of a ranking model against the baselines, then the gate.

The test period (``--test-start``/``--test-end``, default the last :data:`TEST_FRACTION` of the
sessions) is cut into consecutive folds. Each fold trains on every session before it, after a
purge (no training or validation target may end within ``horizon`` rows of the fold's first
row) and an embargo of another ``horizon`` rows; the last fifth of those sessions is the
validation block that chooses the early-stopping epoch of the LSTM and the boosting rounds of
LightGBM. The test folds chose nothing: their out-of-sample scores, pasted together, are what
the model and every baseline are judged on, on exactly the same (timestamp, ticker) samples.
The network saved is the last fold's (trained on the most history).
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from sentinel42.errors import ModelError
from sentinel42.model.ranking import features as F
from sentinel42.model.ranking.gate import decide
from sentinel42.model.ranking.lstm import RankerConfig, predict, train_ranker
from sentinel42.model.ranking.metrics import evaluate, rank_ic
from sentinel42.model.ranking.panel import Panel

logger = logging.getLogger(__name__)

TEST_FRACTION = 0.3
VAL_FRACTION = 0.2
DEFAULT_FOLDS = 2
MIN_TRAIN_SESSIONS = 5
TRADING_DAYS = 252
LGBM_MAX_ROWS = 300_000


@dataclass(frozen=True)
class TrainRequest:
    kind: str
    horizon: int = 1
    target: str = "excess"
    dead_zone: tuple[float, float] | None = None
    test_start: date | None = None
    test_end: date | None = None
    folds: int = DEFAULT_FOLDS
    window: int | None = None
    cost_bps: float = 5.0
    confidence: float = 0.99
    seed: int = 42
    epochs: int = 12
    samples_per_epoch: int = 120_000
    hidden_size: int = 32

    @property
    def lookback(self) -> int:
        return self.window or F.DEFAULT_WINDOW[self.kind]


@dataclass(frozen=True)
class Dataset:
    panel: Panel
    block: F.FeatureBlock
    target: np.ndarray  # [T, N] NaN where no sample
    label: np.ndarray  # [T, N] the training label: the target's cross-sectional z-score
    usable: np.ndarray  # [T, N] bool: a full valid window ends here
    window: int
    horizon: int


def build_dataset(panel: Panel, request: TrainRequest,
                  news: dict[str, np.ndarray] | None = None) -> Dataset:  # fmt: skip
    block = F.compute(panel, request.horizon, news)
    fwd, _ = F.forward_log_return(panel, request.horizon)
    y = F.target(fwd, request.target, request.dead_zone)
    usable = F.usable_windows(block.valid, request.lookback)
    target = np.where(usable, y, np.nan)
    return Dataset(panel, block, target, F.cs_zscore(target), usable, request.lookback,
                   request.horizon)  # fmt: skip


def _day(session: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=int(session))).isoformat()


def _rows_of(session: np.ndarray, days: np.ndarray) -> np.ndarray:
    return np.isin(session, days)


def plan_folds(ds: Dataset, request: TrainRequest) -> list[dict[str, Any]]:
    """Row ranges of every fold: train and validation rows (purged), test rows.

    Raises:
        ModelError: the test period is empty or leaves too little history before it.
    """
    session = ds.panel.session
    days = np.unique(session)
    epoch = date(1970, 1, 1)
    hi = (request.test_end - epoch).days if request.test_end else days[-1]
    upto = days[days <= hi]
    if request.test_start:
        test_days = upto[upto >= (request.test_start - epoch).days]
    else:  # the last TEST_FRACTION of the sessions up to the test end
        test_days = upto[int(len(upto) * (1 - TEST_FRACTION)) :]
    if test_days.size == 0:
        raise ModelError("the test period holds no session of the data")
    chunks = [c for c in np.array_split(test_days, max(1, request.folds)) if c.size]
    # purge + embargo, in rows: an intraday target ends horizon + the fill lag rows ahead.
    lag = F.INTRADAY_FILL_LAG if ds.panel.kind == "intraday" else 0
    gap = 2 * (ds.horizon + lag)
    folds = []
    for chunk in chunks:
        test_rows = np.flatnonzero(_rows_of(session, chunk))
        first = int(test_rows[0])
        before = days[days < chunk[0]]
        n_val = max(1, int(len(before) * VAL_FRACTION))
        if len(before) - n_val < MIN_TRAIN_SESSIONS:
            raise ModelError(
                f"too little history before the test fold starting {_day(chunk[0])}: "
                f"{len(before)} sessions (need {MIN_TRAIN_SESSIONS + 1} or more)"
            )
        val_first_day = before[len(before) - n_val]
        val_first = int(np.flatnonzero(session == val_first_day)[0])
        rows = np.arange(session.shape[0])
        train_rows = rows[rows + gap < val_first]
        val_rows = rows[(rows >= val_first) & (rows + gap < first)]
        folds.append({"train": train_rows, "val": val_rows, "test": test_rows,
                      "test_days": chunk})  # fmt: skip
    return folds


def _samples(ds: Dataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros(ds.target.shape, dtype=bool)
    mask[rows] = np.isfinite(ds.target[rows])
    t, i = np.nonzero(mask)
    return t, i


def _standardised(ds: Dataset, train_t: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    """Context columns standardised with the training rows' statistics only."""
    values = ds.block.grid.copy()
    k = ds.block.n_context
    if k == 0:
        return values, [], []
    ctx = ds.block.grid[np.unique(train_t), 0, -k:].astype(np.float64)
    mean, std = ctx.mean(axis=0), ctx.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    values[:, :, -k:] = ((values[:, :, -k:] - mean) / std).astype(np.float32)
    return values, [float(m) for m in mean], [float(s) for s in std]


def _fit_lightgbm(values: np.ndarray, train: tuple[np.ndarray, np.ndarray, np.ndarray],
                  val: tuple[np.ndarray, np.ndarray, np.ndarray], seed: int) -> Any:  # fmt: skip
    import lightgbm as lgb

    t, i, y = train
    if t.shape[0] > LGBM_MAX_ROWS:
        pick = np.random.default_rng(seed).choice(t.shape[0], LGBM_MAX_ROWS, replace=False)
        t, i, y = t[pick], i[pick], y[pick]
    params = {
        "objective": "regression", "learning_rate": 0.05, "num_leaves": 31,
        "min_data_in_leaf": 200, "bagging_fraction": 0.8, "bagging_freq": 1,
        "feature_fraction": 0.8, "lambda_l2": 1.0, "seed": seed, "num_threads": 2,
        "verbosity": -1, "deterministic": True,
    }  # fmt: skip
    train_set = lgb.Dataset(values[t, i, :], y)
    val_set = lgb.Dataset(values[val[0], val[1], :], val[2], reference=train_set)
    return lgb.train(
        params, train_set, num_boost_round=400, valid_sets=[val_set],
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )  # fmt: skip


def run(
    ds: Dataset,
    request: TrainRequest,
    *,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Walk-forward: out-of-sample scores of the model and every baseline on the test folds.

    Returns:
        ``scores`` name -> [T, N] (NaN outside the test samples), ``network`` (last fold),
        ``context`` {mean, std} (last fold), ``folds`` (dates and sizes), ``best_epochs``.
    """
    shape = ds.target.shape
    folds = plan_folds(ds, request)
    model_score = np.full(shape, np.nan)
    lgbm_score = np.full(shape, np.nan)
    network: Any = None
    ctx_stats: tuple[list[float], list[float]] = ([], [])
    fold_rows: list[dict[str, Any]] = []
    config = RankerConfig(window=ds.window, hidden_size=request.hidden_size,
                          epochs=request.epochs, samples_per_epoch=request.samples_per_epoch,
                          seed=request.seed)  # fmt: skip
    for k, fold in enumerate(folds, start=1):
        tr_t, tr_i = _samples(ds, fold["train"])
        va_t, va_i = _samples(ds, fold["val"])
        te_t, te_i = _samples(ds, fold["test"])
        if min(tr_t.size, va_t.size, te_t.size) == 0:
            raise ModelError(f"fold {k}: no samples in its training, validation or test block")
        values, mean, std = _standardised(ds, tr_t)
        tr = (tr_t, tr_i, ds.label[tr_t, tr_i])
        va = (va_t, va_i, ds.label[va_t, va_i])
        val_target = np.full(shape, np.nan)
        val_target[va_t, va_i] = ds.target[va_t, va_i]
        say = (lambda line, k=k: progress(f"fold {k}/{len(folds)}: {line}")) if progress else None
        if say:
            say(f"train {tr_t.size} val {va_t.size} test {te_t.size} samples")
        result = train_ranker(config, values, tr, va, val_target, progress=say)
        model_score[te_t, te_i] = predict(result.network, values, te_t, te_i, ds.window)
        booster = _fit_lightgbm(values, tr, va, request.seed)
        lgbm_score[te_t, te_i] = booster.predict(
            values[te_t, te_i, :], num_iteration=booster.best_iteration or None
        )
        network, ctx_stats = result.network, (mean, std)
        fold_rows.append({
            "fold": k, "test_start": _day(fold["test_days"][0]),
            "test_end": _day(fold["test_days"][-1]),
            "train_samples": int(tr_t.size), "val_samples": int(va_t.size),
            "test_samples": int(te_t.size), "best_epoch": result.best_epoch,
            "val_rank_ic": result.best_val_ic,
            "lightgbm_rounds": int(booster.best_iteration or booster.current_iteration()),
        })  # fmt: skip
    tested = np.isfinite(model_score)
    scores = {"model": model_score, "lightgbm": np.where(tested, lgbm_score, np.nan)}
    for name, sig in F.baseline_scores(ds.panel.kind, ds.block.raw).items():
        scores[name] = np.where(tested, sig, np.nan)
    return {"scores": scores, "network": network, "context": {"mean": ctx_stats[0],
            "std": ctx_stats[1]}, "folds": fold_rows, "tested": tested}  # fmt: skip


def score_all(
    ds: Dataset, scores: dict[str, np.ndarray], tested: np.ndarray, request: TrainRequest
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Every scorer's metrics and per-row rank IC on the same tested samples."""
    target = np.where(tested, ds.target, np.nan)
    rows = np.flatnonzero(tested.any(axis=1))
    session = ds.panel.session[rows]
    n_sessions = max(1, np.unique(session).shape[0])
    periods_per_year = TRADING_DAYS * rows.shape[0] / n_sessions
    out, ics = {}, {}
    for name, grid in scores.items():
        s = grid[rows]
        # A rule baseline without a value for a sample (e.g. momentum early on) ranks it last
        # in nothing: it simply has no opinion there, as NaN.
        out[name] = evaluate(
            s, target[rows], session, horizon=ds.horizon, periods_per_year=periods_per_year,
            cost_bps=request.cost_bps, confidence=request.confidence, seed=request.seed,
            flat_at_close=ds.panel.kind == "intraday",
        )  # fmt: skip
        ics[name] = rank_ic(s, target[rows])
    return out, ics


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train_ranking(
    panel: Panel,
    request: TrainRequest,
    *,
    attempts: int = 1,
    news: dict[str, np.ndarray] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train, evaluate and gate one kind; the ``model train --kind`` document (without saving).

    The returned ``network`` and ``context`` keys are for the registry, not the JSON.
    """
    started = time.perf_counter()
    ds = build_dataset(panel, request, news)
    out = run(ds, request, progress=progress)
    metrics, ics = score_all(ds, out["scores"], out["tested"], request)
    rows = np.flatnonzero(out["tested"].any(axis=1))
    session = ds.panel.session[rows]
    baselines = {k: v for k, v in metrics.items() if k != "model"}
    gate = decide(
        ics["model"], {k: ics[k] for k in baselines}, session, model_metrics=metrics["model"],
        baseline_metrics=baselines, horizon=ds.horizon, confidence=request.confidence,
        attempts=attempts, seed=request.seed,
    )  # fmt: skip
    document: dict[str, Any] = {
        "kind": panel.kind,
        "promoted": bool(gate["promoted"]),
        "reason": gate["reason"],
        "horizon": request.horizon,
        "target": request.target,
        "dead_zone": list(request.dead_zone) if request.dead_zone else None,
        "window": ds.window,
        "features": list(ds.block.names),
        "best_baseline": gate["best_baseline"],
        "gate": gate,
        "test": {
            "start": _day(int(session.min())), "end": _day(int(session.max())),
            "n_periods": int(metrics["model"]["n_periods"]),
            "n_samples": int(metrics["model"]["n_samples"]),
            "n_sessions": int(np.unique(session).shape[0]),
        },
        "model": metrics["model"],
        "baselines": baselines,
        "folds": out["folds"],
        "data": panel.describe(),
        "cost_bps": request.cost_bps,
    }  # fmt: skip
    if news is not None:
        plain = train_ranking(panel, request, attempts=attempts, news=None)
        document["ablations"] = {"prices_only": plain["model"]}
    document["timing"] = {"train_s": round(time.perf_counter() - started, 1),
                          "peak_rss_mb": round(peak_rss_mb(), 1)}  # fmt: skip
    document["_network"] = out["network"]
    document["_context"] = out["context"]
    document["_report"] = {"ics": ics, "session": session, "scores": out["scores"],
                           "target": ds.target, "rows": rows}  # fmt: skip
    return document


def data_end(panel: Panel) -> str:
    return pd.Timestamp(int(panel.ts[-1]), tz="UTC").isoformat()
