"""The shipped offline fallback sentiment model on labelled text nobody in this project wrote.

uv run --frozen python scripts/figures/fallback_sentiment.py [--data DIR] [--json]

Scores the validation split of the labelled tweets (Twitter Financial News Sentiment, MIT;
``labeled/twitter_financial_news_sentiment_valid.csv`` under ``--data``, default
``../shared/data`` beside the checkout) with the model as it ships
(``sentinel42.sentiment.fallback.FallbackScorer``, numpy only) and prints accuracy and macro-F1
next to the majority-class baseline (always ``neutral``, the commonest label of the train split
the model was fitted on), for:

- ``holdout``: the half of the split (by a hash of each text, as
  ``scripts/train_fallback_sentiment.py`` halves it) never used to choose anything: independent;
- ``tune``: the other half, used to choose C and the dense scale: not independent;
- ``all``: the whole split, both halves.

Labels: 0 = bearish -> negative, 1 = bullish -> positive, 2 = neutral. Exits 2 with one line
when the data file is absent.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sentinel42.sentiment.fallback import FallbackScorer
from sentinel42.sentiment.metrics import macro_f1

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
VALID = Path("labeled") / "twitter_financial_news_sentiment_valid.csv"
LABELS = {"0": "negative", "1": "positive", "2": "neutral"}
MAJORITY = "neutral"


def _is_holdout() -> Any:
    # The training script's own rule, so the halves here are the ones it reports and tunes on.
    spec = importlib.util.spec_from_file_location(
        "train_fallback_sentiment", ROOT / "scripts" / "train_fallback_sentiment.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.is_holdout


def read(path: Path) -> list[tuple[str, str]]:
    """``(text, label)`` rows of a ``text,label`` CSV with the tweets' numeric labels."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    bad = sorted({r["label"] for r in rows} - set(LABELS))
    if bad:
        raise ValueError(f"{path}: labels {bad} are not 0, 1 or 2")
    return [(r["text"], LABELS[r["label"]]) for r in rows]


def figures(rows: list[tuple[str, str]], holdout: Any) -> dict[str, dict[str, Any]]:
    """Accuracy and macro-F1 of the model and of the majority baseline on each part."""
    predicted = [s.label for s in FallbackScorer().score([t for t, _ in rows])]
    parts = {
        "holdout": [i for i, (t, _) in enumerate(rows) if holdout(t)],
        "tune": [i for i, (t, _) in enumerate(rows) if not holdout(t)],
        "all": list(range(len(rows))),
    }
    out: dict[str, dict[str, Any]] = {}
    for name, index in parts.items():
        if not index:
            continue
        truth = [rows[i][1] for i in index]
        model = [predicted[i] for i in index]
        majority = [MAJORITY] * len(index)
        correct = sum(a == b for a, b in zip(truth, model, strict=True))
        out[name] = {
            "rows": len(index),
            "labels": dict(sorted(Counter(truth).items())),
            "model_accuracy": round(correct / len(index), 4),
            "model_macro_f1": round(macro_f1(truth, model), 4),
            "majority_accuracy": round(truth.count(MAJORITY) / len(index), 4),
            "majority_macro_f1": round(macro_f1(truth, majority), 4),
            "independent": name == "holdout",
        }
    return out


def markdown(result: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| part of the tweet validation split | rows | fallback macro-F1 / accuracy "
        "| always neutral macro-F1 / accuracy | independent |",
        "|---|---|---|---|---|",
    ]
    for name, row in result.items():
        lines.append(
            f"| {name} | {row['rows']:,} | {row['model_macro_f1']:.3f} / "
            f"{row['model_accuracy']:.3f} | {row['majority_macro_f1']:.3f} / "
            f"{row['majority_accuracy']:.3f} | {'yes' if row['independent'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    args = parser.parse_args(argv)
    path = args.data / VALID
    if not path.is_file():
        print(f"labelled tweets not found: {path}", file=sys.stderr)
        return 2
    result = figures(read(path), _is_holdout())
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
