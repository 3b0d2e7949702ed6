"""The measuring helpers: stages, attribution, a fresh process per case, state intervals."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from prefect.states import Completed, Pending, Running, Scheduled

import sentinel42.bench.measure as measure
from sentinel42.bench.measure import Stages, attributed, peak_rss_mb, run_isolated
from sentinel42.bench.trigger import summarize_states
from sentinel42.persistence.store import Store


def test_stages_record_wall_cpu_and_peak_rss_in_order_with_extra_figures():
    stages = Stages()
    with stages.stage("first", items=3) as row:
        sum(math.sqrt(i) for i in range(20_000))
    row["after"] = "kept"  # figures added after the block stay
    with stages.stage("second"):
        pass
    assert list(stages.figures) == ["first", "second"]
    first = stages.figures["first"]
    assert first["items"] == 3 and first["after"] == "kept"
    assert first["wall_s"] >= 0 and first["cpu_s"] >= 0
    assert first["peak_rss_mb"] <= stages.figures["second"]["peak_rss_mb"]  # a high-water mark
    assert stages.total() == round(first["wall_s"] + stages.figures["second"]["wall_s"], 3)


def test_peak_rss_is_a_plausible_size_in_mib():
    assert 10 < peak_rss_mb() < 100_000


def test_attributed_counts_calls_and_puts_module_and_inherited_methods_back():
    real_machine = measure.machine
    inherited = "save_decisions" not in Store.__dict__
    with attributed({"machine": (measure, "machine"), "save": (Store, "save_decisions")}) as parts:
        measure.machine()
        measure.machine()
    assert parts["machine"]["calls"] == 2
    assert parts["save"]["calls"] == 0
    assert measure.machine is real_machine
    assert ("save_decisions" not in Store.__dict__) == inherited


def test_run_isolated_returns_the_result_and_the_fresh_process_peak_rss():
    result = run_isolated("sentinel42.bench.measure:machine", {})
    assert result["cores"] >= 1
    assert 0 < result["process"]["peak_rss_mb"] < 2000
    assert result["process"]["wall_s"] > 0


def test_summarize_states_gives_the_intervals_between_the_state_timestamps():
    t0 = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    states = [
        Completed(timestamp=t0 + timedelta(seconds=9.5)),
        Scheduled(timestamp=t0),
        Pending(timestamp=t0 + timedelta(seconds=2)),
        Running(timestamp=t0 + timedelta(seconds=5)),
    ]
    doc = summarize_states(states)
    assert doc["final_state"] == "Completed"
    assert doc["scheduled_to_pending_s"] == 2.0
    assert doc["pending_to_running_s"] == 3.0
    assert doc["scheduled_to_running_s"] == 5.0
    assert doc["running_to_completed_s"] == 4.5
    assert doc["total_s"] == 9.5
    assert [s["name"] for s in doc["states"]] == ["Scheduled", "Pending", "Running", "Completed"]


def test_summarize_states_of_a_run_not_finished_has_no_total():
    t0 = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    doc = summarize_states([Scheduled(timestamp=t0), Running(timestamp=t0 + timedelta(seconds=1))])
    assert doc["total_s"] is None
    assert doc["running_to_completed_s"] is None
