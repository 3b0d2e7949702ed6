"""Sentiment throughput benchmark (``sentinel42 news bench``) on synthetic headlines.

The benchmark runs a randomly initialised model of FinBERT's exact architecture (BERT-base,
12 layers, hidden 768, 3 labels): the same cost as the real weights, no download. Its
tokenizer is built from the benchmark's own words, so each word is one token (real WordPiece
splits a few rare words further; headlines stay far below ``max_length`` either way).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentinel42.sentiment.finbert import FinBertScorer
from sentinel42.sentiment.finbert_options import FinBertOptions
from sentinel42.synthetic import synthetic_headlines

logger = logging.getLogger(__name__)


def random_finbert(
    texts: Sequence[str],
    options: FinBertOptions,
    workdir: Path,
    config_overrides: Mapping[str, Any] | None = None,
) -> FinBertScorer:
    """A random-weight BERT-base classifier with ProsusAI's labels, saved and loaded for real.

    ``config_overrides`` (``BertConfig`` fields) shrink it for smoke tests; figures are only
    meaningful without them.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer
    from transformers.utils import logging as hf_logging

    from sentinel42.sentiment.finbert import load_finbert

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the figures' stderr

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted({w.lower().strip(",.") for t in texts for w in t.split()} - set(vocab))
    vocab += [f"[unused{i}]" for i in range(30522 - len(vocab))]  # bert-base vocabulary size
    (workdir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab_file=str(workdir / "vocab.txt"))
    torch.manual_seed(0)
    labels = {0: "positive", 1: "negative", 2: "neutral"}
    label2id = {v: k for k, v in labels.items()}
    config = BertConfig(  # type: ignore[call-arg]
        num_labels=3, id2label=labels, label2id=label2id, **dict(config_overrides or {})
    )
    BertForSequenceClassification(config).save_pretrained(workdir)
    tokenizer.save_pretrained(workdir)
    return load_finbert(
        FinBertOptions(
            model=str(workdir),
            max_length=options.max_length,
            threads=options.threads,
            quantize=options.quantize,
        )
    )


def run_benchmark(
    n: int = 512, threads: int | None = None, max_length: int = 128
) -> dict[str, Any]:
    """Headlines per second (fp32 and int8, batch 1 and 32) and the steady-state refresh cost.

    Returns:
        The rates (``fp32_batch32_per_s`` ...), the steady-state figures and ``stages``: wall
        and CPU seconds of each measured case and the process's peak RSS when it ended (a
        high-water mark: the int8 cases run after the fp32 model was loaded).
    """
    import torch

    from sentinel42.bench.measure import Stages
    from sentinel42.domain import NewsItem
    from sentinel42.persistence import open_store
    from sentinel42.sentiment.service import score_pending

    texts = synthetic_headlines(n)
    results: dict[str, Any] = {
        "headlines": n,
        "threads": threads or torch.get_num_threads(),
        "max_length": max_length,
        "model": "random BERT-base (FinBERT architecture)",
    }
    stages = Stages()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for quantize in (False, True):
            options = FinBertOptions(max_length=max_length, threads=threads, quantize=quantize)
            tag = "int8" if quantize else "fp32"
            workdir = base / tag
            workdir.mkdir()
            with stages.stage(f"{tag}_build_and_load"):
                scorer = random_finbert(texts, options, workdir)
                scorer.probabilities(texts[:8], 8)  # warm-up: first-call allocations
            for batch in (1, 32):
                with stages.stage(f"{tag}_batch{batch}", headlines=n) as row:
                    scorer.probabilities(texts, batch)
                rate = n / max(row["wall_s"], 1e-9)
                results[f"{tag}_batch{batch}_per_s"] = round(rate, 1)
                logger.info("%s batch %d: %.1f headlines/s", tag, batch, rate)
            if not quantize:
                fp32 = scorer
        # Steady state: every headline already scored, a refresh asks the store and scores none.
        as_of = datetime(2025, 6, 4, 14, 0, tzinfo=UTC)
        with open_store(url=f"sqlite:///{base / 'bench.db'}") as store:
            store.upsert_news(
                [
                    NewsItem(
                        url=f"https://bench.example/{i}", title=t, published_at=as_of, source="b"
                    )
                    for i, t in enumerate(texts)
                ],
                seen_at=as_of,
            )
            with stages.stage("first_refresh") as row:
                row["scored"] = first = score_pending(store, fp32, 32, as_of)
            results["first_refresh_scored"] = first
            results["first_refresh_s"] = row["wall_s"]
            with stages.stage("steady_refresh") as row:
                row["scored"] = again = score_pending(store, fp32, 32, as_of)
            results["steady_refresh_scored"] = again
            results["steady_refresh_ms"] = round(row["wall_s"] * 1000, 1)
    results["stages"] = stages.figures
    return results
