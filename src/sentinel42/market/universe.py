"""The universe: the tickers the models learn from and rank within, and their bars.

``SENTINEL42_UNIVERSE`` says which (``watchlist``, ``all``, a comma-separated list or ``@path``);
the watchlist (``SENTINEL42_TICKERS``) is what is decided and traded and is always part of it.
:func:`resolve_universe` turns the setting into tickers; :func:`load_universe_bars` brings their
bars up to date in the store through the ordinary price refresh and hands them back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import pandas as pd

from sentinel42.errors import ConfigError, DataError
from sentinel42.market.base import DAILY, PriceSource, one_bar
from sentinel42.settings import ENV_PREFIX, TICKER_PATTERN, normalize_ticker

if TYPE_CHECKING:
    from sentinel42.market.calendar import NyseCalendar
    from sentinel42.persistence import Store
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

SETTING = f"{ENV_PREFIX}UNIVERSE"
KINDS = ("intraday", "daily")
# Problem lines of a failed load logged one by one; the rest are counted.
MAX_LOGGED_PROBLEMS = 20


@dataclass(frozen=True)
class Universe:
    """The resolved universe.

    Attributes:
        tickers: the watchlist's tickers first (in their order), then the rest sorted; no
            duplicates.
        problems: one line per entry that was left out or collapsed (an unknown ticker, a
            malformed line, a duplicate), each naming it and, for ``@path``, its line.
    """

    tickers: tuple[str, ...]
    problems: tuple[str, ...] = ()


def resolve_universe(settings: Settings, source: PriceSource | None = None) -> Universe:
    """The tickers of ``settings.universe``.

    Args:
        settings: ``universe``, ``tickers`` (the watchlist), ``data_source``, ``replay_dir``.
        source: where ``all`` and the check of known tickers look (replay mode); default the
            settings' replay folder. Live mode checks no ticker (yfinance has no listing).

    Returns:
        The universe; every problem is logged too, once.

    Raises:
        ConfigError: ``all`` in live mode, or an ``@path`` file that does not exist or cannot
            be read (one line naming the setting and the file).
    """
    spec = settings.universe
    watchlist = list(settings.tickers)
    replay = settings.data_source == "replay"
    problems: list[str] = []
    held: set[str] | None = None
    if replay and spec != "watchlist":
        held_list, file_problems = _replay_source(settings, source).held_tickers()
        held = set(held_list)
        if spec == "all":
            problems += file_problems

    if spec == "watchlist":
        chosen: list[str] = []
    elif spec == "all":
        if not replay:
            raise ConfigError(
                f"{SETTING}=all needs a replay folder: yfinance has no listing of tickers; "
                "give a comma-separated list or @path (a file of one ticker a line)"
            )
        chosen = []
        for ticker in sorted(held or ()):
            if TICKER_PATTERN.match(ticker):
                chosen.append(ticker)
            else:
                problems.append(f"{SETTING}=all: {ticker!r} in the replay data is not a ticker "
                                "symbol; left out")  # fmt: skip
    elif spec.startswith("@"):
        chosen = _read_ticker_file(Path(spec[1:]), held, problems)
    else:
        chosen = []
        for written in spec.split(","):
            ticker = normalize_ticker(written)  # BRK.B and BRK-B are one ticker
            if ticker in chosen:
                again = ticker if written == ticker else f"{written} is {ticker}, which"
                problems.append(f"{SETTING}: {again} is listed twice; counted once")
            elif held is not None and ticker not in held:
                problems.append(f"{SETTING}: {ticker} is not in the replay data; left out")
            else:
                chosen.append(ticker)

    rest = sorted(set(chosen) - set(watchlist))
    for problem in problems:
        logger.warning("universe: %s", problem)
    return Universe(tuple(watchlist + rest), tuple(problems))


@runtime_checkable
class ListsTickers(Protocol):
    """A source that can say which tickers it holds (``ReplayPriceSource``)."""

    def held_tickers(self) -> tuple[list[str], list[str]]: ...


def _replay_source(settings: Settings, source: PriceSource | None) -> ListsTickers:
    if source is None:  # replay mode: the listing is the replay folder's
        from sentinel42.market.replay import ReplayPriceSource

        assert settings.replay_dir is not None  # load_settings guarantees it in replay mode
        source = ReplayPriceSource(settings.replay_dir, interval=settings.interval)
    if not isinstance(source, ListsTickers):
        raise ConfigError(f"{SETTING}: the {source.name} source cannot list its tickers")
    return source


def _read_ticker_file(path: Path, held: set[str] | None, problems: list[str]) -> list[str]:
    """The tickers of an ``@path`` file: one a line, ``#`` comments and blank lines allowed.

    A malformed line, a repeated ticker or (replay) a ticker the data does not hold is left out
    with one problem line naming the file, the line number and the ticker.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ConfigError(
            f"{SETTING}: @{path}: no such file (relative to {Path.cwd()}); give a file of one "
            "ticker a line"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{SETTING}: @{path}: cannot be read ({exc.strerror or exc})") from None
    out: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path} line {number}"
        if not TICKER_PATTERN.match(line.upper()):
            problems.append(f"{where}: {line!r} is not a ticker symbol; line skipped")
            continue
        ticker = normalize_ticker(line)  # BRK.B and BRK-B are one ticker
        if ticker in seen:
            written = "" if line.upper() == ticker else f"{line.upper()} is "
            problems.append(
                f"{where}: {written}{ticker} again (first at line {seen[ticker]}); line skipped"
            )
            continue
        seen[ticker] = number
        if held is not None and ticker not in held:
            problems.append(f"{where}: {ticker} is not in the replay data; line skipped")
            continue
        out.append(ticker)
    return out


