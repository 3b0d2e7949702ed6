"""``model train --kind``: load the universe through the refresh code, train, gate, register.

Each kind has its own registry folder (``<models>/ranking-<kind>``), so a promoted intraday
model and a promoted daily model live side by side, each with its own ``current`` pointer and
its own log of promotion attempts. The gate's confidence is corrected for every attempt of the
kind within ``SENTINEL42_MODEL_GATE_WINDOW_DAYS`` (this one included): retrying until noise
passes does not work.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sentinel42.model.config import RegistryConfig, TrainingConfig
from sentinel42.model.ranking.panel import KINDS, Panel, build_panel
from sentinel42.model.ranking.train import TrainRequest, data_end, train_ranking

if TYPE_CHECKING:
    from sentinel42.model.registry import ModelRegistry
    from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

MODEL_PROMOTED_EVENT = "model_promoted"
MODEL_REFUSED_EVENT = "model_refused"


def registry_for(where: RegistryConfig | Settings, kind: str) -> ModelRegistry:
    """The registry of one kind: ``ranking-<kind>`` under the models location.

    Args:
        where: the registry's config, or the settings it is built from.
    """
    config = where if isinstance(where, RegistryConfig) else RegistryConfig.from_settings(where)
    return config.open(kind)


def attempts_in_window(registry: Any, now: datetime, days: int) -> int:
    """Attempts recorded within ``days`` before ``now``, plus the one about to be made."""
    since = now - timedelta(days=days)
    count = 0
    for entry in registry.decisions():
        try:
            at = datetime.fromisoformat(str(entry.get("at")))
        except ValueError:
            continue
        if at >= since:
            count += 1
    return count + 1


def public(document: dict[str, Any]) -> dict[str, Any]:
    """The JSON document without the in-memory parts (network, raw scores)."""
    return {k: v for k, v in document.items() if not k.startswith("_")}


def train_kind(
    settings: Settings,
    request: TrainRequest,
    *,
    now: datetime,
    as_of: datetime,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Bring the universe's bars up to date, train one kind, gate it and register it.

    ``settings`` is the whole of them: the universe, the store and the news refresh read their
    own parts; the training reads its :class:`~sentinel42.model.config.TrainingConfig`.
    """
    from sentinel42.factory import build_price_source
    from sentinel42.market.universe import load_universe_bars, resolve_universe
    from sentinel42.persistence import open_store

    if request.kind not in KINDS:
        raise ValueError(f"unknown kind {request.kind!r}")
    universe = resolve_universe(settings)
    for line in universe.problems:
        logger.warning("universe: %s", line)
    if progress is not None:
        progress(f"universe: {len(universe.tickers)} tickers; loading {request.kind} bars")
    config = TrainingConfig.from_settings(settings)
    source = build_price_source(settings)
    tickers = list(universe.tickers)
    bars = load_universe_bars(
        settings, tickers, request.kind, as_of, source=source, calendar=config.calendar
    )
    panel = build_panel(bars, request.kind)
    registry = registry_for(config.registry, request.kind)
    attempts = attempts_in_window(registry, now, config.gate_window_days)
    news, news_report = None, None
    if request.kind == "daily":  # the universe's headlines, refreshed and scored, per session
        from sentinel42.model.ranking.news import load_news_features

        news, news_report = load_news_features(settings, panel, as_of, progress)
    document = train_ranking(panel, request, attempts=attempts, news=news, progress=progress)
    if news_report is not None:
        document["data"]["news"] = news_report
    document["data"]["universe_problems"] = list(universe.problems)
    register(registry, document, request, panel, now=now, attempts=attempts)
    with open_store(settings) as store:
        store.record_event(
            MODEL_PROMOTED_EVENT if document["promoted"] else MODEL_REFUSED_EVENT,
            None,
            {"version": document["version"], "kind": request.kind, "reason": document["reason"]},
            now,
        )
    return document


def register(
    registry: Any, document: dict[str, Any], request: TrainRequest, panel: Panel, *,
    now: datetime, attempts: int,
) -> str:  # fmt: skip
    """Save a trained document's network and metadata, log the attempt, promote if it passed.

    Sets ``document["version"]`` and ``document["data_end"]``; returns the version.
    """
    from sentinel42.model.registry import new_version_name
    from sentinel42.model.walk_forward import library_versions

    digest = hashlib.sha256(
        f"{request.kind}|{','.join(panel.tickers)}|{int(panel.ts[-1])}".encode()
    ).hexdigest()
    version = new_version_name(now, digest)
    while version in registry.versions():
        version += "b"
    document["version"] = version
    document["data_end"] = data_end(panel)
    meta = {
        "created_at": now.isoformat(),
        "ranking": {
            "kind": request.kind, "horizon": request.horizon, "target": request.target,
            "window": document["window"], "features": document["features"],
            "feature_version": 1, "context": document["_context"],
            "hidden_size": request.hidden_size,
        },
        "tickers": list(panel.tickers),
        "data_end": document["data_end"],
        "report": public(document),
        "libraries": library_versions(),
        "promotion": {"promoted": document["promoted"], "reason": document["reason"]},
    }  # fmt: skip
    registry.save(version, document["_network"], meta)
    registry.record_decision(
        {"version": version, "kind": request.kind, "promoted": document["promoted"],
         "reason": document["reason"], "attempts": attempts},
        now,
    )  # fmt: skip
    if document["promoted"]:
        registry.promote(version)
        logger.info("%s model %s promoted: %s", request.kind, version, document["reason"])
    else:
        logger.warning("%s model %s not promoted: %s", request.kind, version, document["reason"])
    return version
