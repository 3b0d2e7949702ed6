"""Several processes refreshing one fresh store at once end where a serial run ends.

The processes are forked after the parent has imported everything and tried FinBERT once (the
failure is cached per process), so each child starts in milliseconds and they all open the fresh
store, migrate it and write the same headlines at the same moment (a barrier lines them up).
"""

from __future__ import annotations

import multiprocessing
import traceback
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sentinel42 import pipeline
from sentinel42.persistence import open_store
from sentinel42.persistence.tables import Base
from sentinel42.settings import Settings, load_settings

TICKERS = ("AAPL", "MSFT", "NVDA", "AMZN", "SPY", "GOOG", "META", "TSLA")
PROCESSES = 4


@pytest.fixture(scope="module")
def replay(tmp_path_factory) -> Path:
    from sentinel42.synthetic import generate_replay

    out = tmp_path_factory.mktemp("concurrent-replay")
    generate_replay(out, TICKERS, end=date(2026, 11, 25), sessions=4, seed=11, news_rate=0.08)
    return out


def _settings(data_dir: Path, replay: Path) -> Settings:
    return load_settings(
        data_dir=data_dir, data_source="replay", replay_dir=replay, tickers=list(TICKERS)
    )


def _refresh(settings: Settings, barrier, errors) -> None:
    try:
        as_of = pipeline.resolve_as_of(settings)
        barrier.wait(timeout=60)
        pipeline.refresh_all(settings, as_of)
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def _row_counts(settings: Settings) -> dict[str, int]:
    with open_store(settings, readonly=True) as store, store.engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }


def test_concurrent_refreshes_of_a_fresh_store_match_a_serial_run(tmp_path, replay) -> None:
    from sentinel42.sentiment.service import build_scorer

    serial = _settings(tmp_path / "serial", replay)
    build_scorer(serial)  # import and cache the scorer once, before forking
    as_of = pipeline.resolve_as_of(serial)
    for _ in range(PROCESSES):
        pipeline.refresh_all(serial, as_of)

    parallel = _settings(tmp_path / "parallel", replay)
    ctx = multiprocessing.get_context("fork")
    barrier, errors = ctx.Barrier(PROCESSES), ctx.Queue()
    workers = [
        ctx.Process(target=_refresh, args=(parallel, barrier, errors)) for _ in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == []
    assert [w.exitcode for w in workers] == [0] * PROCESSES

    expected = _row_counts(serial)
    assert expected["news"] > 0 and expected["bars"] > 0 and expected["sentiment"] > 0
    assert _row_counts(parallel) == expected
