"""Alerts for real: a Prefect server, worker and automations, a webhook receiver and an SMTP server.

``scripts/start_prefect.sh`` starts everything on a free port with the webhook and e-mail channels
pointed at two local stand-ins (stdlib ``http.server`` for the webhook, ``aiosmtpd`` for SMTP) and
installs the alerts. A forced trading run then fails twice, once per try (its data folder is a
file, for that run only: an OS error, which is worth retrying), and exactly one notice must reach
each channel after the last try.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.test_prefect_end_to_end import ROOT, TICKERS, _free_port, _run

pytestmark = pytest.mark.e2e
SENTINEL42 = str(ROOT / ".venv/bin/sentinel42")
PREFECT = str(ROOT / ".venv/bin/prefect")


class _Inbox:
    """Messages received by a stand-in, in arrival order."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.lock = threading.Lock()

    def add(self, item: Any) -> None:
        with self.lock:
            self.items.append(item)

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.items)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


def _webhook(inbox: _Inbox) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            inbox.add(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def channels() -> Iterator[dict[str, Any]]:
    from aiosmtpd.controller import Controller  # dev dependency; imported here, not at collection

    webhook_inbox, mail_inbox = _Inbox(), _Inbox()

    class MailHandler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            mail_inbox.add(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    smtp = Controller(MailHandler(), hostname="127.0.0.1", port=_free_port())
    smtp.start()
    webhook = _webhook(webhook_inbox)
    try:
        yield {
            "webhook": webhook_inbox,
            "mail": mail_inbox,
            "env": {
                "SENTINEL42_NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:{webhook.server_port}/hook",
                "SENTINEL42_SMTP_HOST": "127.0.0.1",
                "SENTINEL42_SMTP_PORT": str(smtp.port),
                "SENTINEL42_SMTP_TLS": "none",
                "SENTINEL42_NOTIFY_EMAIL_FROM": "sentinel42@example.org",
                "SENTINEL42_NOTIFY_EMAIL_TO": "ops@example.org",
            },
        }
    finally:
        webhook.shutdown()
        smtp.stop()


@pytest.fixture(scope="module")
def system(tmp_path_factory, channels) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("alerts")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTINEL42_", "PREFECT_"))}
    env |= channels["env"] | {
        "SENTINEL42_DATA_DIR": str(base / "data"),
        "SENTINEL42_DATA_SOURCE": "replay",
        "SENTINEL42_REPLAY_DIR": str(base / "replay"),
        "SENTINEL42_TICKERS": ",".join(TICKERS),
        "SENTINEL42_PREFECT_PORT": str(port),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
    }
    generate = [SENTINEL42, "replay", "generate", "--out", str(base / "replay")]
    gen = _run([*generate, "--end", "2026-11-25", "--sessions", "12", "--json"], env, 120)
    assert gen.returncode == 0, gen.stderr
    started = _run(["bash", "scripts/start_prefect.sh"], env, 300)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        # Only the runs this module starts: no scheduled refresh (its no-data events) or
        # validation may send notices of their own while the tests count them.
        paused = _run([PREFECT, "deployment", "schedule", "pause", "--all"], env, 60)
        assert paused.returncode == 0, paused.stdout + paused.stderr
        yield {"env": env, "base": base, "start": started}
    finally:
        stopped = _run(["bash", "scripts/stop_prefect.sh"], env, 120)
        print(stopped.stdout, stopped.stderr)


def _wait_for(inbox: _Inbox, count: int, timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(inbox.snapshot()) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return inbox.snapshot()


def _install(env: dict[str, str]) -> dict[str, Any]:
    out = _run([SENTINEL42, "alerts", "install", "--json"], env, 120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_start_installs_the_alerts_and_a_second_install_changes_nothing(system):
    assert re.search(r"alerts: \d+ created", system["start"].stdout), system["start"].stdout
    assert "notification channels: webhook (sentinel42-webhook), e-mail" in system["start"].stdout
    first, second = _install(system["env"]), _install(system["env"])
    assert first["created"] == first["updated"] == first["removed"] == []
    assert second == first
    assert "sentinel42-run-failed" in first["automations"]
    listed = _run([PREFECT, "automation", "ls"], system["env"] | {"COLUMNS": "250"}, 60)
    assert listed.returncode == 0, listed.stderr
    for name in first["automations"]:  # one row each (a description may name another)
        assert len(re.findall(rf"│ {name} ", listed.stdout)) == 1, listed.stdout


def test_failed_trading_run_sends_one_notice_to_each_channel(system, channels):
    webhook, mail = channels["webhook"], channels["mail"]
    webhook.clear()
    mail.clear()
    # A configuration error would skip the retries; an OS error is retried like a flaky disk.
    not_a_folder = system["base"] / "not-a-folder"
    not_a_folder.write_text("")
    t0 = time.monotonic()
    run = _run(
        [
            PREFECT, "deployment", "run", "trading-flow/trading-production",
            "--param", "force=true",
            "--job-variable", "env=" + json.dumps({"SENTINEL42_DATA_DIR": str(not_a_folder)}),
            "--watch", "--watch-timeout", "300",
        ],
        system["env"],
        360,
    )  # fmt: skip
    assert "Failed" in run.stdout, run.stdout + run.stderr
    name = re.search(r"Created flow run '([^']+)'", run.stdout)
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
    assert name and run_id, run.stdout
    notices = _wait_for(webhook, 1, 60)
    mails = _wait_for(mail, 1, 60)
    time.sleep(15)  # anything more (a notice per try, a duplicate) would arrive by now
    print(f"failed run watched for {time.monotonic() - t0:.1f} s; notice: {webhook.snapshot()}")
    assert len(webhook.snapshot()) == 1, webhook.snapshot()
    assert len(mail.snapshot()) == 1, [m.as_string() for m in mail.snapshot()]
    text = notices[0]["text"]
    assert f"trading-flow run {name.group(1)} ended Failed" in text
    assert f"/runs/flow-run/{run_id.group(1)}" in text
    assert "after 2 attempt(s)" in text  # the retry happened; only the last try alerted
    assert "NotADirectoryError" in text  # the error
    message = mails[0]
    print(f"e-mail as received:\n{message.as_string()}")
    subject, body = message["Subject"], message.get_content().strip()
    assert message["To"] == "ops@example.org"
    assert text == f"{subject}: {body}".replace("\r\n", "\n")
    # The e-mail went through prefect-email's block, which the UI's Blocks page lists as such.
    blocks = _run([PREFECT, "block", "ls"], system["env"] | {"COLUMNS": "250"}, 60)
    assert blocks.returncode == 0, blocks.stderr
    for block_type, name in (("Sentinel42 SMTP E-mail", "sentinel42-email"),
                             ("Email Server Credentials", "sentinel42-smtp")):  # fmt: skip
        assert re.search(rf"{block_type} .*{name}", blocks.stdout), blocks.stdout
    assert "Slack Webhook" not in blocks.stdout, blocks.stdout


def _emit(env: dict[str, str], event: str, resource: str, payload: dict[str, Any]) -> None:
    code = (
        "import json, sys; from prefect.events import emit_event; "
        "emit_event(event=sys.argv[1], resource={'prefect.resource.id': sys.argv[2]}, "
        "payload=json.loads(sys.argv[3]))"
    )
    args = [str(ROOT / ".venv/bin/python"), "-c", code, event, resource, json.dumps(payload)]
    out = _run(args, env, 60)
    assert out.returncode == 0, out.stderr


def test_no_data_event_names_its_tickers(system, channels):
    webhook: _Inbox = channels["webhook"]
    webhook.clear()
    payload = {"as_of": "2026-11-25T15:45:00+00:00", "tickers": TICKERS}
    _emit(system["env"], "sentinel42.refresh.no-data", "sentinel42.watchlist", payload)
    notices = _wait_for(webhook, 1, 60)
    assert len(notices) == 1, notices
    assert "no new bars" in notices[0]["text"]
    assert ", ".join(TICKERS) in notices[0]["text"]


def test_a_failing_channel_is_recorded_and_the_other_still_delivers(system, channels):
    webhook: _Inbox = channels["webhook"]
    broken = system["env"] | {"SENTINEL42_SMTP_PORT": str(_free_port())}  # nobody listens
    assert not _install(broken)["updated"]  # only the e-mail block's URL changed
    webhook.clear()
    payload = {"version": "v-test", "reason": "no edge over the baselines", "tickers": TICKERS}
    _emit(system["env"], "sentinel42.model.refused", "sentinel42.model.v-test", payload)
    notices = _wait_for(webhook, 1, 60)
    assert len(notices) == 1 and "model v-test not promoted" in notices[0]["text"], notices
    code = (
        "from prefect.client.orchestration import get_client; "
        "from prefect.events.filters import EventFilter, EventNameFilter; "
        "c = get_client(sync_client=True).__enter__(); "
        "f = EventFilter(event=EventNameFilter(name=['prefect.automation.action.failed'])); "
        "print([e.payload.get('reason') for e in c.read_events(filter=f, limit=50).events])"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = _run([str(ROOT / ".venv/bin/python"), "-c", code], system["env"], 60)
        if "Notification failed" in out.stdout:
            break
        time.sleep(2)
    assert "Notification failed" in out.stdout, out.stdout + out.stderr


def test_trading_run_with_no_usable_data_fails_and_alerts(system, channels):
    """Every price file gone: the trading run ends Failed after its retry (it used to end
    Completed with 0 decisions, so nothing alerted), the run-failed notice names why, and the
    refresh emitted sentinel42.refresh.no-data."""
    import shutil

    webhook: _Inbox = channels["webhook"]
    webhook.clear()
    no_prices = system["base"] / "replay-no-prices"
    shutil.copytree(system["base"] / "replay", no_prices)
    shutil.rmtree(no_prices / "prices")
    (no_prices / "prices").mkdir()
    run = _run(
        [
            PREFECT, "deployment", "run", "trading-flow/trading-production",
            "--param", "force=true",
            "--job-variable", "env=" + json.dumps({"SENTINEL42_REPLAY_DIR": str(no_prices)}),
            "--watch", "--watch-timeout", "300",
        ],
        system["env"],
        360,
    )  # fmt: skip
    assert "Failed" in run.stdout, run.stdout + run.stderr
    name = re.search(r"Created flow run '([^']+)'", run.stdout)
    assert name, run.stdout
    ended = f"trading-flow run {name.group(1)} ended Failed"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(ended in n["text"] for n in webhook.snapshot()):
        time.sleep(0.5)
    time.sleep(10)  # a duplicate (a notice per try) would arrive by now
    failed = [n["text"] for n in webhook.snapshot() if "ended Failed" in n["text"]]
    assert len(failed) == 1 and ended in failed[0], webhook.snapshot()
    assert "after 2 attempt(s)" in failed[0]  # the retry happened; only the last try alerted
    assert "no usable bars for any of the 3 watchlist ticker(s)" in failed[0]
    code = (
        "from prefect.client.orchestration import get_client; "
        "from prefect.events.filters import EventFilter, EventNameFilter; "
        "c = get_client(sync_client=True).__enter__(); "
        "f = EventFilter(event=EventNameFilter(name=['sentinel42.refresh.no-data'])); "
        "print([e.payload.get('why') for e in c.read_events(filter=f, limit=50).events])"
    )
    out = _run([str(ROOT / ".venv/bin/python"), "-c", code], system["env"], 60)
    assert "no usable bars for any of the 3 watchlist ticker(s)" in out.stdout, out.stdout
