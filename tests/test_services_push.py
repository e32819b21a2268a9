"""The push service: FCM through the real firebase-admin (its OAuth token from a local
server, the fixed FCM URL answered by `responses` at the requests layer), OneSignal's REST
API on a local server, and the outbox for providers that are not configured."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
import requests
import responses

from simbi_workers.config import Settings
from simbi_workers.errors import PermanentJobError
from simbi_workers.services import Services
from simbi_workers.services import push as push_module
from simbi_workers.services.provider_errors import (
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
)
from simbi_workers.services.push import Push
from tests import provider_fixtures
from tests.conftest import free_port

PROJECT = provider_fixtures.FCM_PROJECT
FCM_URL = provider_fixtures.FCM_URL
APP_ID = provider_fixtures.ONESIGNAL_APP_ID
API_KEY = provider_fixtures.ONESIGNAL_API_KEY
FIXED_NOW = datetime(2026, 12, 3, 18, 0, 0, tzinfo=UTC)
DATA = {"talk_id": "12", "kind": "message"}


# Shared with the integration tests: tests/provider_fixtures.py.

no_provider_settings_from_the_shell = provider_fixtures.no_provider_settings_from_the_shell
fcm_error = provider_fixtures.fcm_error
UNREGISTERED = provider_fixtures.FCM_UNREGISTERED
OK = provider_fixtures.FCM_OK
private_key_pem = provider_fixtures.private_key_pem
fcm_env = provider_fixtures.fcm_env
fcm = provider_fixtures.fcm


def device(token: str, provider: str = "fcm") -> dict[str, str]:
    return {"token": token, "provider": provider}


# FCM


def test_fcm_sends_each_token_and_reports_the_unregistered_one(fcm_env, fcm, httpserver):
    answers, sent = fcm
    answers["tok-ok"] = OK
    answers["tok-gone"] = UNREGISTERED

    result = Push(Settings()).send(
        [device("tok-ok"), device("tok-gone")], "New message", "Ana: hi 👋", DATA
    )

    assert result == {
        "sent": 1,
        "unregistered": ["tok-gone"],
        "delivered": {"fcm": 1, "onesignal": 0, "outbox": 0},
    }
    assert sorted(s["message"]["token"] for s in sent) == ["tok-gone", "tok-ok"]
    assert {s["authorization"] for s in sent} == {"Bearer ya29.local-token"}
    first = next(s["message"] for s in sent if s["message"]["token"] == "tok-ok")
    assert first == {
        "token": "tok-ok",
        "notification": {"title": "New message", "body": "Ana: hi 👋"},
        "data": DATA,
    }

    # The access token came from the service account's token_uri, signed with its key.
    # (send_each's threads may each fetch one before the first answer is cached.)
    token_requests = [request for request, _ in httpserver.log if request.path == "/token"]
    assert token_requests
    for request in token_requests:
        form = parse_qs(request.get_data(as_text=True))
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]


@pytest.mark.parametrize(
    "answer",
    [
        (403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch")),
        (
            400,
            fcm_error(
                400,
                "INVALID_ARGUMENT",
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
            ),
        ),
    ],
)
def test_fcm_tokens_of_another_sender_or_malformed_are_unregistered(fcm_env, fcm, answer):
    answers, _ = fcm
    answers["tok"] = answer

    result = Push(Settings()).send([device("tok")], "t", "b")

    assert result["unregistered"] == ["tok"]
    assert result["sent"] == 0


def test_fcm_quota_exceeded_is_rate_limited_after_the_others_were_sent(fcm_env, fcm):
    answers, sent = fcm
    answers["tok-ok"] = OK
    answers["tok-busy"] = (
        429,
        fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for device"),
    )

    with pytest.raises(RateLimited) as caught:
        Push(Settings()).send([device("tok-ok"), device("tok-busy")], "t", "b")

    assert caught.value.retryable is True
    assert caught.value.retry_after_seconds == 60
    assert "1 device(s) failed; 1 were sent to, and a retry sends to them again" in str(
        caught.value
    )
    # NOTE: firebase-admin's own urllib3 retry honours Retry-After on a 429 and tries
    # 4 more times before it reports QUOTA_EXCEEDED; `responses` does not sleep for it.
    tokens = [s["message"]["token"] for s in sent]
    assert (tokens.count("tok-ok"), tokens.count("tok-busy")) == (1, 5)


def test_fcm_refusing_the_message_is_permanent(fcm_env, fcm):
    answers, _ = fcm
    answers["tok"] = (
        401,
        fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "APNs certificate expired"),
    )

    with pytest.raises(ProviderRejected, match="APNs certificate expired") as caught:
        Push(Settings()).send([device("tok")], "t", "b")

    assert caught.value.retryable is False


def test_fcm_unreachable_is_retryable(fcm_env, httpserver):
    with responses.RequestsMock() as mock:
        mock.add_passthru(httpserver.url_for("/"))
        mock.add(responses.POST, FCM_URL, body=requests.ConnectionError("connection refused"))

        with pytest.raises(ProviderUnavailable, match="connection refused"):
            Push(Settings()).send([device("tok")], "t", "b")


def test_a_service_account_file_that_is_not_one_is_a_permanent_error(
    settings, tmp_path, monkeypatch
):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({"type": "authorized_user"}))
    monkeypatch.setenv("FCM_SERVICE_ACCOUNT_FILE", str(path))

    with pytest.raises(PermanentJobError, match="cannot use FCM_SERVICE_ACCOUNT_FILE"):
        Push(Settings(), now=lambda: FIXED_NOW).send(
            [device("tok"), device("sub-1", "onesignal")], "t", "b"
        )

    # The OneSignal device (not configured) still went to the outbox.
    line = (settings.var_dir / "outbox" / "push.jsonl").read_text(encoding="utf-8")
    assert json.loads(line)["token"] == "sub-1"


def test_fcm_credentials_google_refuses_are_a_permanent_error(fcm_env, fcm, httpserver):
    answers, sent = fcm
    answers["tok"] = OK
    httpserver.clear()
    httpserver.expect_request("/token").respond_with_json(
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
    )

    with pytest.raises(ProviderRejected) as caught:
        Push(Settings()).send([device("tok")], "t", "b")

    assert "Google refused the FCM credentials" in str(caught.value)
    assert "invalid_grant" in str(caught.value)
    assert "PRIVATE KEY" not in str(caught.value)
    assert sent == []


# OneSignal


@pytest.fixture
def onesignal(settings, httpserver, monkeypatch) -> Push:
    provider_fixtures.use_onesignal(monkeypatch, httpserver.url_for("/"))
    return Push(Settings())


def test_onesignal_posts_one_notification_for_all_its_devices(onesignal, httpserver):
    httpserver.expect_request("/notifications", method="POST").respond_with_json(
        {"id": "b98881cc-1e94-4366-bbd9-db8f3429292b", "external_id": None}
    )

    result = onesignal.send(
        [device("sub-1", "onesignal"), device("sub-2", "onesignal")], "New message", "hi", DATA
    )

    assert result == {
        "sent": 2,
        "unregistered": [],
        "delivered": {"fcm": 0, "onesignal": 2, "outbox": 0},
    }
    [(request, _)] = httpserver.log
    assert request.headers["Authorization"] == f"Key {API_KEY}"
    assert request.get_json() == {
        "app_id": APP_ID,
        "target_channel": "push",
        "include_subscription_ids": ["sub-1", "sub-2"],
        "headings": {"en": "New message"},
        "contents": {"en": "hi"},
        "data": DATA,
    }


def test_onesignal_invalid_ids_are_unregistered(onesignal, httpserver):
    httpserver.expect_request("/notifications").respond_with_json(
        {"id": "b98881cc", "errors": {"invalid_player_ids": ["sub-2", "not-ours"]}}
    )

    result = onesignal.send([device("sub-1", "onesignal"), device("sub-2", "onesignal")], "t", "b")

    assert result["unregistered"] == ["sub-2"]
    assert result["delivered"]["onesignal"] == 1
    assert result["sent"] == 1


def test_onesignal_invalid_aliases_are_unregistered_too(onesignal, httpserver):
    httpserver.expect_request("/notifications").respond_with_json(
        {"id": "", "errors": {"invalid_aliases": {"onesignal_id": ["sub-1"]}}}
    )

    result = onesignal.send([device("sub-1", "onesignal")], "t", "b")

    assert result == {
        "sent": 0,
        "unregistered": ["sub-1"],
        "delivered": {"fcm": 0, "onesignal": 0, "outbox": 0},
    }


def test_onesignal_with_an_empty_id_sent_nothing(onesignal, httpserver):
    httpserver.expect_request("/notifications").respond_with_json(
        {"id": "", "errors": ["All included players are not subscribed"]}
    )

    result = onesignal.send([device("sub-1", "onesignal")], "t", "b")

    assert result["sent"] == 0
    assert result["unregistered"] == []


def test_onesignal_429_is_rate_limited_with_retry_after(onesignal, httpserver):
    httpserver.expect_request("/notifications").respond_with_json(
        {"errors": ["API rate limit exceeded"]}, status=429, headers={"Retry-After": "12"}
    )

    with pytest.raises(RateLimited) as caught:
        onesignal.send([device("sub-1", "onesignal")], "t", "b")

    assert caught.value.retry_after_seconds == 12
    assert "status 429" in str(caught.value)


def test_onesignal_500_is_retryable(onesignal, httpserver):
    httpserver.expect_request("/notifications").respond_with_data("upstream error", status=500)

    with pytest.raises(ProviderUnavailable) as caught:
        onesignal.send([device("sub-1", "onesignal")], "t", "b")

    assert caught.value.retryable is True
    assert "upstream error" in str(caught.value)


def test_onesignal_400_is_a_permanent_rejection(onesignal, httpserver):
    httpserver.expect_request("/notifications").respond_with_json(
        {"errors": ["Message Notifications must have English language content"]}, status=400
    )

    with pytest.raises(ProviderRejected, match="must have English language content"):
        onesignal.send([device("sub-1", "onesignal")], "t", "b")


@pytest.mark.parametrize("status", [200, 403, 429, 500])
def test_the_onesignal_key_never_appears_in_errors_or_logs(onesignal, httpserver, caplog, status):
    caplog.set_level(logging.DEBUG)
    body = {"errors": [f"Access denied for key {API_KEY}"]}
    if status == 200:
        body["id"] = "x"  # a 200 whose body is not JSON we can use
    httpserver.expect_request("/notifications").respond_with_data(
        json.dumps(body) if status != 200 else f"<html>{API_KEY}</html>", status=status
    )

    with pytest.raises(Exception) as caught:
        onesignal.send([device("sub-1", "onesignal")], "t", "b")

    assert "**********" in str(caught.value)
    assert API_KEY not in str(caught.value)
    our_logs = [r for r in caplog.records if not r.name.startswith("werkzeug")]
    assert API_KEY not in "\n".join(r.getMessage() for r in our_logs)


def test_onesignal_unreachable_is_retryable(settings, monkeypatch):
    monkeypatch.setenv("ONESIGNAL_APP_ID", APP_ID)
    monkeypatch.setenv("ONESIGNAL_API_KEY", API_KEY)
    monkeypatch.setenv("ONESIGNAL_API_URL", f"http://127.0.0.1:{free_port()}")

    with pytest.raises(ProviderUnavailable, match="could not reach OneSignal"):
        Push(Settings()).send([device("sub-1", "onesignal")], "t", "b")


# The outbox, and devices of both kinds


def test_devices_of_unconfigured_providers_go_to_the_outbox_one_line_each(settings):
    push = Push(settings, now=lambda: FIXED_NOW)

    result = push.send(
        [device("tok-1"), device("sub-1", "onesignal"), device("tok-1")], "Hi", "Body ✨", DATA
    )

    assert result == {
        "sent": 2,
        "unregistered": [],
        "delivered": {"fcm": 0, "onesignal": 0, "outbox": 2},
    }
    path = settings.var_dir / "outbox" / "push.jsonl"
    at = '"at":"2026-12-03T18:00:00.000+00:00"'
    data = '"data":{"talk_id":"12","kind":"message"}'
    assert path.read_text(encoding="utf-8") == (
        f'{{"token":"tok-1","provider":"fcm","title":"Hi","body":"Body ✨",{data},{at}}}\n'
        f'{{"token":"sub-1","provider":"onesignal","title":"Hi","body":"Body ✨",{data},{at}}}\n'
    )


def test_fcm_configured_and_onesignal_not_splits_the_devices(fcm_env, fcm, settings):
    answers, sent = fcm
    answers["tok-1"] = OK

    result = Push(Settings(), now=lambda: FIXED_NOW).send(
        [device("tok-1"), device("sub-1", "onesignal")], "Hi", "Body"
    )

    assert result["delivered"] == {"fcm": 1, "onesignal": 0, "outbox": 1}
    assert [s["message"]["token"] for s in sent] == ["tok-1"]
    line = (settings.var_dir / "outbox" / "push.jsonl").read_text(encoding="utf-8")
    assert json.loads(line)["token"] == "sub-1"


def test_no_devices_sends_nothing(settings):
    assert Push(settings).send([], "t", "b") == {
        "sent": 0,
        "unregistered": [],
        "delivered": {"fcm": 0, "onesignal": 0, "outbox": 0},
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"talk_id": 12}, "data\\['talk_id'\\] must be a string, got int"),
        ({"google.x": "1"}, "data key 'google.x' is reserved by FCM"),
        (["a"], "data must be an object"),
    ],
)
def test_data_must_be_strings_fcm_accepts(settings, data, expected):
    with pytest.raises(PermanentJobError, match=expected):
        Push(settings).send([device("tok")], "t", "b", data)

    assert not (settings.var_dir / "outbox" / "push.jsonl").exists()


@pytest.mark.parametrize(
    "devices",
    [[{"token": "t", "provider": "apns"}], [{"token": "", "provider": "fcm"}], ["tok"], "tok"],
)
def test_malformed_devices_are_refused(settings, devices):
    with pytest.raises(PermanentJobError, match="devices"):
        Push(settings).send(devices, "t", "b")


def test_a_child_reaches_send_through_a_host_call(settings, redis_conn):
    result = Services(settings, redis_conn).call(
        "push", "send", {"devices": [device("tok")], "title": "t", "body": "b", "data": {"a": "1"}}
    )

    assert result["delivered"]["outbox"] == 1


# The failure count is of devices: one batch, configuration or OneSignal error fails all
# the devices it covered.


def test_a_broken_service_account_file_counts_every_fcm_device_as_failed(
    settings, tmp_path, monkeypatch
):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({"type": "authorized_user"}))
    monkeypatch.setenv("FCM_SERVICE_ACCOUNT_FILE", str(path))

    with pytest.raises(PermanentJobError) as caught:
        Push(Settings()).send(
            [device("tok-1"), device("tok-2"), device("tok-3"), device("sub-1", "onesignal")],
            "t",
            "b",
        )

    assert str(caught.value).endswith("(3 device(s) failed; 1 were sent to)")


def test_credentials_google_refuses_count_every_device_of_the_batch(fcm_env, fcm, httpserver):
    answers, _ = fcm
    answers["tok-1"] = answers["tok-2"] = OK
    httpserver.clear()
    httpserver.expect_request("/token").respond_with_json(
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400
    )

    with pytest.raises(ProviderRejected) as caught:
        Push(Settings()).send([device("tok-1"), device("tok-2")], "t", "b")

    assert str(caught.value).endswith("(2 device(s) failed; 0 were sent to)")


def test_a_onesignal_failure_counts_each_of_its_devices_and_fcm_failures_one_each(
    fcm_env, fcm, httpserver, monkeypatch
):
    provider_fixtures.use_onesignal(monkeypatch, httpserver.url_for("/"))
    httpserver.expect_request("/notifications").respond_with_data("upstream error", status=503)
    answers, _ = fcm
    answers["tok-ok"] = OK
    answers["tok-bad"] = (
        401,
        fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "APNs certificate expired"),
    )
    devices = [device("tok-ok"), device("tok-bad")]
    devices += [device(f"sub-{n}", "onesignal") for n in range(3)]

    with pytest.raises(ProviderUnavailable) as caught:
        Push(Settings()).send(devices, "t", "b")

    assert "OneSignal answered status 503" in str(caught.value)
    assert "(4 device(s) failed; 1 were sent to, and a retry sends to them again)" in str(
        caught.value
    )


# `simbi-workers check`


def test_describe_without_providers_names_the_outbox(settings):
    outbox_file = settings.var_dir / "outbox" / "push.jsonl"

    assert push_module.describe(settings) == f"fcm and onesignal devices to outbox {outbox_file}"


def test_describe_names_the_fcm_project_and_onesignal_app_without_the_key(
    fcm_env, settings, monkeypatch
):
    provider_fixtures.use_onesignal(monkeypatch, "https://api.onesignal.com")

    line = push_module.describe(Settings())

    assert line == f"fcm project {PROJECT} ({fcm_env}); onesignal app {APP_ID}"
    assert API_KEY not in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read FCM_SERVICE_ACCOUNT_FILE"),
        ('{"private_key": "-----BEGIN PRIVATE KEY-----\nMIIE', "is not valid JSON"),
        ('"-----BEGIN PRIVATE KEY-----"', "is not a JSON object"),
        ('{"type": "authorized_user"}', "cannot use FCM_SERVICE_ACCOUNT_FILE"),
    ],
)
def test_describe_fails_on_an_fcm_file_that_is_missing_or_not_a_service_account(
    settings, tmp_path, monkeypatch, content, expected
):
    path = tmp_path / "sa.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("FCM_SERVICE_ACCOUNT_FILE", str(path))

    with pytest.raises(PermanentJobError, match=expected) as caught:
        push_module.describe(Settings())

    assert "PRIVATE KEY" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "missing"),
    [("ONESIGNAL_APP_ID", "ONESIGNAL_API_KEY"), ("ONESIGNAL_API_KEY", "ONESIGNAL_APP_ID")],
)
def test_describe_fails_on_half_configured_onesignal(settings, monkeypatch, name, missing):
    monkeypatch.setenv(name, API_KEY)

    with pytest.raises(PermanentJobError, match=f"set {missing} or unset both") as caught:
        push_module.describe(Settings())

    assert API_KEY not in str(caught.value)
