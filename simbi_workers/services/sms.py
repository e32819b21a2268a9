"""The sms host service: Twilio's Messages API through the official library when
TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are set, otherwise var/outbox/sms.jsonl.

Twilio's answers become the provider errors of docs/protocol.md: a number that cannot
receive SMS is InvalidNumber, a recipient who replied STOP is Unsubscribed (both
permanent), 429 RateLimited, 5xx and network errors ProviderUnavailable, any other
refusal ProviderRejected. A 2xx answer that is not a JSON message is ProviderUnavailable
too, whose message warns that Twilio may have accepted the SMS (a retry may send it
twice). The auth token never appears in an error or a log line. A 429 with Retry-After
pauses every send for that long (services/pause.py), given the queue Redis as `connection`.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services import outbox
from simbi_workers.services.pause import Pauses
from simbi_workers.services.provider_errors import (
    InvalidNumber,
    ProviderUnavailable,
    RateLimited,
    Unsubscribed,
    for_http_status,
    redact,
)

log = logging.getLogger(__name__)

# The library logs every request and its headers at INFO; one line per SMS is noise at
# our default level, so its logger only speaks up for warnings.
_sdk_log = logging.getLogger(f"{__name__}.twilio")
_sdk_log.setLevel(logging.WARNING)

REQUEST_TIMEOUT_SECONDS = 30
MAX_BODY_CHARS = 1600  # Twilio's limit for one message (it splits into segments itself)
MAX_ANSWER_CHARS_IN_ERRORS = 200

# https://www.twilio.com/docs/api/errors: not a valid phone number (21211), not a mobile
# number (21214), not a number at all (21217), not SMS-capable (21614).
INVALID_NUMBER_CODES = frozenset({21211, 21214, 21217, 21614})
UNSUBSCRIBED_CODE = 21610

_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")

# Twilio's 429 limits the account, not a number: one pause for every send.
PAUSE_DESTINATION = "sms:twilio"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RedirectingHttpClient(TwilioHttpClient):
    """Twilio's own HTTP client, which also remembers the last response's headers (a
    TwilioRestException carries no headers, and a 429's Retry-After is in them) and, given
    `base_url`, sends every request there instead of https://*.twilio.com."""

    def __init__(self, base_url: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._base = urlsplit(base_url.rstrip("/")) if base_url else None
        self._local = threading.local()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self._local.headers = {}
        self._local.response = None
        response = super().request(method, self._redirect(url), *args, **kwargs)
        self._local.headers = response.headers or {}
        self._local.response = response
        return response

    @property
    def last_headers(self) -> dict[str, str]:
        return getattr(self._local, "headers", {})

    @property
    def last_response(self) -> Response | None:
        """The last response this thread received, or None if its request failed."""
        return getattr(self._local, "response", None)

    def _redirect(self, url: str) -> str:
        if self._base is None:
            return url
        parts = urlsplit(url)
        path = self._base.path + parts.path
        return urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))


