"""The mail host service: builds each RFC 5322 message itself and sends it over SMTP
(SMTP_URL), or writes it to var/outbox/mail/<time>-<id>.eml when SMTP_URL is unset.

SMTP_URL forms (see config.py): smtp://user:pass@host:587 upgrades with STARTTLS and
refuses to go on without it (the password must not cross the network in clear);
smtp://host:25?starttls=false talks plain SMTP to a trusted relay that needs no login;
smtps://host:465 uses implicit TLS. A user name with ?starttls=false is refused: the
login would send the password in clear. Only for a local test server (mailpit, aiosmtpd)
that offers neither TLS, add ?insecure_auth=true to log in over plain SMTP anyway. The
URL holds a password: it never appears in an error or a log line.

Unsubscribe links carry a token the Simbi app verifies with SIMBI_UNSUBSCRIBE_SECRET:

    token   = b64url("<user_id>:<category>") + "." + b64url(HMAC-SHA256(secret, same)[:16])
    url     = SIMBI_APP_URL + "/unsubscribe/" + token

b64url is URL-safe base64 without '=' padding. The token is deterministic: the same user
and category always get the same link, so a retried job sends the same one. An empty
secret signs nothing (unsubscribe_url and non-transactional sends fail permanently), and
sending over SMTP with the development default logs a warning when Mail is built.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import smtplib
import ssl
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services.provider_errors import ProviderRejected, ProviderUnavailable, redact

log = logging.getLogger(__name__)

SMTP_TIMEOUT_SECONDS = 30
SIGNATURE_BYTES = 16  # 128 bits of HMAC-SHA256: plenty against guessing, short links
MAX_ADDRESS_CHARS = 254  # RFC 5321's limit on a forward path

_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CATEGORY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_FILE_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
_FALSE = ("false", "0", "no", "off")
_TRUE = ("true", "1", "yes", "on")
_INVALID_URL = "SMTP_URL is not a valid smtp:// or smtps:// URL"
_DEVELOPMENT_SECRET = Settings.model_fields["unsubscribe_secret"].default.get_secret_value()


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    insecure_auth: bool = False

    def describe(self) -> str:
        """One line for `simbi-workers check`, without the user name or password."""
        if self.implicit_tls:
            how = "implicit TLS"
        elif self.starttls:
            how = "STARTTLS"
        elif self.username:
            how = "plain SMTP, password sent without TLS: insecure_auth"
        else:
            how = "plain, no TLS, no login"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"smtp to {host}:{self.port} ({how})"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Mail:
    HOST_METHODS = ("send", "unsubscribe_url")

    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = _utc_now):
        smtp_url = settings.smtp_url
        self._smtp_url = smtp_url.get_secret_value() if smtp_url else None
        self._ca_file = settings.smtp_ca_file
        self._from = settings.mail_from
        self._domain = _domain_of(settings.mail_from)
        self._secret = settings.unsubscribe_secret.get_secret_value().encode("utf-8")
        if self._smtp_url is not None and (problem := _secret_problem(settings)):
            log.warning("mail: %s", problem)
        self._app_url = settings.app_base_url.rstrip("/")
        self._outbox_dir = settings.outbox_dir / "mail"
        self._now = now

    def unsubscribe_url(self, user_id: int | str, category: str) -> dict[str, str]:
        """The signed one-click link that unsubscribes `user_id` from `category` mail."""
        payload = _unsubscribe_payload(user_id, category)
        return {"url": f"{self._app_url}/unsubscribe/{self._token(payload)}"}

    def verify_unsubscribe_token(self, token: str) -> tuple[str, str] | None:
        """(user_id, category) from a token this service signed, or None if it is forged,
        truncated or signed with another secret. user_id comes back as a string."""
        if not isinstance(token, str) or not self._secret:
            return None
        encoded = token.partition(".")[0]
        try:
            payload = _b64decode(encoded)
        except ValueError:
            return None

        if not hmac.compare_digest(self._token(payload), token):
            return None
        user_id, _, category = payload.decode("utf-8").partition(":")
        return user_id, category

    def send(
        self,
        to_email: str,
        to_name: str | None,
        subject: str,
        text: str,
        html: str | None,
        category: str,
        transactional: bool,
        user_id: int | str | None = None,
    ) -> dict[str, str]:
        """Send one message, multipart/alternative (text, then html) when html is given.
        Unless `transactional`, it carries one-click unsubscribe headers for `user_id`."""
        _check_message(to_email, to_name, subject, text, html, transactional)
        unsubscribe = None
        if not transactional:
            if user_id is None:
                raise PermanentJobError(
                    "mail.send: user_id is required when transactional is false "
                    "(it goes into the List-Unsubscribe link)"
                )
            unsubscribe = self.unsubscribe_url(user_id, category)["url"]

        try:
            message = self._build(to_email, to_name, subject, text, html, unsubscribe)
        except ValueError as exc:
            # The email package refuses what _check_message missed; the input, not the
            # server, is wrong, so a retry cannot help.
            raise PermanentJobError(f"mail.send: cannot build the message: {exc}") from None
        message_id = message["Message-ID"]

        if self._smtp_url is None:
            self._to_outbox(message)
            return {"message_id": message_id, "delivered": "outbox"}

        self._send_smtp(message)
        log.debug("mail sent message_id=%s category=%s", message_id, category)
        return {"message_id": message_id, "delivered": "smtp"}

    def _token(self, payload: bytes) -> str:
        if not self._secret:
            # HMAC with an empty key: anyone could sign an unsubscribe link.
            raise PermanentJobError(
                "mail: SIMBI_UNSUBSCRIBE_SECRET is empty, so unsubscribe links cannot be "
                "signed; set it to the secret the Simbi app verifies them with"
            )
        digest = hmac.new(self._secret, payload, hashlib.sha256).digest()
        return f"{_b64encode(payload)}.{_b64encode(digest[:SIGNATURE_BYTES])}"

    def _build(self, to_email, to_name, subject, text, html, unsubscribe) -> EmailMessage:
        # Policy SMTP: CRLF line ends, and non-ASCII header text RFC 2047-encoded.
        message = EmailMessage(policy=SMTP)
        message["From"] = self._from
        message["To"] = _address(to_email, to_name)
        message["Subject"] = subject
        message["Date"] = format_datetime(self._now())
        message["Message-ID"] = make_msgid(domain=self._domain)

        # RFC 8058 one-click unsubscribe: mailbox providers POST to the link themselves.
        if unsubscribe:
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

        message.set_content(text, subtype="plain", charset="utf-8")
        if html:
            message.add_alternative(html, subtype="html", charset="utf-8")
        return message

    def _to_outbox(self, message: EmailMessage) -> Path:
        self._outbox_dir.mkdir(parents=True, exist_ok=True)
        stamp = self._now().strftime("%Y%m%dT%H%M%S.%fZ")
        local_part = message["Message-ID"].strip("<>").partition("@")[0]
        path = self._outbox_dir / f"{stamp}-{_FILE_SAFE.sub('_', local_part)}.eml"

        # Written under a hidden temporary name, then renamed: whoever watches the
        # directory never sees half a message.
        fd, temporary = tempfile.mkstemp(dir=self._outbox_dir, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            file.write(message.as_bytes(policy=SMTP))
        os.replace(temporary, path)
        return path

    def _send_smtp(self, message: EmailMessage) -> None:
        target = _parse_smtp_url(self._smtp_url)
        try:
            smtp = self._connect(target)
        except (smtplib.SMTPException, OSError) as exc:
            raise _smtp_failure(exc, target) from None

        try:
            self._login_and_send(smtp, target, message)
        except (smtplib.SMTPException, OSError) as exc:
            # `from None`: smtplib's frames hold the password in their locals.
            raise _smtp_failure(exc, target) from None
        finally:
            _close(smtp)

    def _connect(self, target: SmtpTarget) -> smtplib.SMTP:
        if target.implicit_tls:
            return smtplib.SMTP_SSL(
                target.host, target.port, timeout=SMTP_TIMEOUT_SECONDS, context=self._tls()
            )
        return smtplib.SMTP(target.host, target.port, timeout=SMTP_TIMEOUT_SECONDS)

    def _login_and_send(self, smtp: smtplib.SMTP, target: SmtpTarget, message) -> None:
        if target.starttls:
            smtp.starttls(context=self._tls())
        if target.username:
            smtp.login(target.username, target.password or "")
        smtp.send_message(message)

    def _tls(self) -> ssl.SSLContext:
        return _tls_context(self._ca_file)


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    cafile = str(ca_file) if ca_file else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise PermanentJobError(
            f"mail: cannot load SMTP_CA_FILE {cafile}: {exc}; fix or unset it"
        ) from None


def _close(smtp: smtplib.SMTP) -> None:
    # The message is accepted once DATA succeeds; a failed QUIT must not turn that into
    # an error, or the retry would send the message twice.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _smtp_failure(exc: Exception, target: SmtpTarget) -> JobError:
    where = f"SMTP server {target.host}:{target.port}"
    reason = redact(_describe(exc), target.password)

    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ProviderRejected(
            f"mail: the {where} does not support a step we need ({reason}); "
            "use smtps://, or ?starttls=false for a relay that needs no TLS and no login"
        )

    code = _smtp_code(exc)
    if code is not None and code >= 500:
        return ProviderRejected(f"mail: the {where} refused the message: {reason}")

    # 4xx (greylisting, a full mailbox, too many connections) and network failures may
    # clear up: the job stays retryable.
    return ProviderUnavailable(f"mail: the {where} failed: {reason}")


def _smtp_code(exc: Exception) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient per message; if several, a temporary refusal keeps it retryable.
        codes = [code for code, _ in exc.recipients.values()]
        return min(codes) if codes else None
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code
    return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = [f"{code} {_text(reply)}" for code, reply in exc.recipients.values()]
        return "recipient refused: " + "; ".join(replies)
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__}: {exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _parse_smtp_url(url: str) -> SmtpTarget:
    # Errors name the rule, never the URL or urllib's message: both may hold the password.
    try:
        parts = urlsplit(url)
        scheme, hostname = parts.scheme, parts.hostname
        username, password = parts.username, parts.password
        query = parse_qs(parts.query)
    except ValueError:
        raise PermanentJobError(
            f"{_INVALID_URL} (percent-encode ':' '@' '/' '?' '#' '[' ']' in the user name "
            "and password)"
        ) from None
    if scheme not in _DEFAULT_PORTS:
        raise PermanentJobError("SMTP_URL must start with smtp:// or smtps://")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise PermanentJobError(
            "SMTP_URL has a port that is not a number from 1 to 65535 (percent-encode "
            "':' '@' '/' '?' '#' in the user name and password)"
        ) from None
    if not hostname:
        raise PermanentJobError("SMTP_URL names no host")

    implicit_tls = scheme == "smtps"
    starttls = not implicit_tls and _option(query, "starttls", default=True)
    insecure_auth = _option(query, "insecure_auth", default=False)
    if username and not (implicit_tls or starttls or insecure_auth):
        raise ProviderRejected(
            "mail: refusing to send the SMTP password without TLS: use smtps:// or STARTTLS "
            "(drop ?starttls=false); only for a local test server add ?insecure_auth=true"
        )
    return SmtpTarget(
        host=hostname,
        port=port,
        implicit_tls=implicit_tls,
        starttls=starttls,
        username=unquote(username) if username else None,
        password=unquote(password) if password else None,
        insecure_auth=insecure_auth,
    )


def _option(query: dict[str, list[str]], name: str, *, default: bool) -> bool:
    value = query.get(name, [""])[0].strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    # Guessing could log in without TLS: a typo must be fixed, not read as a default.
    # The value is not echoed: with an unencoded '?' in the password it would be a piece of it.
    raise PermanentJobError(f"SMTP_URL: ?{name}= must be true or false")


def _secret_problem(settings: Settings) -> str | None:
    secret = settings.unsubscribe_secret.get_secret_value()
    if not secret:
        return (
            "SIMBI_UNSUBSCRIBE_SECRET is empty: mail with unsubscribe links will fail; "
            "set SIMBI_UNSUBSCRIBE_SECRET"
        )
    if secret == _DEVELOPMENT_SECRET:
        return (
            "unsubscribe links are signed with the development secret; set SIMBI_UNSUBSCRIBE_SECRET"
        )
    return None


def describe(settings: Settings) -> str:
    """One line for `simbi-workers check`: where mail goes. Raises PermanentJobError (with
    no secret in it) when SMTP_URL, SMTP_CA_FILE or the unsubscribe secret is unusable."""
    if settings.smtp_url is None:
        return f"outbox {settings.outbox_dir / 'mail'}"

    target = _parse_smtp_url(settings.smtp_url.get_secret_value())
    if settings.smtp_ca_file is not None and (target.implicit_tls or target.starttls):
        _tls_context(settings.smtp_ca_file)
    line = target.describe()
    problem = _secret_problem(settings)
    if problem and not settings.unsubscribe_secret.get_secret_value():
        raise PermanentJobError(f"{line}, but {problem}")
    return f"{line}; warning: {problem}" if problem else line


def _check_message(to_email, to_name, subject, text, html, transactional) -> None:
    _check_address(to_email)
    _check_header_text("to_name", to_name, required=False)
    _check_header_text("subject", subject, required=True)

    if not isinstance(text, str) or not text.strip():
        raise PermanentJobError("mail.send: text must be a non-empty string")
    if html is not None and not isinstance(html, str):
        raise PermanentJobError(f"mail.send: html must be a string or null, got {type(html)}")
    if not isinstance(transactional, bool):
        raise PermanentJobError(
            f"mail.send: transactional must be true or false, got {transactional!r}"
        )


def _check_address(to_email: Any) -> None:
    if not isinstance(to_email, str):
        raise PermanentJobError(f"mail.send: to_email must be a string, got {to_email!r}")

    local, at, domain = to_email.partition("@")
    well_formed = (
        at
        and local
        and domain
        and "@" not in domain
        and to_email.isascii()
        and len(to_email) <= MAX_ADDRESS_CHARS
        and not any(
            ch.isspace() or ch in '<>,;"\\' or unicodedata.category(ch) == "Cc" for ch in to_email
        )
    )
    if not well_formed:
        # repr() shows a CR or LF for what it is: an attempt at header injection.
        raise PermanentJobError(
            f"mail.send: to_email {to_email!r} is not one plain ASCII address (local@domain)"
        )


def _check_header_text(name: str, value: Any, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value.strip()):
        raise PermanentJobError(f"mail.send: {name} must be a non-empty string, got {value!r}")

    # A line break would start a new header (header injection). The email package breaks
    # lines at everything str.splitlines() does (\x1c-\x1e, \x85, U+2028 too) and refuses
    # them with a ValueError; other control characters have no place in a header either.
    if "".join(value.splitlines()) != value or any(
        unicodedata.category(ch) == "Cc" for ch in value
    ):
        raise PermanentJobError(
            f"mail.send: {name} may not contain line breaks (CR, LF) or other control "
            f"characters, got {value!r}"
        )


def _address(to_email: str, to_name: str | None) -> Address:
    local, _, domain = to_email.partition("@")
    try:
        return Address(display_name=to_name or "", username=local, domain=domain)
    except ValueError as exc:
        raise PermanentJobError(f"mail.send: to_email {to_email!r} is not valid: {exc}") from None


def _unsubscribe_payload(user_id: Any, category: Any) -> bytes:
    if isinstance(user_id, bool) or not _USER_ID.match(str(user_id)):
        raise PermanentJobError(
            f"mail: user_id must be an integer or 1-64 letters, digits, '_' or '-', got {user_id!r}"
        )
    if not isinstance(category, str) or not _CATEGORY.match(category):
        raise PermanentJobError(
            f"mail: category must be 1-64 letters, digits, '_', '.' or '-', got {category!r}"
        )
    return f"{user_id}:{category}".encode()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def _domain_of(mail_from: str) -> str:
    # Message-IDs end in the sender's domain (make_msgid would otherwise look up this
    # host's name, which may be slow or meaningless in a container).
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "simbi.example"
