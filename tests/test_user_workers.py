"""DestroyUserWorker, QuicksterWorker and FriendNewListingWorker through the real Node child
and the real db, storage, search, redis, jobs and mixpanel services, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from simbi_workers import keys
from simbi_workers.store import schema
from tests import provider_fixtures
from tests.app_records import AppRecords
from tests.provider_fixtures import outbox_records, perform, redeliver, result_of, run_next

make_worker = provider_fixtures.make_worker


@pytest.fixture
def app(make_worker, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    process = make_worker()
    return process, AppRecords(process.services.db.engine)


def total_balance(records: AppRecords) -> int:
    with records.engine.connect() as conn:
        total = conn.execute(select(func.sum(schema.users.c.simbi_balance))).scalar_one()
    return int(total or 0)


def waiting_jobs(process, queue: str = "default") -> list[str]:
    """The descriptions of the jobs waiting in `queue`, next to run first."""
    job_ids = process.connection.lrange(keys.queue(queue), 0, -1)
    return [
        process.connection.hget(keys.job(job_id.decode()), "description").decode()
        for job_id in job_ids
    ]


# DestroyUserWorker


class World:
    """Ada, who is to be destroyed, with a record in every table; Grace, who stays."""

    def __init__(self, process, records: AppRecords):
        self.process, self.records = process, records
        self.ada = records.user("Ada", simbi_balance=100)
        self.grace = records.user("Grace", simbi_balance=40)
        self.files = [f"avatars/{self.ada}/v1/{size}.webp" for size in (400, 64)]
        records.update(schema.users, self.ada, avatar={"400": self.files[0], "64": self.files[1]})
        self.ada_service = records.service(self.ada, "Welsh lessons on the harp")
        self.grace_service = records.service(self.grace, "Bicycle repair")

    def fill(self) -> None:
        r, ada, grace = self.records, self.ada, self.grace
        mine, theirs = self.ada_service, self.grace_service
        self._pay(ada, grace, 30, "pay-1")
        self._pay(grace, ada, 10, "pay-2")
        r.device(ada, "token-ada")
        r.follow(ada, grace)
        r.follow(grace, ada)
        talk = r.talk(ada, grace, service_id=mine)
        r.message(talk, ada, "hello from Ada")
        r.message(talk, grace, "hello Ada")
        r.comment(theirs, ada)
        r.comment(mine, grace)
        r.compliment(ada, grace)
        r.compliment(grace, ada)
        r.favor(ada, grace, service_id=theirs)
        r.favor(grace, ada, service_id=mine)
        r.favorite(ada, theirs)
        r.favorite(grace, mine)
        r.match(ada, grace)
        r.insert(schema.matches, user_a_id=grace, user_b_id=r.user("Alan"), service_a_id=mine)
        r.preference(ada, "push", "followers", False)
        r.insert(schema.milestones, user_id=ada, kind="first_trade")
        r.insert(schema.reviews, service_id=theirs, reviewer_id=ada, rating=5)
        r.insert(schema.reviews, service_id=mine, reviewer_id=grace, rating=4)
        account = {"user_id": ada, "provider": "google", "provider_uid": "g-ada"}
        r.insert(schema.social_accounts, **account)
        link = {"provider": "google", "friend_name": "Ada"}
        r.insert(schema.social_connections, user_id=ada, friend_uid="g-grace", **link)
        r.insert(
            schema.social_connections, user_id=grace, friend_uid="g-ada", friend_user_id=ada, **link
        )
        r.insert(schema.suggestion_history, user_id=ada, service_id=theirs)
        r.insert(schema.suggestion_history, user_id=grace, service_id=mine)
        r.insert(schema.notifications_sent, user_id=ada, kind="intro", dedupe_key=f"intro:{ada}")
        self._scores()
        self._uploads()
        self._search()
        self._redis()

    def _pay(self, source: int, target: int, amount: int, key: str) -> None:
        result_of(perform(self.process, "PayingSimbiWorker", source, target, amount, "", key))

    def _scores(self) -> None:
        r = self.records
        weights = {"weights": {"rating_average": 1.0}}
        users = r.insert(schema.score_formulas, name="people", subject_type="user", **weights)
        services = r.insert(schema.score_formulas, name="offers", subject_type="service", **weights)
        for subject_type, subject_id, formula in (
            ("user", self.ada, users),
            ("service", self.ada_service, services),
            ("user", self.grace, users),
        ):
            r.insert(
                schema.scores,
                subject_type=subject_type,
                subject_id=subject_id,
                formula_id=formula,
                value=1.5,
            )

    def _uploads(self) -> None:
        r, storage = self.records, self.process.services.storage
        upload_key = f"uploads/{self.ada}/harp.jpg"
        upload = r.insert(schema.uploads, user_id=self.ada, source=upload_key)
        image = r.insert(schema.images, upload_id=upload, status="ready")
        variant = f"images/{image}/original.jpg"
        r.update(schema.images, image, variants={"original": {"key": variant, "width": 8}})
        self.files += [upload_key, variant]
        for key in self.files:
            storage.put_bytes(key, b"not really an image", "image/webp")
        storage.put_bytes("avatars/other/400.webp", b"Grace's", "image/webp")

    def _search(self) -> None:
        search = self.process.services.search
        search.upsert("user", self.ada, self.ada, "Ada Lovelace", "harp teacher")
        search.upsert("service", self.ada_service, self.ada, "Welsh lessons on the harp", "")
        search.upsert("service", self.grace_service, self.grace, "Bicycle repair", "harp frames")

    def _redis(self) -> None:
        conn, ada, grace = self.process.connection, str(self.ada), str(self.grace)
        conn.zadd(f"simbi:app:events:user:{ada}", {"event": 1})
        conn.set(f"simbi:app:display_score:{ada}", 77)
        conn.hset(f"simbi:app:response_time:{ada}", mapping={"sum_seconds": 60, "count": 1})
        conn.hset(f"simbi:app:service_stats:{self.ada_service}:total", "views", 3)
        conn.hset(f"simbi:app:service_stats:{self.grace_service}:total", "views", 4)
        conn.zadd("simbi:app:leaderboard:weekly_earners", {ada: 10, grace: 30})
        conn.set("simbi:app:leaderboard:weekly_earners:top10", json.dumps([self.grace, self.ada]))


def rows_naming(records: AppRecords, table, column, value) -> list[dict]:
    with records.engine.connect() as conn:
        query = select(table).where(column == value)
        return [dict(row._mapping) for row in conn.execute(query)]


def assert_nothing_names(world: World) -> None:
    records, ada, service = world.records, world.ada, world.ada_service
    for table in schema.metadata.sorted_tables:
        for column in table.c:
            targets = {fk.column.table.name for fk in column.foreign_keys}
            if "users" in targets or (table is schema.users and column.name == "id"):
                assert rows_naming(records, table, column, ada) == [], (table.name, column.name)
            if "services" in targets or (table is schema.services and column.name == "id"):
                assert rows_naming(records, table, column, service) == [], (table.name, column)
    docs = schema.search_documents
    assert rows_naming(records, docs, docs.c.owner_id, ada) == []
    for subject in (ada, service):
        assert rows_naming(records, schema.scores, schema.scores.c.subject_id, subject) == []


def test_destroy_user_twice_leaves_nothing_that_names_the_user(app):
    process, records = app
    world = World(process, records)
    world.fill()
    conn, storage, ada = process.connection, process.services.storage, world.ada
    balance_of_ada = records.one(schema.users, id=ada)["simbi_balance"]
    assert balance_of_ada == 80
    total_before = total_balance(records)

    first = result_of(perform(process, "DestroyUserWorker", ada))
    second = result_of(perform(process, "DestroyUserWorker", ada))

    assert first["destroyed"] is True and first["forfeited_balance"] == 80
    assert first["files_deleted"] == 4
    assert second["destroyed"] is False
    assert (second["rows_changed"], second["files_deleted"]) == (0, 0)

    assert_nothing_names(world)
    assert not any(storage.exists(key) for key in world.files)
    assert storage.exists("avatars/other/400.webp")
    search = process.services.search
    assert [hit["record_id"] for hit in search.query("harp")["hits"]] == [world.grace_service]

    ada_keys = [
        f"events:user:{ada}",
        f"display_score:{ada}",
        f"response_time:{ada}",
        f"service_stats:{world.ada_service}:total",
        f"destroy_user:pending:{ada}",
    ]
    assert conn.exists(*(f"simbi:app:{key}" for key in ada_keys)) == 0
    assert conn.hget(f"simbi:app:service_stats:{world.grace_service}:total", "views") == b"4"
    board = conn.zrange("simbi:app:leaderboard:weekly_earners", 0, -1)
    assert board == [str(world.grace).encode()]
    assert json.loads(conn.get("simbi:app:leaderboard:weekly_earners:top10")) == [world.grace]

    # The ledger keeps both payments with Ada detached; only her own balance left the sum.
    ledger = records.rows(schema.simbi_transactions)
    assert [(r["from_user_id"], r["to_user_id"], r["amount"]) for r in ledger] == [
        (None, world.grace, 30),
        (world.grace, None, 10),
    ]
    assert records.one(schema.users, id=world.grace)["simbi_balance"] == 60
    assert total_balance(records) == total_before - balance_of_ada

    deletes = [m for m in outbox_records(process, "mixpanel") if m["kind"] == "people_delete"]
    assert [m["distinct_id"] for m in deletes] == [str(ada), str(ada)]


def test_destroy_user_of_a_user_that_never_existed_succeeds(app):
    process, _records = app

    result = result_of(perform(process, "DestroyUserWorker", 424242))

    assert result["destroyed"] is False
    assert result["rows_changed"] == 0


def test_destroy_user_after_a_crash_past_the_commit_deletes_the_remembered_files(app):
    """A run that committed and died before the files: the rerun finds them in Redis."""
    process, records = app
    ada = records.user("Ada")
    key = f"avatars/{ada}/v1/400.webp"
    process.services.storage.put_bytes(key, b"x", "image/webp")
    process.connection.rpush(f"simbi:app:destroy_user:pending:{ada}", f"file:{key}")

    result = result_of(perform(process, "DestroyUserWorker", ada))

    assert result["files_deleted"] == 1
    assert not process.services.storage.exists(key)
    assert not process.connection.exists(f"simbi:app:destroy_user:pending:{ada}")


# QuicksterWorker


def test_quickster_records_a_milestone_and_pays_its_bonus_once(app):
    process, records = app
    ada = records.user("Ada", simbi_balance=3)

    first = perform(process, "QuicksterWorker", ada, "first_service")
    second = perform(process, "QuicksterWorker", ada, "first_service")

    assert result_of(first) == {
        "user_id": ada,
        "milestone": "first_service",
        "bonus": 25,
        "transaction_id": result_of(first)["transaction_id"],
        "balance": 28,
    }
    assert second["status"] == b"finished"
    assert second["simbi_skipped"].decode() == f"user {ada} reached first_service before"
    assert records.one(schema.users, id=ada)["simbi_balance"] == 28
    assert len(records.rows(schema.milestones, user_id=ada)) == 1
    (bonus,) = records.rows(schema.simbi_transactions)
    assert (bonus["kind"], bonus["from_user_id"], bonus["to_user_id"]) == ("bonus", None, ada)
    assert (bonus["amount"], bonus["idempotency_key"]) == (25, f"quickster:{ada}:first_service")


def test_quickster_with_an_unknown_action_is_permanent_and_lists_the_known_ones(app):
    process, records = app
    ada = records.user("Ada")

    fields = perform(process, "QuicksterWorker", ada, "first_love")

    assert fields["status"] == b"failed"
    assert fields["simbi_attempt"] == b"1"
    assert fields["simbi_error"].decode() == (
        "PermanentError: action must be one of profile_completed, first_service, "
        'first_message, first_review, first_trade, received "first_love"'
    )


# FriendNewListingWorker


def test_friend_new_listing_pushes_each_follower_and_friend_once_across_reruns(app):
    process, records = app
    owner = records.user("Grace")
    follower, friend, both = records.user("Ada"), records.user("Alan"), records.user("Edsger")
    gone = records.user("Gone", deleted_at=records.one(schema.users, id=owner)["created_at"])
    for user_id in (follower, both, gone):
        records.follow(user_id, owner)
    for n, user_id in enumerate((friend, both)):
        records.insert(
            schema.social_connections,
            user_id=owner,
            provider="facebook",
            friend_uid=f"fb-{n}",
            friend_user_id=user_id,
        )
    service = records.service(owner, "Bicycle repair")

    fields = perform(process, "FriendNewListingWorker", service)
    again = redeliver(process, fields["job_id"])

    assert result_of(fields)["pushed"] == 3
    assert result_of(again) == {
        "service_id": service,
        "recipients": 3,
        "pushed": 0,
        "already_pushed": 3,
    }
    data = f'{{"type": "friend_new_listing", "service_id": {service}}}'
    assert sorted(waiting_jobs(process)) == [
        f'SendPushWorker({user_id}, "followers", "Grace listed a new service: Bicycle repair", '
        f"{data})"
        for user_id in sorted((follower, friend, both))
    ]
    claims = records.rows(schema.notifications_sent, kind="friend_listing")
    assert sorted(c["dedupe_key"] for c in claims) == sorted(
        f"friend_listing:{service}:{user_id}" for user_id in (follower, friend, both)
    )
    assert all(c["sent_at"] is not None for c in claims)
    # The pushes themselves run: no devices here, so each is a skip.
    assert run_next(process)["status"] == b"finished"


def test_friend_new_listing_of_a_missing_or_inactive_service_is_a_skip(app):
    process, records = app
    owner = records.user("Grace")
    paused = records.service(owner, status="paused")

    missing = perform(process, "FriendNewListingWorker", 999_999)
    inactive = perform(process, "FriendNewListingWorker", paused)

    assert missing["simbi_skipped"] == b"service 999999 does not exist"
    assert inactive["simbi_skipped"] == f'service {paused} is "paused", not active'.encode()
    assert waiting_jobs(process) == []
