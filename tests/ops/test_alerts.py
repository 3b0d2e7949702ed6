"""The alert automations as specified, and their installation against a test Prefect server."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from prefect.automations import ChangeFlowRunState, DoNothing, SendNotification
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness
from prefect_email import EmailServerCredentials, SMTPType
from typer.testing import CliRunner

from flows.deployments import specs
from sentinel42.errors import ConfigError
from sentinel42.ops import alerts, notify
from sentinel42.settings import load_settings

WEBHOOK = "https://hooks.example.org/services/T000/B000/very-secret-token"
SMTP_PASSWORD = "p@ss:/word-S3CR3T"


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
    from sentinel42.events import MODEL_DEGRADED_EVENT, MODEL_RECOVERED_EVENT

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
    ("tls", "smtp_type"),
    [("none", SMTPType.INSECURE), ("starttls", SMTPType.STARTTLS), ("ssl", SMTPType.SSL)],
)
def test_email_block_holds_prefect_email_credentials_with_the_tls_mode(tls, smtp_type):
    block = notify.email_block(
        _settings(
            smtp_host="smtp.example.org",
            smtp_port=2525,
            smtp_tls=tls,
            smtp_user="ops bot",
            smtp_password=SMTP_PASSWORD,
            notify_email_from="s42@example.org",
            notify_email_to="a@example.org,b@example.org",
        )
    )
    assert isinstance(block, notify.SMTPEmail)
    assert block.get_block_type_slug() == notify.EMAIL_BLOCK_TYPE
    assert "notify" in block.get_block_capabilities()
    credentials = block.credentials
    assert isinstance(credentials, EmailServerCredentials)
    assert (credentials.smtp_server, credentials.smtp_port) == ("smtp.example.org", 2525)
    assert credentials.smtp_type == smtp_type and credentials.username == "ops bot"
    assert credentials.password.get_secret_value() == SMTP_PASSWORD
    assert block.email_from == "s42@example.org"
    assert block.email_to == ["a@example.org", "b@example.org"]
    assert SMTP_PASSWORD not in block.model_dump_json() + repr(block)


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


@pytest.fixture
def smtp_inbox():
    """A real SMTP server on loopback; the messages it received, parsed."""
    import email
    import email.policy
    import socket

    from aiosmtpd.controller import Controller

    received: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def _blocks() -> dict[tuple[str, str], object]:
    with get_client(sync_client=True) as client:
        return {
            (d.block_type.slug, d.name): d  # type: ignore[union-attr]
            for d in client.read_block_documents(include_secrets=False)
        }


def test_email_channel_is_a_prefect_email_block_that_delivers_and_replaces_the_old_one(
    harness, smtp_inbox
):
    import asyncio

    from prefect.blocks.abstract import NotificationError
    from prefect.blocks.notifications import SlackWebhook
    from pydantic import SecretStr

    port, inbox = smtp_inbox
    settings = _settings(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        notify_email_from="sentinel42@example.org",
        notify_email_to="ops@example.org,desk@example.org",
    )
    # An older install's e-mail channel: a SlackWebhook block carrying an apprise mailto URL.
    old = SlackWebhook(
        url=SecretStr(f"mailto://u:{SMTP_PASSWORD}@127.0.0.1:{port}?from=s@b.org&to=a@b.org")
    )
    old.save(notify.EMAIL_BLOCK, overwrite=True)

    first = alerts.install(settings)
    [channel] = first.channels
    blocks = _blocks()
    assert (notify.OLD_EMAIL_BLOCK_TYPE, notify.EMAIL_BLOCK) not in blocks  # its secret is gone
    email_doc = blocks[(notify.EMAIL_BLOCK_TYPE, notify.EMAIL_BLOCK)]
    smtp_doc = blocks[(notify.SMTP_BLOCK_TYPE, notify.SMTP_BLOCK)]
    assert (channel.kind, channel.block_document_id) == ("e-mail", email_doc.id)  # type: ignore[attr-defined]
    assert not email_doc.is_anonymous and not smtp_doc.is_anonymous  # type: ignore[attr-defined]
    reference = email_doc.block_document_references["credentials"]  # type: ignore[attr-defined]
    assert reference["block_document"]["id"] == str(smtp_doc.id)  # type: ignore[attr-defined]
    assert email_doc.block_type.name == "Sentinel42 SMTP E-mail"  # type: ignore[attr-defined]
    assert smtp_doc.block_type.name == "Email Server Credentials"  # type: ignore[attr-defined]
    assert SMTP_PASSWORD not in str(email_doc) + str(smtp_doc)

    # What the server's SendNotification does: load the saved block, notify, raising on failure.
    block = notify.SMTPEmail.load(notify.EMAIL_BLOCK)
    # A subject past 78 characters with "Subject: " (a long run name): never folded into a
    # leading space (it was, for some run names, so the e2e comparison failed by chance).
    subject = "Sentinel42 alert: trading-flow run undetectable-jackrabbit ended Failed"
    with block.raise_on_failure():
        asyncio.run(block.notify("Run: x\nState: Failed", subject))
    [message] = inbox
    assert message["Subject"] == subject
    assert message["To"] == "ops@example.org, desk@example.org"
    assert message["From"] == "sentinel42@example.org"
    assert message.get_content().strip().replace("\r\n", "\n") == "Run: x\nState: Failed"

    again = alerts.install(settings)  # idempotent: the same documents, nothing duplicated
    assert [c.block_document_id for c in again.channels] == [channel.block_document_id]
    assert _blocks()[(notify.SMTP_BLOCK_TYPE, notify.SMTP_BLOCK)].id == smtp_doc.id  # type: ignore[attr-defined]

    alerts.install(_settings(**{**settings.model_dump(), "smtp_port": port + 1}))
    dead = notify.SMTPEmail.load(notify.EMAIL_BLOCK)  # nobody listens there
    with pytest.raises(NotificationError) as failed, dead.raise_on_failure():
        asyncio.run(dead.notify("body", "subject"))
    assert f"SMTP 127.0.0.1:{port + 1}: ConnectionRefusedError" in failed.value.log
    assert len(inbox) == 1

    assert alerts.install(_settings()).channels == []  # e-mail switched off: both blocks go
    blocks = _blocks()
    assert (notify.EMAIL_BLOCK_TYPE, notify.EMAIL_BLOCK) not in blocks
    assert (notify.SMTP_BLOCK_TYPE, notify.SMTP_BLOCK) not in blocks
