"""The offline scorer: TF-IDF features + multinomial logistic regression, evaluated with numpy.

Used when FinBERT cannot be loaded (no network, no local copy). The weights are trained on the
labelled financial headlines by ``scripts/train_fallback_sentiment.py`` and shipped in
``sentiment/data/fallback.npz`` (plain arrays, never a pickle). Every score it makes carries
``scorer="sentinel42-fallback"`` and the weights' fingerprint as revision, so a decision never
hides that the fallback stood behind it.

The feature function :func:`features` is shared by the training script and this module, so the
model sees at run time exactly the features it was trained on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from sentinel42.domain import FALLBACK_SCORER, SentimentScore
from sentinel42.sentiment.base import make_score
from sentinel42.sentiment.lexicon import NEGATIONS, NEGATIVE_WORDS, POSITIVE_WORDS

logger = logging.getLogger(__name__)

FALLBACK_NAME = FALLBACK_SCORER
LEXICON_NAME = "sentinel42-lexicon"
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "data" / "fallback.npz"

_URL = re.compile(r"https?://\S+|www\.\S+")
_CASHTAG = re.compile(r"\$[A-Za-z]{1,6}(?:[.-][A-Za-z]{1,2})?\b")
_WORD = re.compile(r"[a-z][a-z'\-]*[a-z]|[a-z]|\d+(?:[.,]\d+)?%?")


def clean(text: str) -> str:
    """Lower-case text with links removed and cashtags replaced by one token."""
    text = _URL.sub(" ", text)
    text = _CASHTAG.sub(" cashtag ", text)
    return text.lower()


def words(text: str) -> list[str]:
    """Word tokens of :func:`clean` text; numbers collapse to ``<num>``/``<pct>``."""
    out: list[str] = []
    for tok in _WORD.findall(clean(text)):
        if tok[0].isdigit():
            out.append("<pct>" if tok.endswith("%") else "<num>")
        else:
            out.append(tok)
    return out


def lexicon_polarity(tokens: Sequence[str]) -> tuple[int, int]:
    """(positive, negative) counts of finance-lexicon words; a negation flips the next 3 words."""
    pos = neg = 0
    flip_until = -1
    for i, tok in enumerate(tokens):
        if tok in NEGATIONS:
            flip_until = i + 3
            continue
        sign = 1 if tok in POSITIVE_WORDS else -1 if tok in NEGATIVE_WORDS else 0
        if sign and i <= flip_until:
            sign = -sign
        if sign > 0:
            pos += 1
        elif sign < 0:
            neg += 1
    return pos, neg


def features(text: str) -> list[str]:
    """The model's features: word 1-2 grams, character 3-5 grams, lexicon counts."""
    toks = words(text)
    feats = [f"w:{t}" for t in toks]
    feats += [f"b:{a} {b}" for a, b in itertools.pairwise(toks)]
    for tok in toks:
        padded = f" {tok} "
        for n in (3, 4, 5):
            feats += [f"c:{padded[i : i + n]}" for i in range(max(len(padded) - n + 1, 0))]
    pos, neg = lexicon_polarity(toks)
    feats += ["lex:pos"] * pos + ["lex:neg"] * neg
    if pos == neg == 0:
        feats.append("lex:none")
    return feats


class LexiconScorer:
    """Finance word-list baseline (kept to compare against; the fallback beats it)."""

    name = LEXICON_NAME
    revision = "1"

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        from sentinel42.persistence import text_hash

        out: list[SentimentScore] = []
        for text in texts:
            pos, neg = lexicon_polarity(words(text))
            total = pos + neg
            if total == 0:
                probs = {"positive": 0.0, "negative": 0.0, "neutral": 1.0}
            else:
                probs = {"positive": pos / (total + 1), "negative": neg / (total + 1)}
                probs["neutral"] = 1.0 / (total + 1)
            out.append(make_score(text_hash(text), probs, self.name, self.revision))
        return out


class FallbackScorer:
    """Numpy-only logistic regression over TF-IDF features, weights from a shipped ``.npz``."""

    name = FALLBACK_NAME

    def __init__(self, path: Path = DEFAULT_MODEL_PATH) -> None:
        model = _load(path)
        self.revision: str = model["revision"]
        self.labels: tuple[str, ...] = model["labels"]
        self.metadata: dict[str, Any] = model["metadata"]
        self._vocab: dict[str, int] = model["vocab"]
        self._idf: np.ndarray = model["idf"]
        self._coef: np.ndarray = model["coef"]  # [classes, features]
        self._intercept: np.ndarray = model["intercept"]  # [classes]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, ``[len(texts), classes]`` in :attr:`labels` order."""
        logits = np.tile(self._intercept, (len(texts), 1))
        for row, text in enumerate(texts):
            counts = Counter(f for f in features(text) if f in self._vocab)
            if not counts:
                continue
            idx = np.fromiter((self._vocab[f] for f in counts), dtype=np.int64)
            # sublinear tf, as trained: 1 + log(count)
            tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float64)
            vec = tf * self._idf[idx]
            vec /= np.linalg.norm(vec)
            logits[row] += self._coef[:, idx] @ vec
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        from sentinel42.persistence import text_hash

        probs = self.probabilities(texts)
        return [
            make_score(
                text_hash(text),
                dict(zip(self.labels, map(float, row), strict=True)),
                self.name,
                self.revision,
            )
            for text, row in zip(texts, probs, strict=True)
        ]


def save_model(
    path: Path,
    vocab: Sequence[str],
    idf: np.ndarray,
    coef: np.ndarray,
    intercept: np.ndarray,
    labels: Sequence[str],
    metadata: dict[str, Any],
) -> None:
    """Write the weights as plain arrays (loadable with ``allow_pickle=False``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez_compressed(
            fh,
            vocab=np.array("\n".join(vocab)),
            idf=idf.astype(np.float32),
            coef=coef.astype(np.float32),
            intercept=intercept.astype(np.float32),
            labels=np.array("\n".join(labels)),
            metadata=np.array(json.dumps(metadata, sort_keys=True)),
        )


@cache
def _load(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    with np.load(path, allow_pickle=False) as data:
        vocab_list = str(data["vocab"]).split("\n")
        model = {
            "vocab": {f: i for i, f in enumerate(vocab_list)},
            "idf": data["idf"].astype(np.float64),
            "coef": data["coef"].astype(np.float64),
            "intercept": data["intercept"].astype(np.float64),
            "labels": tuple(str(data["labels"]).split("\n")),
            "metadata": json.loads(str(data["metadata"])),
        }
    model["revision"] = "sha256:" + hashlib.sha256(raw).hexdigest()[:16]
    logger.debug("fallback sentiment model %s loaded (%d features)", path, len(vocab_list))
    return model
