"""The store's behaviour on a real PostgreSQL server, concurrent writers included.

Runs against ``SENTINEL42_TEST_POSTGRES_URL`` (a role that may create databases; CI gets one from
``eval "$(bash scripts/ci_postgres.sh)"``) and skips with the reason where it is unset, as on a
fresh clone. ``SENTINEL42_TEST_POSTGRES_REQUIRED=1`` (CI) turns that skip into a failure. Each
test gets a database of its own, created through that role and dropped afterwards.

Concurrent writers are processes forked after the imports, lined up by a barrier so they open
and write at the same moment, the way two workers' flow runs would.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, event, func, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from sentinel42.domain import Action, Decision, EquityPoint, GroupStats, NewsItem, SavedPortfolio
from sentinel42.errors import StoreError
from sentinel42.persistence import ledger, open_store, score_ledger
from sentinel42.persistence.db import (
    _PG_MIGRATION_LOCK_KEY,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from sentinel42.persistence.tables import Base, DecisionRow, NewsTickerRow
from tests.persistence.test_ledger import _health, _score

# Read at import: the autouse fixture in tests/conftest.py clears SENTINEL42_* for each test.
ADMIN_URL = os.environ.get("SENTINEL42_TEST_POSTGRES_URL")
REQUIRED = os.environ.get("SENTINEL42_TEST_POSTGRES_REQUIRED") == "1"
NO_SERVER = (
    "SENTINEL42_TEST_POSTGRES_URL is not set, so there is no PostgreSQL server to test against; "
    'start one with `eval "$(bash scripts/ci_postgres.sh)"` (CI does)'
)

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
BAR = timedelta(minutes=15)
TICKERS = ("AAPL", "MSFT", "NVDA")
PROCESSES = 4


# --- a database per test --------------------------------------------------------------------
def admin_url_or_skip() -> str:
    """The admin URL, or skip (fail where ``SENTINEL42_TEST_POSTGRES_REQUIRED=1``)."""
    if ADMIN_URL:
        return ADMIN_URL
    if REQUIRED:
        pytest.fail(f"SENTINEL42_TEST_POSTGRES_REQUIRED=1 but {NO_SERVER}")
    pytest.skip(NO_SERVER)


def _psycopg(url: str | URL) -> URL:
    """``url`` with the store's driver (the admin URL may be Prefect's asyncpg one)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+asyncpg"):
        return parsed.set(drivername="postgresql+psycopg")
    return parsed


@contextmanager
def fresh_database(admin_url: str, prefix: str = "s42test") -> Iterator[URL]:
    """Create an empty database through ``admin_url``'s role; drop it (and its sessions) after.

    Yields:
        The new database's URL (same host, role and driver as ``admin_url``).
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_psycopg(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name)
        finally:
            _drop_database(admin, name)
    finally:
        admin.dispose()


def _drop_database(admin: Engine, name: str, attempts: int = 20) -> None:
    # FORCE ends the sessions still connected; it fails while autovacuum works on the database
    # unless the role is in pg_signal_backend (scripts/ci_postgres.sh grants it). Autovacuum
    # gives way within moments either way.
    for attempt in range(attempts):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL (password included) of an empty database of this test's own."""
    with fresh_database(admin_url_or_skip()) as url:
        yield url.render_as_string(hide_password=False)


@pytest.fixture
def store(pg_url):
    with open_store(url=pg_url) as s:
        yield s


# --- concurrent processes -------------------------------------------------------------------
def _child(target: Callable[..., Any], index: int, args: tuple, barrier, results) -> None:
    try:
        barrier.wait(timeout=60)
        results.put((index, True, target(*args)))
    except BaseException:
        results.put((index, False, traceback.format_exc()))


