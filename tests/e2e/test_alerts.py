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
import html
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import pytest

from tests.e2e.conftest import ROOT, TICKERS, _free_port, _run, generate_replay_set, stack_env

pytestmark = pytest.mark.e2e
SENTINEL42 = str(ROOT / ".venv/bin/sentinel42")
PREFECT = str(ROOT / ".venv/bin/prefect")
T = TypeVar("T")


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
    env = stack_env(base, _free_port(), **channels["env"])
    generate_replay_set(base, env)
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


def _poll(
    read: Callable[[], T], done: Callable[[T], bool], timeout: float, every: float = 0.5
) -> T:
    """``read()`` every ``every`` seconds until ``done`` holds of what it read or ``timeout``
    seconds have passed; the last read (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if done(got) or time.monotonic() >= deadline:
            return got
        time.sleep(every)


def _wait_for(inbox: _Inbox, count: int, timeout: float) -> list[Any]:
    return _poll(inbox.snapshot, lambda items: len(items) >= count, timeout)


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
    job_env = {"SENTINEL42_DATA_DIR": str(not_a_folder)}
    output = _watch(system["env"], "trading-flow/trading-production", job_env, "force=true")
    assert "Failed" in output, output
    name = re.search(r"Created flow run '([^']+)'", output)
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", output)
    assert name and run_id, output
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
    out = _poll(
        lambda: _run([str(ROOT / ".venv/bin/python"), "-c", code], system["env"], 60),
        lambda out: "Notification failed" in out.stdout,
        60,
        every=2,
    )
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
    job_env = {"SENTINEL42_REPLAY_DIR": str(no_prices)}
    output = _watch(system["env"], "trading-flow/trading-production", job_env, "force=true")
    assert "Failed" in output, output
    name = re.search(r"Created flow run '([^']+)'", output)
    assert name, output
    ended = f"trading-flow run {name.group(1)} ended Failed"
    _notices(webhook, ended, 1)
    time.sleep(10)  # a duplicate (a notice per try) would arrive by now
    failed = [n["text"] for n in webhook.snapshot() if "ended Failed" in n["text"]]
    assert len(failed) == 1 and ended in failed[0], webhook.snapshot()
    assert "after 2 attempt(s)" in failed[0]  # the retry happened; only the last try alerted
    assert "no usable bars for any of the 3 watchlist ticker(s)" in failed[0]
    # The refresh emitted sentinel42.refresh.no-data once per try; its automation sent one
    # notice (at most one an hour) with the event's reason.
    emitted = _events(system["env"], "sentinel42.refresh.no-data")
    assert len(emitted) == 2, emitted
    first = min(emitted, key=lambda e: e["as_of"])  # the first try's: the one that notified
    why = first["why"]
    assert "no usable bars for any of the 3 watchlist ticker(s)" in why, emitted
    no_data = [
        n["text"] for n in webhook.snapshot() if "no usable bars for the watchlist" in n["text"]
    ]
    assert len(no_data) == 1, webhook.snapshot()
    assert no_data[0].startswith(
        f"Sentinel42 alert: no usable bars for the watchlist: No usable bar for any of "
        f"{', '.join(TICKERS)} at {first['as_of']}: {why}."
    ), no_data[0]


def _events(env: dict[str, str], name: str) -> list[dict[str, Any]]:
    """The payloads of the server's events of this name, newest first."""
    code = (
        "import json, sys; from prefect.client.orchestration import get_client; "
        "from prefect.events.filters import EventFilter, EventNameFilter; "
        "c = get_client(sync_client=True).__enter__(); "
        "f = EventFilter(event=EventNameFilter(name=[sys.argv[1]])); "
        "print(json.dumps([e.payload for e in c.read_events(filter=f, limit=50).events]))"
    )
    out = _run([str(ROOT / ".venv/bin/python"), "-c", code, name], env, 60)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def _watch(env: dict[str, str], deployment: str, job_env: dict[str, str], *params: str) -> str:
    """A run of ``deployment`` with ``job_env`` for it alone, watched to its end; its output."""
    args = [
        PREFECT,
        "deployment",
        "run",
        deployment,
        "--job-variable",
        "env=" + json.dumps(job_env),
    ]
    for param in params:
        args += ["--param", param]
    run = _run([*args, "--watch", "--watch-timeout", "400"], env, 450)
    return run.stdout + run.stderr


