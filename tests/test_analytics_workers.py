"""The analytics workers of issue 4 through the real Node child and the real host services:
Mixpanel profiles through the mixpanel library to a local server, display scores and
response times from records on SQLite and PostgreSQL, service counters and the pruning of
event streams in the real Redis."""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import parse_qs

from simbi_workers.store import schema
from tests import provider_fixtures
from tests.app_records import AppRecords
from tests.harness import run_cli
from tests.provider_fixtures import outbox_records, perform, redeliver, result_of

no_provider_settings_from_the_shell = provider_fixtures.no_provider_settings_from_the_shell
make_worker = provider_fixtures.make_worker

APP = "simbi:app:"
DAY = dt.timedelta(days=1)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def started(monkeypatch, make_worker, database_url: str) -> tuple:
    monkeypatch.setenv("DATABASE_URL", database_url)
    process = make_worker()
    return process, AppRecords(process.services.db.engine)


# MixpanelUpdateUserWorker


def test_mixpanel_update_user_sends_the_profile_through_the_library(
    make_worker, monkeypatch, httpserver, database_url
):
    monkeypatch.setenv("MIXPANEL_TOKEN", "project-token")
    monkeypatch.setenv("MIXPANEL_API_URL", httpserver.url_for("/"))
    httpserver.expect_oneshot_request("/engage", method="POST").respond_with_json({"status": 1})
    process, db = started(monkeypatch, make_worker, database_url)
    ada = db.user(
        "Ada",
        last_name="Lovelace",
        email="ada@example.org",
        tier="gold",
        strength=320,
        simbi_balance=150,
        created_at=at("2026-03-01T10:00:00"),
    )
    db.service(ada, "Guitar lessons")
    db.service(ada, "Piano lessons")
    db.service(ada, "Paused lessons", status="paused")

    result = result_of(perform(process, "MixpanelUpdateUserWorker", ada))

    profile = {
        "$email": "ada@example.org",
        "$first_name": "Ada",
        "$last_name": "Lovelace",
        "$created": "2026-03-01T10:00:00",
        "tier": "gold",
        "strength": 320,
        "services_count": 2,
        "simbi_balance": 150,
    }
    assert result == {"user_id": ada, "properties": profile, "delivered": "mixpanel"}
    ((request, _response),) = httpserver.log
    update = json.loads(parse_qs(request.get_data(as_text=True))["data"][0])
    assert update["$token"] == "project-token"
    assert update["$distinct_id"] == str(ada)
    assert update["$set"] == profile


def test_mixpanel_update_user_skips_deleted_and_missing_users(
    make_worker, monkeypatch, database_url
):
    process, db = started(monkeypatch, make_worker, database_url)
    gone = db.user("Gone", deleted_at=at("2026-03-02T08:00:00"))

    deleted = perform(process, "MixpanelUpdateUserWorker", gone)
    missing = perform(process, "MixpanelUpdateUserWorker", 999)

    assert result_of(deleted) is None
    assert deleted["simbi_skipped"] == f"user {gone} is deleted".encode()
    assert missing["simbi_skipped"] == b"user 999 does not exist"
    assert outbox_records(process, "mixpanel") == []


# DisplayScoreWorker


def test_display_score_is_stored_on_the_user_and_cached_for_a_day(
    make_worker, monkeypatch, redis_conn, database_url
):
    process, db = started(monkeypatch, make_worker, database_url)
    now = dt.datetime.now(dt.UTC)
    ada = db.user("Ada", strength=350, last_seen_at=now - 3 * DAY)
    bea = db.user("Bea")
    guitar = db.service(ada)
    piano = db.service(ada, "Piano lessons")
    db.insert(schema.reviews, service_id=guitar, reviewer_id=bea, rating=5)
    db.insert(schema.reviews, service_id=piano, reviewer_id=bea, rating=4)
    # Bea's own service: its review is not Ada's.
    db.insert(schema.reviews, service_id=db.service(bea), reviewer_id=ada, rating=1)
    redis_conn.hset(f"{APP}response_time:{ada}", mapping={"sum_seconds": 1500, "count": 2})

    result = result_of(perform(process, "DisplayScoreWorker", ada))

    # 35 x 3.5/4 + 15 x 2/20 + 20 + 15 x 350/700 + 15 x 27/30 = 73.125
    assert result["display_score"] == 73
    assert result["parts"] == {
        "rating": 30.63,
        "reviews": 1.5,
        "response": 20,
        "strength": 7.5,
        "recency": 13.5,
    }
    assert db.one(schema.users, id=ada)["display_score"] == 73
    assert db.one(schema.users, id=bea)["display_score"] is None
    assert redis_conn.get(f"{APP}display_score:{ada}") == b"73"
    assert 86_390 <= redis_conn.ttl(f"{APP}display_score:{ada}") <= 86_400