def in_processes(target: Callable[..., Any], calls: list[tuple], timeout: float = 180) -> list:
    """Run ``target(*args)`` for each ``args`` in its own forked process, all at once.

    Returns:
        Each call's return value, in the order of ``calls``.
    """
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(len(calls)), ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(target, i, args, barrier, results))
        for i, args in enumerate(calls)
    ]
    for p in procs:
        p.start()
    out: dict[int, Any] = {}
    failures = []
    try:
        for _ in calls:
            index, ok, payload = results.get(timeout=timeout)
            if ok:
                out[index] = payload
            else:
                failures.append(payload)
    except queue.Empty:
        failures.append(f"only {len(out) + len(failures)} of {len(calls)} processes reported")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert failures == []
    assert [p.exitcode for p in procs] == [0] * len(calls)
    return [out[i] for i in range(len(calls))]


def _table_counts(url: str) -> dict[str, int]:
    with open_store(url=url, readonly=True) as s, s.engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }


# --- migrations -----------------------------------------------------------------------------
def _migrate(url: str) -> str | None:
    engine = make_engine(url)
    try:
        migrate(engine)
        return current_revision(engine)
    finally:
        engine.dispose()


def test_two_processes_migrating_an_empty_database_at_once_both_reach_head(pg_url) -> None:
    revisions = in_processes(_migrate, [(pg_url,), (pg_url,)])

    assert revisions == [head_revision()] * 2
    engine = make_engine(pg_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert tables == {t.name for t in Base.metadata.sorted_tables} | {"alembic_version"}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


def test_migrations_on_postgres_build_the_schema_the_tables_declare(pg_url) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(pg_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_a_rerun_of_migrate_at_head_writes_and_locks_nothing(pg_url) -> None:
    engine = make_engine(pg_url)
    statements: list[str] = []
    try:
        migrate(engine)
        event.listen(
            engine,
            "before_cursor_execute",
            lambda *a: statements.append(a[2].lower()),
            retval=False,
        )
        migrate(engine)
    finally:
        engine.dispose()
    assert statements, "the rerun must at least read the schema revision"
    assert not [s for s in statements if s.split()[0] in {"create", "alter", "insert", "update"}]
    assert not [s for s in statements if "pg_advisory" in s]


def test_a_migration_waits_while_another_process_holds_the_advisory_lock(pg_url) -> None:
    ctx = multiprocessing.get_context("fork")
    engine = make_engine(pg_url)
    try:
        with engine.connect() as holder:
            holder.begin()
            holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK_KEY})
            child = ctx.Process(target=_migrate, args=(pg_url,))
            child.start()
            child.join(timeout=2.0)
            assert child.is_alive(), "the migration did not wait for the lock"
            assert current_revision(engine) is None
            holder.rollback()  # releases the lock
        child.join(timeout=60)
        assert child.exitcode == 0
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


# --- bars -----------------------------------------------------------------------------------
def _bars(n: int, start: datetime = T0, close: float = 100.0) -> pd.DataFrame:
    idx = pd.DatetimeIndex([start + BAR * i for i in range(n)], name="ts")
    c = [close + i for i in range(n)]
    return pd.DataFrame(
        {
            "open": c,
            "high": [x + 1 for x in c],
            "low": [x - 1 for x in c],
            "close": c,
            "volume": [1000.0] * n,
        },
        index=idx,
    )


def test_bars_upsert_is_idempotent_and_counts_revisions(store) -> None:
    first = store.upsert_bars("AAPL", "15m", _bars(5))
    second = store.upsert_bars("AAPL", "15m", _bars(5))
    revised = _bars(6)
    revised.iloc[4, revised.columns.get_loc("close")] = 150.0
    revised["flagged"] = [False] * 5 + [True]
    third = store.upsert_bars("AAPL", "15m", revised)

    assert (first.new, first.updated) == (5, 0)
    assert (second.new, second.updated) == (0, 0)
    assert (third.new, third.updated) == (1, 1)
    loaded = store.load_bars(["AAPL", "MSFT"], "15m")
    assert list(loaded) == ["AAPL"]
    frame = loaded["AAPL"]
    assert str(frame.index.tz) == "UTC"
    assert frame.index[0] == pd.Timestamp(T0)
    assert frame["close"].iloc[4] == 150.0
    assert frame["flagged"].tolist() == [False] * 5 + [True]
    assert store.newest_bar_ts(["AAPL", "MSFT"], "15m") == {"AAPL": T0 + 5 * BAR, "MSFT": None}
    assert store.replace_bars("AAPL", "15m", _bars(2, close=50)) == 2
    assert store.count_bars("15m") == 2


