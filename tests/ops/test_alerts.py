"""The alert automations as specified, and their installation against a test Prefect server."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from prefect.automations import ChangeFlowRunState, DoNothing, SendNotification
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from flows.deployments import specs
from sentinel42.errors import ConfigError
from sentinel42.ops import alerts, notify
from sentinel42.settings import load_settings

WEBHOOK = "https://hooks.example.org/services/T000/B000/very-secret-token"


def _settings(**overrides):
    return load_settings(require_replay_dir=False, **overrides)


def _by_name(found: list[alerts.Alert]) -> dict[str, alerts.Alert]:
    return {a.name: a for a in found}


def test_every_alert_is_named_sentinel42_and_managed():
    found = alerts.alerts(_settings(notify_decisions=True), heartbeat=180)
    assert [a.name for a in found] == list(alerts.MANAGED)
    assert all(a.name.startswith("sentinel42-") for a in found)


def test_decision_notices_only_when_enabled():
    names = [a.name for a in alerts.alerts(_settings(), heartbeat=180)]
    assert alerts.DECISION_ACTIONABLE not in names
    assert alerts.MODEL_REFUSED in names


def test_a_leg_degrading_or_recovering_notifies_with_its_figures():
    from sentinel42.tasks import MODEL_DEGRADED_EVENT, MODEL_RECOVERED_EVENT

    found = _by_name(alerts.alerts(_settings(), 180))
    for name, event in ((alerts.MODEL_DEGRADED, MODEL_DEGRADED_EVENT),
                        (alerts.MODEL_RECOVERED, MODEL_RECOVERED_EVENT)):  # fmt: skip
        alert = found[name]
        assert alert.trigger.expect == {event} and alert.trigger.posture == "Reactive"
        for field in ("leg", "version", "live_ic", "validated", "cusum", "threshold"):
            assert f"event.payload.{field}" in alert.subject + alert.body
    assert MODEL_RECOVERED_EVENT == "sentinel42.model.recovered"


def test_failed_alert_covers_the_final_failure_timeout_and_crash_of_tagged_runs():
    trigger = _by_name(alerts.alerts(_settings(), 180))[alerts.RUN_FAILED].trigger
    assert trigger.expect == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.TimedOut",
        "prefect.flow-run.Crashed",
    }
    assert trigger.posture == "Reactive"
    assert trigger.match_related.model_dump() == {  # type: ignore[union-attr]
        "prefect.resource.id": "prefect.tag.sentinel42",
        "prefect.resource.role": "tag",
    }


@pytest.mark.parametrize(("run_minutes", "gap_minutes"), [(5, 20), (12, 45)])
def test_thresholds_come_from_settings(run_minutes, gap_minutes):
    settings = _settings(alert_run_minutes=run_minutes, alert_refresh_gap_minutes=gap_minutes)
    found = _by_name(alerts.alerts(settings, 180))
    too_long = found[alerts.RUN_TOO_LONG].trigger
    assert too_long.posture == "Proactive"
    assert too_long.within == timedelta(minutes=run_minutes)
    assert too_long.after == {"prefect.flow-run.Running"}
    assert too_long.for_each == {"prefect.resource.id"}
    # Terminal states only: a heartbeat (prefect.flow-run.*) would reset the clock.
    assert "prefect.flow-run.*" not in too_long.expect
    assert "prefect.flow-run.Completed" in too_long.expect
    gap = found[alerts.REFRESH_GAP].trigger
    assert gap.posture == "Proactive"
    assert gap.within == timedelta(minutes=gap_minutes)
    assert gap.after == gap.expect == {"prefect.flow-run.Completed"}
    assert f"{gap_minutes} minutes" in found[alerts.REFRESH_GAP].subject


def test_deployment_names_in_alerts_exist_in_the_deployments():
    deployed = {s.name for s in specs("30 17 * * 5", "2,17,32,47 9-16 * * 1-5")}
    assert alerts.DATA_REFRESH_DEPLOYMENT in deployed
    assert set(alerts.SHORT_RUN_DEPLOYMENTS) <= deployed


def test_zombie_alert_crashes_a_run_after_three_missed_heartbeats():
    zombie = _by_name(alerts.alerts(_settings(), heartbeat=60))[alerts.ZOMBIE_RUN]
    assert zombie.trigger.after == {"prefect.flow-run.heartbeat"}
    assert zombie.trigger.expect == {"prefect.flow-run.*"}
    assert zombie.trigger.within == timedelta(seconds=180)
    action = zombie.automation([]).actions[0]
    assert isinstance(action, ChangeFlowRunState)
    assert action.state.value == "CRASHED"
    assert alerts.ZOMBIE_RUN not in _by_name(alerts.alerts(_settings(), heartbeat=None))


def test_each_alert_notifies_every_channel_or_does_nothing_without_one():
    alert = _by_name(alerts.alerts(_settings(), 180))[alerts.RUN_FAILED]
    channels = [notify.Channel("webhook", "a", uuid4()), notify.Channel("e-mail", "b", uuid4())]
    actions = alert.automation(channels).actions
    assert [a.block_document_id for a in actions] == [c.block_document_id for c in channels]  # type: ignore[union-attr]
    assert all(isinstance(a, SendNotification) for a in actions)
    assert "{{ flow_run|ui_url }}" in actions[0].body  # type: ignore[union-attr]
    assert [type(a) for a in alert.automation([]).actions] == [DoNothing]


@pytest.mark.parametrize(
    ("tls", "prefix", "mode"),
    [
        ("none", "mailto://", None),
        ("starttls", "mailtos://", "starttls"),
        ("ssl", "mailtos://", "ssl"),
    ],
)
def test_email_url_maps_the_tls_mode(tls, prefix, mode):
    url = notify.email_url(
        _settings(
            smtp_host="smtp.example.org",
            smtp_port=2525,
            smtp_tls=tls,
            smtp_user="ops bot",
            smtp_password="p@ss:/word",
            notify_email_from="s42@example.org",
            notify_email_to="a@example.org,b@example.org",
        )
    )
    assert url.startswith(f"{prefix}ops%20bot:p%40ss%3A%2Fword@smtp.example.org:2525?")
    assert "from=s42@example.org" in url and "to=a@example.org,b@example.org" in url
    assert ("mode=" in url) == (mode is not None) and (mode is None or f"mode={mode}" in url)


def test_email_without_recipients_is_a_config_error():
    with pytest.raises(ConfigError, match="NOTIFY_EMAIL_TO"):
        notify.email_block(_settings(smtp_host="smtp.example.org", notify_email_from="a@b.org"))


def test_webhook_block_keeps_the_url_among_its_secrets():
    block = notify.webhook_block(_settings(notify_webhook_url=WEBHOOK))
    assert block is not None
    assert WEBHOOK not in block.model_dump_json()
    assert block.url == "{{webhook_url}}"  # type: ignore[attr-defined]
    assert notify.webhook_block(_settings()) is None


# --- against a test server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _automations() -> dict[str, list]:
    with get_client(sync_client=True) as client:
        found: dict[str, list] = {}
        for automation in client.read_automations():
            found.setdefault(automation.name, []).append(automation)
    return found


def test_second_install_changes_nothing(harness):
    settings = _settings(notify_webhook_url=WEBHOOK)
    first = alerts.install(settings)
    before = _automations()
    second = alerts.install(settings)
    assert second.ids == first.ids
    assert second.created == second.updated == second.removed == []
    assert sorted(second.unchanged) == sorted(first.ids)
    assert [c.block_document_id for c in second.channels] == [
        c.block_document_id for c in first.channels
    ]
    after = _automations()
    assert {n: [a.id for a in v] for n, v in after.items()} == {
        n: [a.id for a in v] for n, v in before.items()
    }
    assert all(len(v) == 1 for v in after.values())


def test_install_converges_duplicates_thresholds_and_optional_alerts(harness):
    settings = _settings()
    first = alerts.install(settings)
    with get_client(sync_client=True) as client:  # an older installer's duplicate
        client.create_automation(alerts.automations(settings, [], 180)[0])
        client.pause_automation(first.ids[alerts.MODEL_REFUSED])
    changed = alerts.install(_settings(alert_run_minutes=9, notify_decisions=True))
    assert changed.removed == [alerts.RUN_FAILED]
    assert alerts.RUN_TOO_LONG in changed.updated
    assert changed.created == [alerts.DECISION_ACTIONABLE]
    found = _automations()
    assert found[alerts.RUN_TOO_LONG][0].trigger.within == timedelta(minutes=9)
    assert found[alerts.MODEL_REFUSED][0].enabled is False  # the operator's choice stands
    assert len(found[alerts.RUN_FAILED]) == 1
    off = alerts.install(_settings(alert_run_minutes=9))
    assert off.removed == [alerts.DECISION_ACTIONABLE]
    assert alerts.DECISION_ACTIONABLE not in _automations()


def test_cli_install_says_when_no_channel_is_configured_and_never_prints_secrets(
    harness, monkeypatch
):
    from sentinel42.cli import app

    monkeypatch.setenv("SENTINEL42_NOTIFY_WEBHOOK_URL", WEBHOOK)
    result = CliRunner().invoke(app, ["alerts", "install"])
    assert result.exit_code == 0, result.output
    assert "notification channels: webhook (sentinel42-webhook)" in result.output
    assert "very-secret-token" not in result.output
    monkeypatch.delenv("SENTINEL42_NOTIFY_WEBHOOK_URL")
    result = CliRunner().invoke(app, ["alerts", "install"])
    assert result.exit_code == 0, result.output
    assert "no notification channel configured" in result.output
    with get_client(sync_client=True) as client:  # the webhook's block (and secret) is gone
        assert not [d for d in client.read_block_documents() if d.name == notify.WEBHOOK_BLOCK]
