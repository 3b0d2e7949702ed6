"""No secret reaches anything a person or another process can read.

The secrets are live, each reaching its own receiver on loopback: the NewsAPI key a local
stand-in of ``/v2/everything`` (through the real adapter and refresh, into the real store), the
webhook URL a local receiver and the SMTP password a local SMTP server that requires a login
(both through the alert automations of a Prefect test server, after a real failed run). Then
everything else is grepped for them: log records, stdout/stderr (the test server's output
included), CLI output, Prefect's runs, artifacts, automations and block documents as the API
serves them, the notices themselves, the Prefect database and every file in the data folder
(the store included).
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prefect.testing.utilities import prefect_test_harness

from sentinel42.settings import load_settings

NEWSAPI_KEY = "newsapi-key-S3CR3T-1111"
WEBHOOK_TOKEN = "hook-S3CR3T-2222"
SMTP_PASSWORD = "smtp-password-S3CR3T-3333"
SMTP_USER = "sentinel42-ops"
SECRETS = (NEWSAPI_KEY, WEBHOOK_TOKEN, SMTP_PASSWORD)
AS_OF = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
ARTICLE = {
    "source": {"id": None, "name": "Example Wire"},
    "title": "Apple shares rise on record iPhone demand",
    "description": "Apple reported record demand.",
    "url": "https://news.example.org/apple-record",
    "publishedAt": "2026-11-25T14:30:00Z",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", _free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def receivers() -> Iterator[dict[str, Any]]:
    """The webhook receiver, an SMTP server requiring a login, and a NewsAPI stand-in."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    got: dict[str, Any] = {"webhook": [], "mail": [], "logins": [], "newsapi_keys": []}

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got["webhook"].append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class NewsApi(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            key = self.headers.get("Authorization")
            got["newsapi_keys"].append(key)
            if key != NEWSAPI_KEY:
                message = "Your API key is invalid or incorrect."
                payload: dict[str, Any] = {"status": "error", "code": "apiKeyInvalid",
                                           "message": message}  # fmt: skip
                status = 401
            elif "MSFT" in self.path:  # one ticker's query fails: its error is logged and kept
                payload = {"status": "error", "code": "unexpectedError", "message": "try later"}
                status = 500
            else:
                payload = {"status": "ok", "totalResults": 1, "articles": [ARTICLE]}
                status = 200
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    class Mail:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            got["mail"].append(
                email.message_from_bytes(envelope.content, policy=email.policy.default)
            )
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        ok = auth.login.decode() == SMTP_USER and auth.password.decode() == SMTP_PASSWORD
        got["logins"].append(ok)
        return AuthResult(success=ok)

    webhook, newsapi = _serve(Webhook), _serve(NewsApi)
    smtp = Controller(Mail(), hostname="127.0.0.1", port=_free_port(),
                      authenticator=authenticate, auth_require_tls=False)  # fmt: skip
    smtp.start()
    got["webhook_url"] = f"http://127.0.0.1:{webhook.server_port}/services/{WEBHOOK_TOKEN}"
    got["smtp_port"] = smtp.port
    got["newsapi_base"] = f"http://127.0.0.1:{newsapi.server_port}"
    try:
        yield got
    finally:
        webhook.shutdown()
        newsapi.shutdown()
        smtp.stop()


def _wait(items: list[Any], timeout: float = 90.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while not items and time.monotonic() < deadline:
        time.sleep(0.5)
    return items


def test_no_secret_reaches_logs_outputs_runs_notices_databases_or_files(
    replay_env, receivers, monkeypatch, caplog, capfd, request
):
    import requests
    from prefect import tags
    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings
    from typer.testing import CliRunner

    from flows.sentinel_flows import data_refresh_flow, trading_flow, validate_flow
    from sentinel42.cli import app
    from sentinel42.news.newsapi import NewsApiSource
    from sentinel42.news.refresh import refresh_news
    from sentinel42.persistence import open_store

    # The test server starts here, in the test's call: its own output (the notification blocks
    # run in it) goes to capfd with the rest (a fixture's server writes to another capture).
    harness = ExitStack()
    request.addfinalizer(harness.close)
    harness.enter_context(prefect_test_harness(server_startup_timeout=120))
    for key, value in {
        "SENTINEL42_NEWSAPI_KEY": NEWSAPI_KEY,
        "SENTINEL42_NOTIFY_WEBHOOK_URL": receivers["webhook_url"],
        "SENTINEL42_SMTP_HOST": "127.0.0.1",
        "SENTINEL42_SMTP_PORT": str(receivers["smtp_port"]),
        "SENTINEL42_SMTP_TLS": "none",
        "SENTINEL42_SMTP_USER": SMTP_USER,
        "SENTINEL42_SMTP_PASSWORD": SMTP_PASSWORD,
        "SENTINEL42_NOTIFY_EMAIL_FROM": "sentinel42@example.org",
        "SENTINEL42_NOTIFY_EMAIL_TO": "ops@example.org",
    }.items():
        monkeypatch.setenv(key, value)
    # Prefect configures its own logging (no propagation to pytest's capture): listen on the
    # loggers themselves, formatted as a handler would write them (arguments, tracebacks).
    lines: list[str] = []
    sink = logging.Handler(logging.DEBUG)
    sink.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    sink.emit = lambda record: lines.append(sink.format(record))  # type: ignore[method-assign]
    watched = [logging.getLogger(name) for name in ("sentinel42", "prefect", "flows", "")]
    levels = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(sink)
        logger.setLevel(logging.DEBUG)
    runner = CliRunner()
    texts: list[str] = []
    try:
        installed = runner.invoke(app, ["alerts", "install"])
        assert installed.exit_code == 0, installed.output
        assert "webhook (sentinel42-webhook), e-mail (sentinel42-email)" in installed.output
        texts.append(installed.output)

        class LocalNewsApi(requests.Session):  # newsapi.org's traffic to the stand-in
            def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def]
                url = url.replace("https://newsapi.org", receivers["newsapi_base"])
                return super().request(method, url, *args, **kwargs)

        settings = load_settings()
        with open_store(settings) as store:
            source = NewsApiSource(settings, store=store, session=LocalNewsApi())
            news = refresh_news(settings, [source], store, AS_OF)
        assert news.headlines_new == 1 and news.problems, news  # one stored, one failed

        trading_flow(force=True)
        validate_flow(force=True)
        monkeypatch.setenv("SENTINEL42_TICKERS", "not a ticker!")
        with tags("sentinel42"):  # as the deployments tag their runs: the alert watches the tag
            failed = data_refresh_flow(return_state=True)
        assert failed.is_failed()
        notices, mails = _wait(receivers["webhook"]), _wait(receivers["mail"])
        logging.getLogger("sentinel42.test").info("canary %s", "S3CR3T-canary")
    finally:
        for logger, level in zip(watched, levels, strict=True):
            logger.removeHandler(sink)
            logger.setLevel(level)

    # Each secret reached its own receiver, so the code under test really held it.
    assert set(receivers["newsapi_keys"]) == {NEWSAPI_KEY}
    assert notices and notices[0][0] == f"/services/{WEBHOOK_TOKEN}", notices
    assert "data-refresh" in notices[0][1]["text"] and "Failed" in notices[0][1]["text"]
    assert mails and receivers["logins"] == [True], receivers["logins"]
    monkeypatch.setenv("SENTINEL42_TICKERS", ",".join(settings.tickers))

    log_text = "\n".join(lines)
    assert "S3CR3T-canary" in log_text and "newsapi MSFT" in log_text  # the sink does listen
    texts += [log_text, caplog.text]
    texts += [json.dumps(body) for _, body in notices] + [m.as_string() for m in mails]
    for command in (["status", "--json"], ["decisions", "--json"], ["doctor", "--json"],
                    ["portfolio", "--json"], ["validate", "--json"], ["news", "--json"],
                    ["alerts", "install", "--json"]):  # fmt: skip
        texts.append(runner.invoke(app, command).output)
    with get_client(sync_client=True) as client:
        texts += [r.model_dump_json() for r in client.read_flow_runs(limit=200)]
        texts += [a.model_dump_json() for a in client.read_artifacts(limit=200)]
        texts += [a.model_dump_json() for a in client.read_automations()]
        documents = client.read_block_documents(include_secrets=False)
        texts += [d.model_dump_json() for d in documents]
    assert {d.name for d in documents} >= {"sentinel42-webhook", "sentinel42-email",
                                           "sentinel42-smtp"}  # fmt: skip
    captured = capfd.readouterr()
    texts += [captured.out, captured.err]
    url = get_current_settings().server.database.connection_url.get_secret_value()
    blobs = [p.read_bytes() for p in Path(settings.data_dir).rglob("*") if p.is_file()]
    if "sqlite" in url:
        prefect_db = Path(url.split("///", 1)[1])
        assert prefect_db.exists(), prefect_db  # the test server's own database is read too
        blobs += [p.read_bytes() for p in prefect_db.parent.glob(prefect_db.name + "*")]
    with open_store(settings) as store:
        assert store.count_news() > 0  # the stand-in's story is among the stored rows
    assert len(texts) > 10 and len(blobs) > 1
    for secret in SECRETS:
        leaks = [text[max(0, text.find(secret) - 200) :][:400] for text in texts if secret in text]
        assert not leaks, (secret, leaks[:3])
        assert not any(secret.encode() in blob for blob in blobs), secret