def test_display_score_skips_a_deleted_user_and_stores_nothing(
    make_worker, monkeypatch, redis_conn, database_url
):
    process, db = started(monkeypatch, make_worker, database_url)
    gone = db.user("Gone", strength=500, deleted_at=at("2026-03-02T08:00:00"))

    fields = perform(process, "DisplayScoreWorker", gone)

    assert fields["simbi_skipped"] == f"user {gone} is deleted".encode()
    assert db.one(schema.users, id=gone)["display_score"] is None
    assert redis_conn.exists(f"{APP}display_score:{gone}") == 0


# ResponseTimeWorker


def conversation(db: AppRecords, user: int, other: int, messages: list[tuple[int, str]]) -> int:
    talk = db.talk(user, other)
    for sender, time_text in messages:
        db.insert(
            schema.messages, talk_id=talk, sender_id=sender, body="hi", created_at=at(time_text)
        )
    return talk


def test_response_time_adds_each_talk_once_to_the_running_mean(
    make_worker, monkeypatch, redis_conn, database_url
):
    process, db = started(monkeypatch, make_worker, database_url)
    ada, bea = db.user("Ada"), db.user("Bea")
    # Ada's own opening line does not start the clock; Bea's first message does.
    first = conversation(
        db,
        ada,
        bea,
        [
            (ada, "2026-03-01T09:00:00"),
            (bea, "2026-03-01T10:00:00"),
            (bea, "2026-03-01T10:05:00"),
            (ada, "2026-03-01T10:12:30"),
            (ada, "2026-03-01T11:00:00"),
        ],
    )
    second = conversation(
        db, ada, bea, [(bea, "2026-03-02T09:00:00"), (ada, "2026-03-02T10:00:00")]
    )

    once = perform(process, "ResponseTimeWorker", ada, first)
    again = perform(process, "ResponseTimeWorker", ada, first)
    retried = redeliver(process, once["job_id"])
    both = result_of(perform(process, "ResponseTimeWorker", ada, second))

    assert result_of(once) == {
        "user_id": ada,
        "talk_id": first,
        "seconds": 750,
        "counted": True,
        "count": 1,
        "mean_seconds": 750,
    }
    assert result_of(again)["counted"] is False
    assert result_of(retried)["counted"] is False
    assert both == {
        "user_id": ada,
        "talk_id": second,
        "seconds": 3600,
        "counted": True,
        "count": 2,
        "mean_seconds": 2175,
    }
    means = redis_conn.hgetall(f"{APP}response_time:{ada}")
    talks = {f"talk:{first}".encode(): b"750", f"talk:{second}".encode(): b"3600"}
    assert means == {b"sum_seconds": b"4350", b"count": b"2", **talks}


def test_response_time_skips_a_talk_the_user_has_not_answered(
    make_worker, monkeypatch, redis_conn, database_url
):
    process, db = started(monkeypatch, make_worker, database_url)
    ada, bea = db.user("Ada"), db.user("Bea")
    unanswered = conversation(
        db, ada, bea, [(ada, "2026-03-01T09:00:00"), (bea, "2026-03-01T10:00:00")]
    )
    alone = conversation(db, ada, bea, [(ada, "2026-03-01T09:00:00")])

    skipped = perform(process, "ResponseTimeWorker", ada, unanswered)
    lonely = perform(process, "ResponseTimeWorker", ada, alone)

    assert skipped["simbi_skipped"] == f"user {ada} has not replied in talk {unanswered}".encode()
    assert lonely["simbi_skipped"] == f"no one but user {ada} wrote in talk {alone}".encode()
    assert redis_conn.exists(f"{APP}response_time:{ada}") == 0


