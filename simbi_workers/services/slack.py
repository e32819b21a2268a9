"""The slack host service: an incoming webhook per channel (SLACK_WEBHOOKS), or the
outbox var/outbox/slack.jsonl for channels without one.

A webhook URL is a credential: whoever has it can post. It never appears in an error,
a log line or an outbox record; errors name the channel instead.

A 429 with Retry-After pauses the channel for every job (services/pause.py), given the
queue Redis as `connection`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import redis
from slack_sdk.webhook import WebhookClient, WebhookResponse

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services import outbox
from simbi_workers.services.pause import Pauses
from simbi_workers.services.provider_errors import retry_after_seconds

log = logging.getLogger(__name__)

# slack-sdk logs the full request URL (our secret) at DEBUG, and at INFO when it retries
# a connection error. Its client gets this logger, which drops everything.
_sdk_log = logging.getLogger(f"{__name__}.sdk")
_sdk_log.setLevel(logging.CRITICAL)
_sdk_log.propagate = False
_sdk_log.disabled = True

WEBHOOK_TIMEOUT_SECONDS = 10
MAX_BODY_CHARS_IN_ERRORS = 200


class UnknownChannel(PermanentJobError):
    """A post to a channel that is neither in SLACK_CHANNELS nor in SLACK_WEBHOOKS."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Slack:
    HOST_METHODS = ("post",)

    def __init__(
        self,
        settings: Settings,
        *,
        now: Callable[[], datetime] = _utc_now,
        connection: redis.Redis | None = None,
    ):
        self._webhooks = dict(settings.slack_webhooks)
        self._channels = sorted(set(settings.slack_channels) | set(self._webhooks))
        self._outbox_dir = settings.outbox_dir
        self._now = now
        self._clients: dict[str, WebhookClient] = {}
        self._pauses = Pauses(connection)

    def post(self, channel: str, text: str, user_id: int | str | None = None) -> dict[str, Any]:
        """Post `text` to `channel`. `user_id` (who the message is about) goes to the outbox
        record only; the webhook gets the text."""
        channel = self._known_channel(channel)
        _check_text(text)

        if channel not in self._webhooks:
            self._to_outbox(channel, text, user_id)
            return {"channel": channel, "delivered": "outbox"}

        destination = f"slack:{channel}"
        self._pauses.check(destination, JobError, f"slack: not posted to channel {channel}")
        response = self._send(channel, text)
        try:
            _check_response(channel, response, self._url(channel))
        except JobError as exc:
            self._pauses.record(destination, exc)
            raise
        log.debug("slack posted channel=%s status=%s", channel, response.status_code)
        return {"channel": channel, "delivered": "webhook"}

    def _known_channel(self, channel: Any) -> str:
        if not isinstance(channel, str):
            raise PermanentJobError(f"slack.post: channel must be a string, got {channel!r}")

        # Callers write "#signups" as often as "signups"; both name the same channel.
        name = channel.removeprefix("#")
        if name not in self._channels:
            known = ", ".join(self._channels)
            raise UnknownChannel(
                f"unknown slack channel {channel!r} (known: {known}); "
                "add it to SLACK_CHANNELS or SLACK_WEBHOOKS"
            )
        return name

    def _to_outbox(self, channel: str, text: str, user_id: int | str | None) -> None:
        at = self._now().isoformat(timespec="milliseconds")
        record = {"channel": channel, "text": text, "user_id": user_id, "at": at}
        outbox.append(self._outbox_dir, "slack", record)

    def _send(self, channel: str, text: str) -> WebhookResponse:
        client = self._client(channel)
        url = self._url(channel)
        try:
            return client.send(text=text)
        except Exception as exc:
            # Connection refused, timeout, TLS: the webhook may answer later, so the job
            # stays retryable. `from None` keeps the library's frames, whose locals hold
            # the URL, out of any traceback printed for this failure.
            reason = _redact(f"{type(exc).__name__}: {exc}", url)
            raise JobError(
                f"could not reach the webhook for slack channel {channel}: {reason}"
            ) from None

    def _client(self, channel: str) -> WebhookClient:
        if channel not in self._clients:
            url = self._url(channel)
            if not url.startswith(("https://", "http://")):
                # slack-sdk's own error for this case quotes the URL.
                raise PermanentJobError(
                    f"the webhook for slack channel {channel} is not an http(s) URL; "
                    "fix SLACK_WEBHOOKS"
                )
            self._clients[channel] = WebhookClient(
                url=url, timeout=WEBHOOK_TIMEOUT_SECONDS, logger=_sdk_log
            )
        return self._clients[channel]

    def _url(self, channel: str) -> str:
        return self._webhooks[channel].get_secret_value()


def _check_text(text: Any) -> None:
    if not isinstance(text, str) or not text.strip():
        raise PermanentJobError(f"slack.post: text must be a non-empty string, got {text!r}")


def _check_response(channel: str, response: WebhookResponse, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return

    body = _redact(response.body or "", url)[:MAX_BODY_CHARS_IN_ERRORS]
    detail = f"status {status}, body {body!r}"

    # 429: Slack says when to come back; the retry policy honours retry_after_seconds.
    if status == 429:
        raise JobError(
            f"slack rate-limited the webhook for channel {channel} ({detail})",
            retry_after_seconds=retry_after_seconds(response.headers),
        )

    # 5xx: Slack's side; the job stays retryable.
    if status >= 500:
        raise JobError(f"slack failed on the webhook for channel {channel} ({detail})")

    # Other 4xx (404 no_service, 403 invalid_token, 410 channel_is_archived): the webhook
    # itself is wrong, and no retry will change that.
    raise PermanentJobError(
        f"the webhook for slack channel {channel} was refused ({detail}); "
        f"check SLACK_WEBHOOKS[{channel!r}]"
    )


def _redact(message: str, url: str) -> str:
    """Hide the URL, and its path and query on their own: a webhook's secret is its path,
    and an error page may echo just that ("Cannot POST /services/T0/B0/xyz")."""
    if not url:
        return message
    parts = urlsplit(url)
    secrets = [url, parts.path + ("?" + parts.query if parts.query else ""), parts.path]
    for secret in secrets:
        if secret and secret != "/":
            message = message.replace(secret, "<webhook URL>")
    return message
