"""The score workers through the real Node child and the real db, redis and jobs host
services, on SQLite and PostgreSQL: ratings, upserted scores, the hourly rescoring of what
changed, strength tiers and their pushes, and the weekly earners' leaderboard."""

from __future__ import annotations

import datetime as dt

import pytest

from simbi_workers import keys, wire
from simbi_workers.store import schema
from tests import provider_fixtures
from tests.app_records import AppRecords
from tests.provider_fixtures import perform, result_of

make_worker = provider_fixtures.make_worker

BOARD_KEY = "simbi:app:leaderboard:weekly_earners"
COMPLETE_PROFILE = {
    "last_name": "Lovelace",
    "phone": "+44 20 7946 0000",
    "bio": "Mathematician",
    "avatar": {"64": "avatars/64.jpg"},
}


@pytest.fixture
def process(make_worker, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    return make_worker()


@pytest.fixture
def db(process) -> AppRecords:
    return AppRecords(process.services.db.engine)


def take_queued(redis_conn, queue: str = "default") -> list[tuple[str, list]]:
    """The jobs waiting in `queue` as (worker, args), oldest first; the queue is emptied, so
    that the next perform() finds its own job at the head."""
    job_ids = [job_id.decode() for job_id in redis_conn.lrange(keys.queue(queue), 0, -1)]
    redis_conn.delete(keys.queue(queue))
    jobs = [wire.decode(job_id, redis_conn.hgetall(keys.job(job_id)), queue) for job_id in job_ids]
    return [(job.worker, job.args) for job in jobs]


def ago(**delta: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(**delta)


def utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands timestamps back without a zone; they are UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def test_update_rating_stores_the_average_to_two_decimals_and_rescores_the_owner(
    process, db, redis_conn
):
    owner, reviewer = db.user("Ada"), db.user("Bob")
    service = db.service(owner)
    other = db.service(owner, "Piano lessons")
    for rating in (5, 4, 4):
        db.review(service, reviewer, rating)
    db.review(other, reviewer, 1)

    value = result_of(perform(process, "UpdateRatingWorker", service))

    assert value == {
        "service_id": service,
        "rating_average": 4.33,
        "rating_count": 3,
        "changed": True,
    }
    row = db.one(schema.services, id=service)
    assert (row["rating_average"], row["rating_count"]) == (4.33, 3)
    assert row["updated_at"] is not None
    assert take_queued(redis_conn) == [("DisplayScoreWorker", [owner])]


def test_update_rating_of_a_missing_service_is_skipped(process, redis_conn):
    fields = perform(process, "UpdateRatingWorker", 404)

    assert fields["status"] == b"finished"
    assert fields["simbi_skipped"] == b"service 404 does not exist"
    assert take_queued(redis_conn) == []


def test_score_worker_upserts_one_row_and_a_second_run_stores_the_new_value(process, db):
    ada, bob = db.user("Ada", strength=150), db.user("Bob")
    service = db.service(ada)
    for rating in (5, 4, 4):
        db.review(service, bob, rating)
    db.follow(bob, ada)
    formula = db.score_formula("user", {"strength": 2, "rating_average": 10, "followers_count": 1})

    first = result_of(perform(process, "ScoreWorker", ada, "user", formula))
    db.update(schema.users, ada, strength=200)
    second = result_of(perform(process, "ScoreWorker", ada, "user", formula))

    assert (first, second) == (344.3, 444.3)  # 2 * strength + 10 * 4.33 + 1 follower
    (row,) = db.rows(schema.scores, formula_id=formula)
    assert (row["subject_type"], row["subject_id"], row["value"]) == ("user", ada, 444.3)


def test_score_worker_with_an_unknown_metric_is_dead_and_names_it(process, db):
    ada = db.user("Ada")
    formula = db.score_formula("user", {"karma": 1}, name="karmic")

    fields = perform(process, "ScoreWorker", ada, "user", formula)

    assert fields["status"] == b"failed"
    error = fields["simbi_error"].decode()
    assert f'score formula {formula} (karmic): unknown user metric "karma"' in error
    assert db.rows(schema.scores) == []


def test_score_query_processor_scores_only_the_changed_subjects_and_moves_last_run_at(process, db):
    last_run = ago(hours=1)
    formula = db.score_formula("user", {"strength": 1}, last_run_at=last_run)
    created = ago(days=3)
    unchanged = db.user("Una", strength=10, created_at=created, updated_at=ago(hours=2))
    changed = db.user("Cid", strength=20, created_at=created, updated_at=ago(minutes=10))
    new = db.user("Nia", strength=30)
    gone = db.user(
        "Del", strength=40, created_at=created, updated_at=ago(minutes=5), deleted_at=ago(minutes=5)
    )
    before = dt.datetime.now(dt.UTC)

    scored = result_of(perform(process, "ScoreQueryProcessorWorker", "user", formula))

    after = dt.datetime.now(dt.UTC)
    assert scored == 2
    values = {row["subject_id"]: row["value"] for row in db.rows(schema.scores)}
    assert values == {changed: 20, new: 30}
    assert unchanged not in values and gone not in values
    moved = utc(db.one(schema.score_formulas, id=formula)["last_run_at"])
    assert before - dt.timedelta(seconds=1) <= moved <= after

    # Nothing changed since: the next run scores no one.
    assert result_of(perform(process, "ScoreQueryProcessorWorker", "user", formula)) == 0


def test_score_query_processor_without_the_formula_skips_saying_so(process):
    fields = perform(process, "ScoreQueryProcessorWorker", "user", 1)

    assert fields["status"] == b"finished"
    assert fields["simbi_skipped"] == b"no score formula 1 to recompute"


def test_a_tier_rise_enqueues_one_push_and_a_second_run_at_the_same_strength_none(
    process, db, redis_conn
):
    ada = db.user("Ada", **COMPLETE_PROFILE)  # 100: silver

    first = result_of(perform(process, "RecalculateStrengthWorker", ada))
    pushes = take_queued(redis_conn)
    second = result_of(perform(process, "RecalculateStrengthWorker", ada))

    assert first == {
        "user_id": ada,
        "strength": 100,
        "tier": "silver",
        "previous_tier": "bronze",
        "pushed": True,
    }
    message = "You reached the Silver tier: your profile strength is 100."
    data = {"tier": "silver", "previous_tier": "bronze", "strength": 100}
    assert pushes == [("SendPushWorker", [ada, "account", message, data])]
    assert second["pushed"] is False
    assert take_queued(redis_conn) == []
    row = db.one(schema.users, id=ada)
    assert (row["strength"], row["tier"]) == (100, "silver")


def test_strength_counts_services_reviews_trades_and_followers(process, db, redis_conn):
    ada, bob = db.user("Ada"), db.user("Bob")
    service = db.service(ada)
    db.service(ada, "Old lessons", status="archived")
    db.review(service, bob, 5)
    db.transfer(bob, ada, 30)
    db.transfer(ada, bob, 10)
    db.transfer(None, ada, 50, kind="bonus")  # a bonus is not a trade
    db.follow(bob, ada)

    value = result_of(perform(process, "RecalculateStrengthWorker", ada))

    # first name 10, one active service 25, one review 10, two trades 30, a follower 2
    assert (value["strength"], value["tier"], value["pushed"]) == (77, "bronze", False)
    assert take_queued(redis_conn) == []


def test_the_weekly_earners_board_and_pushes_only_to_newcomers_in_the_top_10(
    process, db, redis_conn
):
    payer = db.user("Pay")
    earners = [db.user(f"E{i}") for i in range(12)]
    for rank, user in enumerate(earners):
        db.transfer(payer, user, 120 - rank)  # earners[0] earns the most
    db.transfer(payer, earners[11], 1000, created_at=ago(days=8))  # last week: not counted
    db.transfer(None, earners[11], 1000, kind="bonus")  # not a transfer

    top = result_of(perform(process, "NotifyLeaderboardWorker", "weekly_earners"))

    assert [entry["user_id"] for entry in top] == earners[:10]
    assert top[0] == {"rank": 1, "user_id": earners[0], "score": 120}
    board = redis_conn.zrevrange(BOARD_KEY, 0, -1, withscores=True)
    assert board[-1] == (str(earners[11]).encode(), 109.0)
    assert len(board) == 12
    first_pushes = take_queued(redis_conn)
    assert [(worker, args[0], args[1]) for worker, args in first_pushes] == [
        ("SendPushWorker", user, "leaderboard") for user in earners[:10]
    ]

    db.transfer(payer, earners[11], 115)  # 11 climbs to 224: first place
    top = result_of(perform(process, "NotifyLeaderboardWorker", "weekly_earners"))

    assert [entry["user_id"] for entry in top] == [earners[11], *earners[:9]]
    message = "You are #1 of this week's top earners, with 224 Simbi received."
    data = {"board": "weekly_earners", "rank": 1, "score": 224}
    assert take_queued(redis_conn) == [
        ("SendPushWorker", [earners[11], "leaderboard", message, data])
    ]


def test_an_unknown_board_is_dead_and_lists_the_known_ones(process):
    fields = perform(process, "NotifyLeaderboardWorker", "monthly_givers")

    assert fields["status"] == b"failed"
    assert 'board must be one of weekly_earners, received "monthly_givers"' in (
        fields["simbi_error"].decode()
    )