# RemoveUserEventsWorker and RecordServiceStatsWorker: Redis only


def test_remove_user_events_removes_exactly_the_old_events_and_drops_emptied_streams(
    make_worker, redis_conn
):
    process = make_worker()
    now_ms = int(time.time() * 1000)
    day_ms = 86_400_000
    redis_conn.zadd(
        f"{APP}events:user:1",
        {"old": now_ms - 91 * day_ms, "older": now_ms - 200 * day_ms, "recent": now_ms - day_ms},
    )
    redis_conn.zadd(f"{APP}events:user:2", {"a": now_ms - 95 * day_ms, "b": now_ms - 120 * day_ms})
    redis_conn.zadd(f"{APP}events:user:3", {"fresh": now_ms - 89 * day_ms})
    redis_conn.zadd(f"{APP}leaderboard:weekly_earners", {"7": 0})

    result = result_of(perform(process, "RemoveUserEventsWorker"))

    assert {key: result[key] for key in ("removed", "streams_seen", "streams_dropped")} == {
        "removed": 4,
        "streams_seen": 3,
        "streams_dropped": 1,
    }
    assert redis_conn.zrange(f"{APP}events:user:1", 0, -1) == [b"recent"]
    assert redis_conn.exists(f"{APP}events:user:2") == 0
    assert redis_conn.zrange(f"{APP}events:user:3", 0, -1) == [b"fresh"]
    assert redis_conn.zcard(f"{APP}leaderboard:weekly_earners") == 1


def test_remove_user_events_prunes_what_the_event_tracker_wrote(make_worker, redis_conn):
    process = make_worker()
    old = (dt.datetime.now(dt.UTC) - 100 * DAY).isoformat()
    new = (dt.datetime.now(dt.UTC) - DAY).isoformat()
    result_of(perform(process, "UserEventTrackerWorker", 7, "login", None, old))
    result_of(perform(process, "UserEventTrackerWorker", 7, "login", None, new))

    result = result_of(perform(process, "RemoveUserEventsWorker"))

    assert result["removed"] == 1
    (member,) = redis_conn.zrange(f"{APP}events:user:7", 0, -1)
    assert json.loads(member)["occurred_at"][:10] == new[:10]


def test_record_service_stats_counts_the_day_and_the_total_once_per_job(make_worker, redis_conn):
    process = make_worker()
    day = dt.datetime.now(dt.UTC).date().isoformat()

    first = perform(process, "RecordServiceStatsWorker", 9, "views", 3)
    redeliver(process, first["job_id"])
    result_of(perform(process, "RecordServiceStatsWorker", 9, "views", 2))
    result_of(perform(process, "RecordServiceStatsWorker", 9, "shares", 1))

    assert result_of(first)["counted"] is True
    assert redis_conn.hgetall(f"{APP}service_stats:9:total") == {b"views": b"5", b"shares": b"1"}
    daily = f"{APP}service_stats:9:{day}"
    assert redis_conn.hgetall(daily) == {b"views": b"5", b"shares": b"1"}
    assert redis_conn.ttl(daily) > 399 * 86_400


def test_record_service_stats_refuses_an_unknown_stat_for_good(make_worker, redis_conn):
    process = make_worker()

    fields = perform(process, "RecordServiceStatsWorker", 9, "likes", 1)

    assert fields["status"] == b"failed"
    rule = "stat must be one of views, favorites, messages, shares"
    assert fields["simbi_error"].decode().startswith(f'PermanentError: {rule}, received "likes"')
    assert redis_conn.exists(f"{APP}service_stats:9:total") == 0


def test_the_workers_command_lists_every_analytics_worker_once(worker_env):
    result = run_cli({**worker_env, "COLUMNS": "200"}, "workers")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name in (
        "MixpanelTrackWorker",
        "UserEventTrackerWorker",
        "MixpanelUpdateUserWorker",
        "RecordServiceStatsWorker",
        "DisplayScoreWorker",
        "RemoveUserEventsWorker",
        "ResponseTimeWorker",
    ):
        (line,) = [line for line in lines if f" {name} " in f" {line} "]
        assert "node" in line
    remove = next(line for line in lines if "RemoveUserEventsWorker" in line)
    assert "cron 15 3 * * *" in remove
