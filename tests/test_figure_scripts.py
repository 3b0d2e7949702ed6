"""The figure scripts the docs quote run end to end with their smallest options.

Each script runs in a subprocess, as a reader of the docs would run it (``python
scripts/figures/NAME.py ...`` from the checkout), and its markdown must parse: the table header,
then numeric rows that agree with each other where the script's figures imply it (a 99% lower
bound is not above the 95% one, which is not above the edge itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SCRIPTS = ROOT / "scripts" / "figures"


def run_script(name: str, *args: str, timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL42_")}
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def table(markdown: str, header_starts: str) -> list[list[str]]:
    """The rows (cells stripped) of the first markdown table whose header starts as given."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header_starts):
            assert set(lines[i + 1].replace("|", "").replace(":", "")) <= {"-"}, lines[i + 1]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([cell.strip() for cell in row.strip("|").split("|")])
            assert rows, f"table {header_starts!r} has no rows"
            return rows
    raise AssertionError(f"no table starting {header_starts!r} in:\n{markdown}")


def check_bounds(edge: str, lower95: str, lower99: str) -> None:
    e, l95, l99 = float(edge), float(lower95), float(lower99)
    assert l99 <= l95 <= e, (edge, lower95, lower99)


def test_random_walk_gate_prints_the_gates_and_one_row_per_run() -> None:
    out = run_script("random_walk_gate.py", "--sweep", "small", "--runs", "1", "--detail")
    summary = table(out, "| gate | promoted (of ")
    assert [row[0] for row in summary] == [
        "the old gate, on validation", "this gate at 0.95", "this gate at 0.99"
    ]  # fmt: skip
    trained = int(out.split("promoted (of ")[1].split()[0])
    counts = [int(row[1]) for row in summary]
    assert all(0 <= c <= trained for c in counts) and counts[2] <= counts[1]
    runs = table(out, "| seed | tickers |")
    assert [int(row[0]) for row in runs] == [1000]
    for row in runs:
        if "too little history" not in row[7]:
            assert int(row[7]) > 0
            check_bounds(row[8], row[9], row[10])


def test_ticker_pairs_judges_a_pair_of_the_recorded_tickers() -> None:
    if not (SHARED_DATA / "prices").is_dir():
        pytest.skip(f"recorded prices not found at {SHARED_DATA / 'prices'}")
    out = run_script("ticker_pairs.py", "--pairs", "1")
    summary = table(out, "| gate | pairs promoted (of 1) |")
    assert len(summary) == 3 and all(row[1] in {"0", "1"} for row in summary)
    (row,) = table(out, "| pair | windows |")
    assert row[0] == "AAPL+AMZN" and int(row[1]) == 320  # 60 sessions, 3 folds, 2 tickers
    check_bounds(row[2], row[3], row[4])
    assert row[5] in {"promoted", "refused"}


def test_bootstrap_level_counts_false_edges_of_both_units() -> None:
    out = run_script("bootstrap_level.py", "--trials", "20")
    rows = table(out, "| resampled unit |")
    assert [row[0] for row in rows] == ["blocks of bar times (the gate)", "single bar times"]
    for _, found, share in rows:
        assert 0 <= int(found) <= 20
        assert float(share.rstrip("%")) == pytest.approx(int(found) / 20 * 100, abs=0.05)


def test_torch_threads_times_a_step_at_one_and_two_threads() -> None:
    out = run_script("torch_threads.py", "--batches", "2", "--epochs", "1")
    rows = table(out, "| torch threads | ms per step |")
    assert [row[0] for row in rows] == ["1", "2"]
    assert all(float(ms) > 0 for _, ms in rows)


@pytest.mark.slow  # the Prefect test harness alone starts in 15-30 s here
def test_prefect_task_overhead_compares_mapped_tasks_with_one() -> None:
    out = run_script("prefect_task_overhead.py", "--items", "20", "--repeats", "1")
    rows = table(out, "| flow | task runs |")
    assert [(row[0], row[1]) for row in rows] == [("mapped", "20"), ("one task", "1")]
    mapped, single = (float(row[3]) for row in rows)
    assert mapped > single >= 0  # 20 task runs cost more than one (the one may round to 0.000)
    assert "Cost per extra task run:" in out
