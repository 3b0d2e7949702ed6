"""Several processes refreshing one fresh store at once end where a serial run ends.

The processes are forked after the parent has imported everything and tried FinBERT once (the
failure is cached per process), so each child starts in milliseconds and they all open the fresh
store, migrate it and write the same headlines at the same moment (a barrier lines them up).
"""

from __future__ import annotations

import json
import multiprocessing
import traceback
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from sentinel42 import clock, pipeline
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
        as_of = clock.resolve_as_of(settings)
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


def _join_cleanly(workers: list[Any], errors: Any) -> None:
    """Wait for started ``workers``; none may have put a traceback on ``errors`` or exited
    non-zero."""
    for w in workers:
        w.join(timeout=120)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == []
    assert [w.exitcode for w in workers] == [0] * len(workers)


def test_concurrent_refreshes_of_a_fresh_store_match_a_serial_run(tmp_path, replay) -> None:
    from sentinel42.sentiment.service import build_scorer

    serial = _settings(tmp_path / "serial", replay)
    build_scorer(serial)  # import and cache the scorer once, before forking
    as_of = clock.resolve_as_of(serial)
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
    _join_cleanly(workers, errors)

    expected = _row_counts(serial)
    assert expected["news"] > 0 and expected["bars"] > 0 and expected["sentiment"] > 0
    assert _row_counts(parallel) == expected


# --- refreshes and forced trades at once ----------------------------------------------------
REFRESHES, TRADES = 3, 2


def _trade(settings: Settings, barrier, errors, queue) -> None:
    try:
        as_of = clock.resolve_as_of(settings)
        barrier.wait(timeout=60)
        pipeline.refresh_all(settings, as_of)
        result = pipeline.decide(settings, as_of, forced=True, run_id=f"trade-{uuid.uuid4()}")
        queue.put([_decision_key(d) for d in result.decisions])
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def _decision_key(d: Any) -> tuple[Any, ...]:
    inputs = json.dumps(d.inputs, sort_keys=True, default=str)
    return (d.ticker, d.bar_ts.isoformat(), d.action.value, d.reason, inputs)


@pytest.mark.parametrize("seed", [3, 17, 29])
def test_concurrent_refreshes_and_trades_decide_as_a_serial_run(tmp_path, seed) -> None:
    """Three refreshes and two forced trades at once on a fresh store: each trade decides on
    the same consistent view a serial run has (every headline seen by the clock scored), so
    its decisions, reasons and inputs equal the serial run's, row by row."""
    from sentinel42.sentiment.service import build_scorer
    from sentinel42.synthetic import generate_replay

    replay = tmp_path / "replay"
    generate_replay(replay, TICKERS, end=date(2026, 11, 25), sessions=20, seed=seed, news_rate=0.9)
    serial = _settings(tmp_path / "serial", replay)
    build_scorer(serial)  # import and cache the scorer once, before forking
    as_of = clock.resolve_as_of(serial)
    for _ in range(REFRESHES):
        pipeline.refresh_all(serial, as_of)
    pipeline.refresh_all(serial, as_of)
    expected = sorted(_decision_key(d) for d in pipeline.decide(serial, as_of).decisions)
    assert any(json.loads(key[4]).get("headlines") for key in expected)  # news counts here

    parallel = _settings(tmp_path / "parallel", replay)
    ctx = multiprocessing.get_context("fork")
    barrier, errors, queue = ctx.Barrier(REFRESHES + TRADES), ctx.Queue(), ctx.Queue()
    workers = [
        ctx.Process(target=_refresh, args=(parallel, barrier, errors)) for _ in range(REFRESHES)
    ] + [ctx.Process(target=_trade, args=(parallel, barrier, errors, queue)) for _ in range(TRADES)]
    for w in workers:
        w.start()
    decided = [queue.get(timeout=180) for _ in range(TRADES)]
    _join_cleanly(workers, errors)
    for rows in decided:
        differences = _differences(expected, sorted(rows))
        assert not differences, "\n".join(differences)


def _differences(expected: list[tuple[Any, ...]], got: list[tuple[Any, ...]]) -> list[str]:
    """One line per ticker and field where ``got`` differs from ``expected`` (readable diffs)."""
    fields = ("ticker", "bar_ts", "action", "reason", "inputs")
    want, have = {k[0]: k for k in expected}, {k[0]: k for k in got}
    lines = [f"{t}: missing" for t in want.keys() - have.keys()]
    lines += [f"{t}: unexpected" for t in have.keys() - want.keys()]
    for ticker in sorted(want.keys() & have.keys()):
        for name, a, b in zip(fields, want[ticker], have[ticker], strict=True):
            if name == "inputs":
                a, b = json.loads(a), json.loads(b)
                lines += [
                    f"{ticker} {k}: {a.get(k)!r} != {b.get(k)!r}"
                    for k in sorted(a.keys() | b.keys())
                    if a.get(k) != b.get(k)
                ]
            elif a != b:
                lines.append(f"{ticker} {name}: {a!r} != {b!r}")
    return lines
