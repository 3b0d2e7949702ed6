"""Sentinel42's alerts: Prefect automations, evaluated and acted on by the Prefect server.

:func:`automations` says what each alert watches and what it sends; :func:`install` puts them on
the server. Every name starts with ``sentinel42-``. ``install`` reads the automations by name
first and creates, updates or leaves each one, so a second install changes nothing and never
duplicates. An alert an operator disabled stays disabled. The notices go out through the blocks
saved by :mod:`sentinel42.ops.notify`; with no channel configured the automations are installed
all the same (their firings show in the UI's event feed).

Messages are Jinja templates the server renders: ``flow``, ``flow_run`` and ``deployment`` come
from the triggering event's resources, ``event.payload`` from Sentinel42's own events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.automations import (
    AutomationCore,
    ChangeFlowRunState,
    DoNothing,
    EventTrigger,
    Posture,
    SendNotification,
)
from prefect.client.schemas.objects import StateType

from sentinel42.events import (
    DECISION_ACTIONABLE_EVENT,
    MODEL_DEGRADED_EVENT,
    MODEL_RECOVERED_EVENT,
    MODEL_REFUSED_EVENT,
    NO_DATA_EVENT,
)
from sentinel42.ops.notify import Channel, save_channels
from sentinel42.settings import Settings

logger = logging.getLogger(__name__)

TAG = "sentinel42"  # every Sentinel42 deployment carries it (flows/deployments.py)
DATA_REFRESH_DEPLOYMENT = "data-refresh-production"
# Deployments that run every few minutes or daily: a run of theirs still going after
# alert_run_minutes holds up the next one. Training and the bootstrap legitimately run longer.
SHORT_RUN_DEPLOYMENTS = ("data-refresh-production", "trading-production", "validate-production")
# A flow run's Failed event comes after its last retry (earlier tries end AwaitingRetry); a
# timeout is a Failed state named TimedOut, with its own event name.
FAILED_EVENTS = frozenset(f"prefect.flow-run.{s}" for s in ("Failed", "TimedOut", "Crashed"))
TERMINAL_EVENTS = FAILED_EVENTS | {"prefect.flow-run.Completed", "prefect.flow-run.Cancelled"}
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
MISSED_HEARTBEATS = 3
# One alert an hour at most for an event that repeats while its cause lasts (no data).
REPEAT_WINDOW = timedelta(hours=1)

RUN_FAILED = "sentinel42-run-failed"
RUN_TOO_LONG = "sentinel42-run-too-long"
REFRESH_NO_DATA = "sentinel42-refresh-no-data"
REFRESH_GAP = "sentinel42-refresh-gap"
MODEL_DEGRADED = "sentinel42-model-degraded"
MODEL_RECOVERED = "sentinel42-model-recovered"
MODEL_REFUSED = "sentinel42-model-refused"
ZOMBIE_RUN = "sentinel42-zombie-run"
DECISION_ACTIONABLE = "sentinel42-decision-actionable"
MANAGED = (
    RUN_FAILED,
    RUN_TOO_LONG,
    REFRESH_NO_DATA,
    REFRESH_GAP,
    MODEL_DEGRADED,
    MODEL_RECOVERED,
    MODEL_REFUSED,
    ZOMBIE_RUN,
    DECISION_ACTIONABLE,
)

_Labels = dict[str, str | list[str]]
_FLOW_RUNS: _Labels = {"prefect.resource.id": "prefect.flow-run.*"}
_TAGGED: _Labels = {"prefect.resource.id": f"prefect.tag.{TAG}", "prefect.resource.role": "tag"}
_RUN = (
    "{% if flow_run %}Flow: {{ flow.name }}"
    "{% if deployment %} (deployment {{ deployment.name }}){% endif %}\n"
    "Run: {{ flow_run.name }} {{ flow_run|ui_url }}{% endif %}"
)
_SUBJECT = "Sentinel42 alert: "
_LEG_FIGURES = (
    "{{ event.payload.leg }} leg {{ event.payload.version }}: live rank IC "
    "{{ event.payload.live_ic }}, long-short {{ event.payload.live_long_short }}, hit rate "
    "{{ event.payload.live_hit_rate }} over {{ event.payload.sessions }} sessions against "
    "validated {{ event.payload.validated }} (CUSUM {{ event.payload.cusum }}, recovery "
    "{{ event.payload.recovery }}, threshold {{ event.payload.threshold }}). "
)


@dataclass(frozen=True, slots=True)
class Alert:
    """One automation before its channels are known.

    Attributes:
        name: the automation's name (starts with ``sentinel42-``).
        description: what it means, shown in the UI and ``prefect automation inspect``.
        trigger: what the server watches.
        subject: template of the notice's subject.
        body: template of the notice's text.
        action: what it does instead of notifying (the zombie alert).
    """

    name: str
    description: str
    trigger: EventTrigger
    subject: str = ""
    body: str = ""
    action: Any = None

    def automation(self, channels: list[Channel]) -> AutomationCore:
        """The automation with one ``SendNotification`` per channel (``DoNothing`` if none)."""
        actions: list[Any]
        if self.action is not None:
            actions = [self.action]
        elif channels:
            actions = [
                SendNotification(
                    block_document_id=c.block_document_id, subject=self.subject, body=self.body
                )
                for c in channels
            ]
        else:
            actions = [DoNothing()]
        return AutomationCore(
            name=self.name, description=self.description, trigger=self.trigger, actions=actions
        )


@dataclass
class InstallReport:
    """What :func:`install` did; ``ids`` maps each installed automation's name to its id."""

    channels: list[Channel]
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    ids: dict[str, UUID] = field(default_factory=dict)


