"""One price refresh: fetch, validate, detect rewrites, store; per-ticker counts.

Plain functions with ``as_of`` as an input; the task layer (``sentinel42.tasks``) wraps
:func:`refresh_prices` for Prefect and emits the "no data" event from ``report.no_data``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sentinel42.errors import DataError, TemporarySourceError
from sentinel42.market.base import DAILY, PriceSource, RejectedRow
from sentinel42.market.validate import SPIKE_LOOKBACK, ValidationResult, validate_bars

if TYPE_CHECKING:
    from sentinel42.market.calendar import NyseCalendar
    from sentinel42.persistence import Store
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

CORPORATE_ACTION = "corporate_action"
# Tickers whose newest stored bar is this close to the newest of all are loaded together.
CONTEXT_DAYS = 1
# The shortest regular session (a 13:00 early close), to count the sessions that hold the
# SPIKE_LOOKBACK stored bars a new bar's spike check needs (past bars only: with them, a
# refresh flags a new bar as validating the whole stored history would).
SHORTEST_SESSION_MINUTES = 210
# Skipped input rows listed one by one per ticker and fetch; the rest are counted in one line.
MAX_PROBLEM_LINES = 50


@dataclass
class TickerPrices:
    """What one refresh did for one ticker (``bars_*``: the intraday interval).

    ``problems`` has one line per input row the source skipped (file, line, reason), intraday
    and daily; the intraday ones are counted in ``bars_rejected`` and ``rejected_reasons`` too.
    """

    ticker: str
    bars_new: int = 0
    bars_updated: int = 0
    bars_rejected: int = 0
    bars_flagged: int = 0
    daily_bars_new: int = 0
    daily_bars_updated: int = 0
    error: str | None = None
    corporate_action: bool = False
    newest_bar_ts: datetime | None = None
    daily_error: str | None = None
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    retryable: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass
class PriceRefreshReport:
    """The result of :func:`refresh_prices`.

    ``no_data`` is True when the market was open at ``as_of``, a bar of today's session should
    have ended by then, and no ticker got a new bar nor holds a bar within one interval of it.
    """

    as_of: datetime
    tickers: list[TickerPrices]
    no_data: bool = False
    market_open: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (ISO 8601 datetimes)."""
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat()
        for row in out["tickers"]:
            ts = row["newest_bar_ts"]
            row["newest_bar_ts"] = ts.isoformat() if ts is not None else None
        return out

    @property
    def failed(self) -> list[str]:
        return [t.ticker for t in self.tickers if t.error]

    @property
    def problems(self) -> list[str]:
        """Every ticker's skipped input rows, one line each."""
        return [line for t in self.tickers for line in t.problems]


def _validate(
    settings: Settings,
    calendar: NyseCalendar,
    frame: pd.DataFrame,
    ticker: str,
    as_of: datetime,
    *,
    daily: bool,
    context: pd.DataFrame | None = None,
) -> ValidationResult:
    return validate_bars(
        frame,
        ticker=ticker,
        interval_minutes=settings.interval_minutes,
        calendar=calendar,
        as_of=as_of,
        prepost=settings.prepost,
        spike_threshold=settings.spike_threshold,
        context=context,
        daily=daily,
    )


def rewritten(stored: pd.DataFrame | None, fresh: pd.DataFrame, tolerance: float) -> float | None:
    """Largest relative close change on the overlap, if beyond ``tolerance``, else None.

    A split or dividend adjustment rewrites every past price by the same factor; a late
    revision of the newest bar moves one bar a little. Only the first counts as a rewrite.
    """
    if stored is None or stored.empty or fresh.empty:
        return None
    # The store may hand back second-resolution timestamps; compare in one unit.
    old_ts = pd.DatetimeIndex(stored.index).as_unit("ns").asi8
    new_ts = pd.DatetimeIndex(fresh.index).as_unit("ns").asi8
    pos = np.searchsorted(old_ts, new_ts)
    pos_ok = np.minimum(pos, len(old_ts) - 1)
    hit = (pos < len(old_ts)) & (old_ts[pos_ok] == new_ts)
    if not hit.any():
        return None
    old = stored["close"].to_numpy(dtype="float64")[pos_ok[hit]]
    new = fresh["close"].to_numpy(dtype="float64")[hit]
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(new / old - 1.0)
    change = change[np.isfinite(change)]
    # The newest stored bar may legitimately be revised; ask the older overlap first.
    if len(change) > 1:
        change = change[:-1]
    worst = float(change.max()) if len(change) else 0.0
    return worst if worst > tolerance else None