class Sms:
    HOST_METHODS = ("send",)

    def __init__(
        self,
        settings: Settings,
        *,
        now: Callable[[], datetime] = _utc_now,
        connection: redis.Redis | None = None,
    ):
        token = settings.twilio_auth_token
        self._sid = settings.twilio_account_sid
        self._token = token.get_secret_value() if token else None
        self._from = settings.twilio_from_number
        self._api_url = settings.twilio_api_url
        self._outbox_dir = settings.outbox_dir
        self._now = now
        self._client: Client | None = None
        self._http: RedirectingHttpClient | None = None
        self._pauses = Pauses(connection)

    def send(self, to: str, body: str) -> dict[str, str]:
        """Send `body` to the E.164 number `to`; returns the message's sid."""
        _check(to, body)

        if not self._sid and not self._token:
            return self._to_outbox(to, body)

        client = self._twilio()
        self._pauses.check(PAUSE_DESTINATION, RateLimited, "sms: not sent")
        try:
            message = client.messages.create(to=to, from_=self._from, body=body)
            sid = message.sid
        except TwilioException as exc:
            failure = self._failure(exc)
            self._pauses.record(PAUSE_DESTINATION, failure)
            raise failure from None
        except requests.RequestException as exc:
            # `from None` here and above: the library's frames hold the auth token.
            reason = redact(f"{type(exc).__name__}: {exc}", self._token)
            raise ProviderUnavailable(f"sms: could not reach Twilio: {reason}") from None
        except (ValueError, AttributeError, TypeError):
            # A 2xx whose body is not JSON (json.loads: ValueError) or not a JSON object
            # (the library then calls .get on a list or None): a proxy's page, say.
            if not self._answered_2xx():
                raise
            raise self._unreadable_answer("was not a JSON message") from None
        if not sid:
            raise self._unreadable_answer("named no message sid")

        log.debug("sms sent sid=%s", sid)
        return {"sid": sid, "delivered": "twilio"}

    def _to_outbox(self, to: str, body: str) -> dict[str, str]:
        sid = f"outbox-{secrets.token_hex(8)}"
        at = self._now().isoformat(timespec="milliseconds")
        outbox.append(self._outbox_dir, "sms", {"sid": sid, "to": to, "body": body, "at": at})
        return {"sid": sid, "delivered": "outbox"}

    def _twilio(self) -> Client:
        if self._client is not None:
            return self._client

        _check_complete(self._sid, self._token, self._from)
        self._http = RedirectingHttpClient(
            self._api_url, timeout=REQUEST_TIMEOUT_SECONDS, logger=_sdk_log
        )
        self._client = Client(self._sid, self._token, http_client=self._http)
        return self._client

    def _answered_2xx(self) -> bool:
        response = self._http.last_response if self._http else None
        return response is not None and 200 <= response.status_code < 300

    def _unreadable_answer(self, what: str) -> ProviderUnavailable:
        # Retryable, since nothing says the message went out; but Twilio answered success,
        # so it may have: whoever reads this must know a retry may text the number twice.
        response = self._http.last_response if self._http else None
        status = response.status_code if response is not None else "?"
        text = response.text if response is not None else ""
        body = redact(text or "", self._token)[:MAX_ANSWER_CHARS_IN_ERRORS]
        return ProviderUnavailable(
            f"sms: Twilio answered status {status} but its answer {what} (body {body!r}); "
            "the message may have been accepted, so a retry may send it twice"
        )

    def _failure(self, exc: TwilioException) -> JobError:
        status = getattr(exc, "status", None)
        code = getattr(exc, "code", None)
        detail = redact(_detail(exc), self._token)
        message = f"sms: Twilio refused the message (status {status}, code {code}): {detail}"

        if code in INVALID_NUMBER_CODES:
            return InvalidNumber(message)
        if code == UNSUBSCRIBED_CODE:
            return Unsubscribed(message)
        if isinstance(status, int):
            return for_http_status(status, message, self._http.last_headers)
        return ProviderUnavailable(f"sms: the Twilio library failed: {detail}")


def describe(settings: Settings) -> str:
    """One line for `simbi-workers check`: where SMS go. Raises PermanentJobError naming
    the missing settings when Twilio is half configured (TWILIO_FROM_NUMBER alone counts:
    sends then go to the outbox, which is surely not what was meant). Makes no request."""
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    sid, sender = settings.twilio_account_sid, settings.twilio_from_number
    if not (sid or token or sender):
        return f"outbox {settings.outbox_dir / 'sms.jsonl'}"
    _check_complete(sid, token, sender)
    via = ""
    if settings.twilio_api_url:
        # Scheme and host only: a proxy URL may carry credentials.
        parts = urlsplit(settings.twilio_api_url)
        via = f" via {parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return f"twilio account {sid} from {sender}{via}"


def _check_complete(sid: str | None, token: str | None, sender: str | None) -> None:
    missing = [
        name
        for name, value in (
            ("TWILIO_ACCOUNT_SID", sid),
            ("TWILIO_AUTH_TOKEN", token),
            ("TWILIO_FROM_NUMBER", sender),
        )
        if not value
    ]
    if missing:
        raise PermanentJobError(
            f"sms: Twilio is half configured; set {', '.join(missing)} "
            "or unset all TWILIO_* settings to use the outbox"
        )


def _detail(exc: TwilioException) -> str:
    # str() of a TwilioRestException turns into coloured text on a terminal; use fields.
    if isinstance(exc, TwilioRestException):
        return str(exc.msg)
    if isinstance(exc, TwilioServiceException):
        return f"{exc.title}: {exc.detail or ''}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def _check(to: Any, body: Any) -> None:
    if not isinstance(to, str) or not _E164.match(to):
        raise InvalidNumber(
            f"sms.send: to must be an E.164 number ('+' and 8-15 digits), got {to!r}"
        )
    if not isinstance(body, str) or not body.strip():
        raise PermanentJobError(f"sms.send: body must be a non-empty string, got {body!r}")
    if len(body) > MAX_BODY_CHARS:
        raise PermanentJobError(
            f"sms.send: body has {len(body)} characters; Twilio takes at most {MAX_BODY_CHARS}"
        )