def heartbeat_seconds() -> int | None:
    """Seconds between flow-run heartbeats in this Prefect environment (None: heartbeats off)."""
    from prefect.settings import get_current_settings

    return get_current_settings().flows.heartbeat_frequency


def alerts(settings: Settings, heartbeat: int | None) -> list[Alert]:
    """Every alert the settings ask for.

    Args:
        settings: thresholds (``alert_run_minutes``, ``alert_refresh_gap_minutes``), the
            watchlist, and ``notify_decisions``.
        heartbeat: seconds between flow-run heartbeats; None leaves out the zombie alert.
    """
    run_minutes = settings.alert_run_minutes
    gap_minutes = settings.alert_refresh_gap_minutes
    tickers = ", ".join(settings.tickers)
    payload_run = (
        "{% if flow_run %}\nFlow: {{ flow.name }}, run {{ flow_run.name }} "
        "{{ flow_run|ui_url }}{% endif %}"
    )
    found: list[Alert] = [
        Alert(
            name=RUN_FAILED,
            description="A Sentinel42 run ended Failed after its retries, TimedOut or Crashed.",
            trigger=EventTrigger(
                expect=set(FAILED_EVENTS),
                match=_FLOW_RUNS,
                match_related=_TAGGED,
                posture=Posture.Reactive,
                threshold=1,
            ),
            subject=_SUBJECT + "{{ flow.name }} run {{ flow_run.name }} "
            "ended {{ flow_run.state.name }}",
            body=_RUN + "\nState: {{ flow_run.state.name }} after {{ flow_run.run_count }} "
            "attempt(s): {{ flow_run.state.message }}",
        ),
        Alert(
            name=RUN_TOO_LONG,
            description=f"A data-refresh, trading or validate run still Running after "
            f"{run_minutes} minutes (SENTINEL42_ALERT_RUN_MINUTES).",
            trigger=EventTrigger(
                after={"prefect.flow-run.Running"},
                expect=set(TERMINAL_EVENTS),
                for_each={"prefect.resource.id"},
                match=_FLOW_RUNS,
                match_related={
                    "prefect.resource.role": "deployment",
                    "prefect.resource.name": list(SHORT_RUN_DEPLOYMENTS),
                },
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(minutes=run_minutes),
            ),
            subject=_SUBJECT + f"{{{{ flow.name }}}} run {{{{ flow_run.name }}}} still "
            f"running after {run_minutes} minutes",
            body=_RUN + f"\nStarted {{{{ event.occurred }}}} and not finished {run_minutes} "
            "minutes later; the deployment's next run waits behind it.",
        ),
        Alert(
            name=REFRESH_NO_DATA,
            description="A data refresh got no usable bar for any watchlist ticker: every "
            "ticker failed, or none got a bar of the open session (at most one alert an hour).",
            trigger=EventTrigger(
                expect={NO_DATA_EVENT},
                posture=Posture.Reactive,
                threshold=1,
                within=REPEAT_WINDOW,
            ),
            subject=_SUBJECT + "no usable bars for the watchlist",
            body="No usable bar for any of {{ event.payload.tickers|join(', ') }} at "
            "{{ event.payload.as_of }}: {{ event.payload.why }}." + payload_run,
        ),
        Alert(
            name=REFRESH_GAP,
            description=f"No run of {DATA_REFRESH_DEPLOYMENT} completed for {gap_minutes} "
            "minutes after the last one that did (SENTINEL42_ALERT_REFRESH_GAP_MINUTES).",
            trigger=EventTrigger(
                after={"prefect.flow-run.Completed"},
                expect={"prefect.flow-run.Completed"},
                match=_FLOW_RUNS,
                match_related={
                    "prefect.resource.role": "deployment",
                    "prefect.resource.name": DATA_REFRESH_DEPLOYMENT,
                },
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(minutes=gap_minutes),
            ),
            subject=_SUBJECT + f"no data refresh completed for {gap_minutes} minutes",
            body=f"No run of {DATA_REFRESH_DEPLOYMENT} completed in the {gap_minutes} minutes "
            f"after the last one did; prices, news and sentiment for {tickers} are getting "
            "stale.\nLast completed: {{ flow_run.name }} at {{ event.occurred }} "
            "{{ flow_run|ui_url }}",
        ),
        Alert(
            name=MODEL_DEGRADED,
            description="Live monitoring found a fusion leg (direction model, ranking model or "
            "news) decaying; its weight is zero until it recovers.",
            trigger=EventTrigger(expect={MODEL_DEGRADED_EVENT}, posture=Posture.Reactive),
            subject=_SUBJECT + "{{ event.payload.leg }} leg {{ event.payload.version }} degraded",
            body=_LEG_FIGURES + f"Its fusion weight for {tickers} is zero until the live "
            "evidence recovers (or a retrained model is promoted).\n{{ event.payload.note }}"
            + payload_run,
        ),
        Alert(
            name=MODEL_RECOVERED,
            description="Live monitoring found a degraded fusion leg earning its validated "
            "figure again; its weight is back.",
            trigger=EventTrigger(expect={MODEL_RECOVERED_EVENT}, posture=Posture.Reactive),
            subject=_SUBJECT + "{{ event.payload.leg }} leg {{ event.payload.version }} recovered",
            body=_LEG_FIGURES + f"Its fusion weight for {tickers} is back.\n"
            "{{ event.payload.note }}" + payload_run,
        ),
        Alert(
            name=MODEL_REFUSED,
            description="A retrained model was not promoted (the one in use, if any, stays).",
            trigger=EventTrigger(expect={MODEL_REFUSED_EVENT}, posture=Posture.Reactive),
            subject=_SUBJECT + "model {{ event.payload.version }} not promoted",
            body="Model {{ event.payload.version }} for "
            "{{ event.payload.tickers|join(', ') }} was not promoted: "
            "{{ event.payload.reason }}" + payload_run,
        ),
    ]
    if heartbeat:
        silence = MISSED_HEARTBEATS * heartbeat
        found.append(
            Alert(
                name=ZOMBIE_RUN,
                description=f"No heartbeat from a Sentinel42 run for {silence} s: marked Crashed "
                f"(which {RUN_FAILED} then reports).",
                trigger=EventTrigger(
                    after={HEARTBEAT_EVENT},
                    expect={"prefect.flow-run.*"},
                    for_each={"prefect.resource.id"},
                    match=_FLOW_RUNS,
                    match_related=_TAGGED,
                    posture=Posture.Proactive,
                    threshold=1,
                    within=timedelta(seconds=silence),
                ),
                action=ChangeFlowRunState(
                    name="Crashed",
                    state=StateType.CRASHED,
                    force=False,
                    message=f"No heartbeat for {silence} s: the flow's process or its worker "
                    f"is gone. Marked Crashed by the {ZOMBIE_RUN} automation.",
                ),
            )
        )
    if settings.notify_decisions:
        found.append(
            Alert(
                name=DECISION_ACTIONABLE,
                description="A BUY or SELL decision (SENTINEL42_NOTIFY_DECISIONS).",
                trigger=EventTrigger(expect={DECISION_ACTIONABLE_EVENT}, posture=Posture.Reactive),
                subject="Sentinel42: {{ event.payload.action }} {{ event.payload.ticker }}",
                body="{{ event.payload.action }} {{ event.payload.ticker }} at confidence "
                "{{ event.payload.confidence }} (bar {{ event.payload.bar_ts }}). Simulated; "
                "not investment advice." + payload_run,
            )
        )
    return found