def daily_history_start(as_of: datetime, years: int) -> datetime:
    """``years`` calendar years before ``as_of`` (29 February falls back to the 28th)."""
    try:
        return as_of.replace(year=as_of.year - years)
    except ValueError:
        return as_of.replace(year=as_of.year - years, day=28)


def load_universe_bars(
    settings: Settings,
    tickers: Sequence[str],
    kind: Literal["intraday", "daily"] | str,
    as_of: datetime,
    *,
    source: PriceSource,
    calendar: NyseCalendar,
    store: Store | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, pd.DataFrame]:
    """Bring the store up to date for ``tickers`` and return their bars.

    The refresh is the ordinary one (:func:`~sentinel42.market.refresh.refresh_prices`): the
    same validation, rewrite detection and idempotent upsert, so a second call with nothing new
    writes nothing. Intraday: ``settings.interval`` bars from the first the source serves (the
    live source: 60 days). Daily: ``settings.daily_history_years`` years before ``as_of``.

    Args:
        settings: interval, daily_history_years and the validation settings.
        tickers: e.g. ``resolve_universe(settings).tickers``.
        kind: ``intraday`` or ``daily``.
        as_of: tz-aware clock (e.g. :func:`sentinel42.clock.resolve_as_of`); nothing that
            ends after it is fetched or returned.
        source: where the bars come from (``factory.build_price_source(settings)``; the
            caller builds it, since market sits below the factory).
        calendar: the NYSE calendar (``factory.build_calendar(settings)``).
        store: default: the settings' store, opened for this call.
        progress: one human line per step.

    Returns:
        ticker -> stored bars (domain columns plus ``flagged``), bars that ended by ``as_of``
        (daily: from the history start). A ticker without bars is absent. Per-ticker failures
        are logged (a refresh that fails for every ticker with a retryable error raises).

    Raises:
        DataError: an unknown ``kind`` or a naive ``as_of``.
        TemporarySourceError: every ticker failed with a retryable error.
    """
    if kind not in KINDS:
        raise DataError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if as_of.tzinfo is None:
        raise DataError("as_of must be tz-aware")
    if store is None:
        from sentinel42.persistence import open_store

        with open_store(settings) as opened:
            return load_universe_bars(
                settings,
                tickers,
                kind,
                as_of,
                store=opened,
                source=source,
                calendar=calendar,
                progress=progress,
            )
    from sentinel42.market.refresh import refresh_prices

    tickers = list(dict.fromkeys(tickers))
    if not tickers:
        return {}
    daily = kind == "daily"
    history_start = daily_history_start(as_of, settings.daily_history_years)
    report = refresh_prices(
        settings,
        source,
        store,
        calendar,
        as_of,
        progress,
        tickers=tickers,
        intraday=not daily,
        daily=daily,
        daily_since=history_start if daily else None,
    )
    failed = [
        f"{row.ticker}: {row.daily_error if daily else row.error}"
        for row in report.tickers
        if (row.daily_error if daily else row.error)
    ]
    if failed:
        logger.warning(
            "universe %s refresh: %d of %d ticker(s) failed, e.g. %s",
            kind,
            len(failed),
            len(tickers),
            "; ".join(failed[:3]),
        )
    problems = report.problems
    if problems:
        logger.info("universe %s refresh: %d input row(s) skipped", kind, len(problems))
    if daily:
        return store.load_bars(tickers, DAILY, start=history_start, end=_last_daily_start(as_of))
    return store.load_bars(tickers, settings.interval, end=as_of - one_bar(settings.interval))


def _last_daily_start(as_of: datetime) -> datetime:
    """Index (New York midnight, UTC) of the newest daily bar whose session is over at as_of."""
    from sentinel42.market.calendar import NEW_YORK

    local = as_of.astimezone(NEW_YORK)
    day = local.date() if local.hour >= 16 else local.date() - timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).astimezone(UTC)


__all__ = [
    "KINDS",
    "Universe",
    "daily_history_start",
    "load_universe_bars",
    "resolve_universe",
]
