"""The sms service through the real twilio library against a local HTTP server that answers
as Twilio's Messages API does, and its outbox."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest

from simbi_workers.config import Settings
from simbi_workers.errors import PermanentJobError
from simbi_workers.services import Services
from simbi_workers.services import sms as sms_module
from simbi_workers.services.provider_errors import (
    InvalidNumber,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    Unsubscribed,
)
from simbi_workers.services.sms import Sms
from tests import provider_fixtures
from tests.conftest import free_port

SID = provider_fixtures.TWILIO_SID
TOKEN = provider_fixtures.TWILIO_TOKEN
FROM = provider_fixtures.TWILIO_FROM
MESSAGES_PATH = provider_fixtures.TWILIO_MESSAGES_PATH
FIXED_NOW = datetime(2026, 12, 3, 18, 0, 0, tzinfo=UTC)


# Shared with the integration tests: tests/provider_fixtures.py.

no_provider_settings_from_the_shell = provider_fixtures.no_provider_settings_from_the_shell
twilio_error = provider_fixtures.twilio_error


def twilio_sms(monkeypatch, api_url: str) -> Sms:
    provider_fixtures.use_twilio(monkeypatch, api_url)
    return Sms(Settings())


@pytest.fixture
def sms(settings, httpserver, monkeypatch) -> Sms:
    return twilio_sms(monkeypatch, httpserver.url_for("/"))


def test_send_posts_the_form_with_basic_auth_and_returns_the_sid(sms, httpserver):
    httpserver.expect_request(MESSAGES_PATH, method="POST").respond_with_json(
        {"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "to": "+4915112345678"},
        status=201,
    )

    result = sms.send("+4915112345678", "Ana sent you 30 Simbi ✨")

    assert result == {"sid": "SM0123456789abcdef0123456789abcdef", "delivered": "twilio"}
    [(request, _)] = httpserver.log
    assert parse_qs(request.get_data(as_text=True)) == {
        "To": ["+4915112345678"],
        "From": [FROM],
        "Body": ["Ana sent you 30 Simbi ✨"],
    }
    scheme, credentials = request.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{SID}:{TOKEN}"


@pytest.mark.parametrize("code", [21211, 21214, 21217, 21614])
def test_a_number_twilio_cannot_text_is_invalid_and_permanent(sms, httpserver, code):
    body = twilio_error(code, 400, "The 'To' number +4915100000000 is not a valid phone number.")
    httpserver.expect_request(MESSAGES_PATH).respond_with_data(
        body, status=400, content_type="application/json"
    )

    with pytest.raises(InvalidNumber) as caught:
        sms.send("+4915100000000", "hi")

    assert caught.value.retryable is False
    assert f"status 400, code {code}" in str(caught.value)
    assert "is not a valid phone number" in str(caught.value)


def test_a_recipient_who_replied_stop_is_unsubscribed(sms, httpserver):
    body = twilio_error(21610, 400, "Attempt to send to unsubscribed recipient")
    httpserver.expect_request(MESSAGES_PATH).respond_with_data(
        body, status=400, content_type="application/json"
    )

    with pytest.raises(Unsubscribed) as caught:
        sms.send("+4915112345678", "hi")

    assert caught.value.retryable is False
    assert "code 21610" in str(caught.value)


def test_a_429_is_rate_limited_with_the_seconds_from_retry_after(sms, httpserver):
    httpserver.expect_request(MESSAGES_PATH).respond_with_data(
        twilio_error(20429, 429, "Too Many Requests"),
        status=429,
        headers={"Retry-After": "30"},
        content_type="application/json",
    )

    with pytest.raises(RateLimited) as caught:
        sms.send("+4915112345678", "hi")

    assert caught.value.retryable is True
    assert caught.value.retry_after_seconds == 30


def test_a_500_is_retryable(sms, httpserver):
    httpserver.expect_request(MESSAGES_PATH).respond_with_data("oops", status=500)

    with pytest.raises(ProviderUnavailable) as caught:
        sms.send("+4915112345678", "hi")

    assert caught.value.retryable is True
    assert caught.value.retry_after_seconds is None
    assert "status 500" in str(caught.value)


def test_another_4xx_is_a_permanent_rejection(sms, httpserver):
    body = twilio_error(21606, 400, "The 'From' phone number is not a valid, SMS-capable number")
    httpserver.expect_request(MESSAGES_PATH).respond_with_data(
        body, status=400, content_type="application/json"
    )

    with pytest.raises(ProviderRejected) as caught:
        sms.send("+4915112345678", "hi")

    assert caught.value.retryable is False
    assert "code 21606" in str(caught.value)


def test_an_unreachable_twilio_is_retryable(settings, monkeypatch):
    sms = twilio_sms(monkeypatch, f"http://127.0.0.1:{free_port()}")

    with pytest.raises(ProviderUnavailable, match="could not reach Twilio: ConnectionError"):
        sms.send("+4915112345678", "hi")


@pytest.mark.parametrize("status", [400, 401, 429, 500])
def test_the_auth_token_never_appears_in_errors_or_logs(sms, httpserver, caplog, status):
    caplog.set_level(logging.DEBUG)
    # A server that echoes the token must not get it into our message either.
    body = twilio_error(20003, status, f"Authenticate: bad token {TOKEN}")
    httpserver.expect_request(MESSAGES_PATH).respond_with_data(
        body, status=status, content_type="application/json"
    )

    with pytest.raises(Exception) as caught:
        sms.send("+4915112345678", "hi")

    assert "Authenticate: bad token **********" in str(caught.value)
    assert TOKEN not in str(caught.value)
    our_logs = [r for r in caplog.records if not r.name.startswith("werkzeug")]
    assert TOKEN not in "\n".join(r.getMessage() for r in our_logs)


@pytest.mark.parametrize("to", ["4915112345678", "+49 151 1234", "+0123456789", "+1234567", None])
def test_a_number_that_is_not_e164_is_invalid_before_any_request(sms, httpserver, to):
    with pytest.raises(InvalidNumber, match=r"E\.164"):
        sms.send(to, "hi")

    assert httpserver.log == []


def test_half_configured_twilio_names_the_missing_settings(settings, monkeypatch):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)

    with pytest.raises(PermanentJobError) as caught:
        Sms(Settings()).send("+4915112345678", "hi")

    assert "set TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER" in str(caught.value)


def test_without_twilio_the_sms_goes_to_the_outbox(settings):
    sms = Sms(settings, now=lambda: FIXED_NOW)

    result = sms.send("+4915112345678", "Ana sent you 30 Simbi ✨")

    assert result["delivered"] == "outbox"
    assert result["sid"].startswith("outbox-")
    path = settings.var_dir / "outbox" / "sms.jsonl"
    assert path.read_text(encoding="utf-8") == (
        f'{{"sid":"{result["sid"]}","to":"+4915112345678","body":"Ana sent you 30 Simbi ✨",'
        '"at":"2026-12-03T18:00:00.000+00:00"}\n'
    )


@pytest.mark.parametrize("body", ["", "  ", None, "x" * 1601])
def test_an_empty_or_too_long_body_is_refused(settings, body):
    with pytest.raises(PermanentJobError, match="body"):
        Sms(settings).send("+4915112345678", body)

    assert not (settings.var_dir / "outbox" / "sms.jsonl").exists()


def test_a_child_reaches_send_through_a_host_call(settings, redis_conn):
    result = Services(settings, redis_conn).call(
        "sms", "send", {"to": "+4915112345678", "body": "hi"}
    )

    assert result["delivered"] == "outbox"


# A 2xx that is not a JSON message (a proxy's or captive portal's page, an empty object):
# retryable, since nothing says the SMS went out, but the error must say it may have.


@pytest.mark.parametrize(
    ("body", "content_type", "what"),
    [
        (f"<html><body>Gateway OK {TOKEN}</body></html>", "text/html", "was not a JSON message"),
        ("[]", "application/json", "was not a JSON message"),
        ("null", "application/json", "was not a JSON message"),
        ('{"status": "queued"}', "application/json", "named no message sid"),
    ],
)
def test_a_2xx_that_is_not_a_json_message_is_retryable_and_warns_of_a_duplicate(
    sms, httpserver, caplog, body, content_type, what
):
    caplog.set_level(logging.DEBUG)
    httpserver.expect_request(MESSAGES_PATH).respond_with_data(
        body, status=201, content_type=content_type
    )

    with pytest.raises(ProviderUnavailable) as caught:
        sms.send("+4915112345678", "hi")

    message = str(caught.value)
    assert caught.value.retryable is True
    assert f"Twilio answered status 201 but its answer {what}" in message
    assert "the message may have been accepted, so a retry may send it twice" in message
    assert TOKEN not in message
    our_logs = [r for r in caplog.records if not r.name.startswith("werkzeug")]
    assert TOKEN not in "\n".join(r.getMessage() for r in our_logs)


# `simbi-workers check`


def test_describe_without_twilio_names_the_outbox(settings):
    assert sms_module.describe(settings) == f"outbox {settings.var_dir / 'outbox' / 'sms.jsonl'}"


def test_describe_with_twilio_names_account_and_sender_but_not_the_token(settings, monkeypatch):
    provider_fixtures.use_twilio(monkeypatch, "https://proxy-user:pr0xyPw@proxy.example:8443/")

    line = sms_module.describe(Settings())

    assert line == f"twilio account {SID} from {FROM} via https://proxy.example:8443"
    assert TOKEN not in line


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"TWILIO_ACCOUNT_SID": SID}, "TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER"),
        ({"TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM_NUMBER": FROM}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_FROM_NUMBER": FROM}, "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN"),
    ],
)
def test_describe_fails_on_half_configured_twilio_naming_what_is_missing(
    settings, monkeypatch, env, missing
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(PermanentJobError) as caught:
        sms_module.describe(Settings())

    assert f"set {missing} or unset" in str(caught.value)
    assert TOKEN not in str(caught.value)
