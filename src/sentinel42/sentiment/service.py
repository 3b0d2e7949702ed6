"""Choosing the scorer and scoring what the store has not scored yet.

A refresh asks the store first (:func:`backlog`) and builds a scorer only when a headline waits:
building one imports torch and transformers and loads FinBERT (seconds and about a gigabyte),
which a steady-state refresh, with nothing new to score, must not pay.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentinel42.domain import SentimentScore
from sentinel42.errors import ConfigError, ModelError
from sentinel42.sentiment.base import SentimentScorer

if TYPE_CHECKING:
    from sentinel42.sentiment.finbert_options import FinBertOptions
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)
_warned: set[str] = set()  # one fallback warning per process and model


@dataclass(frozen=True, slots=True)
class Backlog:
    """Whether a stored headline waits for scoring, found without building a scorer.

    Attributes:
        waiting: some stored headline has no score by the scorer that scored last (or, before
            any score exists, any headline is stored).
        scorer: name of the scorer of the newest stored score (None before any).
        revision: its revision (None before any).
    """

    waiting: bool
    scorer: str | None = None
    revision: str | None = None


def backlog(store: Any) -> Backlog:
    """Ask the store whether anything waits for scoring; cheap (two indexed queries).

    "Waiting" is judged against the scorer that scored last: the scorer a refresh would build
    is only known once built (FinBERT's revision comes from its weights, and whether it loads at
    all from the machine). So a change of model (another ``SENTINEL42_FINBERT_MODEL``, FinBERT
    back after a fallback spell) takes effect at the next refresh that brings a new headline,
    and that refresh then scores the whole backlog with the new model.
    """
    from sentinel42.persistence.housekeeping import newest_scorer

    newest = newest_scorer(store)
    if newest is None:
        return Backlog(waiting=store.count_news() > 0)
    scorer, revision = newest
    return Backlog(bool(store.pending_texts(scorer, revision, limit=1)), scorer, revision)


def finbert_options(settings: Settings) -> FinBertOptions:
    """FinBERT load options from settings (:meth:`FinBertOptions.from_settings`)."""
    from sentinel42.sentiment.finbert_options import FinBertOptions

    return FinBertOptions.from_settings(settings)


def build_scorer(settings: Settings) -> SentimentScorer:
    """FinBERT (cached per process) or, with one warning, the offline fallback.

    Raises:
        ConfigError: FinBERT cannot be loaded and ``sentiment_require_finbert`` is set.
    """
    from sentinel42.sentiment.finbert import load_finbert

    try:
        return load_finbert(finbert_options(settings))
    except ModelError as exc:
        if settings.sentiment_require_finbert:
            raise ConfigError(
                f"SENTINEL42_SENTIMENT_REQUIRE_FINBERT is set and {exc}; point "
                "SENTINEL42_FINBERT_MODEL at a saved model directory or allow the fallback"
            ) from exc
        from sentinel42.sentiment.fallback import FallbackScorer

        fallback = FallbackScorer()
        if settings.finbert_model not in _warned:
            _warned.add(settings.finbert_model)
            logger.warning(
                "%s; scoring with the offline fallback %s (%s) instead",
                exc,
                fallback.name,
                fallback.revision,
            )
        return fallback


def score_texts(
    scorer: SentimentScorer, texts: Sequence[str], batch_size: int
) -> list[SentimentScore]:
    """Score ``texts`` in batches of ``batch_size``, in input order."""
    out: list[SentimentScore] = []
    for start in range(0, len(texts), batch_size):
        out.extend(scorer.score(list(texts[start : start + batch_size])))
    return out


def score_pending(store: Any, scorer: SentimentScorer, batch_size: int, as_of: datetime) -> int:
    """Score every stored headline not yet scored by ``scorer.name`` + ``revision``.

    Safe beside other processes scoring the same headlines: a score another process saved
    first is already stored (the save skips it; see ``save_scores``), so this keeps going until
    the store has no headline pending for this scorer, rather than stopping at the first chunk
    that someone else saved (which left later chunks unscored while a decision read them).

    Returns:
        How many scores this call stored (0 in steady state: nothing is ever scored twice).

    Raises:
        StoreError: a headline stays pending after its score was saved (the save stores
            nothing for it), rather than looping on it.
    """
    from sentinel42.errors import StoreError

    stored = 0
    attempted: set[str] = set()
    chunk = max(batch_size * 8, 256)
    while True:
        pending = store.pending_texts(scorer.name, scorer.revision, limit=chunk)
        if not pending:
            break
        hashes = [h for h, _ in pending]
        again = attempted.intersection(hashes)
        if again:
            raise StoreError(
                f"sentiment: {len(again)} headline(s) stay unscored by {scorer.name} after their "
                f"scores were saved (e.g. text hash {sorted(again)[0]})"
            )
        attempted.update(hashes)
        scores = score_texts(scorer, [t for _, t in pending], batch_size)
        # Key each score by the hash the store holds, so the cache lookup matches exactly.
        scores = [dataclasses.replace(s, text_hash=h) for s, h in zip(scores, hashes, strict=True)]
        saved = store.save_scores(scores, as_of)
        stored += saved
        if saved < len(scores):
            logger.info(
                "sentiment: %d of %d scores were already stored by another process",
                len(scores) - saved, len(scores),
            )  # fmt: skip
    logger.info("sentiment: %d headlines scored by %s@%s", stored, scorer.name, scorer.revision)
    return stored


def unscored_before(
    store: Any, tickers: Sequence[str], as_of: datetime, window_hours: float
) -> list[tuple[str, str]]:
    """(text_hash, text) of the watchlist's headlines a decision at ``as_of`` would weigh
    (first seen by then, published in its sentiment window) that no scorer has scored."""
    from sentinel42.sentiment.aggregate import MAX_FUTURE_SKEW

    return store.unscored_headlines(  # type: ignore[no-any-return]
        tickers,
        seen_by=as_of,
        since=as_of - timedelta(hours=window_hours),
        until=as_of + MAX_FUTURE_SKEW,
    )


def score_before_deciding(store: Any, settings: Settings, as_of: datetime) -> int:
    """Make sure every headline a decision at ``as_of`` would weigh has a stored score.

    Another process may have stored those headlines (and be scoring them still, or have
    failed to): this run scores whatever is still unscored itself, and saves it idempotently.

    Returns:
        How many scores this call stored.

    Raises:
        DataError: some headline is still unscored afterwards; the message names them, so the
            decision is never taken as if they did not exist ("no recent news").
    """
    from sentinel42.errors import DataError

    tickers, hours = list(settings.tickers), settings.sentiment_window_hours
    missing = unscored_before(store, tickers, as_of, hours)
    if not missing:
        return 0
    scorer = build_scorer(settings)
    logger.info("sentiment: %d headline(s) seen by %s had no score; scoring them with %s",
                len(missing), as_of.isoformat(), scorer.name)  # fmt: skip
    scores = score_texts(scorer, [t for _, t in missing], settings.sentiment_batch_size)
    keyed = [dataclasses.replace(s, text_hash=h) for s, (h, _) in zip(scores, missing, strict=True)]
    stored = int(store.save_scores(keyed, as_of))
    still = unscored_before(store, tickers, as_of, hours)
    if still:
        titles = "; ".join(repr(t[:80]) for _, t in still[:5])
        raise DataError(
            f"{len(still)} headline(s) seen by {as_of.isoformat()} have no stored sentiment "
            f"score, so no decision is taken without them: {titles}"
            + (f" (and {len(still) - 5} more)" if len(still) > 5 else "")
        )
    return stored


@dataclass(frozen=True, slots=True)
class ScoringResult:
    scored: int
    scorer: str
    revision: str


def score_stored(
    settings: Settings, as_of: datetime, *, before_deciding: bool = False
) -> ScoringResult:
    """Score every stored headline not yet scored by the current scorer (0 in steady state).

    The store is asked first: with nothing waiting, no scorer is built, so a steady-state
    refresh neither imports torch nor loads FinBERT; the result then names the scorer of the
    newest stored score.

    Scores are stamped ``as_of`` (the run's clock). With ``before_deciding`` (``as_of`` is then a
    decision's clock), it then makes sure every watchlist headline first seen
    by then, inside the sentiment window, has a stored score: one another process stored but
    has not scored (yet) is scored here, idempotently.

    Raises:
        DataError: with ``before_deciding``, a headline still has no score; the message names it.
    """
    from sentinel42.persistence import open_store

    with open_store(settings) as store:
        waiting = backlog(store)
        if waiting.waiting:
            scorer = build_scorer(settings)
            scored = score_pending(store, scorer, settings.sentiment_batch_size, as_of)
            result = ScoringResult(scored=scored, scorer=scorer.name, revision=scorer.revision)
        else:
            # Once per run: the refresh says it; the check before deciding repeats it at debug.
            logger.log(
                logging.DEBUG if before_deciding else logging.INFO,
                "sentiment: no headline waits for scoring; no scorer built",
            )
            result = ScoringResult(0, waiting.scorer or "none", waiting.revision or "")
        if before_deciding:
            more = score_before_deciding(store, settings, as_of)
            result = ScoringResult(result.scored + more, result.scorer, result.revision)
    return result
