"""Helpers shared by test modules in different folders (fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys

RUN_CLI = "from sentinel42.cli import main; main()"


def run_cli(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``sentinel42 *args`` in a fresh interpreter with exactly ``env``; its exit status and
    captured text (a non-zero status is returned, not raised)."""
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
