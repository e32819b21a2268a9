"""The slack service through the real slack-sdk WebhookClient against a local HTTP server,
and its outbox on disk."""

from __future__ import annotations

import json
import logging
import multiprocessing
import socket
from datetime import UTC, datetime

import pytest

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services import Services, outbox
from simbi_workers.services.slack import Slack, UnknownChannel

# The secret part of a webhook URL; it must never show in an error or a log line.
WEBHOOK_PATH = "/services/T0001/B0001/s3cr3tW3bh00kT0k3n"
FIXED_NOW = datetime(2026, 12, 3, 18, 0, 0, tzinfo=UTC)


def settings_with_webhooks(monkeypatch, webhooks: dict[str, str], **env: str) -> Settings:
    """Settings read from the environment, as in production (SLACK_WEBHOOKS is JSON)."""
    monkeypatch.setenv("SLACK_WEBHOOKS", json.dumps(webhooks))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


@pytest.fixture
def slack_webhook(settings, httpserver, monkeypatch) -> Slack:
    """A Slack service whose 'signups' channel has a webhook on the local server."""
    url = httpserver.url_for(WEBHOOK_PATH)
    return Slack(settings_with_webhooks(monkeypatch, {"signups": url}))


def our_log_text(caplog) -> str:
    # The test server (werkzeug) logs each request path itself; it is not our process's log.
    records = [r for r in caplog.records if not r.name.startswith("werkzeug")]
    return "\n".join(r.getMessage() for r in records)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_post_with_a_webhook_sends_the_text_as_json(slack_webhook, httpserver):
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_data("ok")

    result = slack_webhook.post("signups", "New signup: Ana (#7)", user_id=7)

    assert result == {"channel": "signups", "delivered": "webhook"}
    assert len(httpserver.log) == 1
    request = httpserver.log[0][0]
    assert request.headers["Content-Type"].startswith("application/json")
    assert json.loads(request.get_data()) == {"text": "New signup: Ana (#7)"}


def test_a_429_is_retryable_after_the_seconds_slack_asks_for(slack_webhook, httpserver):
    httpserver.expect_request(WEBHOOK_PATH).respond_with_data(
        "rate_limited", status=429, headers={"Retry-After": "7"}
    )

    with pytest.raises(JobError) as caught:
        slack_webhook.post("signups", "hello")

    assert caught.value.retryable is True
    assert caught.value.retry_after_seconds == 7
    assert "429" in str(caught.value)


def test_a_500_is_retryable(slack_webhook, httpserver):
    httpserver.expect_request(WEBHOOK_PATH).respond_with_data("boom", status=500)

    with pytest.raises(JobError) as caught:
        slack_webhook.post("signups", "hello")

    assert not isinstance(caught.value, PermanentJobError)
    assert caught.value.retryable is True
    assert caught.value.retry_after_seconds is None


@pytest.mark.parametrize(("status", "body"), [(404, "no_service"), (403, "invalid_token")])
def test_a_refused_webhook_is_permanent_and_says_why(slack_webhook, httpserver, status, body):
    httpserver.expect_request(WEBHOOK_PATH).respond_with_data(body, status=status)

    with pytest.raises(PermanentJobError) as caught:
        slack_webhook.post("signups", "hello")

    message = str(caught.value)
    assert caught.value.retryable is False
    assert "webhook for slack channel signups was refused" in message
    assert f"status {status}" in message
    assert body in message


@pytest.mark.parametrize("status", [403, 404, 429, 500])
def test_the_webhook_url_never_appears_in_errors_or_logs(slack_webhook, httpserver, caplog, status):
    caplog.set_level(logging.DEBUG)
    # A server that echoes the URL back must not get it into the message either.
    echo = f"bad hook {httpserver.url_for(WEBHOOK_PATH)}"
    httpserver.expect_request(WEBHOOK_PATH).respond_with_data(echo, status=status)

    with pytest.raises(JobError) as caught:
        slack_webhook.post("signups", "hello")

    assert "s3cr3tW3bh00kT0k3n" not in str(caught.value)
    assert "s3cr3tW3bh00kT0k3n" not in our_log_text(caplog)


