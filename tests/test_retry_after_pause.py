"""Shared pauses after a provider's Retry-After (issue 5, from a real report against a peer
system): a webhook answering 429 with `Retry-After: 30` gets no request for 30 seconds
from any job, and every job is done afterwards. The pause module against real Redis, the
slack, sms and push services against local servers, and the whole thing through
`simbi-workers start` with two worker processes and their Ruby children."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import pytest
from werkzeug import Request, Response

from simbi_workers import keys
from simbi_workers.client import Client
from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services import pause
from simbi_workers.services.pause import Pauses
from simbi_workers.services.provider_errors import RateLimited
from simbi_workers.services.push import Push
from simbi_workers.services.slack import Slack
from simbi_workers.services.sms import Sms
from tests import provider_fixtures
from tests.conftest import free_port
from tests.harness import supervisor

no_provider_settings_from_the_shell = provider_fixtures.no_provider_settings_from_the_shell

WEBHOOK_PATH = "/services/T0001/B0001/s3cr3tW3bh00kT0k3n"


# The pause module against real Redis


def test_a_started_pause_reports_the_time_left_and_makes_check_raise(redis_conn):
    pauses = Pauses(redis_conn)

    pauses.start("slack:payments", 5)

    left = pauses.seconds_left("slack:payments")
    assert 4.5 < left <= 5
    assert 4500 < redis_conn.pttl("simbi:pause:slack:payments") <= 5000
    with pytest.raises(RateLimited) as caught:
        pauses.check("slack:payments", RateLimited, "slack: not posted")
    assert caught.value.retryable is True
    assert 4.5 < caught.value.retry_after_seconds <= 5
    assert str(caught.value).startswith("slack: not posted: slack:payments is paused for ")


def test_a_pause_ends_by_itself_when_its_retry_after_is_over(redis_conn):
    pauses = Pauses(redis_conn)

    pauses.start("slack:payments", 0.2)
    time.sleep(0.3)

    assert pauses.seconds_left("slack:payments") is None
    assert redis_conn.exists(pause.key("slack:payments")) == 0
    pauses.check("slack:payments", RateLimited, "slack: not posted")  # does not raise


def test_an_unpaused_destination_and_no_connection_never_pause(redis_conn):
    assert Pauses(redis_conn).seconds_left("slack:payments") is None

    Pauses(None).start("slack:payments", 30)
    Pauses(None).check("slack:payments", RateLimited, "slack: not posted")
    assert redis_conn.keys("simbi:pause:*") == []


def test_a_second_retry_after_only_ever_lengthens_a_pause(redis_conn):
    pauses = Pauses(redis_conn)

    pauses.start("sms:twilio", 5)
    pauses.start("sms:twilio", 1)
    assert pauses.seconds_left("sms:twilio") > 4.5

    pauses.start("sms:twilio", 20)
    assert pauses.seconds_left("sms:twilio") > 19.5


def test_a_pause_logs_one_warning_when_it_starts_not_one_per_job(redis_conn, caplog):
    pauses = Pauses(redis_conn)

    with caplog.at_level(logging.DEBUG, logger="simbi_workers.services.pause"):
        for _ in range(3):
            pauses.start("slack:payments", 5)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "pause destination=slack:payments for 5.0 s: the provider answered with Retry-After; "
        "its jobs wait until then"
    ]


def test_only_a_retryable_failure_with_retry_after_records_a_pause(redis_conn):
    pauses = Pauses(redis_conn)

    pauses.record("a", JobError("503"))
    pauses.record("b", PermanentJobError("no", retry_after_seconds=30))
    pauses.record("c", JobError("429", retry_after_seconds=0))
    pauses.record("d", RateLimited("429", retry_after_seconds=30))

    assert redis_conn.keys("simbi:pause:*") == [b"simbi:pause:d"]


def test_a_retry_after_of_days_pauses_for_an_hour_at_most(redis_conn):
    Pauses(redis_conn).start("push:onesignal", 3 * 86400)

    assert redis_conn.pttl(pause.key("push:onesignal")) <= pause.MAX_PAUSE_SECONDS * 1000


# The services: the second call after a 429 never reaches the provider


def slack_settings(monkeypatch, url: str) -> Settings:
    monkeypatch.setenv("SLACK_WEBHOOKS", json.dumps({"payments": url}))
    return Settings()


def test_slack_after_a_429_fails_at_once_without_a_request_until_the_retry_after(
    settings, httpserver, monkeypatch, redis_conn
):
    httpserver.expect_request(WEBHOOK_PATH).respond_with_data(
        "rate_limited", status=429, headers={"Retry-After": "30"}
    )
    # Two services: two worker processes sharing only the queue Redis.
    url = httpserver.url_for(WEBHOOK_PATH)
    first, second = (Slack(slack_settings(monkeypatch, url), connection=redis_conn) for _ in "12")

    with pytest.raises(JobError) as refused:
        first.post("payments", "one")
    with pytest.raises(JobError) as paused:
        second.post("#payments", "two")

    assert refused.value.retry_after_seconds == 30
    assert paused.value.retryable is True
    assert 29 < paused.value.retry_after_seconds <= 30
    assert "slack: not posted to channel payments" in str(paused.value)
    assert len(httpserver.log) == 1
    # The key names the channel; the webhook URL is a secret and stays out of Redis.
    assert redis_conn.keys("simbi:pause:*") == [b"simbi:pause:slack:payments"]


def test_a_slack_channel_without_a_webhook_goes_to_the_outbox_even_when_paused(
    settings, redis_conn
):
    Pauses(redis_conn).start("slack:signups", 30)

    result = Slack(settings, connection=redis_conn).post("signups", "hello")

    assert result == {"channel": "signups", "delivered": "outbox"}
    (line,) = (settings.outbox_dir / "slack.jsonl").read_text().splitlines()
    assert json.loads(line)["text"] == "hello"


def test_sms_after_a_twilio_429_fails_at_once_without_a_request(
    settings, httpserver, monkeypatch, redis_conn
):
    httpserver.expect_request(provider_fixtures.TWILIO_MESSAGES_PATH).respond_with_data(
        provider_fixtures.twilio_error(20429, 429, "Too Many Requests"),
        status=429,
        headers={"Retry-After": "30"},
        content_type="application/json",
    )
    provider_fixtures.use_twilio(monkeypatch, httpserver.url_for("/"))
    sms = Sms(Settings(), connection=redis_conn)

    with pytest.raises(RateLimited):
        sms.send("+4915112345678", "one")
    with pytest.raises(RateLimited) as paused:
        sms.send("+4915112345679", "two")

    assert 29 < paused.value.retry_after_seconds <= 30
    assert len(httpserver.log) == 1


def test_push_after_a_onesignal_429_fails_at_once_without_a_request(
    settings, httpserver, monkeypatch, redis_conn
):
    httpserver.expect_request("/notifications").respond_with_json(
        {"errors": ["API rate limit exceeded"]}, status=429, headers={"Retry-After": "30"}
    )
    provider_fixtures.use_onesignal(monkeypatch, httpserver.url_for("/"))
    push = Push(Settings(), connection=redis_conn)
    devices = [{"token": "sub-1", "provider": "onesignal"}]

    with pytest.raises(RateLimited):
        push.send(devices, "t", "b")
    with pytest.raises(RateLimited) as paused:
        push.send(devices, "t", "b")

    assert 29 < paused.value.retry_after_seconds <= 30
    assert len(httpserver.log) == 1


# Through `simbi-workers start`: two worker processes, their Ruby children, the scheduler

RETRY_AFTER_SECONDS = 30
JOBS = 10
PROCESSES = 2


@dataclass
class RateLimitedWebhook:
    """A Slack webhook that answers 429 with Retry-After from its first request until
    `seconds` later, as a rate limiter does, and 200 afterwards; it notes every request."""

    seconds: float
    calls: list[tuple[float, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _limited_until: float | None = None

    def __call__(self, request: Request) -> Response:
        with self._lock:
            now = time.monotonic()
            if self._limited_until is None:
                self._limited_until = now + self.seconds
            status = 429 if now < self._limited_until else 200
            self.calls.append((now, status))
        if status == 429:
            return Response("rate_limited", 429, headers={"Retry-After": str(int(self.seconds))})
        return Response("ok")


def test_a_webhook_answering_429_retry_after_30_gets_no_call_for_30_s_then_every_job_is_done(
    worker_env, redis_conn, httpserver, tmp_path
):
    webhook = RateLimitedWebhook(RETRY_AFTER_SECONDS)
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_handler(webhook)
    env = {
        **worker_env,
        "SLACK_WEBHOOKS": json.dumps({"payments": httpserver.url_for(WEBHOOK_PATH)}),
    }
    log_path = tmp_path / "start.log"

    with supervisor(env, free_port(), "--processes", str(PROCESSES), log_path=log_path):
        client = Client(connection=redis_conn)
        job_ids = [
            client.perform_async("SlackNotifierWorker", "payments", None, f"n{index}")
            for index in range(JOBS)
        ]
        statuses = wait_until_settled(redis_conn, job_ids, timeout=RETRY_AFTER_SECONDS + 30)

    assert statuses == ["finished"] * JOBS
    refused = [at for at, status in webhook.calls if status == 429]
    accepted = [at for at, status in webhook.calls if status == 200]
    # Only calls already in flight when the first 429 came back got one: at most one per
    # worker process, all at the start.
    assert 1 <= len(refused) <= PROCESSES
    assert refused[-1] - refused[0] < 1.0
    # Nothing inside the Retry-After of any 429; every job posted once afterwards.
    assert min(accepted) >= refused[-1] + RETRY_AFTER_SECONDS
    assert len(accepted) == JOBS
    assert len(webhook.calls) <= JOBS + 2
    assert log_path.read_text().count("pause destination=slack:payments") == 1
    assert redis_conn.keys("simbi:pause:*") == []


def wait_until_settled(redis_conn, job_ids: list[str], timeout: float) -> list[str]:
    """Each job's status once all are finished or failed, or when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = [
            (redis_conn.hget(keys.job(job_id), "status") or b"").decode() for job_id in job_ids
        ]
        if all(s in ("finished", "failed") for s in statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(0.2)
