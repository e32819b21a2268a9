"""The push host service: each device goes to its own provider, FCM (firebase-admin, from
FCM_SERVICE_ACCOUNT_FILE) or OneSignal (its REST API, with ONESIGNAL_APP_ID and
ONESIGNAL_API_KEY); a device whose provider is not configured goes to
var/outbox/push.jsonl, one line per device.

Tokens a provider no longer knows come back in "unregistered" so that the worker can
delete those devices: FCM's UNREGISTERED and SENDER_ID_MISMATCH, an INVALID_ARGUMENT that
names the registration token, and OneSignal's invalid ids.

OneSignal tokens are subscription ids (what the OneSignal SDK reports for a device), so
they go out as `include_subscription_ids`; OneSignal lists the ones it does not know under
`errors.invalid_player_ids` (ids sent as aliases come back under `invalid_aliases`, which
is read too).

NOTE: one call sends to every device before it reports a failure. A retryable failure
(rate limit, 5xx, network) raises after the other devices were sent to, and the retry
sends to those again: a user may see a notification twice, but none is lost.

A OneSignal 429 with Retry-After pauses OneSignal for every job (services/pause.py), given
the queue Redis as `connection`. FCM gets no pause: its RESOURCE_EXHAUSTED may be one
device's limit rather than the project's, and firebase-admin already waits out a
Retry-After itself before it reports one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import firebase_admin
import redis
import requests
from firebase_admin import credentials, exceptions, messaging
from google.auth import exceptions as auth_exceptions

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services import outbox
from simbi_workers.services.pause import Pauses
from simbi_workers.services.provider_errors import (
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    for_http_status,
    redact,
    retry_after_seconds,
)

log = logging.getLogger(__name__)

PROVIDERS = ("fcm", "onesignal")
_BACKENDS = (*PROVIDERS, "outbox")
REQUEST_TIMEOUT_SECONDS = 30
ONESIGNAL_PAUSE = "push:onesignal"  # OneSignal rate-limits the app, so one pause for all

# send_each takes at most 500 messages and starts one thread per message; smaller batches
# keep the thread count sane for a user with many devices.
FCM_BATCH_SIZE = 100
MAX_BODY_CHARS_IN_ERRORS = 200

# Keys FCM refuses in a message's data (https://firebase.google.com/docs/cloud-messaging/
# concept-options#data_messages).
_FCM_RESERVED_KEYS = ("from", "notification", "message_type")
_FCM_RESERVED_PREFIXES = ("google.", "gcm.")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Tally:
    """What one send did so far, provider by provider."""

    delivered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_BACKENDS, 0))
    unregistered: list[str] = field(default_factory=list)
    errors: list[JobError] = field(default_factory=list)
    failed: int = 0  # devices, not errors: one batch or config error may fail many

    def fail(self, error: JobError, devices: int) -> None:
        self.errors.append(error)
        self.failed += devices

    @property
    def sent(self) -> int:
        return sum(self.delivered.values())

    def result(self) -> dict[str, Any]:
        return {"sent": self.sent, "unregistered": self.unregistered, "delivered": self.delivered}


class Push:
    HOST_METHODS = ("send",)

    def __init__(
        self,
        settings: Settings,
        *,
        now: Callable[[], datetime] = _utc_now,
        connection: redis.Redis | None = None,
    ):
        self._fcm_file = settings.fcm_service_account_file
        self._onesignal_app_id = settings.onesignal_app_id
        key = settings.onesignal_api_key
        self._onesignal_key = key.get_secret_value() if key else None
        self._onesignal_url = settings.onesignal_api_url.rstrip("/")
        self._outbox_dir = settings.outbox_dir
        self._now = now
        self._fcm_app: firebase_admin.App | None = None
        self._session = requests.Session()
        self._pauses = Pauses(connection)

    def send(
        self,
        devices: list[dict[str, str]],
        title: str,
        body: str,
        data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send a notification to each device ({token, provider}); `data` travels along as
        string key-value pairs. See the module's NOTE on retries."""
        devices = _check_devices(devices)
        _check_text(title, body)
        data = _check_data(data)

        tally = _Tally()
        by_provider = self._group(devices)
        if by_provider["fcm"]:
            self._send_fcm(by_provider["fcm"], title, body, data, tally)
        if by_provider["onesignal"]:
            self._send_onesignal(by_provider["onesignal"], title, body, data, tally)
        self._to_outbox(by_provider["outbox"], title, body, data, tally)

        if tally.errors:
            raise _combined_error(tally.errors, tally.failed, tally.sent)
        return tally.result()

    def _group(self, devices: list[dict[str, str]]) -> dict[str, list]:
        configured = {"fcm": self._fcm_file is not None, "onesignal": self._onesignal_ready}
        groups: dict[str, list] = {"fcm": [], "onesignal": [], "outbox": []}
        for device in devices:
            if configured[device["provider"]]:
                groups[device["provider"]].append(device["token"])
            else:
                groups["outbox"].append(device)
        return groups

    @property
    def _onesignal_ready(self) -> bool:
        return bool(self._onesignal_app_id and self._onesignal_key)

    def _to_outbox(self, devices: list[dict[str, str]], title, body, data, tally) -> None:
        at = self._now().isoformat(timespec="milliseconds")
        for device in devices:
            record = {**device, "title": title, "body": body, "data": data, "at": at}
            outbox.append(self._outbox_dir, "push", record)
            tally.delivered["outbox"] += 1

    # FCM

    def _send_fcm(self, tokens: list[str], title, body, data, tally: _Tally) -> None:
        try:
            app = self._fcm()
        except JobError as exc:
            # A broken service-account file: the other providers still get their devices.
            tally.fail(exc, len(tokens))
            return

        notification = messaging.Notification(title=title, body=body)
        for start in range(0, len(tokens), FCM_BATCH_SIZE):
            batch = tokens[start : start + FCM_BATCH_SIZE]
            messages = [_fcm_message(token, notification, data) for token in batch]
            try:
                answer = messaging.send_each(messages, app=app)
            except exceptions.FirebaseError as exc:
                # The whole batch failed before any message went out (credentials, say).
                tally.fail(_fcm_batch_failure(exc), len(batch))
                continue
            _tally_fcm(batch, answer, tally)

    def _fcm(self) -> firebase_admin.App:
        if self._fcm_app is not None:
            return self._fcm_app

        # One named app per service-account file and process, shared by every Push:
        # firebase-admin refuses a second app of the same name.
        path = Path(self._fcm_file).resolve()
        name = "simbi-push-" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        try:
            self._fcm_app = firebase_admin.get_app(name)
        except ValueError:
            self._fcm_app = _initialize_fcm(path, name)
        return self._fcm_app

    # OneSignal

    def _send_onesignal(self, tokens: list[str], title, body, data, tally: _Tally) -> None:
        payload = {
            "app_id": self._onesignal_app_id,
            "target_channel": "push",
            "include_subscription_ids": tokens,
            "headings": {"en": title},
            "contents": {"en": body},
        }
        if data:
            payload["data"] = data

        try:
            self._pauses.check(ONESIGNAL_PAUSE, RateLimited, "push: not sent to OneSignal")
        except RateLimited as exc:
            tally.fail(exc, len(tokens))
            return

        try:
            response = self._session.post(
                f"{self._onesignal_url}/notifications",
                headers={"Authorization": f"Key {self._onesignal_key}"},
                json=payload,
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            reason = redact(f"{type(exc).__name__}: {exc}", self._onesignal_key)
            error = ProviderUnavailable(f"push: could not reach OneSignal: {reason}")
            tally.fail(error, len(tokens))
            return

        self._tally_onesignal(tokens, response, tally)

    def _tally_onesignal(self, tokens, response: requests.Response, tally: _Tally) -> None:
        body = redact(response.text, self._onesignal_key)[:MAX_BODY_CHARS_IN_ERRORS]
        if response.status_code != 200:
            message = f"push: OneSignal answered status {response.status_code}, body {body!r}"
            error = for_http_status(response.status_code, message, response.headers)
            self._pauses.record(ONESIGNAL_PAUSE, error)
            tally.fail(error, len(tokens))
            return

        try:
            answer = response.json()
        except ValueError:
            tally.fail(ProviderUnavailable(f"push: OneSignal answered {body!r}"), len(tokens))
            return

        invalid = _onesignal_invalid_ids(answer.get("errors"))
        tally.unregistered.extend(token for token in tokens if token in invalid)

        # An empty id: OneSignal created no notification, so nobody got it.
        if not answer.get("id"):
            log.info("push onesignal sent nothing errors=%s", answer.get("errors"))
            return
        tally.delivered["onesignal"] += sum(1 for token in tokens if token not in invalid)


def describe(settings: Settings) -> str:
    """One line for `simbi-workers check`: where each provider's devices go. Raises
    PermanentJobError when FCM_SERVICE_ACCOUNT_FILE is unreadable, not JSON or not a
    service account, or OneSignal is half configured. Makes no request."""
    parts = []
    if settings.fcm_service_account_file is not None:
        parts.append(f"fcm project {_fcm_project(settings.fcm_service_account_file)}")

    app_id, key = settings.onesignal_app_id, settings.onesignal_api_key
    if app_id or key:
        missing = [
            name
            for name, value in (("ONESIGNAL_APP_ID", app_id), ("ONESIGNAL_API_KEY", key))
            if not value
        ]
        if missing:
            raise PermanentJobError(
                f"push: OneSignal is half configured; set {', '.join(missing)} or unset both "
                "to send OneSignal devices to the outbox"
            )
        parts.append(f"onesignal app {app_id}")

    unconfigured = [
        name
        for name, ready in (
            ("fcm", settings.fcm_service_account_file is not None),
            ("onesignal", bool(app_id and key)),
        )
        if not ready
    ]
    if unconfigured:
        outbox_file = settings.outbox_dir / "push.jsonl"
        parts.append(f"{' and '.join(unconfigured)} devices to outbox {outbox_file}")
    return "; ".join(parts)


def _fcm_project(path: Path) -> str:
    where = f"FCM_SERVICE_ACCOUNT_FILE {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentJobError(f"push: cannot read {where}: {exc}") from None
    try:
        account = json.loads(text)
    except ValueError:
        # json's message would quote the text around the fault, a piece of a private key.
        raise PermanentJobError(f"push: {where} is not valid JSON") from None
    if not isinstance(account, dict):
        raise PermanentJobError(f"push: {where} is not a JSON object (a service account)")
    try:
        credential = credentials.Certificate(account)
    except (ValueError, TypeError) as exc:
        raise PermanentJobError(f"push: cannot use {where}: {exc}") from None
    return f"{credential.project_id} ({path})"


def _initialize_fcm(path: Path, name: str) -> firebase_admin.App:
    try:
        credential = credentials.Certificate(str(path))
        options = {"httpTimeout": REQUEST_TIMEOUT_SECONDS}
        return firebase_admin.initialize_app(credential, options=options, name=name)
    except (OSError, ValueError) as exc:
        # The library's messages name the file and the field, never the key itself.
        raise PermanentJobError(
            f"push: cannot use FCM_SERVICE_ACCOUNT_FILE {path}: {exc}"
        ) from None


def _fcm_message(token: str, notification, data) -> messaging.Message:
    # firebase-admin 7.7 deprecates Message.token for Message.fid (a Firebase installation
    # id). Our devices hold registration tokens, which the apps get from the FCM SDK and
    # which only `token` addresses; the warning would fire once per message.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
        return messaging.Message(token=token, notification=notification, data=data)


def _tally_fcm(tokens: list[str], answer: messaging.BatchResponse, tally: _Tally) -> None:
    for token, response in zip(tokens, answer.responses, strict=True):
        if response.success:
            tally.delivered["fcm"] += 1
        elif _fcm_token_is_gone(response.exception):
            tally.unregistered.append(token)
        else:
            tally.fail(_fcm_failure(response.exception), 1)


def _fcm_token_is_gone(exc: exceptions.FirebaseError) -> bool:
    if isinstance(exc, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return True

    # FCM answers INVALID_ARGUMENT both for a malformed token and for a malformed message;
    # only the first names the token ("The registration token is not a valid FCM
    # registration token").
    return isinstance(exc, exceptions.InvalidArgumentError) and "registration token" in str(exc)


def _fcm_failure(exc: exceptions.FirebaseError) -> JobError:
    message = f"push: FCM refused a message ({exc.code}): {exc}"
    if isinstance(exc, exceptions.ResourceExhaustedError):
        headers = exc.http_response.headers if exc.http_response is not None else None
        return RateLimited(message, retry_after_seconds=retry_after_seconds(headers))

    transient = (
        exceptions.UnavailableError,
        exceptions.InternalError,
        exceptions.DeadlineExceededError,
        exceptions.UnknownError,
    )
    if isinstance(exc, transient):
        return ProviderUnavailable(message)

    # Bad credentials, an APNs certificate problem, a message FCM will not take.
    return ProviderRejected(message)


def _fcm_batch_failure(exc: exceptions.FirebaseError) -> JobError:
    cause = exc.cause
    if isinstance(cause, auth_exceptions.RefreshError) and not cause.retryable:
        return ProviderRejected(
            f"push: Google refused the FCM credentials ({cause}); check FCM_SERVICE_ACCOUNT_FILE"
        )
    return ProviderUnavailable(f"push: FCM send failed: {exc}")


def _onesignal_invalid_ids(errors: Any) -> set[str]:
    # `errors` is a list of sentences ("All included players are not subscribed") or an
    # object listing the ids it did not know.
    if not isinstance(errors, dict):
        return set()

    invalid = set(_strings(errors.get("invalid_player_ids")))
    aliases = errors.get("invalid_aliases")
    if isinstance(aliases, dict):
        for ids in aliases.values():
            invalid.update(_strings(ids))
    return invalid


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _combined_error(errors: list[JobError], failed: int, sent: int) -> JobError:
    # A retryable error wins: another attempt may reach everyone. Only when every failure
    # is permanent does the job go to the dead set.
    first = next((error for error in errors if error.retryable), errors[0])
    note = f" ({failed} device(s) failed; {sent} were sent to"
    note += ", and a retry sends to them again)" if first.retryable else ")"
    return type(first)(str(first) + note, retry_after_seconds=first.retry_after_seconds)


def _check_devices(devices: Any) -> list[dict[str, str]]:
    if not isinstance(devices, list):
        raise PermanentJobError(f"push.send: devices must be a list, got {type(devices).__name__}")

    checked: dict[str, dict[str, str]] = {}
    for index, device in enumerate(devices):
        token = device.get("token") if isinstance(device, dict) else None
        provider = device.get("provider") if isinstance(device, dict) else None
        if not isinstance(token, str) or not token or provider not in PROVIDERS:
            raise PermanentJobError(
                f"push.send: devices[{index}] must be {{token, provider}} with a non-empty "
                f"token and provider one of {', '.join(PROVIDERS)}, got {device!r}"
            )
        # The same token twice would notify the device twice.
        checked.setdefault(token, {"token": token, "provider": provider})
    return list(checked.values())


def _check_text(title: Any, body: Any) -> None:
    for name, value in (("title", title), ("body", body)):
        if not isinstance(value, str) or not value.strip():
            raise PermanentJobError(f"push.send: {name} must be a non-empty string, got {value!r}")


def _check_data(data: Any) -> dict[str, str] | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PermanentJobError(f"push.send: data must be an object, got {type(data).__name__}")

    for key, value in data.items():
        # FCM carries data as strings only; stringify numbers in the worker, not here,
        # so that both providers get the same payload.
        if not isinstance(key, str) or not isinstance(value, str):
            raise PermanentJobError(
                f"push.send: data[{key!r}] must be a string, got {type(value).__name__}"
            )
        if key in _FCM_RESERVED_KEYS or key.startswith(_FCM_RESERVED_PREFIXES):
            raise PermanentJobError(f"push.send: data key {key!r} is reserved by FCM")
    return data or None
