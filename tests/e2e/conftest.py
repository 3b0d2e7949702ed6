"""The Prefect stack the end-to-end tests start the way a user does.

An environment of its own (a free port, a temporary data folder, none of the caller's
``SENTINEL42_*`` or ``PREFECT_*`` settings), a generated replay set, then
scripts/start_prefect.sh and, whatever happens, scripts/stop_prefect.sh.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TICKERS = ["AAPL", "MSFT", "NVDA"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def stack_env(base: Path, port: int, **extra: str) -> dict[str, str]:
    """The stack's environment: data and replay set under ``base``, the API on ``port``, the
    metrics on another free port, no analytics and no hub; ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTINEL42_", "PREFECT_"))}
    env |= {
        "SENTINEL42_DATA_DIR": str(base / "data"),
        "SENTINEL42_DATA_SOURCE": "replay",
        "SENTINEL42_REPLAY_DIR": str(base / "replay"),
        "SENTINEL42_TICKERS": ",".join(TICKERS),
        "SENTINEL42_PREFECT_PORT": str(port),
        "SENTINEL42_METRICS_PORT": str(_free_port()),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
    }
    return env | extra


def generate_replay_set(base: Path, env: dict[str, str]) -> None:
    """The seeded replay set in ``base / "replay"``: 12 sessions ending 2026-11-25."""
    gen = _run(
        [
            str(ROOT / ".venv/bin/sentinel42"),
            "replay",
            "generate",
            "--out",
            str(base / "replay"),
            "--end",
            "2026-11-25",
            "--sessions",
            "12",
            "--json",
        ],
        env,
        120,
    )
    assert gen.returncode == 0, gen.stderr


@contextmanager
def prefect_stack(
    env: dict[str, str], *, stop_timeout: float = 120
) -> Iterator[tuple[subprocess.CompletedProcess[str], float]]:
    """scripts/start_prefect.sh (server, pool, deployments, worker); yields its output and how
    long it took. scripts/stop_prefect.sh runs on the way out, also when the start failed."""
    t0 = time.monotonic()
    started = _run(["bash", "scripts/start_prefect.sh"], env, 300)
    startup_s = time.monotonic() - t0
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield started, startup_s
    finally:
        stopped = _run(["bash", "scripts/stop_prefect.sh"], env, stop_timeout)
        print(stopped.stdout, stopped.stderr)


def expected_action(inputs: dict[str, Any]) -> str:
    """The action docs/decisions.md's bands give a first decision (a flat position) for the
    fused score and thresholds it recorded: BUY at ``fused >= buy``, SELL at ``fused <= sell``,
    HOLD between, and HOLD when nothing carried evidence."""
    assert inputs["previous_position"] == "flat", inputs
    fused, bands = inputs["fused"], inputs["thresholds"]
    if not inputs["evidence"]:
        return "HOLD"
    return "BUY" if fused >= bands["buy"] else "SELL" if fused <= bands["sell"] else "HOLD"
