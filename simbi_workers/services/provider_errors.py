"""The errors the mail, sms and push services raise when a provider refuses or fails.

Their class names travel to Ruby and Node workers in error replies (docs/protocol.md,
"Host services"), so renaming one is a protocol change. Each is a JobError: the
`retryable` flag decides between the retry policy and the dead set.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from simbi_workers.errors import JobError, PermanentJobError


class InvalidNumber(PermanentJobError):
    """The phone number cannot receive SMS (not E.164, or Twilio 21211/21214/21217/21614)."""


class Unsubscribed(PermanentJobError):
    """The recipient opted out (Twilio 21610, they replied STOP); clear the opt-in."""


class RateLimited(JobError):
    """The provider answered 429; `retry_after_seconds` says when to come back, if it did."""


class ProviderUnavailable(JobError):
    """A 5xx answer or a network error: the provider may work again later."""


class ProviderRejected(PermanentJobError):
    """Any other refusal (4xx, SMTP 5xx): configuration or content that no retry will fix."""


def for_http_status(
    status: int, message: str, headers: Mapping[str, Any] | None = None
) -> JobError:
    """The error for an HTTP error status: 429 RateLimited, 5xx ProviderUnavailable, other
    statuses ProviderRejected. `message` must already be free of secrets."""
    if status == 429:
        return RateLimited(message, retry_after_seconds=retry_after_seconds(headers))
    if status >= 500:
        return ProviderUnavailable(message)
    return ProviderRejected(message)


def retry_after_seconds(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not headers:
        return None

    # requests gives a case-insensitive mapping; a plain dict may use either spelling.
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None

    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        pass

    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        # Unreadable: leave the delay to the retry policy.
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def redact(message: str, *secrets: str | None) -> str:
    """`message` with every non-empty secret replaced by asterisks."""
    for secret in secrets:
        if secret:
            message = message.replace(secret, "**********")
    return message
