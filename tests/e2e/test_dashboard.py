"""The dashboard as a person sees it: a real server and worker, then headless Chromium.

A forced trading run and two validate runs go through the deployments (replay mode); Chromium
then opens the runs' pages in Prefect's UI and the test reads the rendered DOM over the DevTools
protocol: the artifacts are listed on the run's page, the decisions table is drawn, and each
chart is an ``<img>`` that actually decoded (``naturalWidth > 0``), in the v2 UI (the default)
and the v1 UI. Skipped where Debian's ``chromium`` is missing (CI installs it in ``.ci/run``).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import test_prefect_end_to_end as base
from tests.e2e.test_prefect_end_to_end import ROOT, TICKERS, _run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium not installed (apt-get install chromium; CI's .ci/run does)",
    ),
]
PREFECT = str(ROOT / ".venv/bin/prefect")
EARLIER = "2026-11-25T19:00:00+00:00"  # 14:00 New York on the replay's last session
# Flags that work offline, as root, without a GPU or a display.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2000",
]
IMAGE_LOADED = """(() => {
  const img = [...document.images].find(i => i.src.startsWith('data:image/png;base64,'));
  if (!img || !img.complete || img.naturalWidth === 0) return null;
  return {natural: img.naturalWidth, shown: Math.round(img.getBoundingClientRect().width),
          text: document.body.innerText};
})()"""

# The same server, pool, deployments and worker fixture as the main end-to-end test (its own
# instance: module scope), so both always start the system the way a user does.
system = base.system


class Chromium:
    """Headless Chromium driven over the DevTools protocol (the ``websockets`` Prefect uses)."""

    def __init__(self, binary: str) -> None:
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="sentinel42-chromium-")
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its renderers share our group: one signal stops them all
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            assert self.process.poll() is None, "Chromium exited at start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(p for p in pages if p["type"] == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        request = next(self.ids)
        self.socket.send(json.dumps({"id": request, "method": method, "params": params}))
        while True:  # events may come first; the reply carries our id
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == request:
                assert "error" not in message, message
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def open(self, url: str, ready: str, timeout: float = 60) -> Any:
        """Navigate, then poll the JavaScript ``ready`` until it holds on two polls a second
        apart (the UI re-renders as its queries land); returns its value."""
        self.call("Page.navigate", url=url)
        path = json.dumps(httpx.URL(url).path)
        deadline = time.monotonic() + timeout
        held = False
        while time.monotonic() < deadline:
            value = self.evaluate(f"location.pathname === {path} && ({ready})")
            if value and held:
                return value
            held = bool(value)
            time.sleep(1.0 if held else 0.25)
        text = self.evaluate("document.body && document.body.innerText")
        raise AssertionError(f"{url}: not ready after {timeout} s ({ready}); page text: {text}")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot")["data"]))

    def close(self) -> None:
        self.socket.close()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    assert CHROMIUM is not None
    chromium = Chromium(CHROMIUM)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def runs(system) -> dict[str, Any]:
    """Two forced trading runs (an hour apart on the replay clock), then two validate runs.

    The first trading run decides the 14:45 bar; the second, at the data's end, refreshes the
    bars that score it and has a previous run to compare with. Two validate runs give the
    ``validate-report`` key a history.
    """
    env = system["env"]
    # Only these runs: a scheduled refresh would compete for the two cores meanwhile.
    paused = _run([PREFECT, "deployment", "schedule", "pause", "--all"], env, 60)
    assert paused.returncode == 0, paused.stdout + paused.stderr
    earlier = ["--job-variable", "env=" + json.dumps({"SENTINEL42_REPLAY_AS_OF": EARLIER})]
    out: dict[str, Any] = {"trading": [], "validate": []}
    t0 = time.monotonic()
    for name, extra in (
        ("trading-flow/trading-production", earlier),
        ("trading-flow/trading-production", []),
        ("validate-flow/validate-production", []),
        ("validate-flow/validate-production", []),
    ):
        args = [PREFECT, "deployment", "run", name, "--param", "force=true", *extra, "--watch"]
        run = _run([*args, "--watch-timeout", "400"], env, 450)
        assert run.returncode == 0 and "Completed" in run.stdout, run.stdout + run.stderr
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
        assert run_id, run.stdout
        out[name.split("-")[0]].append(run_id.group(1))
    out["runs_s"] = time.monotonic() - t0
    return out


def _artifacts(env: dict[str, str], flow_run_id: str) -> dict[str, dict[str, Any]]:
    """The run's keyed artifacts by key, from the API."""
    reply = httpx.post(
        f"{env['PREFECT_API_URL']}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
        timeout=30,
    )
    reply.raise_for_status()
    return {a["key"]: a for a in reply.json() if a.get("key")}


def _ui(env: dict[str, str]) -> str:
    return env["PREFECT_API_URL"].removesuffix("/api")


