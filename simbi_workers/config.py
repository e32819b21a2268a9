"""Settings, read once from the environment into one object.

Secrets are SecretStr so that they print as '**********' in logs, /stats and reprs;
none of them is ever handed to a child process (see runtimes/child.py).
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from simbi_workers.catalog import DEFAULT_QUEUES_FILE
from simbi_workers.errors import ConfigError

# The channels SlackNotifierWorker posts to; each may have a webhook in SLACK_WEBHOOKS.
DEFAULT_SLACK_CHANNELS = (
    "signups",
    "payments",
    "reviews",
    "flags",
    "errors",
    "services",
    "trades",
    "support",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    # Where things live.
    redis_url: str | None = Field(default=None, description="unset: start a local Redis")
    database_url: str | None = Field(default=None, description="unset: SQLite under var/")
    # Beside queues.yaml, so every command finds the same local Redis from any directory.
    var_dir: Path = Field(default=DEFAULT_QUEUES_FILE.parent / "var", alias="SIMBI_VAR_DIR")
    queues_file: Path = Field(default=DEFAULT_QUEUES_FILE, alias="SIMBI_QUEUES_FILE")
    app_base_url: str = Field(default="http://localhost:3000", alias="SIMBI_APP_URL")

    # Storage: a directory under var/ unless a bucket is named.
    s3_bucket: str | None = Field(default=None, alias="SIMBI_S3_BUCKET")
    s3_endpoint_url: str | None = Field(default=None, alias="SIMBI_S3_ENDPOINT_URL")

    # Slack: outbox unless a webhook is configured for the channel (JSON object).
    slack_webhooks: dict[str, SecretStr] = Field(default={}, alias="SLACK_WEBHOOKS")
    slack_channels: tuple[str, ...] = Field(default=DEFAULT_SLACK_CHANNELS, alias="SLACK_CHANNELS")

    # Mixpanel: outbox unless a token is set.
    mixpanel_token: SecretStr | None = Field(default=None, alias="MIXPANEL_TOKEN")
    mixpanel_api_url: str = Field(default="https://api.mixpanel.com", alias="MIXPANEL_API_URL")

    # Mail: .eml files under var/outbox/mail/ unless SMTP_URL is set.
    # smtp://user:pass@host:587 (STARTTLS, the default; add ?starttls=false for a plain
    # relay), smtps://user:pass@host:465 (implicit TLS). Percent-encode ':' '@' '/' in the
    # user name or password. SMTP_CA_FILE: a PEM bundle to trust instead of the system's.
    smtp_url: SecretStr | None = Field(default=None, alias="SMTP_URL")
    smtp_ca_file: Path | None = Field(default=None, alias="SMTP_CA_FILE")
    mail_from: str = Field(default="Simbi <no-reply@simbi.example>", alias="MAIL_FROM")
    # Signs the one-click unsubscribe links; the Simbi app verifies them with the same key.
    unsubscribe_secret: SecretStr = Field(
        default=SecretStr("simbi-dev-unsubscribe-secret"), alias="SIMBI_UNSUBSCRIBE_SECRET"
    )

    # SMS: var/outbox/sms.jsonl unless the Twilio account SID and auth token are set.
    # TWILIO_API_URL replaces scheme and host of every Twilio request (tests, a proxy).
    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    twilio_from_number: str | None = Field(default=None, alias="TWILIO_FROM_NUMBER")
    twilio_api_url: str | None = Field(default=None, alias="TWILIO_API_URL")

    # Push: a device goes to its provider when that provider is configured, otherwise to
    # var/outbox/push.jsonl. FCM: a service-account JSON file; OneSignal: app id and key.
    fcm_service_account_file: Path | None = Field(default=None, alias="FCM_SERVICE_ACCOUNT_FILE")
    onesignal_app_id: str | None = Field(default=None, alias="ONESIGNAL_APP_ID")
    onesignal_api_key: SecretStr | None = Field(default=None, alias="ONESIGNAL_API_KEY")
    onesignal_api_url: str = Field(default="https://api.onesignal.com", alias="ONESIGNAL_API_URL")

    # Social: the friend-list APIs SocialFriendsWorker reads with the user's own token.
    # Empty: that provider is off, and its jobs fail with a clear error.
    social_facebook_api_url: str = Field(
        default="https://graph.facebook.com/v19.0", alias="SOCIAL_FACEBOOK_API_URL"
    )
    social_google_api_url: str = Field(
        default="https://people.googleapis.com", alias="SOCIAL_GOOGLE_API_URL"
    )

    # Uploads fetched by URL: only from these hosts, and no larger than this.
    upload_url_hosts: tuple[str, ...] = Field(default=(), alias="SIMBI_UPLOAD_URL_HOSTS")
    upload_max_bytes: int = Field(default=20 * 1024 * 1024, alias="SIMBI_UPLOAD_MAX_BYTES")

    # Runtime behaviour.
    log_format: str = Field(default="text", alias="SIMBI_LOG_FORMAT")
    log_level: str = Field(default="INFO", alias="SIMBI_LOG_LEVEL")
    # Lower bounds: a limit of 0 refuses every job, and a TTL of 0 deletes a dead job the
    # moment it is buried.
    max_payload_bytes: int = Field(default=1024 * 1024 * 4, ge=100, alias="SIMBI_MAX_PAYLOAD_BYTES")
    result_ttl_seconds: int = Field(default=500, ge=1, alias="SIMBI_RESULT_TTL")
    failure_ttl_seconds: int = Field(default=7 * 86_400, ge=60, alias="SIMBI_FAILURE_TTL")
    # A worker process's heartbeat hash lives this long past its last beat. A process that
    # died is noticed by its supervisor at once; a whole host that died is noticed when its
    # hashes expire, so its jobs are back in their queues within this plus 10 s.
    heartbeat_ttl_seconds: int = Field(default=30, ge=15, le=3600, alias="SIMBI_HEARTBEAT_TTL")
    # Take in the jobs a stock Sidekiq client pushes (docs/operations.md); also
    # `start --accept-sidekiq`.
    accept_sidekiq: bool = Field(default=False, alias="SIMBI_ACCEPT_SIDEKIQ")
    ruby_bin: str = Field(default="ruby", alias="SIMBI_RUBY")
    node_bin: str = Field(default="node", alias="SIMBI_NODE")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if not isinstance(logging.getLevelName(value.upper()), int):
            raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return value.upper()

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ("text", "json"):
            raise ValueError("must be text or json")
        return value

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_scheme(cls, value: str | None) -> str | None:
        # Rails and Heroku write postgres://, a scheme SQLAlchemy does not know.
        if value and value.startswith("postgres://"):
            return "postgresql+psycopg://" + value.removeprefix("postgres://")
        return value

    @property
    def database_url_or_default(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'simbi.db').resolve()}"

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"


@cache
def settings() -> Settings:
    return load()


def load() -> Settings:
    """Settings from the environment; a bad value is a ConfigError naming the variable and
    what it must be, never echoing the value (it may be a secret)."""
    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        raise ConfigError(f"environment variable {_variable(field)}: {error['msg']}") from None
    except SettingsError as exc:
        match = re.search(r'field "(\w+)"', str(exc))
        variable = _variable(match.group(1)) if match else "?"
        raise ConfigError(
            f"environment variable {variable}: not valid JSON for this setting (lists and "
            'objects are JSON, e.g. ["a", "b"] or {"channel": "https://…"})'
        ) from None


def _variable(field: str) -> str:
    info = Settings.model_fields.get(field)
    return (info.alias if info and info.alias else field).upper()
