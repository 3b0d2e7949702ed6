"""``sentinel42 bench cycle``: one full trading cycle for N tickers, and the naive way beside it.

Setup (not timed, in the calling process): a replay set for N tickers (10 sessions of 15-minute
bars, daily bars, and the last 24 hours of headlines: what a feed serves), a store warmed up to
one bar before the clock (bars stored, every headline scored, a decision and a portfolio update
made), a random-weight BERT-base saved as a local FinBERT (FinBERT's exact architecture and
cost; the real weights cannot be downloaded here) and a random-weight LSTM of the configured
size registered and promoted. The store is then copied, so both ways start from the same state.

Each way then runs in its own fresh process (its peak RSS is its own) at the clock ``as_of``,
which brings exactly one new bar and one new headline per ticker:

- **batched** (the pipeline as the flows run it): ``refresh_prices`` and ``refresh_news`` for
  the watchlist (one fetch, one upsert), the sentiment scorer loaded, ``score_sentiment``
  (FinBERT batches of ``sentiment_batch_size``, one insert per chunk), ``decide`` (one store
  read, one LSTM forward pass for every ticker, fusion, one write), ``update_portfolio``.
- **naive**: the same stage functions called once per ticker: ``market.refresh.refresh_prices``
  and ``news.refresh.refresh_news`` with a one-ticker watchlist (source and store shared, so
  one fetch and one upsert transaction per ticker); FinBERT on one headline at a time (batch 1)
  and one ``save_scores`` (one statement, one transaction) per headline; ``pipeline.decide``
  once per ticker (each opens the store, loads the LSTM checkpoint, predicts one ticker and
  writes its decision, as one task per ticker would); ``update_portfolio`` once (one book).

Both processes pay the same imports and model loads, reported as their own stages.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sentinel42.bench.measure import Stages, attributed, machine, run_isolated

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


def _register_random_lstm(models_dir: Path, settings: Any, data_end: datetime) -> str:
    """A random-weight LSTM of the configured size, saved and promoted like a trained one."""
    import torch

    from sentinel42.model.features import FeatureSpec
    from sentinel42.model.network import DirectionLSTM, NetworkConfig
    from sentinel42.model.storage import open_registry

    torch.manual_seed(0)
    spec = FeatureSpec(
        settings.model_window, settings.model_horizon, interval_minutes=settings.interval_minutes
    )
    n = len(spec.names)
    config = NetworkConfig(n, settings.model_hidden_size, settings.model_layers, 0.1)
    registry = open_registry(models_dir)
    version = "bench-random-lstm"
    registry.save(
        version,
        DirectionLSTM(config),
        {
            "created_at": data_end.isoformat(),
            "feature_spec": spec.to_dict(),
            "network": config.to_dict(),
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


def case_settings(case: dict[str, Any], data_dir: str) -> Any:
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


def scoring_setup(settings: Any | None = None) -> dict[str, Any]:
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
    case["lstm_version"] = _register_random_lstm(settings.models_dir, settings, previous)
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


# --- the measured process ------------------------------------------------------------------
def _decide_spots() -> dict[str, tuple[Any, str]]:
    import sentinel42.fusion as fusion
    import sentinel42.model.predictor as predictor
    import sentinel42.sentiment.aggregate as aggregate
    from sentinel42.persistence.store import Store

    return {
        "load_model": (predictor, "load_promoted"),
        "load_bars": (Store, "load_bars"),
        "predict": (predictor, "predict_with"),
        "aggregate_sentiment": (aggregate, "aggregate_sentiment"),
        "fuse": (fusion, "fuse"),
        "save_predictions": (Store, "save_predictions"),
        "save_decisions": (Store, "save_decisions"),
    }


def _source_spots() -> dict[str, tuple[Any, str]]:
    from sentinel42.market.replay import ReplayPriceSource
    from sentinel42.news.replay import ReplayNewsSource

    return {
        "fetch_intraday": (ReplayPriceSource, "fetch_intraday"),
        "fetch_daily": (ReplayPriceSource, "fetch_daily"),
        "fetch_news": (ReplayNewsSource, "fetch"),
    }


def run_case(case: dict[str, Any], way: str) -> dict[str, Any]:
    """One cycle at ``case["as_of"]`` the ``way`` (``batched`` or ``naive``); stages and counts.

    Runs in a fresh process (:func:`~sentinel42.bench.measure.run_isolated`).
    """
    stages = Stages()
    with stages.stage("imports"):  # the scorer's own (torch or ONNX Runtime) come with its load
        from sentinel42 import pipeline
        from sentinel42.factory import build_calendar, build_news_sources, build_price_source
        from sentinel42.market.refresh import refresh_prices
        from sentinel42.news.refresh import refresh_news
        from sentinel42.persistence import open_store
        from sentinel42.sentiment.service import build_scorer

        settings = case_settings(case, case["data_dirs"][way])
        build_calendar(settings)
    as_of = datetime.fromisoformat(case["as_of"]).astimezone(UTC)
    tickers: list[str] = list(settings.tickers)
    counts: dict[str, int] = {}
    if way == "batched":
        with stages.stage("refresh_prices") as row, attributed(_source_spots()) as parts:
            report = pipeline.refresh_prices(settings, as_of)
            counts["bars_new"] = sum(t.bars_new for t in report.tickers)
        row["parts"] = parts
        with stages.stage("refresh_news") as row, attributed(_source_spots()) as parts:
            counts["headlines_new"] = pipeline.refresh_news(settings, as_of).headlines_new
        row["parts"] = parts
        with stages.stage("sentiment_model_load"):
            scorer = build_scorer(settings)
        with stages.stage("sentiment_score"):
            counts["headlines_scored"] = pipeline.score_sentiment(settings, as_of).scored
        with stages.stage("decide") as row, attributed(_decide_spots()) as parts:
            result = pipeline.decide(settings, as_of, forced=True, run_id=f"bench-{way}")
        row["parts"] = parts
        counts["predictions"] = sum(d.inputs.get("p_up") is not None for d in result.decisions)
        counts["decisions"] = len(result.decisions)
    elif way == "naive":
        calendar = build_calendar(settings)
        with open_store(settings) as store:
            source = build_price_source(settings)
            with stages.stage("refresh_prices") as row, attributed(_source_spots()) as parts:
                new = 0
                for ticker in tickers:
                    one = settings.model_copy(update={"tickers": [ticker]})
                    report = refresh_prices(one, source, store, calendar, as_of)
                    new += sum(t.bars_new for t in report.tickers)
                counts["bars_new"] = new
            row["parts"] = parts
            sources = build_news_sources(settings, store)
            with stages.stage("refresh_news") as row, attributed(_source_spots()) as parts:
                counts["headlines_new"] = sum(
                    refresh_news(
                        settings.model_copy(update={"tickers": [t]}), sources, store, as_of
                    ).headlines_new
                    for t in tickers
                )
            row["parts"] = parts
            with stages.stage("sentiment_model_load"):
                scorer = build_scorer(settings)
            with stages.stage("sentiment_score"):
                scored = 0
                for text_hash, text in store.pending_texts(scorer.name, scorer.revision):
                    (score,) = scorer.score([text])  # batch 1
                    store.save_scores([_keyed(score, text_hash)], as_of)  # one row per statement
                    scored += 1
                counts["headlines_scored"] = scored
        with stages.stage("decide") as row, attributed(_decide_spots()) as parts:
            decided = [
                pipeline.decide(
                    settings.model_copy(update={"tickers": [t]}),
                    as_of,
                    forced=True,
                    run_id=f"bench-{way}",
                )
                for t in tickers
            ]
        row["parts"] = parts
        decisions = [d for r in decided for d in r.decisions]
        counts["predictions"] = sum(d.inputs.get("p_up") is not None for d in decisions)
        counts["decisions"] = len(decisions)
    else:
        raise ValueError(f"unknown way {way!r}: batched or naive")
    with stages.stage("portfolio"):
        snapshot = pipeline.update_portfolio(settings, as_of)
    counts["portfolio_applied"] = int(snapshot.get("applied") or 0)
    return {
        "way": way,
        "scorer": {"name": scorer.name, "revision": scorer.revision},
        "stages": stages.figures,
        "total_s": stages.total("wall_s"),
        "total_cpu_s": stages.total("cpu_s"),
        "warm_total_s": round(
            stages.total("wall_s")
            - sum(stages.figures[s]["wall_s"] for s in ("imports", "sentiment_model_load")),
            3,
        ),
        "counts": counts,
    }


def _keyed(score: Any, text_hash: str) -> Any:
    import dataclasses

    return dataclasses.replace(score, text_hash=text_hash)


# --- the command ---------------------------------------------------------------------------
def bench_cycle(
    n_tickers: int,
    *,
    naive: bool = True,
    scoring: dict[str, Any] | None = None,
    bert_overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Prepare, then one batched and (unless ``naive`` is False) one naive cycle, each in a fresh
    process. Returns the figures of both and the machine they ran on.

    ``bert_overrides`` shrink the sentiment model (smoke tests only: the figures then do not
    describe FinBERT).
    """
    say = progress or (lambda _m: None)
    before = machine()
    with tempfile.TemporaryDirectory(prefix="sentinel42-bench-cycle-") as tmp:
        case = prepare(
            Path(tmp),
            n_tickers,
            scoring=scoring,
            bert_overrides=bert_overrides,
            progress=say,
        )
        say(f"cycle, batched: {n_tickers} tickers in a fresh process")
        batched = run_isolated("sentinel42.bench.cycle:run_case", {"case": case, "way": "batched"})
        plain = None
        if naive:
            say(f"cycle, naive: {n_tickers} tickers in a fresh process")
            plain = run_isolated("sentinel42.bench.cycle:run_case", {"case": case, "way": "naive"})
    doc: dict[str, Any] = {
        "tickers": n_tickers,
        "as_of": case["as_of"],
        "sentiment_model": FINBERT_ARCHITECTURE
        if not bert_overrides
        else f"shrunk BERT {bert_overrides}",
        "lstm": "random-weight LSTM of the configured size (registered and promoted)",
        "settings": case["scoring"],
        "onnx_export_s": case.get("onnx_export_s"),
        "total_s": batched["total_s"],
        "warm_total_s": batched["warm_total_s"],
        "naive_total_s": plain["total_s"] if plain else None,
        "naive_warm_total_s": plain["warm_total_s"] if plain else None,
        "peak_rss_mb": batched["process"]["peak_rss_mb"],
        "naive_peak_rss_mb": plain["process"]["peak_rss_mb"] if plain else None,
        "counts": batched["counts"],
        "naive_counts": plain["counts"] if plain else None,
        "stages": batched["stages"],
        "naive_stages": plain["stages"] if plain else None,
        "scorer": batched["scorer"],
        "machine": {"before": before, "after": machine()},
    }
    return doc
