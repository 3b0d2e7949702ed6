"""Notification channels of Sentinel42's alerts: Prefect notification blocks saved on the server.

The Prefect server sends every alert itself (a ``SendNotification`` action of an automation), so
a channel that fails is recorded by the server (a ``prefect.automation.action.failed`` event and
a line in its log) and never fails a flow. Blocks are saved under fixed names with overwrite: a
second save keeps the block document and its id, and changes only values that changed.

Channels, from settings:

* webhook (``SENTINEL42_NOTIFY_WEBHOOK_URL``): a ``CustomWebhookNotificationBlock`` that posts
  ``{"text": "<subject>: <body>"}``, which a Slack incoming webhook accepts (Mattermost and
  Rocket.Chat ones too). Prefect's ``SlackWebhook`` would pass the URL to apprise, which has no
  plain ``http://`` scheme, so it cannot reach a loopback receiver (tests, a local relay). The
  URL is kept in the block's secrets, not in its plain fields.
* e-mail (``SENTINEL42_SMTP_HOST`` and friends): two blocks. ``sentinel42-smtp`` is
  prefect-email's ``EmailServerCredentials`` (server, port, TLS mode, user, password: the
  password a secret field). ``SendNotification`` needs a block with ``notify``, which
  ``EmailServerCredentials`` lacks, so ``sentinel42-email`` is a :class:`SMTPEmail`: a
  notification block that refers to the credentials block and sends plain-text mail through
  its ``get_server()``. The server finds the class through this package's
  ``prefect.collections`` entry point (pyproject.toml), as it finds prefect-email's; both show
  on the UI's Blocks page as "Email Server Credentials" and "Sentinel42 SMTP E-mail".

Secrets (the webhook URL, the SMTP password) are never logged or printed.
"""

from __future__ import annotations

import email.policy
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from uuid import UUID

from prefect.blocks.abstract import NotificationBlock, NotificationError
from prefect.blocks.core import Block
from prefect_email import EmailServerCredentials, SMTPType
from pydantic import Field, HttpUrl

from sentinel42.errors import ConfigError
from sentinel42.settings import ENV_PREFIX, Settings

logger = logging.getLogger(__name__)

WEBHOOK_BLOCK = "sentinel42-webhook"
EMAIL_BLOCK = "sentinel42-email"
SMTP_BLOCK = "sentinel42-smtp"
WEBHOOK_BLOCK_TYPE = "custom-webhook"
EMAIL_BLOCK_TYPE = "sentinel42-smtp-email"
SMTP_BLOCK_TYPE = "email-server-credentials"
# Before prefect-email, the e-mail channel was a SlackWebhook block holding an apprise mailto
# URL (with the SMTP password in it); an install removes such a block.
OLD_EMAIL_BLOCK_TYPE = "slack-webhook"
# What a Slack incoming webhook takes; {{subject}} and {{body}} are filled in by the block.
WEBHOOK_JSON = {"text": "{{subject}}: {{body}}"}
_URL_KEY = "webhook_url"
_SMTP_TYPES = {"none": SMTPType.INSECURE, "starttls": SMTPType.STARTTLS, "ssl": SMTPType.SSL}


@dataclass(frozen=True, slots=True)
class Channel:
    """One saved notification block.

    Attributes:
        kind: ``webhook`` or ``e-mail``.
        block_name: name of the block document on the server.
        block_document_id: what ``SendNotification`` actions refer to.
    """

    kind: str
    block_name: str
    block_document_id: UUID


class SMTPEmail(NotificationBlock):
    """Plain-text e-mail through the SMTP server of an ``EmailServerCredentials`` block.

    ``notify`` runs in the Prefect server process (a ``SendNotification`` action). A server that
    cannot be reached or refuses the mail raises ``NotificationError`` there, which the server
    records as the action's failure.
    """

    _block_type_name = "Sentinel42 SMTP E-mail"
    _block_type_slug = EMAIL_BLOCK_TYPE
    _description = (
        "Sends Sentinel42's alerts as plain-text e-mail through the SMTP server of an "
        "Email Server Credentials block (prefect-email)."
    )
    _documentation_url = HttpUrl("https://docs.prefect.io/integrations/prefect-email")

    credentials: EmailServerCredentials = Field(
        description="The SMTP server, its TLS mode and the login."
    )
    email_from: str = Field(description="The sender address.")
    email_to: list[str] = Field(description="The recipients.")

    async def notify(self, body: str, subject: str | None = None) -> None:
        """Send ``body`` under ``subject`` to every recipient in one message.

        Raises:
            NotificationError: the mail could not be handed to the SMTP server (only while
                ``raise_on_failure`` is active, as in a ``SendNotification`` action).
        """
        from anyio import to_thread

        # RFC 5322 allows 998-character lines: a long subject stays on one line instead of being
        # folded (a fold right after "Subject:" leaves the subject a leading space when read).
        message = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
        message["Subject"] = subject or ""
        message["From"] = self.email_from
        message["To"] = ", ".join(self.email_to)
        message.set_content(body)
        try:
            await to_thread.run_sync(self._send, message)
        except (OSError, smtplib.SMTPException) as exc:
            server = f"{self.credentials.smtp_server}:{self.credentials.smtp_port}"
            why = f"SMTP {server}: {type(exc).__name__}: {exc}"
            if self._raise_on_failure:
                raise NotificationError(log=why) from exc
            self.logger.warning("e-mail not sent: %s", why)

    def _send(self, message: EmailMessage) -> None:
        with self.credentials.get_server() as server:
            server.send_message(message)


