"""Train the offline fallback sentiment model and write ``sentiment/data/fallback.npz``.

Usage (from the repository root; needs the dev group for scikit-learn)::

    uv run python scripts/train_fallback_sentiment.py --data ../shared/data/labeled

Fits TF-IDF + logistic regression on the train split only, measures macro-F1 on the validation
split for the lexicon baseline and the classifier, and prints one JSON report on stdout. The
runtime (``sentinel42.sentiment.fallback``) evaluates the saved arrays with numpy, no sklearn.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from sentinel42.sentiment.fallback import (
    DEFAULT_MODEL_PATH,
    FallbackScorer,
    LexiconScorer,
    features,
)

# The dataset's own coding (checked by reading rows: "$ESS: BTIG Research cuts to Neutral" is 0).
DATASET_LABELS = {0: "negative", 1: "positive", 2: "neutral"}
TRAIN_FILE = "twitter_financial_news_sentiment_train.csv"
VALID_FILE = "twitter_financial_news_sentiment_valid.csv"


def read_split(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            texts.append(row["text"])
            labels.append(DATASET_LABELS[int(row["label"])])
    return texts, labels


def macro_f1(truth: list[str], predicted: list[str]) -> dict[str, float]:
    return {
        "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder with the labelled CSVs")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--C", type=float, default=3.0, help="inverse L2 strength")
    parser.add_argument("--min-df", type=int, default=3)
    args = parser.parse_args(argv)

    train_x, train_y = read_split(args.data / TRAIN_FILE)
    valid_x, valid_y = read_split(args.data / VALID_FILE)
    report: dict[str, object] = {"train_rows": len(train_x), "valid_rows": len(valid_x)}

    lexicon = [s.label for s in LexiconScorer().score(valid_x)]
    report["lexicon_valid"] = macro_f1(valid_y, lexicon)
    report["always_neutral_valid"] = macro_f1(valid_y, ["neutral"] * len(valid_y))

    vectorizer = TfidfVectorizer(
        analyzer=features, min_df=args.min_df, sublinear_tf=True, norm="l2", dtype=np.float64
    )
    matrix = vectorizer.fit_transform(train_x)
    # Balanced class weights: neutral is 65% of the rows; without them the rarer polarities,
    # which are what the trading flow acts on, are under-predicted.
    clf = LogisticRegression(C=args.C, max_iter=5000, class_weight="balanced")
    clf.fit(matrix, train_y)
    report["classifier_valid_sklearn"] = macro_f1(
        valid_y, list(clf.predict(vectorizer.transform(valid_x)))
    )
    report["features"] = len(vectorizer.vocabulary_)

    vocab = [""] * len(vectorizer.vocabulary_)
    for feat, idx in vectorizer.vocabulary_.items():
        vocab[idx] = feat
    metadata = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": "twitter-financial-news-sentiment (train split)",
        "C": args.C,
        "min_df": args.min_df,
        "valid": report["classifier_valid_sklearn"],
    }
    from sentinel42.sentiment.fallback import save_model

    save_model(
        args.out,
        vocab,
        vectorizer.idf_,
        clf.coef_,
        clf.intercept_,
        [str(c) for c in clf.classes_],
        metadata,
    )
    # Measure the shipped arrays through the runtime code, not sklearn's.
    shipped = FallbackScorer(args.out)
    report["classifier_valid_shipped"] = macro_f1(
        valid_y, [s.label for s in shipped.score(valid_x)]
    )
    report["file_bytes"] = args.out.stat().st_size
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
