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

import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel42.bench.cycle_setup import (
    FINBERT_ARCHITECTURE,
    Progress,
    case_settings,
    prepare,
)
from sentinel42.bench.measure import Stages, attributed, machine, run_isolated

logger = logging.getLogger(__name__)


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
    counts["portfolio_applied"] = snapshot.applied
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