def _notices(inbox: _Inbox, marker: str, count: int, timeout: float = 60) -> list[str]:
    """Wait for ``count`` notices whose text holds ``marker``; every such notice, HTML entities
    undone (the automation's template escapes quotes)."""
    return _poll(
        lambda: [html.unescape(n["text"]) for n in inbox.snapshot() if marker in n["text"]],
        lambda found: len(found) >= count,
        timeout,
    )


def test_a_training_run_whose_model_the_gate_refuses_notifies(system, channels):
    """The bootstrap flow trains a model on a fresh data folder (one epoch) under a gate no
    model passes (99.9999 % confidence): the training task emits sentinel42.model.refused and
    its automation sends the notice, naming the version and the gate's reason."""
    webhook: _Inbox = channels["webhook"]
    webhook.clear()
    job_env = {
        "SENTINEL42_DATA_DIR": str(system["base"] / "refused"),
        "SENTINEL42_MODEL_EPOCHS": "1",
        "SENTINEL42_MODEL_GATE_CONFIDENCE": "0.999999",
    }
    output = _watch(system["env"], "full-system-flow/full-system-production", job_env)
    assert "Completed" in output, output
    listed = _run([SENTINEL42, "model", "list", "--json"], system["env"] | job_env, 60)
    assert listed.returncode == 0, listed.stderr
    models = json.loads(listed.stdout)
    assert models["current"] is None and len(models["models"]) == 1, models
    version, reason = models["models"][0]["version"], models["models"][0]["reason"]
    notices = _notices(webhook, "not promoted", 1)
    time.sleep(5)  # a duplicate would arrive by now
    assert len(_notices(webhook, "not promoted", 1, 0)) == 1, webhook.snapshot()
    assert notices[0].startswith(
        f"Sentinel42 alert: model {version} not promoted: Model {version} for "
        f"{', '.join(TICKERS)} was not promoted: {reason}"
    ), (notices[0], reason)


def test_validate_runs_notify_each_leg_that_degrades_and_then_recovers(system, channels):
    """A store with a planted history (tests/test_decision_scoring.py's: every leg scores with a
    rank IC of 0.3, then none, then 0.3 again) validated by two forced validate-flow runs, one at
    the end of the decay and one at the end: each leg's sentinel42.model.degraded, then its
    sentinel42.model.recovered, reaches the webhook as one notice each."""
    from sentinel42.persistence import open_store
    from tests.test_decision_scoring import HEALTHY, NAMES, OFF, _leg_history, _leg_settings

    webhook: _Inbox = channels["webhook"]
    folder = system["base"] / "legs"
    settings = _leg_settings(folder)
    with open_store(settings) as store:
        ends = _leg_history(store, settings)
    job_env = {  # the settings _leg_settings gives, as the flow run reads them
        "SENTINEL42_DATA_DIR": str(settings.data_dir),
        "SENTINEL42_DATABASE_URL": settings.store_url,
        "SENTINEL42_TICKERS": ",".join(NAMES),
        "SENTINEL42_MODEL_HORIZON": "1",
        "SENTINEL42_NEWS_REQUIRES_VALIDATION": "true",
        "SENTINEL42_MODEL_MAX_AGE_SESSIONS": "260",
    }
    legs = ("direction", "ranking_intraday", "news")
    for as_of, change in ((ends[HEALTHY + OFF - 1], "degraded"), (ends[-1], "recovered")):
        webhook.clear()
        run_env = job_env | {"SENTINEL42_REPLAY_AS_OF": as_of.isoformat()}
        output = _watch(system["env"], "validate-flow/validate-production", run_env, "force=true")
        assert "Completed" in output, output
        notices = _notices(webhook, f" {change}: ", len(legs))
        time.sleep(5)  # a duplicate would arrive by now
        assert len(_notices(webhook, f" {change}: ", len(legs), 0)) == len(legs), notices
        subjects = sorted(n.split(": ")[1] for n in notices)
        versions = {"direction": "m1", "ranking_intraday": "r1", "news": "news@"}
        assert [s.split(" leg ")[0] for s in subjects] == sorted(legs), subjects
        for subject in subjects:
            leg = subject.split(" leg ")[0]
            assert subject.startswith(f"{leg} leg {versions[leg]}") and subject.endswith(change)
        if change == "degraded":
            assert all("fusion weight" in n and "is zero until" in n for n in notices), notices
        else:
            assert all("fusion weight" in n and "is back" in n for n in notices), notices
