"""This issue's Ruby and Node workers through the real children and the real host
services: Slack by webhook (pytest-httpserver) and outbox, a user looked up in SQLite,
Mixpanel's outbox and its real HTTP API, and the event stream in Redis."""

import json
import zlib

from simbi_workers import keys
from simbi_workers.client import Client
from tests import provider_fixtures

make_worker = provider_fixtures.make_worker


def run(process, redis_conn, worker, *args):
    job_id = Client(connection=redis_conn).perform_async(worker, *args)
    fetched = process.fetcher.fetch()
    process.process(fetched)
    return {k.decode(): v for k, v in redis_conn.hgetall(keys.job(job_id)).items()}


def test_slack_notifier_posts_to_the_webhook_with_the_user_named(
    make_worker, redis_conn, httpserver, monkeypatch
):
    monkeypatch.setenv("SLACK_WEBHOOKS", json.dumps({"payments": httpserver.url_for("/hook")}))
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    process = make_worker()
    process.services.db.execute(
        "INSERT INTO users (id, email, first_name, last_name) VALUES (7, :e, 'Ada', 'Lovelace')",
        {"e": "ada@example.com"},
    )

    fields = run(process, redis_conn, "SlackNotifierWorker", "payments", 7, "paid 40 Simbi")

    assert fields["status"] == b"finished", fields.get("simbi_error")
    ((request, _response),) = httpserver.log
    text = request.get_json()["text"]
    assert text.startswith("paid 40 Simbi")
    assert "Ada Lovelace" in text and "ada@example.com" in text


def test_slack_notifier_to_an_unknown_channel_is_dead_with_the_known_ones(make_worker, redis_conn):
    process = make_worker()

    fields = run(process, redis_conn, "SlackNotifierWorker", "random", None, "hi")

    assert fields["status"] == b"failed"
    error = fields["simbi_error"].decode()
    assert error.startswith("UnknownChannel: ")
    assert "errors, flags, payments" in error


def test_mixpanel_track_goes_to_the_outbox_with_a_stable_insert_id(
    make_worker, redis_conn, settings
):
    process = make_worker()

    fields = run(
        process,
        redis_conn,
        "MixpanelTrackWorker",
        "42",
        "Service Viewed",
        {"service_id": 9, "time": 1796300000},
    )

    assert fields["status"] == b"finished", fields.get("simbi_error")
    record = json.loads((settings.var_dir / "outbox" / "mixpanel.jsonl").read_text())
    assert record["event"] == "Service Viewed"
    assert record["distinct_id"] == "42"
    assert record["time"] == 1796300000
    assert record["properties"]["service_id"] == 9
    assert len(record["insert_id"]) == 32


def test_mixpanel_track_reaches_the_real_api_through_the_library(
    make_worker, redis_conn, httpserver, monkeypatch
):
    monkeypatch.setenv("MIXPANEL_TOKEN", "project-token")
    monkeypatch.setenv("MIXPANEL_API_URL", httpserver.url_for("").rstrip("/"))
    httpserver.expect_oneshot_request("/track", method="POST").respond_with_json({"status": 1})
    process = make_worker()

    fields = run(process, redis_conn, "MixpanelTrackWorker", 5, "Signed Up", None)

    assert fields["status"] == b"finished", fields.get("simbi_error")
    assert len(httpserver.log) == 1


def test_user_event_tracker_appends_to_the_stream_and_counts_the_day(make_worker, redis_conn):
    process = make_worker()

    fields = run(
        process,
        redis_conn,
        "UserEventTrackerWorker",
        7,
        "message_sent",
        {"talk_id": 3},
        "2026-12-03T10:00:00Z",
    )

    assert fields["status"] == b"finished", fields.get("simbi_error")
    stream = redis_conn.zrange("simbi:app:events:user:7", 0, -1, withscores=True)
    assert len(stream) == 1
    member, score = stream[0]
    assert score == 1796292000000
    assert json.loads(member)["event"] == "message_sent"
    assert redis_conn.hget("simbi:app:events:daily:2026-12-03", "message_sent") == b"1"


def test_a_bad_argument_in_a_node_worker_is_permanent_and_named(make_worker, redis_conn):
    process = make_worker()

    fields = run(process, redis_conn, "UserEventTrackerWorker", 7, "", {}, None)

    assert fields["status"] == b"failed"
    assert b"event" in fields["simbi_error"]
    assert "PermanentError" in zlib.decompress(fields["exc_info"]).decode()


def test_a_skipped_job_records_why_and_counts_as_skipped(make_worker, redis_conn):
    process = make_worker()

    fields = run(process, redis_conn, "NotifyMatchWorker", 999)

    assert fields["status"] == b"finished"
    assert b"999" in fields["simbi_skipped"]
    assert redis_conn.hget(keys.worker_stats("NotifyMatchWorker"), "skipped") == b"1"
