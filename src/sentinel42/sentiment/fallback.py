"""The offline scorer: TF-IDF features + finance rules + logistic regression, evaluated with numpy.

Used when FinBERT cannot be loaded (no network, no local copy). The weights are trained on the
labelled financial headlines by ``scripts/train_fallback_sentiment.py`` and shipped in
``sentiment/data/fallback.npz`` (plain arrays, never a pickle). Every score it makes carries
``scorer="sentinel42-fallback"`` and the weights' fingerprint as revision, so a decision never
hides that the fallback stood behind it.

Two blocks of features: sparse TF-IDF over :func:`features` (words, word pairs, character
n-grams, lexicon counts) and a few dense counts from :func:`dense_features`, where the finance
rules of :mod:`sentinel42.sentiment.finance_rules` compose a direction with the figure it moves
("operating loss narrowed" is good news). The dense block is what carries the classifier from
tweets to news sentences, whose n-grams the tweets rarely contain. Both functions are shared by
the training script and this module, so the model sees at run time exactly what it was trained on.
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

from sentinel42.domain import FALLBACK_SCORER, SentimentScore, text_hash
from sentinel42.sentiment.base import make_score
from sentinel42.sentiment.finance_rules import finance_signals
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


DENSE_NAMES: tuple[str, ...] = (
    "moves_good",
    "moves_bad",
    "compared_good",
    "compared_bad",
    "events_good",
    "events_bad",
    "net_good",
    "net_bad",
    "no_signal",
    "amount_no_signal",
)


def dense_features(text: str) -> list[float]:
    """The finance-rule counts of ``text``, in :data:`DENSE_NAMES` order.

    From :func:`~sentinel42.sentiment.finance_rules.finance_signals`; each count is capped at 3
    so one long sentence cannot dominate.
    """
    sig = finance_signals(text)
    good = sig.moves_good + sig.compared_good + sig.events_good
    bad = sig.moves_bad + sig.compared_bad + sig.events_bad
    quiet = good == bad == 0
    return [
        *(float(min(c, 3)) for c in sig[:6]),
        float(good > bad),
        float(bad > good),
        float(quiet),
        float(quiet and sig.amounts > 0),  # "Net sales totalled EUR 64.8 mn": a figure, no news
    ]


class LexiconScorer:
    """Finance word-list baseline (kept to compare against; the fallback beats it)."""

    name = LEXICON_NAME
    revision = "1"

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
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
        # A model saved without a dense block (the first shipped one) still loads and scores.
        self.dense_names: tuple[str, ...] = model["dense_names"]
        self._dense_scale: float = model["dense_scale"]

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, ``[len(texts), classes]`` in :attr:`labels` order."""
        logits = np.tile(self._intercept, (len(texts), 1))
        n_sparse = len(self._vocab)
        if self.dense_names and texts:
            dense = np.array([dense_features(t) for t in texts], dtype=np.float64)
            # [texts, dense] @ [dense, classes]
            logits += (dense * self._dense_scale) @ self._coef[:, n_sparse:].T
        for row, text in enumerate(texts):
            counts = Counter(f for f in features(text) if f in self._vocab)
            if not counts:
                continue
            idx = np.fromiter((self._vocab[f] for f in counts), dtype=np.int64)
            # sublinear tf, as trained: 1 + log(count)
            tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), dtype=np.float64)
            vec = tf * self._idf[idx]
            vec /= np.linalg.norm(vec)
            logits[row] += self._coef[:, idx] @ vec  # idx < n_sparse: vocabulary columns
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
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
    dense_names: Sequence[str] = (),
    dense_scale: float = 1.0,
) -> None:
    """Write the weights as plain arrays (loadable with ``allow_pickle=False``).

    ``coef`` is ``[classes, len(vocab) + len(dense_names)]``: the TF-IDF columns, then the dense
    ones, which the model multiplies by ``dense_scale`` before the weights.
    """
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
            dense_names=np.array("\n".join(dense_names)),
            dense_scale=np.array(dense_scale, dtype=np.float64),
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
            "dense_names": (),
            "dense_scale": 1.0,
        }
        if "dense_names" in data.files and str(data["dense_names"]):
            model["dense_names"] = tuple(str(data["dense_names"]).split("\n"))
            model["dense_scale"] = float(data["dense_scale"])
        expected = len(vocab_list) + len(model["dense_names"])
        if model["coef"].shape[1] != expected:
            raise ValueError(
                f"{path}: {model['coef'].shape[1]} weight columns, expected {expected}"
            )
        if model["dense_names"] and model["dense_names"] != DENSE_NAMES:
            raise ValueError(f"{path}: dense features {model['dense_names']} are not this code's")
    model["revision"] = "sha256:" + hashlib.sha256(raw).hexdigest()[:16]
    logger.debug("fallback sentiment model %s loaded (%d features)", path, len(vocab_list))
    return model
