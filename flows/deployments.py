"""Register Sentinel42's deployments on the ``sentinel-pool`` process work pool.

    PREFECT_API_URL=http://127.0.0.1:4200/api uv run python flows/deployments.py

Creates the work pool first when it is missing. Idempotent: running it again updates the
deployments in place (same names), so only what changed changes. It records this checkout's
absolute path as the code source and its interpreter as the flow-run command; run it again if
the checkout moves (``make prefect-start`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from prefect import flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron, Interval, Schedule

from sentinel42.market.calendar import trading_cron
from sentinel42.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
# The interpreter registering the deployments is the checkout's environment (the start script
# and the systemd unit run this file with it).
ENGINE_COMMAND = shlex.join([sys.executable, "-m", "prefect.engine"])
POOL = "sentinel-pool"
TIMEZONE = "America/New_York"
# 20 minutes after a regular (16:00) or early (13:00) close; the flow's gate runs only the one
# that follows that day's close.
VALIDATE_CRON = "20 13,16 * * 1-5"


@dataclass(frozen=True)
class Spec:
    flow_function: str
    name: str
    schedules: tuple[Schedule, ...]
    description: str
    concurrency_limit: int = 1
    # What a run that fires while the last one still runs does: the frequent scheduled
    # deployments drop it (the next one comes soon), so nothing queues without bound.
    collision: ConcurrencyLimitStrategy = ConcurrencyLimitStrategy.ENQUEUE


def specs(training_cron: str, trading_cron: str, backup_cron: str = "45 18 * * *") -> list[Spec]:
    return [
        Spec(
            "data_refresh_flow",
            "data-refresh-production",
            (Interval(240),),
            "Every 4 minutes: prices, news and sentiment for the watchlist.",
            collision=ConcurrencyLimitStrategy.CANCEL_NEW,
        ),
        Spec(
            "trading_flow",
            "trading-production",
            (Cron(trading_cron, timezone=TIMEZONE),),
            f"A few minutes after each bar ends ({trading_cron}, New York), gated by the NYSE "
            "calendar (--param force=true decides now): refresh, predict, fuse, decide.",
            collision=ConcurrencyLimitStrategy.CANCEL_NEW,
        ),
        Spec(
            "full_system_flow",
            "full-system-production",
            (),
            "Manual bootstrap: full refresh, a model if none, a first forced decision.",
        ),
        Spec(
            "validate_flow",
            "validate-production",
            (Cron(VALIDATE_CRON, timezone=TIMEZONE),),
            "Daily 20 minutes after the NYSE close (13:20 on early closes): score past "
            "decisions against what the price did next; zero a decaying model's weight.",
        ),
        Spec(
            "backup_flow",
            "backup-production",
            (Cron(backup_cron, timezone=TIMEZONE),),
            "Daily: back up the store, the model registry and Prefect's database (the newest "
            "SENTINEL42_BACKUP_KEEP kept), then prune data past its retention.",
        ),
        Spec(
            "model_training_flow",
            "model-training-production",
            (Cron(training_cron, timezone=TIMEZONE),),
            "Weekly after the close: the intraday and the daily ranking model, each promoted only "
            "through its gate; a ranking-<kind> report artifact each.",
        ),
    ]


def ensure_pool(pool: str = POOL) -> str:
    """Create the ``process`` work pool unless it exists; says which."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            return f"work pool {pool} created"
    if found.type != "process":
        raise SystemExit(f"error: work pool {pool} exists with type {found.type!r}, not 'process'")
    return f"work pool {pool} exists"


def deploy_all(pool: str = POOL) -> list[str]:
    """Create or update every deployment; returns their full names."""
    settings = load_settings(require_replay_dir=False)
    names = []
    cron = trading_cron(settings.interval_minutes, settings.trading_delay_minutes)
    for spec in specs(settings.model_training_cron, cron, settings.backup_cron):
        source = flow.from_source(
            source=str(ROOT), entrypoint=f"flows/sentinel_flows.py:{spec.flow_function}"
        )
        # deploy() prints a table per deployment; one line each (below) says the same.
        with contextlib.redirect_stdout(io.StringIO()):
            source.deploy(
                name=spec.name,
                work_pool_name=pool,
                schedules=list(spec.schedules),
                description=spec.description,
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=spec.concurrency_limit, collision_strategy=spec.collision
                ),
                tags=["sentinel42"],
                # One process per run: with no command set, Prefect 3.9's process worker starts
                # a workspace-resolver process for the pull step and then the engine in a second
                # one, paying Python's and Prefect's imports twice (about 2 s a run here).
                job_variables={"command": ENGINE_COMMAND},
                build=False,
                push=False,
                print_next_steps=False,
                ignore_warnings=True,
            )
        names.append(f"{source.name}/{spec.name}")
    return names


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=POOL, help="work pool name (default: sentinel-pool)")
    args = parser.parse_args()
    print(ensure_pool(args.pool))
    for name in deploy_all(args.pool):
        print(f"deployed {name}")
