"""The scorer port: every sentiment model (FinBERT, the offline fallback) looks like this."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sentinel42.domain import SentimentScore, text_hash

LABELS: tuple[str, ...] = ("positive", "negative", "neutral")


@runtime_checkable
class SentimentScorer(Protocol):
    """Scores texts; ``name`` and ``revision`` are recorded on every score it makes."""

    name: str
    revision: str

    def score(self, texts: Sequence[str]) -> list[SentimentScore]:
        """One score per text, in the same order."""
        ...


def canonical_label(raw: str) -> str:
    """Map a model's own label name (``Positive``, ``bullish``, ``LABEL_0``…) to ours.

    Raises:
        ValueError: the name does not say which polarity it is.
    """
    name = raw.strip().lower()
    if name.startswith(("pos", "bull")):
        return "positive"
    if name.startswith(("neg", "bear")):
        return "negative"
    if name.startswith(("neu", "hold")):
        return "neutral"
    raise ValueError(f"cannot tell the polarity of the model label {raw!r}")


def make_score(
    text_hash: str, probs: dict[str, float], scorer: str, revision: str
) -> SentimentScore:
    """Build a :class:`SentimentScore` from probabilities keyed by our label names."""
    p_pos = float(probs.get("positive", 0.0))
    p_neg = float(probs.get("negative", 0.0))
    p_neu = float(probs.get("neutral", 0.0))
    label = max(LABELS, key=lambda k: (probs.get(k, 0.0), k == "neutral"))
    return SentimentScore(
        text_hash=text_hash,
        label=label,
        p_positive=p_pos,
        p_negative=p_neg,
        p_neutral=p_neu,
        scorer=scorer,
        revision=revision,
    )


class ProbabilityScorer:
    """``score`` for a model that gives label probabilities (FinBERT under either runtime)."""

    name: str
    revision: str

    def probabilities(self, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, float]]:
        raise NotImplementedError

    def score(self, texts: Sequence[str], batch_size: int = 32) -> list[SentimentScore]:
        """One :class:`SentimentScore` per text, in input order."""
        probs = self.probabilities(texts, batch_size)
        return [
            make_score(text_hash(t), p, self.name, self.revision)
            for t, p in zip(texts, probs, strict=True)
        ]