def automations(
    settings: Settings, channels: list[Channel], heartbeat: int | None
) -> list[AutomationCore]:
    """The automations to install, each sending through every channel."""
    return [alert.automation(channels) for alert in alerts(settings, heartbeat)]


def _comparable(automation: AutomationCore) -> dict[str, Any]:
    # `enabled` is the operator's: an alert switched off in the UI stays off.
    return AutomationCore.model_validate(automation.model_dump()).model_dump(exclude={"enabled"})


def install(settings: Settings) -> InstallReport:
    """Save the notification blocks and create, update or leave each Sentinel42 automation.

    Automations are matched by name. Of several with one name (an older installer's
    duplicates) the first is kept and the others deleted; a managed alert the settings no
    longer ask for (decision notices switched off) is deleted. Others are never touched.

    Raises:
        ConfigError: an incomplete e-mail configuration.
    """
    from prefect.client.orchestration import get_client

    report = InstallReport(channels=save_channels(settings))
    wanted = automations(settings, report.channels, heartbeat_seconds())
    with get_client(sync_client=True) as client:
        found: dict[str, list[Any]] = {}
        for existing in client.read_automations():
            if existing.name in MANAGED:
                found.setdefault(existing.name, []).append(existing)
        for automation in wanted:
            same_name = found.pop(automation.name, [])
            if not same_name:
                report.ids[automation.name] = client.create_automation(automation)
                report.created.append(automation.name)
                continue
            keep, *duplicates = same_name
            for duplicate in duplicates:
                client.delete_automation(duplicate.id)
                report.removed.append(automation.name)
            report.ids[automation.name] = keep.id
            if _comparable(keep) == _comparable(automation):
                report.unchanged.append(automation.name)
            else:
                client.update_automation(
                    keep.id, automation.model_copy(update={"enabled": keep.enabled})
                )
                report.updated.append(automation.name)
        for name, stale in found.items():
            for automation in stale:
                client.delete_automation(automation.id)
                report.removed.append(name)
    logger.info(
        "alerts: %d created, %d updated, %d unchanged, %d removed; channels: %s",
        len(report.created), len(report.updated), len(report.unchanged), len(report.removed),
        ", ".join(c.kind for c in report.channels) or "none",
    )  # fmt: skip
    return report