def _upsert_bars(url: str, frames: dict[str, pd.DataFrame]) -> int:
    with open_store(url=url) as s:
        counts = s.upsert_bars_many("15m", frames)
    return sum(c.new for c in counts.values())


def test_concurrent_bar_upserts_end_with_the_rows_of_one(pg_url) -> None:
    frames = {t: _bars(40, close=100.0 + 50 * i) for i, t in enumerate(TICKERS)}
    in_processes(_upsert_bars, [(pg_url, frames)] * PROCESSES)

    with open_store(url=pg_url) as s:
        assert s.count_bars("15m") == 40 * len(TICKERS)
        loaded = s.load_bars(list(TICKERS), "15m")
        again = s.upsert_bars_many("15m", frames)
    for ticker, frame in frames.items():
        pd.testing.assert_frame_equal(
            loaded[ticker][list(frame.columns)], frame, check_freq=False, check_index_type=False
        )
    assert all((c.new, c.updated) == (0, 0) for c in again.values())


# --- news -----------------------------------------------------------------------------------
def _news(n: int) -> list[NewsItem]:
    return [
        NewsItem(
            url=f"https://example.com/story/{i}",
            title=f"Company {i} reports quarter number {i}",
            published_at=T0 + timedelta(minutes=7 * i),
            source="Example Wire",
            summary=f"summary {i}",
            tickers=(TICKERS[i % 3], TICKERS[(i + 1) % 3]),
            origin="replay",
        )
        for i in range(n)
    ]


def _upsert_news(url: str, items: list[NewsItem]) -> list[str]:
    with open_store(url=url) as s:
        return [item.url for item in s.upsert_news(items, seen_at=T0 + timedelta(days=1))]


def test_concurrent_news_writers_store_each_story_once_and_report_it_new_once(pg_url) -> None:
    items = _news(30)
    # Each process meets the stories (and their tickers) in another order, as two feeds would.
    flipped = [replace(item, tickers=item.tickers[::-1]) for item in items]
    calls = [
        (pg_url, (flipped if k % 2 else items)[k * 7 :] + (flipped if k % 2 else items)[: k * 7])
        for k in range(PROCESSES)
    ]
    new_per_process = in_processes(_upsert_news, calls)

    reported_new = sorted(u for urls in new_per_process for u in urls)
    assert reported_new == sorted(item.url for item in items)
    with open_store(url=pg_url) as s:
        assert s.count_news() == len(items)
        with s.engine.connect() as conn:
            links = conn.execute(select(func.count()).select_from(NewsTickerRow)).scalar_one()
        assert links == 2 * len(items)
        assert s.upsert_news(items, seen_at=T0 + timedelta(days=2)) == []
        headlines = s.headlines(tickers=["AAPL"])
    assert len(headlines) == 20
    assert headlines["published_at"].iloc[0].tzinfo is not None


# --- decisions ------------------------------------------------------------------------------
def _decisions(bars: int = 2) -> list[Decision]:
    return [
        Decision(
            ticker=t,
            bar_ts=T0 + BAR * b,
            action=Action.BUY,
            confidence=0.6,
            reason="test",
            inputs={"close": 100.0 + b, "fused": 0.3},
            models={"lstm": None},
            decided_at=T0 + BAR * (b + 1),
        )
        for t in TICKERS
        for b in range(bars)
    ]


def _save_decisions(url: str, run_id: str) -> tuple[int, int, int]:
    with open_store(url=url) as s:
        saved = s.save_decisions(_decisions(), forced=True, run_id=run_id)
    return saved.standing, saved.revisions, saved.unchanged