def test_trading_run_page_shows_the_decisions_table_and_the_chart(
    system, runs, browser, tmp_path_factory
):
    env, shots = system["env"], tmp_path_factory.mktemp("screenshots")
    first, latest = runs["trading"]
    artifacts = _artifacts(env, latest)
    assert {"trading-decisions", "trading-summary"} <= set(artifacts), sorted(artifacts)
    ui = _ui(env)

    t0 = time.monotonic()
    # The run's page lists its artifacts as cards (links), each with its description.
    cards = browser.open(
        f"{ui}/v2/runs/flow-run/{latest}?tab=Artifacts",
        "document.body.innerText.includes('Simulated paper trading') && "
        "[...document.querySelectorAll('a[href*=\"/artifacts/artifact/\"]')]"
        ".map(a => a.getAttribute('href')).join(' ')",
    )
    for key in ("trading-decisions", "trading-summary"):
        assert f"/v2/artifacts/artifact/{artifacts[key]['id']}" in cards
    browser.screenshot(shots / "trading-run.png")

    rows = browser.open(
        f"{ui}/v2/artifacts/artifact/{artifacts['trading-decisions']['id']}",
        "[...document.querySelectorAll('[data-testid=\"table-display\"] tbody tr')]"
        ".map(r => [...r.cells].map(c => c.innerText.trim())).filter(r => r.length > 2)",
    )
    header = browser.evaluate(
        "[...document.querySelectorAll('[data-testid=\"table-display\"] thead th')]"
        ".map(c => c.innerText.trim())"
    )
    table = [dict(zip(header, row, strict=True)) for row in rows]
    assert sorted(r["ticker"] for r in table) == TICKERS, table
    # The page shows what the run stored: each ticker's action, and a reason that starts with it.
    args = [str(ROOT / ".venv/bin/sentinel42"), "decisions", "--all-revisions", "--json"]
    found = json.loads(_run([*args, "--limit", "100"], env, 60).stdout)
    stored = {r["ticker"]: r["action"] for r in found if r["run_id"] == f"flow-{latest}"}
    assert {r["ticker"]: r["action"] for r in table} == stored, (table, found)
    assert all(r["reason"].startswith(f"{r['action']}: ") for r in table), table

    summary = f"/artifacts/artifact/{artifacts['trading-summary']['id']}"
    for version, url in (("v2", f"{ui}/v2{summary}"), ("v1", f"{ui}{summary}")):
        shown = browser.open(url, IMAGE_LOADED)
        browser.screenshot(shots / f"trading-summary-{version}.png")
        assert shown["natural"] == 800, shown  # the PNG decoded in the page
        assert shown["shown"] >= 400, shown  # and is drawn at a readable width
        for heading in ("Trading run as of", "Decisions", "Paper portfolio", "Data freshness"):
            assert heading in shown["text"], (version, shown["text"])
        for ticker in TICKERS:
            assert ticker in shown["text"]
        assert f"Against run flow-{first}" in shown["text"]  # what changed since the last run
    print(
        f"2 trading and 2 validate runs {runs['runs_s']:.1f} s; pages checked in "
        f"{time.monotonic() - t0:.1f} s; screenshots in {shots}"
    )


def test_validate_report_renders_with_its_chart_and_keeps_a_history(
    system, runs, browser, tmp_path_factory
):
    env, shots = system["env"], tmp_path_factory.mktemp("screenshots")
    newest = runs["validate"][-1]
    artifacts = _artifacts(env, newest)
    assert "validate-report" in artifacts, sorted(artifacts)
    ui = _ui(env)
    cards = browser.open(
        f"{ui}/v2/runs/flow-run/{newest}?tab=Artifacts",
        "document.querySelector('a[href*=\"/artifacts/artifact/\"]') && document.body.innerText",
    )
    assert "validate-report" in cards

    shown = browser.open(
        f"{ui}/v2/artifacts/artifact/{artifacts['validate-report']['id']}", IMAGE_LOADED
    )
    browser.screenshot(shots / "validate-report.png")
    assert shown["natural"] == 800 and shown["shown"] >= 400, shown
    for heading in ("Validation as of", "Decisions by action", "Each signal alone", "Model health"):
        assert heading in shown["text"], shown["text"]
    # The first trading run's decisions (one per ticker) had their horizon pass by the second.
    scored = re.search(r"(\d+) decisions scored \(0 new this run\)", shown["text"])
    assert scored and int(scored.group(1)) >= len(TICKERS), shown["text"]
    assert "Trend by session" in shown["text"]

    rows = browser.open(
        f"{ui}/v2/artifacts/key/validate-report",
        "document.querySelectorAll('[data-testid^=\"timeline-row-\"]').length >= 2 && "
        "document.querySelectorAll('[data-testid^=\"timeline-row-\"]').length",
    )
    assert rows == len(runs["validate"])  # one version per validate run: the trend's history
