"""What the run left in the outboxes, the local stand-ins for Slack, Mixpanel, SMS
(Twilio), push (FCM, OneSignal) and mail (SMTP): lines added to each .jsonl file, and
.eml files added under outbox/mail/."""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from simbi_workers.config import Settings

JSONL = ("slack", "mixpanel", "sms", "push")
SAMPLE_SUBJECT = "sent you a message"  # NotifyMessageWorker's: the one to open first


@dataclass(frozen=True)
class Snapshot:
    lines: dict[str, int]
    emails: frozenset[str]  # file names under outbox/mail/


@dataclass(frozen=True)
class Added:
    lines: dict[str, int]
    emails: list[Path]  # oldest first


def path(settings: Settings, name: str) -> Path:
    return settings.outbox_dir / f"{name}.jsonl"


def mail_dir(settings: Settings) -> Path:
    return settings.outbox_dir / "mail"


def snapshot(settings: Settings) -> Snapshot:
    lines = {name: count_lines(path(settings, name)) for name in JSONL}
    return Snapshot(lines, frozenset(file.name for file in _emails(settings)))


def added(settings: Settings, before: Snapshot) -> Added:
    now = snapshot(settings)
    lines = {name: now.lines[name] - before.lines[name] for name in JSONL}
    emails = [file for file in _emails(settings) if file.name not in before.emails]
    return Added(lines, emails)


def read_email(file: Path) -> EmailMessage:
    with file.open("rb") as handle:
        return BytesParser(policy=policy.default).parse(handle)


def sample(emails: list[Path]) -> tuple[Path, EmailMessage] | None:
    """A message email if there is one, else the first email: the one to open."""
    parsed = [(file, read_email(file)) for file in emails]
    for file, message in parsed:
        if SAMPLE_SUBJECT in str(message["Subject"]):
            return file, message
    return parsed[0] if parsed else None


def count_lines(file: Path) -> int:
    try:
        with file.open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def _emails(settings: Settings) -> list[Path]:
    # Named <UTC time>-<message id>.eml, so sorting by name is sorting by time.
    return sorted(mail_dir(settings).glob("*.eml"))
