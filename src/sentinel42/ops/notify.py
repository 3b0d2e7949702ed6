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
* e-mail (``SENTINEL42_SMTP_HOST`` and friends): an apprise ``mailto://`` / ``mailtos://`` URL.
  Prefect core has no SMTP block, and a block class of our own would have to be registered in
  the server process (a ``prefect.collections`` entry point). ``SlackWebhook`` hands any URL
  that is not a Slack webhook to apprise unchanged (and keeps it secret), so it carries the
  ``mailto`` URL. Its type reads "Slack Webhook" in the UI; the document's name,
  ``sentinel42-email``, says what it is.

Secrets (the webhook URL, the SMTP password) are never logged or printed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote
from uuid import UUID

from sentinel42.errors import ConfigError
from sentinel42.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from prefect.blocks.core import Block

logger = logging.getLogger(__name__)

WEBHOOK_BLOCK = "sentinel42-webhook"
EMAIL_BLOCK = "sentinel42-email"
WEBHOOK_BLOCK_TYPE = "custom-webhook"
EMAIL_BLOCK_TYPE = "slack-webhook"
# What a Slack incoming webhook takes; {{subject}} and {{body}} are filled in by the block.
WEBHOOK_JSON = {"text": "{{subject}}: {{body}}"}
_URL_KEY = "webhook_url"


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


def email_url(settings: Settings) -> str:
    """The apprise URL that sends plain-text mail through the configured SMTP server.

    ``smtp_tls`` maps to the scheme: ``none`` is ``mailto://`` (no TLS), ``starttls`` and ``ssl``
    are ``mailtos://`` with ``mode=``. The URL holds the SMTP password: it is a secret.

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
    login = ""
    if settings.smtp_user:
        login = quote(settings.smtp_user, safe="")
        if settings.smtp_password is not None:
            login += ":" + quote(settings.smtp_password.get_secret_value(), safe="")
        login += "@"
    scheme = "mailto" if settings.smtp_tls == "none" else "mailtos"
    query = [
        f"smtp={quote(settings.smtp_host, safe='')}",
        f"from={quote(settings.notify_email_from, safe='@')}",
        f"to={quote(','.join(settings.notify_email_to), safe='@,')}",
        "format=text",
    ]
    if settings.smtp_tls != "none":
        query.append(f"mode={settings.smtp_tls}")
    return f"{scheme}://{login}{settings.smtp_host}:{settings.smtp_port}?{'&'.join(query)}"


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


def email_block(settings: Settings) -> Block | None:
    """The e-mail channel's block, or None when no SMTP host is set.

    Raises:
        ConfigError: an SMTP host without sender or recipients (see :func:`email_url`).
    """
    if not settings.smtp_host:
        return None
    from prefect.blocks.notifications import SlackWebhook
    from pydantic import SecretStr

    return SlackWebhook(url=SecretStr(email_url(settings)))


def save_channels(settings: Settings) -> list[Channel]:
    """Save the configured channels' blocks (overwrite) and delete those no longer configured.

    Returns:
        The configured channels, webhook first; empty when none is configured.

    Raises:
        ConfigError: an incomplete e-mail configuration.
    """
    wanted = (
        ("webhook", WEBHOOK_BLOCK, WEBHOOK_BLOCK_TYPE, webhook_block(settings)),
        ("e-mail", EMAIL_BLOCK, EMAIL_BLOCK_TYPE, email_block(settings)),
    )
    channels = []
    for kind, name, block_type, block in wanted:
        if block is None:
            _delete_block(name, block_type)
            continue
        block_id = block.save(name, overwrite=True)
        assert isinstance(block_id, UUID)  # save() is sync here; its type covers the async form
        channels.append(Channel(kind=kind, block_name=name, block_document_id=block_id))
    return channels


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
