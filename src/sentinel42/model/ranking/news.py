"""Daily news features of the ranking model, per ticker and session, from the stored headlines.

A headline belongs to the session whose close is the first one at or after the moment
Sentinel42 **first saw** it (``first_seen_at``): a headline is usable at the close of session
``d`` only when it was first seen after the close of the session before (the panel's previous
row) and at or before ``d``'s close. When the feed says it was published does not matter: a
story dated 10:00 but first fetched at 16:01 is news for the next session. Closes come from the
NYSE calendar (early closes at 13:00 included); a panel day the calendar does not hold closes at
16:00 New York.

Per ticker-day (``[T, N]`` on the panel's grid):

- ``news_count``: ``log1p`` of the headlines of that session (0 with none);
- ``news_sentiment``: the mean score of its scored headlines (NaN with none);
- ``news_sentiment_change``: that mean minus the mean score of the headlines of the previous
  :data:`CHANGE_SESSIONS` sessions, pooled (NaN when either side has no scored headline).

Each headline carries one score, the one the store hands out (:meth:`NewsStore.headlines`):
the newest by a model (FinBERT), else the newest by the offline fallback. Rows before the
session of the first headline the store holds for the universe have no coverage: their count
is NaN, not 0.

:func:`load_news_features` brings the store's news up to date first, through the ordinary news
refresh and sentiment scoring. In replay mode it walks the clock: one refresh at every session
close, as a live deployment would have fetched them (the backtest does the same), so each
headline is first seen at the first close after the replay serves it (its recorded
``first_seen_at``, else ``published_at`` plus the replay latency), not at the training clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sentinel42.errors import ModelError
from sentinel42.market.calendar import SESSION_TZ
from sentinel42.model.ranking.features import NEWS_FEATURES
from sentinel42.model.ranking.panel import Panel

if TYPE_CHECKING:
    from sentinel42.market.calendar import NyseCalendar
    from sentinel42.news.base import NewsBatch
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

CHANGE_SESSIONS = 5
REGULAR_CLOSE_MINUTES = 16 * 60  # a day the calendar does not know closes at 16:00 New York
_NS_PER_DAY = 86_400 * 1_000_000_000


def session_closes(panel: Panel, calendar: NyseCalendar | None = None) -> np.ndarray:
    """[T] int64 ns UTC: the close of each panel row's session (NYSE calendar, else 16:00 NY)."""
    days = panel.session.astype("datetime64[D]")
    naive = pd.DatetimeIndex(days.astype("datetime64[ns]")) + pd.Timedelta(
        minutes=REGULAR_CLOSE_MINUTES
    )
    closes = np.asarray(naive.tz_localize(SESSION_TZ).tz_convert(UTC).asi8, dtype=np.int64)
    if calendar is not None:
        for k, day in enumerate(pd.DatetimeIndex(days).date):
            session = calendar.session(day)
            if session is not None:
                closes[k] = pd.Timestamp(session[1]).as_unit("ns").value
    return closes