def test_an_unreachable_webhook_is_retryable_without_the_url(settings, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{closed_port()}{WEBHOOK_PATH}"
    slack = Slack(settings_with_webhooks(monkeypatch, {"signups": url}))

    with pytest.raises(JobError) as caught:
        slack.post("signups", "hello")

    assert caught.value.retryable is True
    assert "could not reach the webhook for slack channel signups" in str(caught.value)
    assert "s3cr3tW3bh00kT0k3n" not in str(caught.value)
    assert "s3cr3tW3bh00kT0k3n" not in our_log_text(caplog)


def test_a_webhook_that_is_not_http_is_a_configuration_error(settings, monkeypatch):
    slack = Slack(settings_with_webhooks(monkeypatch, {"signups": "ftp://x/s3cr3tW3bh00kT0k3n"}))

    with pytest.raises(PermanentJobError) as caught:
        slack.post("signups", "hello")

    assert "not an http(s) URL" in str(caught.value)
    assert "s3cr3tW3bh00kT0k3n" not in str(caught.value)


def test_an_unknown_channel_is_permanent_and_lists_the_known_ones_sorted(settings, monkeypatch):
    env = {"SLACK_CHANNELS": json.dumps(["trades", "errors", "signups"])}
    slack = Slack(settings_with_webhooks(monkeypatch, {"ops": "https://hooks.example/x"}, **env))

    with pytest.raises(UnknownChannel) as caught:
        slack.post("random", "hello")

    assert isinstance(caught.value, PermanentJobError)
    assert "unknown slack channel 'random' (known: errors, ops, signups, trades)" in str(
        caught.value
    )


def test_without_a_webhook_the_post_goes_to_the_outbox_as_one_json_line(settings):
    slack = Slack(settings, now=lambda: FIXED_NOW)

    first = slack.post("#signups", "New signup: Ana", user_id=7)
    second = slack.post("payments", "Paid 30 Simbi: Bo → Ana")

    assert first == {"channel": "signups", "delivered": "outbox"}
    assert second == {"channel": "payments", "delivered": "outbox"}
    path = settings.var_dir / "outbox" / "slack.jsonl"
    assert path.read_text(encoding="utf-8") == (
        '{"channel":"signups","text":"New signup: Ana","user_id":7,'
        '"at":"2026-12-03T18:00:00.000+00:00"}\n'
        '{"channel":"payments","text":"Paid 30 Simbi: Bo → Ana","user_id":null,'
        '"at":"2026-12-03T18:00:00.000+00:00"}\n'
    )


@pytest.mark.parametrize("text", ["", "   ", None, 42])
def test_a_post_without_text_is_refused(settings, text):
    with pytest.raises(PermanentJobError, match="text must be a non-empty string"):
        Slack(settings).post("signups", text)

    assert not (settings.var_dir / "outbox" / "slack.jsonl").exists()


def test_a_child_reaches_post_through_a_host_call(settings, redis_conn):
    services = Services(settings, redis_conn)

    result = services.call("slack", "post", {"channel": "errors", "text": "boom"})

    assert result == {"channel": "errors", "delivered": "outbox"}
    line = (settings.var_dir / "outbox" / "slack.jsonl").read_text(encoding="utf-8")
    assert json.loads(line)["text"] == "boom"


def _append_many(outbox_dir, writer: int, count: int) -> None:
    # Lines of about 6 KB: longer than PIPE_BUF, so that a split write would show.
    for n in range(count):
        outbox.append(outbox_dir, "race", {"writer": writer, "n": n, "pad": "x" * 6000})


def test_outbox_lines_from_several_processes_never_interleave(tmp_path):
    outbox_dir = tmp_path / "outbox"
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_append_many, args=(outbox_dir, w, 150)) for w in range(4)]

    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)

    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    lines = (outbox_dir / "race.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted((r["writer"], r["n"]) for r in records) == [
        (w, n) for w in range(4) for n in range(150)
    ]


def test_outbox_refuses_a_name_that_is_a_path(tmp_path):
    with pytest.raises(ValueError, match="outbox name"):
        outbox.append(tmp_path, "../escape", {"a": 1})
