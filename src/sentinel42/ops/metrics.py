"""Prometheus exporter: Sentinel42's state read from the store and the Prefect API at scrape time.

A process worker starts a fresh process per flow run, so an exporter inside a run would die with
it. This one is long-lived (``sentinel42 metrics serve``, started by ``make prefect-start`` and the
``sentinel42-metrics`` systemd unit) and holds no state of its own: every scrape reads the store,
the model registry, the backups folder and Prefect. When Prefect does not answer within its time
budget, ``sentinel42_prefect_up`` is 0 and the other families are still served.

The families are listed in docs/operations.md ("Metrics").
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from sentinel42.ops.run_figures import ALWAYS_REPORTED, PrefectUnavailable, read_runs
from sentinel42.persistence import housekeeping, score_ledger

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from sentinel42.persistence.store import Store
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

PREFIX = "sentinel42_"
ACTION_VALUE = {"BUY": 1.0, "HOLD": 0.0, "SELL": -1.0}
BACKUP_GLOB = "sentinel42-*.db"
DEFAULT_PREFECT_API_URL = "http://127.0.0.1:4200/api"
_RUN_LABELS = ["deployment", "flow"]


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def _age(now: datetime, then: datetime | None) -> float:
    return math.inf if then is None else (now - then).total_seconds()


class SentinelCollector(Collector):
    """Reads everything at :meth:`collect`; scrapes are serialized by a lock.

    Args:
        store: The open store (read only).
        settings: Watchlist, interval, data and model folders, validation window.
        prefect_api_url: The Prefect API root, e.g. ``http://127.0.0.1:4200/api``.
        prefect_timeout: Seconds all Prefect requests of one scrape may take together.
        runs_window: Finished flow runs are counted over this lookback.
        prefect_auth: ``user:password`` when the server sits behind basic auth.
        clock: Returns the scrape time (tz-aware); the wall clock by default.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        prefect_api_url: str = DEFAULT_PREFECT_API_URL,
        prefect_timeout: float = 4.0,
        runs_window: timedelta = timedelta(hours=24),
        prefect_auth: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.prefect_api_url = prefect_api_url
        self.prefect_timeout = prefect_timeout
        self.runs_window = runs_window
        self.prefect_auth = prefect_auth
        self.clock = clock
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []  # no collect() at registration: a scrape reads the store and Prefect

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self.clock()
            took = _gauge(
                "scrape_duration_seconds", "Seconds this scrape spent per part.", ["part"]
            )
            for part, read in (
                ("store", self._store_metrics),
                ("model", self._model_metrics),
                ("backups", self._backup_metrics),
                ("prefect", self._prefect_metrics),
            ):
                started = time.perf_counter()
                yield from read(now)
                took.add_metric([part], time.perf_counter() - started)
            yield took

    # --- the store ------------------------------------------------------------------------------
    def _store_metrics(self, now: datetime) -> list[Metric]:
        up = _gauge("store_up", "1 when the store answered this scrape.")
        try:
            families = self._read_store(now)
        except Exception:  # a scrape must still answer; the log says why
            logger.exception("reading the store failed")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    def _read_store(self, now: datetime) -> list[Metric]:
        s, tickers = self.settings, self.settings.tickers
        bars = _gauge(
            "bar_age_seconds",
            f"Seconds since the newest stored {s.interval} bar of the ticker started "
            "(+Inf: none stored).",
            ["ticker"],
        )
        for ticker, ts in self.store.newest_bar_ts(tickers, s.interval).items():
            bars.add_metric([ticker], _age(now, ts))
        news = _gauge(
            "headline_age_seconds",
            "Seconds since the newest stored headline about the ticker was published "
            "(+Inf: none stored).",
            ["ticker"],
        )
        for ticker, ts in self.store.newest_headline_ts(tickers).items():
            news.add_metric([ticker], _age(now, ts))
        rows = _gauge("store_rows", "Rows stored in the pruned tables.", ["table"])
        for table, n in housekeeping.row_counts(self.store).items():
            rows.add_metric([table], n)
        scored = _gauge("headlines_scored", "Headline scores stored, by scorer.", ["scorer"])
        for name, n in sorted(housekeeping.scores_by_scorer(self.store).items()):
            scored.add_metric([name], n)
        scorer = InfoMetricFamily(
            PREFIX + "sentiment_scorer", "The scorer of the most recently stored headline score."
        )
        newest = housekeeping.newest_scorer(self.store)
        if newest is not None:
            scorer.add_metric([], {"scorer": newest[0], "revision": newest[1]})
        return [bars, news, rows, scored, scorer, *self._decisions(now)]

    def _decisions(self, now: datetime) -> list[Metric]:
        by_action = _gauge("decisions", "Standing decisions stored, by action.", ["action"])
        counts = housekeeping.decisions_by_action(self.store)
        for name in ACTION_VALUE:
            by_action.add_metric([name], counts.get(name, 0))
        action = _gauge(
            "last_decision_action",
            "The ticker's newest standing decision: BUY 1, HOLD 0, SELL -1 (also as a label).",
            ["ticker", "action"],
        )
        confidence = _gauge(
            "last_decision_confidence", "Confidence of that decision, 0 to 1.", ["ticker"]
        )
        age = _gauge(
            "last_decision_age_seconds", "Seconds since that decision's bar started.", ["ticker"]
        )
        for ticker, d in sorted(
            housekeeping.last_decisions(self.store, self.settings.tickers).items()
        ):
            action.add_metric([ticker, d.action], ACTION_VALUE.get(d.action, math.nan))
            confidence.add_metric([ticker], d.confidence)
            age.add_metric([ticker], _age(now, d.bar_ts))
        return [by_action, action, confidence, age]

    # --- the model ------------------------------------------------------------------------------
    def _model_metrics(self, now: datetime) -> list[Metric]:
        from sentinel42.model.storage import open_registry

        info = InfoMetricFamily(PREFIX + "model", "The promoted model version (absent: none).")
        stored = _gauge("models_stored", "Model versions in the registry.")
        figures = {
            "validated_accuracy": "Accuracy the promotion gate validated (test block), 0 to 1.",
            "edge": "Validated accuracy minus the best baseline's.",
            "live_hit_rate": "Hit rate of the model's signal over its newest scored decisions.",
            "live_signals": "Scored decisions behind the live hit rate (at most validate_window).",
            "degraded": "1 when validation marked the model degraded (its weight is then 0).",
        }
        gauges = {k: _gauge(f"model_{k}", doc, ["version"]) for k, doc in figures.items()}
        try:
            registry = open_registry(self.settings.models_location)
            stored.add_metric([], len(registry.versions()))
            version = registry.current_version()
            if version is not None:
                values = self._model_values(registry.metadata(version), version)
                info.add_metric([], {"version": version})
                for key, value in values.items():
                    if value is not None:
                        gauges[key].add_metric([version], value)
        except Exception:
            logger.exception("reading the model registry failed")
        return [info, stored, *gauges.values()]

    def _model_values(self, meta: dict[str, Any], version: str) -> dict[str, float | None]:
        gate = meta.get("gate") or {}
        accuracy = gate.get("model_accuracy")
        if accuracy is None:  # checkpoints from before the gate record
            accuracy = meta.get("metrics", {}).get("test", {}).get("model", {}).get("accuracy")
        health = score_ledger.model_health(self.store, version)
        if health is not None and health.validated_accuracy is not None:
            accuracy = health.validated_accuracy
        hits, n = score_ledger.recent_model_hits(self.store, version, self.settings.validate_window)
        return {
            "validated_accuracy": None if accuracy is None else float(accuracy),
            "edge": None if gate.get("edge") is None else float(gate["edge"]),
            "live_hit_rate": hits / n if n else None,
            "live_signals": float(n),
            "degraded": float(bool(health and health.degraded)),
        }

    # --- backups --------------------------------------------------------------------------------
    def _backup_metrics(self, now: datetime) -> list[Metric]:
        count = _gauge(
            "backups", f"Backups ({BACKUP_GLOB}) in the backups folder (SENTINEL42_BACKUP_DIR)."
        )
        age = _gauge("backup_age_seconds", "Seconds since the newest backup was written.")
        folder = self.settings.backups_dir
        stamps = [p.stat().st_mtime for p in folder.glob(BACKUP_GLOB)] if folder.is_dir() else []
        count.add_metric([], len(stamps))
        if stamps:
            age.add_metric([], max(0.0, now.timestamp() - max(stamps)))
        return [count, age]

    # --- Prefect --------------------------------------------------------------------------------
    def _prefect_metrics(self, now: datetime) -> list[Metric]:
        up = _gauge("prefect_up", "1 when the Prefect API answered this scrape in time.")
        try:
            snap = read_runs(
                self.prefect_api_url,
                now=now,
                window=self.runs_window,
                timeout=self.prefect_timeout,
                auth_string=self.prefect_auth,
            )
        except PrefectUnavailable as exc:
            logger.warning("Prefect API unavailable: %s", exc)
            up.add_metric([], 0)
            return [up]
        except Exception:  # an unexpected answer must not fail the whole scrape
            logger.exception("reading flow runs from the Prefect API failed")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        hours = f"{self.runs_window.total_seconds() / 3600:g} h"
        window = _gauge("flow_runs_window_seconds", "Lookback of the flow-run figures.")
        window.add_metric([], self.runs_window.total_seconds())
        final = _gauge(
            "flow_runs",
            f"Flow runs that ended in the last {hours}, by deployment and final state.",
            [*_RUN_LABELS, "state", "state_type"],
        )
        retried = _gauge(
            "flow_runs_retried",
            f"Flow runs that ended in the last {hours} after more than one attempt.",
            _RUN_LABELS,
        )
        active = _gauge(
            "flow_runs_active", "Flow runs not finished, by state.", [*_RUN_LABELS, "state"]
        )
        last = _gauge(
            "flow_run_last_duration_seconds", "Run time of the run that ended last.", _RUN_LABELS
        )
        longest = _gauge(
            "flow_run_max_duration_seconds",
            f"Longest run time among runs that ended in the last {hours}.",
            _RUN_LABELS,
        )
        success = _gauge(
            "flow_run_last_success_timestamp_seconds",
            f"Unix time the newest Completed run ended (absent: none in the last {hours}).",
            _RUN_LABELS,
        )
        for (flow, deployment), d in sorted(snap.deployments.items()):
            labels = [deployment, flow]
            states = dict.fromkeys(ALWAYS_REPORTED, 0) if deployment else {}
            states.update(d.final)
            for (name, kind), n in sorted(states.items()):
                final.add_metric([*labels, name, kind], n)
            retried.add_metric(labels, d.retried)
            for name, n in sorted(d.active.items()):
                active.add_metric([*labels, name], n)
            if d.last_duration is not None:
                last.add_metric(labels, d.last_duration)
            if d.max_duration is not None:
                longest.add_metric(labels, d.max_duration)
            if d.last_success is not None:
                success.add_metric(labels, d.last_success.timestamp())
        return [up, window, final, retried, active, last, longest, success]