def test_concurrent_runs_number_decision_revisions_without_gaps(pg_url) -> None:
    runs = [f"flow-{i}" for i in range(PROCESSES)]
    migrated = _migrate(pg_url)  # the race under test is the numbering, not the migration
    assert migrated == head_revision()
    saved = in_processes(_save_decisions, [(pg_url, r) for r in runs])

    per_run = len(_decisions())
    assert all(
        standing + revisions == per_run and unchanged == 0
        for standing, revisions, unchanged in saved
    )
    assert sum(standing for standing, _, _ in saved) == per_run
    with open_store(url=pg_url) as s:
        with s.engine.connect() as conn:
            rows = conn.execute(
                select(
                    DecisionRow.ticker, DecisionRow.bar_ts, DecisionRow.revision, DecisionRow.run_id
                )
            ).all()
        retry = s.save_decisions(_decisions(), forced=True, run_id=runs[0])
        standing = s.decisions(limit=100)
    by_bar: dict[tuple[str, datetime], list[tuple[int, str]]] = {}
    for ticker, bar_ts, revision, run_id in rows:
        by_bar.setdefault((ticker, bar_ts), []).append((revision, run_id))
    assert len(by_bar) == per_run
    for found in by_bar.values():
        assert sorted(r for r, _ in found) == list(range(PROCESSES))
        assert sorted(run for _, run in found) == runs
    assert (retry.standing, retry.revisions, retry.unchanged) == (0, 0, per_run)
    assert len(standing) == per_run and {d.revision for d in standing} == {0}
    assert all(d.bar_ts.tzinfo is not None for d in standing)


# --- ledger ---------------------------------------------------------------------------------
def test_ledger_tables_upsert_once_and_keep_a_degraded_verdict(store) -> None:
    state = {"portfolio": {"cash": 1000.0, "positions": {"AAPL": 2}}, "buy_and_hold": {"x": [1]}}
    saved = SavedPortfolio(T0, state, [{"ticker": "AAPL", "qty": 2}], 1200.0, 1000.0, T0)
    ledger.save_portfolio_state(store, saved)
    ledger.save_portfolio_state(store, replace(saved, equity=1300.0))
    ledger.save_portfolio_state(store, replace(saved, bar_ts=T0 + BAR, trades=[]))
    points = [EquityPoint(T0 + BAR * i, 1000.0 + i, 900.0, 1000.0) for i in range(3)]
    ledger.save_equity_points(store, points)
    ledger.save_equity_points(store, [replace(points[0], equity=5.0)])
    score = _score(ticker="AAPL")
    first = score_ledger.save_decision_scores(
        store, [score, replace(score, ticker="MSFT", hit=False)]
    )
    second = score_ledger.save_decision_scores(store, [replace(score, hit=False, close=1.0)])
    health = _health(degraded=True, live_hits=40, p_value=0.001)
    score_ledger.save_model_health(store, health)
    score_ledger.save_model_health(
        store, replace(health, degraded=False, live_hits=90, at=T0 + BAR)
    )

    latest = ledger.latest_portfolio_state(store)
    assert latest is not None and latest.bar_ts == T0 + BAR and latest.state == state
    assert ledger.portfolio_trades(store) == [{"ticker": "AAPL", "qty": 2}]
    curve = ledger.equity_curve(store)
    assert [p.equity for p in curve] == [5.0, 1001.0, 1002.0]
    assert curve[0].ts == T0
    assert (first, second) == (2, 0)
    scores = score_ledger.decision_scores(store)
    assert [(s.ticker, s.hit, s.close) for s in scores] == [
        ("AAPL", True, 100.0),
        ("MSFT", False, 100.0),
    ]
    assert score_ledger.action_stats(store)[Action.BUY] == GroupStats(2, 1, 0.01)
    assert score_ledger.recent_model_hits(store, "m1", 10) == (2, 2)
    kept = score_ledger.model_health(store, "m1")
    assert kept is not None and kept.degraded and kept.live_hits == 40 and kept.at == T0


