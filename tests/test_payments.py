"""PayingSimbiWorker through the real Node child and the real db, jobs and slack services,
on SQLite and PostgreSQL: the money moves once, never below zero, and refusals are dead
at the first attempt."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from simbi_workers.client import Client
from simbi_workers.store import schema
from tests import provider_fixtures
from tests.app_records import AppRecords
from tests.provider_fixtures import outbox_records, perform, result_of, run_next

make_worker = provider_fixtures.make_worker


@pytest.fixture
def bank(make_worker, database_url, monkeypatch):
    """A worker process on the test database, and Ada (100 Simbi) and Grace (5 Simbi)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    process = make_worker()
    records = AppRecords(process.services.db.engine)
    ada = records.user("Ada", simbi_balance=100)
    grace = records.user("Grace", simbi_balance=5)
    return process, records, ada, grace


def balance(records: AppRecords, user_id: int) -> int:
    return records.one(schema.users, id=user_id)["simbi_balance"]


def ledger(records: AppRecords) -> list[dict]:
    return records.rows(schema.simbi_transactions)


def assert_dead_at_once(fields: dict, message: str) -> None:
    assert fields["status"] == b"failed"
    assert fields["simbi_attempt"] == b"1"
    error = fields["simbi_error"].decode()
    assert error.startswith(f"PermanentError: {message}"), error


def test_a_transfer_moves_the_amount_and_writes_one_ledger_row(bank):
    process, records, ada, grace = bank

    fields = perform(process, "PayingSimbiWorker", ada, grace, 30, "guitar lesson", "trade-1")

    result = result_of(fields)
    assert result["applied"] is True
    assert (result["from_balance"], result["to_balance"]) == (70, 35)
    assert (balance(records, ada), balance(records, grace)) == (70, 35)
    (row,) = ledger(records)
    assert row["id"] == result["transaction_id"]
    assert (row["kind"], row["from_user_id"], row["to_user_id"]) == ("transfer", ada, grace)
    assert (row["amount"], row["reason"], row["idempotency_key"]) == (
        30,
        "guitar lesson",
        "trade-1",
    )


def test_insufficient_funds_is_dead_at_once_and_posted_to_slack_payments(bank):
    process, records, ada, grace = bank

    fields = perform(process, "PayingSimbiWorker", grace, ada, 6, "rent", "trade-2")

    assert_dead_at_once(fields, f"insufficient funds: user {grace} has 5 Simbi")
    assert (balance(records, ada), balance(records, grace)) == (100, 5)
    assert ledger(records) == []

    # The post is its own job on the slack queue, so Slack's outages retry there.
    slack = run_next(process)
    assert slack["status"] == b"finished", slack.get("simbi_error")
    (post,) = outbox_records(process, "slack")
    assert post["channel"] == "payments"
    assert post["user_id"] == grace
    assert post["text"].startswith(
        f"Payment refused, insufficient Simbi: user {grace} has 5 and tried to pay 6 to "
        f'user {ada} for "rent" — user {grace} Grace'
    )


def test_the_same_idempotency_key_twice_moves_the_money_once(bank):
    process, records, ada, grace = bank

    first = result_of(perform(process, "PayingSimbiWorker", ada, grace, 40, "", "trade-3"))
    second = result_of(perform(process, "PayingSimbiWorker", ada, grace, 40, "", "trade-3"))

    assert first["applied"] is True
    assert second == {
        "applied": False,
        "transaction_id": first["transaction_id"],
        "from_balance": 60,
        "to_balance": 45,
    }
    assert (balance(records, ada), balance(records, grace)) == (60, 45)
    assert len(ledger(records)) == 1


def test_the_same_key_with_another_amount_is_permanent(bank):
    process, records, ada, grace = bank
    result_of(perform(process, "PayingSimbiWorker", ada, grace, 40, "", "trade-4"))

    fields = perform(process, "PayingSimbiWorker", ada, grace, 41, "", "trade-4")

    assert_dead_at_once(fields, 'idempotency_key "trade-4" was used by another transfer')
    assert (balance(records, ada), balance(records, grace)) == (60, 45)