def _pooled_previous(sums: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """Per row: the pooled mean of rows t-k .. t-1 (NaN with no scored headline there)."""
    zero = np.zeros((1, sums.shape[1]))
    cs = np.concatenate([zero, np.cumsum(sums, axis=0)])
    cn = np.concatenate([zero, np.cumsum(counts, axis=0)])
    hi = np.arange(sums.shape[0])  # rows strictly before t
    lo = np.maximum(hi - k, 0)
    s, n = cs[hi] - cs[lo], cn[hi] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def news_features_from_frame(
    frame: pd.DataFrame, panel: Panel, closes: np.ndarray, *, as_of: datetime
) -> dict[str, np.ndarray] | None:
    """The features from headline rows (``ticker``, ``first_seen_at``, ``score``; one row per
    headline and ticker) on the panel's grid; see the module docstring.

    Returns:
        None when no row of a panel ticker was first seen by ``as_of`` within the panel's span.
    """
    n_t, n = panel.shape
    if frame.empty:
        return None
    column = {t: j for j, t in enumerate(panel.tickers)}
    j = frame["ticker"].map(column)
    seen = pd.to_datetime(frame["first_seen_at"], utc=True).dt.as_unit("ns").astype("int64")
    keep = j.notna().to_numpy() & (seen.to_numpy() <= pd.Timestamp(as_of).as_unit("ns").value)
    j_idx = j.to_numpy()[keep].astype(np.int64)
    seen_ns = seen.to_numpy()[keep]
    score = pd.to_numeric(frame["score"], errors="coerce").to_numpy(dtype=np.float64)[keep]
    # The first close at or after the moment it was first seen; one before the previous row's
    # close (row 0: a day before its close) belongs to no row of the panel.
    row = np.searchsorted(closes, seen_ns, side="left")
    first_open = closes[0] - _NS_PER_DAY if n_t else 0
    inside = (row < n_t) & (seen_ns > first_open)
    if not inside.any():
        return None
    row, j_idx, score = row[inside], j_idx[inside], score[inside]
    flat = row * n + j_idx
    count = np.bincount(flat, minlength=n_t * n).reshape(n_t, n).astype(np.float64)
    scored = np.isfinite(score)
    n_scored = np.bincount(flat[scored], minlength=n_t * n).reshape(n_t, n).astype(np.float64)
    sums = np.bincount(flat[scored], weights=score[scored], minlength=n_t * n).reshape(n_t, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_scored > 0, sums / np.maximum(n_scored, 1), np.nan)
    news_count = np.log1p(count)
    news_count[: int(row.min())] = np.nan  # before the news coverage starts
    change = mean - _pooled_previous(sums, n_scored, CHANGE_SESSIONS)
    out = {"news_count": news_count, "news_sentiment": mean, "news_sentiment_change": change}
    return {name: out[name] for name in NEWS_FEATURES}


def daily_news_features(
    store: Any,
    panel: Panel,
    *,
    as_of: datetime,
    calendar: NyseCalendar | None = None,
) -> dict[str, np.ndarray] | None:
    """``NEWS_FEATURES`` name -> [T, N] for a daily panel, from the store's headlines.

    Args:
        store: the store (its :meth:`headlines`: one score per headline, a model's before the
            fallback's).
        panel: a daily panel.
        as_of: nothing first seen after it is used.
        calendar: NYSE closes (early closes); default: one built here (about 0.25 s).

    Returns:
        None when the store holds no headline of a universe ticker first seen by ``as_of``
        within the panel's span (nothing to learn from).

    Raises:
        ModelError: the panel is not daily.
    """
    if panel.kind != "daily":
        raise ModelError(f"news features are daily; the panel is {panel.kind}")
    if calendar is None:
        from sentinel42.market.calendar import NyseCalendar

        calendar = NyseCalendar()
    frame = store.headlines(list(panel.tickers))
    return news_features_from_frame(frame, panel, session_closes(panel, calendar), as_of=as_of)


# --- bringing the news up to date ---------------------------------------------------------------
class _Slices:
    """A news source that serves one replay read at many clocks, by *serving* time: ``fetch`` at
    a close returns the items served after the previous fetch's clock and at or before it
    (a recorded ``first_seen_at``, else ``published_at`` plus the replay latency), exactly what
    the replay source hands a refresh at that clock that it had not handed before."""

    name = "replay"

    def __init__(self, served: Sequence[tuple[datetime, Any]], problems: Sequence[str]) -> None:
        ordered = sorted(served, key=lambda pair: pair[0])
        self._items = [item for _, item in ordered]
        self._stamps = np.array(
            [pd.Timestamp(at).as_unit("ns").value for at, _ in ordered], dtype=np.int64
        )
        self._problems = list(problems)
        self._done = 0

    def fetch(self, tickers: Sequence[str], as_of: datetime) -> NewsBatch:
        from sentinel42.news.base import NewsBatch

        upto = int(np.searchsorted(self._stamps, pd.Timestamp(as_of).value, side="right"))
        items = self._items[self._done : upto]
        self._done = max(self._done, upto)
        problems, self._problems = self._problems, []
        return NewsBatch(items=items, problems=problems)


def refresh_universe_news(
    settings: Settings,
    tickers: Sequence[str],
    closes: Sequence[datetime],
    as_of: datetime,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Bring the store's headlines and scores up to date for ``tickers``.

    The ordinary news refresh (:func:`sentinel42.news.refresh.refresh_news`) runs with the
    universe as the watchlist, so the source's ticker hints and the text matching keep every
    universe ticker. Replay: one refresh per session close up to ``as_of`` (each headline is
    first seen at the first close after the replay serves it: its recorded ``first_seen_at``,
    else ``published_at`` plus ``SENTINEL42_REPLAY_NEWS_LATENCY_SECONDS``), then one at
    ``as_of``. Live: one refresh at ``as_of`` (history is what earlier live refreshes
    stored). Then every unscored headline is scored
    (:func:`sentinel42.sentiment.service.score_stored`: FinBERT, or the offline fallback with a
    warning when FinBERT cannot be loaded).

    Returns:
        A report: ``headlines_new``, ``refreshes``, ``scored``, ``scorer``, ``seconds``.
    """
    from sentinel42.factory import build_news_sources
    from sentinel42.news.refresh import refresh_news
    from sentinel42.persistence import open_store
    from sentinel42.sentiment.service import score_stored

    started = time.perf_counter()
    universe_settings = settings.model_copy(update={"tickers": list(tickers)})
    new = 0
    clocks = [c for c in sorted(closes) if c <= as_of] + [as_of]
    with open_store(settings) as store:
        sources = build_news_sources(universe_settings, store)
        if settings.data_source == "replay":
            from sentinel42.news.replay import ReplayNewsSource

            replay = sources[0]
            assert isinstance(replay, ReplayNewsSource)  # the factory's replay mode
            served = replay.served(list(tickers), as_of)
            sources = [_Slices(served, replay.problems)]
        else:
            clocks = [as_of]
        for clock in clocks:
            new += refresh_news(universe_settings, sources, store, clock).headlines_new
    if progress is not None:
        progress(f"news: {new} new headlines over {len(clocks)} refreshes; scoring")
    scoring = score_stored(universe_settings, as_of)
    report = {
        "headlines_new": new,
        "refreshes": len(clocks),
        "scored": scoring.scored,
        "scorer": scoring.scorer,
        "seconds": round(time.perf_counter() - started, 1),
    }
    logger.info("ranking news: %s", report)
    return report


def load_news_features(
    settings: Settings,
    panel: Panel,
    as_of: datetime,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, np.ndarray] | None, dict[str, Any]]:
    """Refresh and score the universe's news, then its daily features (None without news)."""
    from sentinel42.factory import build_calendar
    from sentinel42.persistence import open_store

    calendar = build_calendar(settings)
    closes = session_closes(panel, calendar)
    close_times = [pd.Timestamp(int(c), tz=UTC).to_pydatetime() for c in closes]
    report = refresh_universe_news(settings, panel.tickers, close_times, as_of, progress)
    started = time.perf_counter()
    with open_store(settings) as store:
        frame = store.headlines(list(panel.tickers))
    features = news_features_from_frame(frame, panel, closes, as_of=as_of)
    report["headline_rows"] = len(frame)
    report["features_s"] = round(time.perf_counter() - started, 2)
    if features is not None:
        report["ticker_days_with_news"] = int((features["news_count"] > 0).sum())
        scorers = frame["scorer"].dropna().value_counts()
        report["scored_by"] = {str(k): int(v) for k, v in scorers.items()}
    if progress is not None:
        state = "no headline of the universe" if features is None else "features on"
        progress(f"news: {state} ({report})")
    return features, report