# --- read-only opens and errors -------------------------------------------------------------
def test_a_read_only_open_reads_and_refuses_writes(pg_url) -> None:
    with open_store(url=pg_url) as s:
        s.upsert_bars("AAPL", "15m", _bars(3))
    # The store's errors become one line at open_store's boundary, as for SQLite.
    with pytest.raises(StoreError) as refused, open_store(url=pg_url, readonly=True) as ro:
        assert ro.count_bars() == 3
        assert list(ro.load_bars(["AAPL"], "15m")) == ["AAPL"]
        ro.upsert_bars("AAPL", "15m", _bars(4))
    assert refused.value.kind == "read-only"
    assert _table_counts(pg_url)["bars"] == 3


def test_a_read_only_open_of_an_empty_database_names_the_missing_schema(pg_url) -> None:
    with pytest.raises(StoreError) as missing, open_store(url=pg_url, readonly=True):
        pass
    assert missing.value.kind == "schema"
    engine = make_engine(pg_url)
    try:
        assert inspect(engine).get_table_names() == []  # nothing was created
    finally:
        engine.dispose()


def test_a_missing_database_and_a_wrong_password_are_one_line_each(pg_url) -> None:
    url = make_url(pg_url)
    with (
        pytest.raises(StoreError) as missing,
        open_store(url=url.set(database="s42_absent").render_as_string(hide_password=False)),
    ):
        pass
    with (
        pytest.raises(StoreError) as refused,
        open_store(url=url.set(password="wrong").render_as_string(hide_password=False)),
    ):
        pass
    assert missing.value.kind == "missing" and "does not exist" in str(missing.value)
    assert refused.value.kind == "unreachable" and "refused the login" in str(refused.value)
    assert "wrong" not in str(refused.value)


# --- the pipeline ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_replay(tmp_path_factory) -> Path:
    from sentinel42.synthetic import generate_replay

    out = tmp_path_factory.mktemp("pg-replay")
    generate_replay(out, TICKERS, end=date(2026, 11, 25), sessions=4, seed=5, news_rate=0.08)
    return out


def _run_pipeline(settings: Any) -> dict[str, Any]:
    from sentinel42 import clock, pipeline

    end = clock.resolve_as_of(settings)
    steps = [end - timedelta(days=1), end - timedelta(hours=2), end]
    for i, as_of in enumerate(steps):
        pipeline.refresh_all(settings, as_of)
        pipeline.decide(settings, as_of, forced=True, run_id=f"run-{i}")
        pipeline.update_portfolio(settings, as_of)
    report = pipeline.validate(settings, end)
    with open_store(settings, readonly=True) as s:
        decisions = [
            (d.ticker, d.bar_ts, d.action, round(d.confidence, 9))
            for d in s.decisions(limit=1000, all_revisions=True)
        ]
        equity = [round(p.equity, 6) for p in ledger.equity_curve(s)]
    return {"decisions": decisions, "equity": equity, "scored": report.scored}


def test_the_pipeline_on_postgres_stores_what_it_stores_on_sqlite(
    tmp_path, small_replay, pg_url
) -> None:
    from sentinel42.settings import load_settings

    common = {"data_source": "replay", "replay_dir": small_replay, "tickers": list(TICKERS)}
    on_sqlite = load_settings(data_dir=tmp_path / "sqlite", **common)
    on_postgres = load_settings(data_dir=tmp_path / "pg", database_url=pg_url, **common)

    sqlite_run = _run_pipeline(on_sqlite)
    postgres_run = _run_pipeline(on_postgres)

    expected = _table_counts(on_sqlite.store_url)
    assert expected["bars"] > 0 and expected["news"] > 0 and expected["sentiment"] > 0
    assert expected["decisions"] > 0 and expected["equity_curve"] > 0
    assert expected["decision_scores"] > 0
    assert _table_counts(pg_url) == expected
    assert postgres_run == sqlite_run