def build_registry(collector: SentinelCollector) -> CollectorRegistry:
    """A registry with only Sentinel42's collector (no process metrics of the exporter)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


@contextmanager
def exporter(
    collector: SentinelCollector, host: str, port: int
) -> Iterator[tuple[WSGIServer, int]]:
    """Serve ``/metrics`` on ``host:port`` (port 0: a free one) in a daemon thread.

    Yields:
        The server and the port it listens on; it is shut down on exit.
    """
    server, thread = start_http_server(port, addr=host, registry=build_registry(collector))
    try:
        yield server, int(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    prefect_api_url: str,
    runs_window: timedelta = timedelta(hours=24),
    prefect_timeout: float = 4.0,
) -> None:
    """Run the exporter until SIGTERM or SIGINT (``sentinel42 metrics serve``).

    Raises:
        OSError: The address is taken or cannot be bound.
    """
    from sentinel42.persistence import open_store

    if host not in ("127.0.0.1", "::1", "localhost"):
        logger.warning("the exporter listens on %s, not loopback: put it behind a firewall", host)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with open_store(settings) as store:
        collector = SentinelCollector(
            store,
            settings,
            prefect_api_url=prefect_api_url,
            prefect_timeout=prefect_timeout,
            runs_window=runs_window,
            prefect_auth=os.environ.get("PREFECT_API_AUTH_STRING") or None,
        )
        with exporter(collector, host, port) as (_, bound):
            logger.info(
                "serving metrics on http://%s:%d/metrics (Prefect API %s)",
                host,
                bound,
                prefect_api_url,
            )
            stop.wait()
    logger.info("metrics exporter stopped")