def test_a_missing_or_deleted_recipient_is_permanent_and_moves_nothing(bank):
    process, records, ada, grace = bank
    records.update(schema.users, grace, deleted_at=records.one(schema.users, id=ada)["created_at"])

    deleted = perform(process, "PayingSimbiWorker", ada, grace, 10, "", "trade-5")
    missing = perform(process, "PayingSimbiWorker", ada, 999_999, 10, "", "trade-6")

    assert_dead_at_once(deleted, f"to_user_id: user {grace} is deleted")
    assert_dead_at_once(missing, "to_user_id: user 999999 does not exist")
    assert balance(records, ada) == 100
    assert ledger(records) == []


def test_a_bad_amount_is_permanent_before_the_database(bank):
    process, records, ada, grace = bank

    fields = perform(process, "PayingSimbiWorker", ada, grace, 0, "", "trade-7")

    assert_dead_at_once(fields, "amount must be a whole number of Simbi from 1 to 1000000")
    assert ledger(records) == []


def drain_in_parallel(processes) -> None:
    """Each process runs jobs from the shared queues in its own thread until none is left;
    a barrier starts them together."""
    barrier = threading.Barrier(len(processes))
    errors = []

    def drain(process):
        try:
            barrier.wait()
            while (fetched := process.fetcher.fetch()) is not None:
                process.process(fetched)
        except Exception as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(p,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def test_the_same_key_on_two_worker_processes_at_once_moves_the_money_once(bank, make_worker):
    process, records, ada, grace = bank
    other = make_worker()
    client = Client(connection=process.connection, catalog=process.catalog)
    for _ in range(2):
        client.perform_async("PayingSimbiWorker", ada, grace, 25, "", "trade-race")

    drain_in_parallel([process, other])

    assert (balance(records, ada), balance(records, grace)) == (75, 30)
    assert len(ledger(records)) == 1


def test_many_transfers_out_of_one_account_at_once_never_overdraw(bank, make_worker):
    process, records, ada, grace = bank
    other = make_worker()
    client = Client(connection=process.connection, catalog=process.catalog)
    for n in range(8):
        client.perform_async("PayingSimbiWorker", ada, grace, 30, "", f"drain-{n}")

    drain_in_parallel([process, other])

    # 100 covers three transfers of 30; the other five find 10 left.
    assert (balance(records, ada), balance(records, grace)) == (10, 95)
    with process.services.db.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(schema.simbi_transactions))
        assert count.scalar_one() == 3


def test_a_run_that_waits_on_the_same_key_committed_elsewhere_answers_already_applied(bank):
    """The race made deterministic: another transaction holds the key uncommitted while the
    job starts; the job's insert waits on it (PostgreSQL: the unique index; SQLite: the
    write lock) and then finds the key taken."""
    process, records, ada, grace = bank
    engine = process.services.db.engine
    conn = engine.connect()
    holder = conn.begin()
    conn.execute(
        schema.simbi_transactions.insert().values(
            from_user_id=ada, to_user_id=grace, amount=20, idempotency_key="trade-held"
        )
    )
    users = schema.users
    for user_id, delta in ((ada, -20), (grace, 20)):
        change = users.c.simbi_balance + delta
        conn.execute(users.update().where(users.c.id == user_id).values(simbi_balance=change))

    job = {}
    thread = threading.Thread(
        target=lambda: job.update(
            perform(process, "PayingSimbiWorker", ada, grace, 20, "", "trade-held")
        )
    )
    thread.start()
    thread.join(timeout=1.5)
    assert thread.is_alive(), "the job should wait for the holder's transaction"
    holder.commit()
    conn.close()
    thread.join(timeout=30)

    result = result_of(job)
    assert result["applied"] is False
    assert (balance(records, ada), balance(records, grace)) == (80, 25)
    assert len(ledger(records)) == 1