def refresh_prices(
    settings: Settings,
    source: PriceSource,
    store: Store,
    calendar: NyseCalendar,
    as_of: datetime,
    progress: Callable[[str], None] | None = None,
    *,
    tickers: Sequence[str] | None = None,
    intraday: bool = True,
    daily: bool = True,
    daily_since: datetime | None = None,
) -> PriceRefreshReport:
    """Fetch, validate and store intraday and daily bars for the watchlist.

    Args:
        settings: tickers, interval, prepost, spike_threshold, revision_tolerance,
            daily_history_days.
        source: live or replay price source.
        store: where bars go (intraday under ``settings.interval``, daily under ``1d``).
        calendar: session filter and the market-open test of ``no_data``.
        as_of: tz-aware; nothing that ends after it is stored.
        progress: called with one human line per step (the CLI prints them on stderr).
        tickers: whose bars (default: the watchlist, ``settings.tickers``); the universe's
            loads pass theirs.
        intraday: refresh the intraday bars (``no_data`` is only judged when True).
        daily: refresh the daily bars.
        daily_since: how far back daily bars go (default ``daily_history_days`` before
            ``as_of``).

    Returns:
        Per-ticker counts and errors, and the ``no_data`` signal.

    Raises:
        TemporarySourceError: every ticker failed with a retryable error (a Prefect retry
            may help).
        DataError: ``as_of`` is naive.
    """
    if as_of.tzinfo is None:
        raise DataError("as_of must be tz-aware")
    say = progress or (lambda _msg: None)
    tickers = list(dict.fromkeys(settings.tickers if tickers is None else tickers))
    interval = settings.interval
    results = {t: TickerPrices(ticker=t) for t in tickers}
    floor = daily_since or as_of - timedelta(days=settings.daily_history_days)

    if intraday:
        _refresh_intraday(settings, source, store, calendar, results, as_of, floor, say)
    if daily:
        _refresh_daily(settings, source, store, calendar, results, as_of, floor, say)

    report = PriceRefreshReport(as_of=as_of, tickers=[results[t] for t in tickers])
    if intraday:
        after = store.newest_bar_ts(tickers, interval)
        for ticker, ts in after.items():
            results[ticker].newest_bar_ts = ts
        report.market_open = calendar.is_open(as_of)
        report.no_data = _no_data(calendar, report, as_of, settings.interval_minutes)
    if report.no_data:
        logger.warning("no new %s bar for any ticker during the session at %s", interval, as_of)
    _raise_if_all_temporary(report)
    return report


def _refresh_intraday(
    settings: Settings,
    source: PriceSource,
    store: Store,
    calendar: NyseCalendar,
    results: Mapping[str, TickerPrices],
    as_of: datetime,
    floor: datetime,
    say: Callable[[str], None],
) -> None:
    """Intraday bars of every ticker of ``results``: one fetch, one read and one write."""
    tickers = list(results)
    interval = settings.interval
    newest = store.newest_bar_ts(tickers, interval)
    backfill = [t for t in tickers if newest[t] is None]
    if backfill:
        say(f"backfilling {interval} bars for {len(backfill)} ticker(s): {', '.join(backfill)}")
    stored = _load_context(store, calendar, newest, interval, settings.interval_minutes)
    say(f"fetching {interval} bars for {len(tickers)} ticker(s) from {source.name}")
    batch = source.fetch_intraday(tickers, interval, newest, as_of)

    pending: dict[str, ValidationResult] = {}
    for i, ticker in enumerate(tickers, 1):
        row = results[ticker]
        _note_rejected_rows(row, batch.rejected.get(ticker, ()), count=True)
        if ticker in batch.errors:
            err = batch.errors[ticker]
            row.error, row.retryable = str(err), err.retryable
            continue
        frame = batch.frames.get(ticker)
        if frame is None:
            row.error = "the source returned nothing for this ticker"
            continue
        since = newest[ticker]
        if since is not None:
            # The live source fetches from the oldest ticker's start; keep the overlap only.
            frame = frame[frame.index >= pd.Timestamp(since)]
        old = stored.get(ticker)
        checked = _validate(settings, calendar, frame, ticker, as_of, daily=False, context=old)
        change = rewritten(old, checked.frame, settings.revision_tolerance)
        if change is not None:
            _corporate_action(
                settings, source, store, calendar, row, interval, as_of, change, say, floor
            )
            continue
        pending[ticker] = checked
        if len(tickers) > 20 and i % 100 == 0:
            say(f"validated {interval} bars for {i}/{len(tickers)} tickers")

    # One read and one write for the whole watchlist (batching is what keeps 500 tickers cheap).
    stored_counts = store.upsert_bars_many(
        interval, {t: checked.frame for t, checked in pending.items()}
    )
    for ticker, checked in pending.items():
        counts = stored_counts[ticker]
        _count(results[ticker], checked, counts.new, counts.updated)
        if ticker in backfill:
            say(
                f"{ticker}: {counts.new} {interval} bars stored, "
                f"{results[ticker].bars_rejected} rejected"
            )


