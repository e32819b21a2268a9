"""Properties of PayingSimbiWorker (issue 4, "Payments are the critical path"), checked with
hypothesis on SQLite and PostgreSQL: for any sequence of transfers among four users, with
reused idempotency keys, jobs enqueued twice and two worker processes (each with its own
Node child) running them at the same moment, the sum of balances is constant, no balance
is negative, each idempotency key is in the ledger at most once, and the ledger explains
every balance."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update

from simbi_workers import keys
from simbi_workers.client import Client
from simbi_workers.store import schema
from tests import provider_fixtures
from tests.app_records import AppRecords
from tests.test_payments import drain_in_parallel

make_worker = provider_fixtures.make_worker

USERS = 4
# Few keys for many transfers: reuse by the same transfer (a retry) and by another one.
KEYS = 5

transfers = st.lists(
    st.tuples(
        st.integers(0, USERS - 1),  # from (the same as `to` now and then: refused)
        st.integers(0, USERS - 1),  # to
        st.integers(1, 80),  # amount
        st.integers(0, KEYS - 1),  # idempotency key
        st.booleans(),  # enqueued twice, as a client retrying its request would
    ),
    min_size=1,
    max_size=10,
)
balances = st.lists(st.integers(0, 100), min_size=USERS, max_size=USERS)


@pytest.fixture
def two_processes(make_worker, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    first, second = make_worker(), make_worker()
    records = AppRecords(first.services.db.engine)
    users = [records.user(f"User{n}") for n in range(USERS)]
    return first, second, records, users


def reset(records: AppRecords, users: list[int], start: list[int]) -> None:
    with records.engine.begin() as conn:
        conn.execute(delete(schema.simbi_transactions))
        for user_id, amount in zip(users, start, strict=True):
            table = schema.users
            conn.execute(update(table).where(table.c.id == user_id).values(simbi_balance=amount))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(start=balances, plan=transfers)
def test_transfers_keep_the_sum_never_overdraw_and_use_each_key_once(two_processes, start, plan):
    first, second, records, users = two_processes
    reset(records, users, start)
    client = Client(connection=first.connection, catalog=first.catalog)

    job_ids = []
    for n, (source, target, amount, key, twice) in enumerate(plan):
        args = (users[source], users[target], amount, f"reason {n}", f"key-{key}")
        for _ in range(2 if twice else 1):
            job_ids.append(client.perform_async("PayingSimbiWorker", *args))
    drain_in_parallel([first, second])

    # Every job ended: applied, answered "already applied", or refused for good.
    statuses = {first.connection.hget(keys.job(job_id), "status") for job_id in job_ids}
    assert statuses <= {b"finished", b"failed"}, statuses

    rows = records.rows(schema.simbi_transactions)
    final = [records.one(schema.users, id=user_id)["simbi_balance"] for user_id in users]
    assert sum(final) == sum(start)
    assert min(final) >= 0
    assert all(count == 1 for count in Counter(r["idempotency_key"] for r in rows).values())

    expected = dict(zip(users, start, strict=True))
    for row in rows:
        expected[row["from_user_id"]] -= row["amount"]
        expected[row["to_user_id"]] += row["amount"]
    assert final == [expected[user_id] for user_id in users]
