"""Setup for ``sentinel42 bench cycle`` (not timed, in the calling process): the replay set for N
tickers, the store warmed up to one bar before the clock, the random-weight FinBERT and LSTM, and
the copy of the store each way starts from. The measured processes are in
:mod:`sentinel42.bench.cycle`.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentinel42.model.config import TrainingConfig
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

BENCH_END = date(2026, 11, 20)  # a Friday with a regular session: figures do not move with today
SESSIONS = 10  # the LSTM's newest window needs 170 bars (6.5 sessions) of history
CLOCK_BARS = 14  # the clock: the end of the last session's 14th bar (13:00 New York)
HISTORY_HOURS = 24.0  # headlines a feed still serves (the sentiment window's default)
FINBERT_ARCHITECTURE = "random-weight BERT-base (FinBERT's architecture; real weights not here)"
Progress = Callable[[str], None]
# The settings that choose and run the sentiment scorer; both ways of a cycle use the same.
SCORING_FIELDS = (
    "sentiment_batch_size",
    "sentiment_threads",
    "sentiment_max_length",
    "sentiment_quantize",
    "sentiment_runtime",
)


# --- setup ---------------------------------------------------------------------------------
def _tickers(n: int) -> list[str]:
    from sentinel42.bench.refresh import ticker_name

    return [ticker_name(i) for i in range(n)]


def _write_daily(replay_dir: Path, tickers: list[str]) -> None:
    """Daily bars from the intraday files, so a refresh finds its daily bars current."""
    import pandas as pd

    from sentinel42.market.calendar import NEW_YORK
    from sentinel42.market.price_csv import write_price_csv

    for ticker in tickers:
        raw = pd.read_csv(replay_dir / "prices" / f"{ticker}.csv")
        ts = pd.to_datetime(raw["Datetime"], utc=True).dt.tz_convert(NEW_YORK)
        raw.index = pd.DatetimeIndex(ts).normalize()
        grouped = raw.groupby(level=0)
        daily = pd.DataFrame(
            {
                "open": grouped["Open"].first(),
                "high": grouped["High"].max(),
                "low": grouped["Low"].min(),
                "close": grouped["Close"].last(),
                "volume": grouped["Volume"].sum().astype(float),
            }
        )
        write_price_csv(daily, replay_dir / "daily" / f"{ticker}.csv", time_column="Date")


def _new_headlines(tickers: list[str], published: datetime) -> list[dict[str, Any]]:
    """One new 12-30-word headline per ticker, each naming its company."""
    from sentinel42.synthetic import synthetic_headlines

    texts = synthetic_headlines(len(tickers), seed=11)
    return [
        {
            "published_at": published.isoformat(),
            "title": f"{ticker} Corp {text.split(' ', 1)[1]}",
            "summary": "",
            "url": f"https://news.example.com/{ticker.lower()}/bench-cycle-{i}",
            "source": "Synthetic Wire",
            "tickers": [ticker],
        }
        for i, (ticker, text) in enumerate(zip(tickers, texts, strict=True))
    ]


def _rewrite_news(replay_dir: Path, tickers: list[str], previous: datetime) -> list[str]:
    """Keep the headlines of the last :data:`HISTORY_HOURS` before ``previous``, add the new ones.

    Returns:
        Every title in the file (the random tokenizer's vocabulary is built from them).
    """
    path = replay_dir / "news" / "synthetic.jsonl"
    oldest = previous - timedelta(hours=HISTORY_HOURS)
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if oldest < datetime.fromisoformat(record["published_at"]) <= previous:
            kept.append(record)
    records = kept + _new_headlines(tickers, previous + timedelta(minutes=5))
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return [str(r["title"]) for r in records]


def _register_random_lstm(config: TrainingConfig, data_end: datetime) -> str:
    """A random-weight LSTM of the configured size, saved and promoted like a trained one."""
    import torch

    from sentinel42.model.features import FeatureSpec
    from sentinel42.model.network import DirectionLSTM, NetworkConfig

    torch.manual_seed(0)
    spec = FeatureSpec(config.window, config.horizon, interval_minutes=config.interval_minutes)
    n = len(spec.names)
    network = NetworkConfig(n, config.hidden_size, config.layers, 0.1)
    registry = config.registry.open()
    version = "bench-random-lstm"
    registry.save(
        version,
        DirectionLSTM(network),
        {
            "created_at": data_end.isoformat(),
            "feature_spec": spec.to_dict(),
            "network": network.to_dict(),
            "normalization": {"mean": [0.0] * n, "std": [1.0] * n, "target_std": 0.002},
            "data_end": data_end.isoformat(),
            "gate": {"model_accuracy": 0.53, "edge": 0.02},
            "promotion": {"promoted": True, "reason": "benchmark: random weights"},
        },
    )
    registry.promote(version)
    return version


def _score_backlog(store: Any, scorer_name: str, revision: str, at: datetime) -> int:
    """Steady state before the cycle: every stored headline scored (random probabilities)."""
    from sentinel42.sentiment.base import make_score

    rng = random.Random(3)  # noqa: S311 - benchmark data, not security
    pending = store.pending_texts(scorer_name, revision)
    scores = []
    for text_hash, _text in pending:
        a, b = rng.random(), rng.random()
        lo, hi = min(a, b), max(a, b)
        probs = {"positive": lo, "negative": hi - lo, "neutral": 1 - hi}
        scores.append(make_score(text_hash, probs, scorer_name, revision))
    return int(store.save_scores(scores, at))


def case_settings(case: dict[str, Any], data_dir: str) -> Settings:
    """The settings both ways run with (explicit values win over the environment)."""
    from sentinel42.settings import load_settings

    return load_settings(
        tickers=case["tickers"],
        data_dir=Path(data_dir),
        database_url=None,
        data_source="replay",
        replay_dir=Path(case["replay_dir"]),
        replay_as_of=None,
        interval="15m",
        finbert_model=case["finbert_dir"],
        sentiment_require_finbert=True,
        **case["scoring"],
    )


def scoring_setup(settings: Settings | None = None) -> dict[str, Any]:
    """The scorer settings a cycle runs with (:data:`SCORING_FIELDS`): ``settings``' values,
    or the defaults."""
    from sentinel42.settings import Settings

    if settings is None:
        return {f: Settings.model_fields[f].default for f in SCORING_FIELDS}
    return {f: getattr(settings, f) for f in SCORING_FIELDS}


def prepare(
    workdir: Path,
    n_tickers: int,
    *,
    scoring: dict[str, Any] | None = None,
    bert_overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build everything both ways need under ``workdir``; returns the case (JSON-able).

    ``scoring`` (:func:`scoring_setup`; default: the settings' defaults) chooses the scorer;
    ``bert_overrides`` (``BertConfig`` fields) shrink the sentiment model for smoke tests.
    """
    from sentinel42 import pipeline
    from sentinel42.bench.sentiment import random_finbert
    from sentinel42.model.config import TrainingConfig
    from sentinel42.persistence import open_store
    from sentinel42.sentiment.finbert import clear_cache
    from sentinel42.sentiment.finbert_options import FinBertOptions
    from sentinel42.sentiment.service import build_scorer
    from sentinel42.synthetic import generate_replay

    say = progress or (lambda _m: None)
    scoring = dict(scoring or scoring_setup())
    tickers = _tickers(n_tickers)
    replay_dir = workdir / "replay"
    say(f"setup: replay set for {n_tickers} tickers ({SESSIONS} sessions of 15-minute bars)")
    made = generate_replay(replay_dir, tickers, end=BENCH_END, sessions=SESSIONS, seed=42)
    _write_daily(replay_dir, tickers)
    last_open = made.end - timedelta(minutes=15 * 26)  # a regular session: 26 bars
    as_of = last_open + timedelta(minutes=15 * CLOCK_BARS)
    previous = as_of - timedelta(minutes=15)
    titles = _rewrite_news(replay_dir, tickers, previous)

    say("setup: random-weight BERT-base saved as a local FinBERT")
    finbert_dir = workdir / "finbert"
    finbert_dir.mkdir()
    options = FinBertOptions(
        max_length=scoring["sentiment_max_length"],
        threads=scoring["sentiment_threads"],
        quantize=scoring["sentiment_quantize"],
    )
    scorer = random_finbert(titles, options, finbert_dir, bert_overrides)
    identity = (scorer.name, scorer.revision)
    del scorer
    clear_cache()  # the measured processes load it themselves

    case: dict[str, Any] = {
        "tickers": tickers,
        "replay_dir": str(replay_dir),
        "finbert_dir": str(finbert_dir),
        "as_of": as_of.isoformat(),
        "previous": previous.isoformat(),
        "scoring": scoring,
    }
    batched_dir = workdir / "batched"
    settings = case_settings(case, str(batched_dir))
    say("setup: random-weight LSTM registered; store warmed up to one bar before the clock")
    case["lstm_version"] = _register_random_lstm(TrainingConfig.from_settings(settings), previous)
    if scoring["sentiment_runtime"] == "onnx":  # once per model and host, as after install
        say("setup: FinBERT exported to ONNX (once per model)")
        started = time.perf_counter()
        exported = build_scorer(settings)
        case["onnx_export_s"] = round(time.perf_counter() - started, 2)
        if getattr(exported, "runtime", None) != "onnx":
            raise RuntimeError("the ONNX export failed (see the warning above)")
        # The backlog counts as scored by the scorer the cycle loads (an int8 copy is its own
        # revision), so the cycle scores the new headlines only.
        identity = (exported.name, exported.revision)
        clear_cache()
    pipeline.refresh_prices(settings, previous)
    pipeline.refresh_news(settings, previous)
    with open_store(settings) as store:
        case["backlog_scored"] = _score_backlog(store, *identity, previous)
    pipeline.decide(settings, previous, forced=True, run_id="bench-warm-up")
    pipeline.update_portfolio(settings, previous)
    naive_dir = workdir / "naive"
    shutil.copytree(batched_dir, naive_dir)
    case["data_dirs"] = {"batched": str(batched_dir), "naive": str(naive_dir)}
    return case