def _load_context(
    store: Store,
    calendar: NyseCalendar,
    newest: Mapping[str, datetime | None],
    interval: str,
    minutes: int,
) -> dict[str, pd.DataFrame]:
    """Stored bars around each ticker's newest one: the overlap and the spike check's past.

    From the open of enough sessions back to hold ``SPIKE_LOOKBACK`` bars before the newest one
    (weekends and holidays skipped), so that the first bars of a Monday are checked against
    Friday's. Tickers are loaded in two groups so that one stale ticker (a halt, a failing
    symbol) does not drag days of every other ticker's bars into memory.
    """
    known = {t: ts for t, ts in newest.items() if ts is not None}
    if not known:
        return {}
    sessions = 1 + -(-SPIKE_LOOKBACK // max(1, SHORTEST_SESSION_MINUTES // minutes))
    latest = max(known.values())
    recent = [t for t, ts in known.items() if ts >= latest - timedelta(days=CONTEXT_DAYS)]
    stale = [t for t in known if t not in recent]
    out: dict[str, pd.DataFrame] = {}
    for group in (recent, stale):
        if group:
            start = _sessions_back(calendar, min(known[t] for t in group), sessions)
            out.update(store.load_bars(group, interval, start=start))
    return _with_lookback(store, out, known, interval)


def _sessions_back(
    calendar: NyseCalendar, at: datetime, sessions: int, *, daily: bool = False
) -> datetime:
    """Open of the ``sessions``-th session back from ``at`` (``at``'s own: 1); for ``daily``
    bars (indexed by their New York midnight) a day before it. Past the calendar's start,
    ``sessions`` days back (:func:`_with_lookback` fills in what that misses)."""
    try:
        start = calendar.session_open_back(at, sessions)
    except DataError:
        return at - timedelta(days=sessions)
    return start - timedelta(days=1) if daily else start


def _with_lookback(
    store: Store,
    loaded: dict[str, pd.DataFrame],
    before: Mapping[str, datetime],
    interval: str,
) -> dict[str, pd.DataFrame]:
    """``loaded``, with the whole stored history of each ticker that holds fewer than
    ``SPIKE_LOOKBACK`` loaded bars before ``before[ticker]`` (a gap in its data, a young
    ticker): the spike check of its new bars then sees the same past bars as a full
    re-validation would."""
    short = []
    for ticker, ts in before.items():
        frame = loaded.get(ticker)
        held = 0 if frame is None else int((frame.index < pd.Timestamp(ts)).sum())
        if held < SPIKE_LOOKBACK:
            short.append(ticker)
    if short:
        loaded.update(store.load_bars(short, interval))
    return loaded


def _count(row: TickerPrices, checked: ValidationResult, new: int, updated: int) -> None:
    row.bars_new += new
    row.bars_updated += updated
    row.bars_rejected += checked.n_rejected
    row.bars_flagged += checked.n_flagged
    merged = Counter(row.rejected_reasons)
    merged.update(checked.rejected)
    row.rejected_reasons = dict(merged)


def _note_rejected_rows(row: TickerPrices, rejected: Sequence[RejectedRow], *, count: bool) -> None:
    """Input rows the source skipped: a problem line each, counted when ``count`` (intraday)."""
    row.problems.extend(str(r) for r in rejected[:MAX_PROBLEM_LINES])
    if len(rejected) > MAX_PROBLEM_LINES:
        more = len(rejected) - MAX_PROBLEM_LINES
        row.problems.append(f"{rejected[0].file}: {more} more row(s) skipped")
    if count and rejected:
        row.bars_rejected += len(rejected)
        merged = Counter(row.rejected_reasons)
        merged.update(r.rule for r in rejected)
        row.rejected_reasons = dict(merged)


def _corporate_action(
    settings: Settings,
    source: PriceSource,
    store: Store,
    calendar: NyseCalendar,
    row: TickerPrices,
    interval: str,
    as_of: datetime,
    change: float,
    say: Callable[[str], None],
    daily_since: datetime,
) -> None:
    """Stored prices were rewritten upstream: re-fetch the whole history and replace it."""
    ticker = row.ticker
    logger.warning(
        "%s: stored closes differ by up to %.2f%% from the source (split/dividend "
        "adjustment?); re-fetching the whole history",
        ticker,
        100 * change,
    )
    say(f"{ticker}: prices rewritten upstream ({100 * change:.2f}%), re-fetching history")
    full = source.fetch_intraday([ticker], interval, {ticker: None}, as_of)
    if ticker in full.errors:
        # Keep the old history rather than mix; the next refresh will try again.
        row.error = f"history re-fetch after a rewrite failed: {full.errors[ticker]}"
        row.retryable = full.errors[ticker].retryable
        return
    checked = _validate(settings, calendar, full.frames[ticker], ticker, as_of, daily=False)
    replaced = store.replace_bars(ticker, interval, checked.frame)
    _count(row, checked, 0, replaced)
    daily_replaced = 0
    daily = source.fetch_daily([ticker], daily_since, as_of)
    if ticker in daily.frames and len(daily.frames[ticker]):
        dchecked = _validate(settings, calendar, daily.frames[ticker], ticker, as_of, daily=True)
        daily_replaced = store.replace_bars(ticker, DAILY, dchecked.frame)
        row.daily_bars_updated += daily_replaced
    row.corporate_action = True
    store.record_event(
        CORPORATE_ACTION,
        ticker,
        {
            "interval": interval,
            "max_close_change": round(change, 6),
            "tolerance": settings.revision_tolerance,
            "bars_replaced": replaced,
            "daily_bars_replaced": daily_replaced,
            "source": source.name,
        },
        at=as_of,
    )


def _refresh_daily(
    settings: Settings,
    source: PriceSource,
    store: Store,
    calendar: NyseCalendar,
    results: Mapping[str, TickerPrices],
    as_of: datetime,
    floor: datetime,
    say: Callable[[str], None],
) -> None:
    """Daily bars, fetched only when a session has closed since the newest stored one, from
    ``floor`` on; stored in one write for every ticker."""
    tickers = [t for t, r in results.items() if not r.corporate_action]
    if not tickers:
        return
    newest = store.newest_bar_ts(tickers, DAILY)
    last_close = calendar.previous_close(as_of)
    from sentinel42.market.calendar import NEW_YORK

    last_day = last_close.astimezone(NEW_YORK).date()
    due = [t for t in tickers if _before_day(newest[t], last_day, NEW_YORK)]
    if not due:
        return
    starts = [newest[t] for t in due]
    since = floor if any(s is None for s in starts) else max(floor, min(s for s in starts if s))
    say(f"fetching daily bars for {len(due)} ticker(s) since {since.date()}")
    # The overlap, and the SPIKE_LOOKBACK stored bars before it of the spike check.
    stored = store.load_bars(
        due, DAILY, start=_sessions_back(calendar, since, SPIKE_LOOKBACK, daily=True)
    )
    stored = _with_lookback(store, stored, {t: since for t in due if newest[t] is not None}, DAILY)
    batch = source.fetch_daily(due, since, as_of)
    pending: dict[str, pd.DataFrame] = {}
    for ticker in due:
        row = results[ticker]
        _note_rejected_rows(row, batch.rejected.get(ticker, ()), count=False)
        if ticker in batch.errors:
            row.daily_error = str(batch.errors[ticker])
            continue
        frame = batch.frames.get(ticker)
        if frame is None or frame.empty:
            continue
        old = stored.get(ticker)
        checked = _validate(settings, calendar, frame, ticker, as_of, daily=True, context=old)
        change = rewritten(old, checked.frame, settings.revision_tolerance)
        if change is not None:
            _corporate_action(
                settings, source, store, calendar, row, settings.interval, as_of, change, say, floor
            )
            continue
        pending[ticker] = checked.frame
    # One read and one write for every ticker (as the intraday bars).
    for ticker, counts in store.upsert_bars_many(DAILY, pending).items():
        results[ticker].daily_bars_new += counts.new
        results[ticker].daily_bars_updated += counts.updated


def _no_data(
    calendar: NyseCalendar, report: PriceRefreshReport, as_of: datetime, minutes: int
) -> bool:
    if not report.market_open or any(t.bars_new for t in report.tickers):
        return False
    expected = calendar.expected_bar_start(as_of, minutes)
    if expected is None:
        return False
    # One bar of vendor lag is normal (Yahoo publishes a bar a few minutes after it ends).
    lag_ok = expected - timedelta(minutes=minutes)
    return not any(
        t.newest_bar_ts is not None and t.newest_bar_ts >= lag_ok for t in report.tickers
    )


def _raise_if_all_temporary(report: PriceRefreshReport) -> None:
    rows = report.tickers
    if rows and all(r.error and r.retryable for r in rows):
        raise TemporarySourceError(
            f"every ticker failed with a retryable error, e.g. {rows[0].ticker}: {rows[0].error}"
        )


__all__ = ["PriceRefreshReport", "TickerPrices", "refresh_prices", "rewritten"]


def _before_day(ts: datetime | None, day: date, tz: Any) -> bool:
    """True when ``ts`` is missing or falls on a New York day before ``day``."""
    return ts is None or ts.astimezone(tz).date() < day
