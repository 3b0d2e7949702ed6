"""Train, tune or evaluate the offline fallback sentiment model (``sentiment/data/fallback.npz``).

Usage (from the repository root; needs the dev group for scikit-learn)::

    uv run python scripts/train_fallback_sentiment.py              # fit and write the model
    uv run python scripts/train_fallback_sentiment.py --search     # pick C and the dense scale
    uv run python scripts/train_fallback_sentiment.py --evaluate   # the held-out figures

Data and what each split is for (the rule: fit on one, choose on another, report on a third):

- fit: the train split of the labelled tweets in ``../shared/data/labeled/`` (MIT licence).
- choose (``--search``): the *tune* half of that data's validation split and the project's
  hand-written news sentences ``tests/sentiment/data/news_sentences_dev.csv``.
- report (``--evaluate``): the *holdout* half of the validation split and
  ``tests/sentiment/data/news_sentences_test.csv``, never used to choose anything.

The validation split is halved by a hash of each text, so the halves do not depend on row order.
The runtime (``sentinel42.sentiment.fallback``) evaluates the saved arrays with numpy, no sklearn.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from sentinel42.sentiment.fallback import (
    DEFAULT_MODEL_PATH,
    DENSE_NAMES,
    FallbackScorer,
    LexiconScorer,
    dense_features,
    features,
    save_model,
)
from sentinel42.sentiment.finance_rules import finance_signals

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "labeled"
NEWS_DIR = ROOT / "tests" / "sentiment" / "data"
# The dataset's own coding (checked by reading rows: "$ESS: BTIG Research cuts to Neutral" is 0).
DATASET_LABELS = {0: "negative", 1: "positive", 2: "neutral"}
TRAIN_FILE = "twitter_financial_news_sentiment_train.csv"
VALID_FILE = "twitter_financial_news_sentiment_valid.csv"
# Chosen by --search (the best mean of the two tuning sets' macro-F1).
DEFAULT_C = 2.0
DEFAULT_DENSE_SCALE = 0.5
SEARCH_C = (2.0, 3.0, 5.0)
SEARCH_SCALE = (0.5, 1.0, 2.0)

Split = tuple[list[str], list[str]]


def read_split(path: Path) -> Split:
    """Texts and our label names from a ``text,label`` CSV (dataset codes or label names)."""
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            label = row["label"]
            texts.append(row["text"])
            labels.append(DATASET_LABELS[int(label)] if label.isdigit() else label)
    return texts, labels


def is_holdout(text: str) -> bool:
    """Half of the validation split, chosen by a hash of the text: reported on, never tuned on."""
    return hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 1


def halve(split: Split) -> tuple[Split, Split]:
    """(tune, holdout) halves of a split."""
    tune: Split = ([], [])
    holdout: Split = ([], [])
    for text, label in zip(*split, strict=True):
        half = holdout if is_holdout(text) else tune
        half[0].append(text)
        half[1].append(label)
    return tune, holdout


def load_splits(data: Path) -> dict[str, Split]:
    """Every split this script uses, by name; the tweet splits only where ``data`` has them."""
    splits = {
        "news_dev": read_split(NEWS_DIR / "news_sentences_dev.csv"),
        "news_test": read_split(NEWS_DIR / "news_sentences_test.csv"),
    }
    if (data / TRAIN_FILE).exists() and (data / VALID_FILE).exists():
        splits["train"] = read_split(data / TRAIN_FILE)
        splits["tweets_tune"], splits["tweets_holdout"] = halve(read_split(data / VALID_FILE))
    return splits


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    return {
        "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
    }


def rules_label(text: str) -> str:
    """The finance rules alone: more good than bad news is positive, and so on."""
    sig = finance_signals(text)
    good = sig.moves_good + sig.compared_good + sig.events_good
    bad = sig.moves_bad + sig.compared_bad + sig.events_bad
    return "positive" if good > bad else "negative" if bad > good else "neutral"


def fit(
    texts: list[str], labels: list[str], c: float, dense_scale: float, min_df: int
) -> tuple[TfidfVectorizer, LogisticRegression]:
    vectorizer = TfidfVectorizer(
        analyzer=features, min_df=min_df, sublinear_tf=True, norm="l2", dtype=np.float64
    )
    tfidf = vectorizer.fit_transform(texts)
    return vectorizer, fit_classifier(tfidf, texts, labels, c, dense_scale)


def fit_classifier(
    tfidf: sparse.spmatrix, texts: list[str], labels: list[str], c: float, dense_scale: float
) -> LogisticRegression:
    # Balanced class weights: neutral is 65% of the rows; without them the rarer polarities,
    # which are what the trading flow acts on, are under-predicted.
    clf = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    clf.fit(_with_dense(tfidf, texts, dense_scale), labels)
    return clf


def _with_dense(tfidf: sparse.spmatrix, texts: Sequence[str], scale: float) -> sparse.csr_matrix:
    dense = np.array([dense_features(t) for t in texts], dtype=np.float64) * scale
    return sparse.hstack([tfidf, sparse.csr_matrix(dense)], format="csr")


def predict(vectorizer: TfidfVectorizer, clf: LogisticRegression, split: Split, scale: float):
    return list(clf.predict(_with_dense(vectorizer.transform(split[0]), split[0], scale)))


def train(args: argparse.Namespace, splits: dict[str, Split]) -> dict[str, object]:
    vectorizer, clf = fit(*splits["train"], args.C, args.dense_scale, args.min_df)
    vocab = [""] * len(vectorizer.vocabulary_)
    for feat, idx in vectorizer.vocabulary_.items():
        vocab[idx] = feat
    chosen_on = {
        name: scores(splits[name][1], predict(vectorizer, clf, splits[name], args.dense_scale))
        for name in ("tweets_tune", "news_dev")
    }
    metadata = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": "twitter-financial-news-sentiment (train split)",
        "C": args.C,
        "dense_scale": args.dense_scale,
        "min_df": args.min_df,
        "chosen_on": chosen_on,
    }
    save_model(
        args.out,
        vocab,
        vectorizer.idf_,
        clf.coef_,
        clf.intercept_,
        [str(c) for c in clf.classes_],
        metadata,
        dense_names=DENSE_NAMES,
        dense_scale=args.dense_scale,
    )
    # Measure the shipped arrays through the runtime code, not sklearn's.
    shipped = FallbackScorer(args.out)
    report: dict[str, object] = {"train_rows": len(splits["train"][0]), "features": len(vocab)}
    for name in ("tweets_tune", "news_dev"):
        texts, truth = splits[name]
        report[f"{name}_shipped"] = scores(truth, [s.label for s in shipped.score(texts)])
    report["dense_weights"] = {
        label: dict(zip(DENSE_NAMES, map(float, row[len(vocab) :].round(3)), strict=True))
        for label, row in zip(clf.classes_, clf.coef_, strict=True)
    }
    report["file_bytes"] = args.out.stat().st_size
    return report


def search(args: argparse.Namespace, splits: dict[str, Split]) -> dict[str, object]:
    """Macro-F1 on the two tuning sets for each (C, dense scale); the best by their mean."""
    rows = []
    vectorizer = TfidfVectorizer(
        analyzer=features, min_df=args.min_df, sublinear_tf=True, norm="l2", dtype=np.float64
    )
    tfidf = vectorizer.fit_transform(splits["train"][0])  # fitted on the train split only
    for c, scale in itertools.product(SEARCH_C, SEARCH_SCALE):
        clf = fit_classifier(tfidf, *splits["train"], c, scale)
        row: dict[str, float] = {"C": c, "dense_scale": scale}
        for name in ("tweets_tune", "news_dev"):
            truth = splits[name][1]
            f1 = scores(truth, predict(vectorizer, clf, splits[name], scale))["macro_f1"]
            row[name] = f1
        row["mean"] = round((row["tweets_tune"] + row["news_dev"]) / 2, 4)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return {"grid": rows, "best": max(rows, key=lambda r: r["mean"])}


def evaluate(args: argparse.Namespace, splits: dict[str, Split]) -> dict[str, object]:
    """Macro-F1 and accuracy of the shipped model, older models and baselines on every split."""
    lexicon = LexiconScorer()
    candidates: dict[str, Callable[[list[str]], list[str]]] = {
        "always neutral": lambda texts: ["neutral"] * len(texts),
        "word list (LexiconScorer)": lambda texts: [s.label for s in lexicon.score(texts)],
        "finance rules alone": lambda texts: [rules_label(t) for t in texts],
    }
    for path in args.compare:
        old = FallbackScorer(path)
        candidates[f"{path.name} ({old.revision})"] = _labels_of(old)
    shipped = FallbackScorer(args.out)
    candidates[f"shipped ({shipped.revision})"] = _labels_of(shipped)
    names = [n for n in ("tweets_holdout", "news_test", "tweets_tune", "news_dev") if n in splits]
    table = {
        cand: {name: scores(splits[name][1], fn(splits[name][0])) for name in names}
        for cand, fn in candidates.items()
    }
    return {
        "rows": {name: len(splits[name][0]) for name in names},
        "reported_on": ["tweets_holdout", "news_test"],
        "chosen_on": ["tweets_tune", "news_dev"],
        "table": table,
    }


def _labels_of(scorer: FallbackScorer) -> Callable[[list[str]], list[str]]:
    return lambda texts: [s.label for s in scorer.score(texts)]


def markdown(result: dict[str, object]) -> str:
    table: dict[str, dict[str, dict[str, float]]] = result["table"]  # type: ignore[assignment]
    rows: dict[str, int] = result["rows"]  # type: ignore[assignment]
    names = list(rows)
    head = " | ".join(f"{n} ({rows[n]} rows)" for n in names)
    lines = [f"| macro-F1 / accuracy | {head} |", "|---" * (len(names) + 1) + "|"]
    for cand, by_split in table.items():
        cells = " | ".join(
            f"{by_split[n]['macro_f1']:.3f} / {by_split[n]['accuracy']:.3f}" for n in names
        )
        lines.append(f"| {cand} | {cells} |")
    lines.append("")
    lines.append(
        "Reported on (never used to choose): tweets_holdout, news_test. "
        "Used to choose C, the dense scale and the rules: tweets_tune, news_dev."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the labelled tweet CSVs")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH, help="the model file")
    parser.add_argument("--C", type=float, default=DEFAULT_C, help="inverse L2 strength")
    parser.add_argument("--dense-scale", type=float, default=DEFAULT_DENSE_SCALE)
    parser.add_argument("--min-df", type=int, default=3)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--search", action="store_true", help="grid over C and the dense scale")
    mode.add_argument("--evaluate", action="store_true", help="held-out figures, no training")
    parser.add_argument(
        "--compare", type=Path, action="append", default=[], help="another model file to show"
    )
    parser.add_argument("--json", action="store_true", help="--evaluate: JSON, not a table")
    args = parser.parse_args(argv)

    splits = load_splits(args.data)
    if not args.evaluate and "train" not in splits:
        parser.error(f"no {TRAIN_FILE} and {VALID_FILE} in {args.data}")
    if args.evaluate:
        result = evaluate(args, splits)
        if not args.json:
            print(markdown(result))
            return 0
    else:
        result = search(args, splits) if args.search else train(args, splits)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
