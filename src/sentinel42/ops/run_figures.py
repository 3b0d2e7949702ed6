"""Flow-run figures read from the Prefect API over plain HTTP, inside a time budget.

The exporter calls :func:`read_runs` at scrape time. It uses ``httpx`` against the REST API
(``POST /flow_runs/filter`` and friends) rather than Prefect's client: no Prefect import in the
exporter, no ephemeral server started when ``PREFECT_API_URL`` is missing, and every request's
timeout taken from one deadline, so a slow server cannot stall a scrape.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

PAGE = 200  # the server's default (and maximum) page size
MAX_PAGES = 10  # at most 2,000 finished runs per window: enough for one watchlist's schedules
FINAL_TYPES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
ACTIVE_NAMES = ("Pending", "Running", "Retrying", "AwaitingRetry", "Late", "Cancelling", "Paused")
# Every deployment gets these series, zero when no run ended so: an alert rule comparing with
# 15 minutes ago then sees the first failure too.
ALWAYS_REPORTED = (
    ("Completed", "COMPLETED"),
    ("Failed", "FAILED"),
    ("TimedOut", "FAILED"),
    ("Crashed", "CRASHED"),
)


class PrefectUnavailable(Exception):
    """The Prefect API did not answer in time, or answered with an error."""


@dataclass
class DeploymentRuns:
    """One deployment's runs: those that ended within the window, and those active now."""

    deployment: str
    flow: str
    final: Counter[tuple[str, str]] = field(default_factory=Counter)  # (state name, type) -> runs
    retried: int = 0  # ended runs that took more than one attempt (run_count > 1)
    last_duration: float | None = None  # seconds, of the run that ended last
    max_duration: float | None = None
    last_end: datetime | None = None
    last_success: datetime | None = None  # end of the newest Completed run
    active: Counter[str] = field(default_factory=Counter)  # state name -> runs


@dataclass(frozen=True)
class RunsSnapshot:
    """Flow runs per deployment (key ``(flow, deployment)``; ad hoc runs have deployment "")."""

    window: timedelta
    deployments: dict[tuple[str, str], DeploymentRuns]
    truncated: bool  # more finished runs than MAX_PAGES pages: the oldest were not read


class _Budget:
    def __init__(self, client: httpx.Client, api_url: str, seconds: float) -> None:
        self.client = client
        self.api_url = api_url.rstrip("/")
        self.deadline = time.monotonic() + seconds

    def post(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        left = self.deadline - time.monotonic()
        if left <= 0.05:
            raise PrefectUnavailable("out of time before the last request")
        try:
            response = self.client.post(f"{self.api_url}{path}", json=body, timeout=left)
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PrefectUnavailable(f"POST {path}: {exc}") from exc
        if not isinstance(data, list):
            raise PrefectUnavailable(f"POST {path}: expected a list, got {type(data).__name__}")
        return data


def _when(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _duration(run: dict[str, Any]) -> float | None:
    total = run.get("total_run_time")
    if isinstance(total, int | float) and total > 0:
        return float(total)
    start, end = _when(run.get("start_time")), _when(run.get("end_time"))
    return (end - start).total_seconds() if start and end else None


def _headers(auth_string: str | None) -> dict[str, str]:
    if not auth_string:
        return {}
    token = base64.b64encode(auth_string.encode()).decode()
    return {"Authorization": f"Basic {token}"}


def read_runs(
    api_url: str,
    *,
    now: datetime,
    window: timedelta,
    timeout: float,
    auth_string: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> RunsSnapshot:
    """Read deployments and flow runs from the Prefect API.

    Args:
        api_url: The API root, e.g. ``http://127.0.0.1:4200/api``.
        now: The end of the window (tz-aware).
        window: Finished runs whose ``end_time`` is after ``now - window`` are counted.
        timeout: Seconds for all requests together.
        auth_string: ``user:password`` for a server behind ``PREFECT_API_AUTH_STRING``.
        transport: An ``httpx`` transport (tests).

    Raises:
        PrefectUnavailable: The server did not answer in time or answered with an error.
    """
    with httpx.Client(headers=_headers(auth_string), transport=transport) as client:
        api = _Budget(client, api_url, timeout)
        flows = {f["id"]: f.get("name", "") for f in api.post("/flows/filter", {"limit": PAGE})}
        deployments = {
            d["id"]: (flows.get(d.get("flow_id"), ""), d.get("name", ""))
            for d in api.post("/deployments/filter", {"limit": PAGE})
        }
        out = {key: DeploymentRuns(deployment=key[1], flow=key[0]) for key in deployments.values()}

        def slot(run: dict[str, Any]) -> DeploymentRuns:
            key = deployments.get(run.get("deployment_id"), (flows.get(run.get("flow_id"), ""), ""))
            return out.setdefault(key, DeploymentRuns(deployment=key[1], flow=key[0]))

        finished_filter = {
            "end_time": {"after_": (now - window).isoformat()},
            "state": {"type": {"any_": list(FINAL_TYPES)}},
        }
        truncated = False
        for page in range(MAX_PAGES):
            runs = api.post(
                "/flow_runs/filter",
                {
                    "flow_runs": finished_filter,
                    "sort": "END_TIME_DESC",
                    "limit": PAGE,
                    "offset": page * PAGE,
                },
            )
            for run in runs:  # newest end first
                _add_finished(slot(run), run)
            if len(runs) < PAGE:
                break
        else:
            truncated = True
        active_filter = {"state": {"name": {"any_": list(ACTIVE_NAMES)}}}
        for run in api.post("/flow_runs/filter", {"flow_runs": active_filter, "limit": PAGE}):
            slot(run).active[str(run.get("state_name") or "")] += 1
    return RunsSnapshot(window=window, deployments=out, truncated=truncated)


def _add_finished(d: DeploymentRuns, run: dict[str, Any]) -> None:
    name = str(run.get("state_name") or "")
    kind = str(run.get("state_type") or "")
    d.final[(name, kind)] += 1
    if int(run.get("run_count") or 0) > 1:
        d.retried += 1
    duration = _duration(run)
    end = _when(run.get("end_time"))
    if d.last_end is None and end is not None:  # the first one seen ended last
        d.last_end, d.last_duration = end, duration
    if duration is not None:
        d.max_duration = max(d.max_duration or 0.0, duration)
    if kind == "COMPLETED" and end is not None and (d.last_success is None or end > d.last_success):
        d.last_success = end