def _check_email(settings: Settings) -> str:
    """The SMTP host of a complete e-mail configuration.

    Raises:
        ConfigError: no SMTP host, or a sender, recipients or user missing.
    """
    if not settings.smtp_host:
        raise ConfigError(f"{ENV_PREFIX}SMTP_HOST: required for e-mail alerts")
    if not settings.notify_email_from or not settings.notify_email_to:
        raise ConfigError(
            f"{ENV_PREFIX}NOTIFY_EMAIL_FROM and {ENV_PREFIX}NOTIFY_EMAIL_TO: required when "
            f"{ENV_PREFIX}SMTP_HOST is set"
        )
    if settings.smtp_password is not None and not settings.smtp_user:
        raise ConfigError(f"{ENV_PREFIX}SMTP_USER: required when a password is set")
    return settings.smtp_host


def smtp_credentials(settings: Settings) -> EmailServerCredentials:
    """prefect-email's credentials block for the configured SMTP server.

    ``smtp_tls`` maps to its ``smtp_type``: ``none`` is INSECURE (plain SMTP), ``starttls``
    STARTTLS, ``ssl`` SSL; the port is always the configured one.

    Raises:
        ConfigError: an incomplete e-mail configuration (see :func:`_check_email`).
    """
    host = _check_email(settings)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
    return EmailServerCredentials(
        username=settings.smtp_user or None,
        password=password,
        smtp_server=host,
        smtp_type=_SMTP_TYPES[settings.smtp_tls],
        smtp_port=settings.smtp_port,
    )


def webhook_block(settings: Settings) -> Block | None:
    """The webhook channel's block, or None when no webhook URL is set."""
    if settings.notify_webhook_url is None:
        return None
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.types import SecretDict

    return CustomWebhookNotificationBlock(
        name=WEBHOOK_BLOCK,
        url="{{" + _URL_KEY + "}}",
        json_data=WEBHOOK_JSON,
        headers=None,
        cookies=None,
        secrets=SecretDict({_URL_KEY: settings.notify_webhook_url.get_secret_value()}),
    )


def email_block(
    settings: Settings, credentials: EmailServerCredentials | None = None
) -> SMTPEmail | None:
    """The e-mail channel's notification block, or None when no SMTP host is set.

    Args:
        settings: the SMTP server, sender and recipients.
        credentials: the saved credentials block to refer to (default: built from settings).

    Raises:
        ConfigError: an SMTP host without sender or recipients (see :func:`_check_email`).
    """
    if not settings.smtp_host:
        return None
    return SMTPEmail(
        credentials=credentials or smtp_credentials(settings),
        email_from=settings.notify_email_from or "",
        email_to=list(settings.notify_email_to),
    )


def save_channels(settings: Settings) -> list[Channel]:
    """Save the configured channels' blocks (overwrite) and delete those no longer configured.

    The e-mail channel saves ``sentinel42-smtp`` (the credentials) first, then
    ``sentinel42-email``, which refers to it. An e-mail block of the old kind (a SlackWebhook
    with an apprise ``mailto`` URL) is deleted. An incomplete e-mail configuration raises before
    anything is saved or deleted.

    Returns:
        The configured channels, webhook first; empty when none is configured.

    Raises:
        ConfigError: an incomplete e-mail configuration.
    """
    webhook = webhook_block(settings)
    credentials = smtp_credentials(settings) if settings.smtp_host else None
    email = email_block(settings, credentials)
    channels = []
    if webhook is None:
        _delete_block(WEBHOOK_BLOCK, WEBHOOK_BLOCK_TYPE)
    else:
        channels.append(_save("webhook", WEBHOOK_BLOCK, webhook))
    _delete_block(EMAIL_BLOCK, OLD_EMAIL_BLOCK_TYPE)
    if credentials is None or email is None:
        _delete_block(EMAIL_BLOCK, EMAIL_BLOCK_TYPE)  # before the credentials it refers to
        _delete_block(SMTP_BLOCK, SMTP_BLOCK_TYPE)
    else:
        _save("e-mail", SMTP_BLOCK, credentials)  # the e-mail block refers to it by its id
        channels.append(_save("e-mail", EMAIL_BLOCK, email))
    return channels


def _save(kind: str, name: str, block: Block) -> Channel:
    block_id = block.save(name, overwrite=True)
    assert isinstance(block_id, UUID)  # save() is sync here; its type covers the async form
    return Channel(kind=kind, block_name=name, block_document_id=block_id)


def _delete_block(name: str, block_type: str) -> None:
    """Delete a channel's block left from an earlier configuration (its secret goes with it)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            document = client.read_block_document_by_name(name=name, block_type_slug=block_type)
        except ObjectNotFound:
            return
        client.delete_block_document(document.id)
    logger.info("deleted notification block %s: its channel is no longer configured", name)
