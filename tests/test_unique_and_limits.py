"""Unique jobs and concurrency limits, through the real client, fetch script and Redis."""

import time

import pytest

from simbi_workers import keys
from simbi_workers.errors import JobInputError
from simbi_workers.fetch import Fetcher


def test_an_identical_unique_job_returns_the_waiting_ones_id(client, redis_conn):
    first = client.perform_async("PyUniqueWorker", {"a": 1, "b": 2})
    second = client.perform_async("PyUniqueWorker", {"b": 2, "a": 1})
    other = client.perform_async("PyUniqueWorker", {"a": 1, "b": 3})

    assert second == first
    assert other != first
    assert redis_conn.lrange(keys.queue("default"), 0, -1) == [first.encode(), other.encode()]
    lock = next(iter(redis_conn.scan_iter("simbi:unique:PyUniqueWorker:*")))
    assert 55 <= redis_conn.ttl(lock) <= 60


def test_unique_holds_for_scheduled_and_bulk_jobs(client, redis_conn):
    scheduled = client.perform_in(300, "PyUniqueWorker", "x")

    assert client.perform_async("PyUniqueWorker", "x") == scheduled
    ids = client.perform_bulk("PyUniqueWorker", [["y"], ["x"], ["y"]])
    assert ids[1] == scheduled
    assert ids[0] == ids[2] != scheduled
    assert redis_conn.llen(keys.queue("default")) == 1


def test_the_lock_goes_when_the_job_finishes_so_the_next_one_is_enqueued(
    client, worker, redis_conn
):
    first = client.perform_async("PyUniqueWorker", "z")

    worker.process(worker.fetcher.fetch())

    assert redis_conn.hget(keys.job(first), "status") == b"finished"
    assert client.perform_async("PyUniqueWorker", "z") != first


def test_unique_per_call_and_its_bad_values(client, redis_conn):
    first = client.set(unique_seconds=30).perform_async("PyEchoWorker", 1)

    assert client.set(unique_seconds=30).perform_async("PyEchoWorker", 1) == first
    assert client.perform_async("PyEchoWorker", 1) != first  # not unique without the option
    with pytest.raises(JobInputError, match="unique_seconds must be a positive whole number"):
        client.set(unique_seconds=0)


def test_a_worker_at_its_limit_defers_the_next_job_and_other_work_flows(client, worker, redis_conn):
    running = client.perform_async("PyLimitedWorker", 0)  # concurrency: 1
    waiting = client.perform_async("PyLimitedWorker", 0)
    other = client.perform_async("PyEchoWorker", "flows")
    other_process = Fetcher(redis_conn, "limits-2", "w2", ["default"], {"PyLimitedWorker": 1})

    taken = worker.fetcher.fetch()
    next_taken = other_process.fetch()

    assert taken.job_id == running
    assert next_taken.job_id == other
    assert redis_conn.hget(keys.job(waiting), "status") == b"scheduled"
    delay = redis_conn.zscore(keys.scheduled("default"), waiting) - time.time()
    assert 0 < delay <= 1.0
    assert redis_conn.hget(keys.job(waiting), "simbi_attempt") == b"0"

    worker.process(taken)
    assert redis_conn.zcard(keys.slots("PyLimitedWorker")) == 0


def test_a_slot_held_by_a_dead_process_expires_with_the_jobs_timeout(client, worker, redis_conn):
    redis_conn.zadd(keys.slots("PyLimitedWorker"), {"ghost:dead-process": time.time() - 1})
    job_id = client.perform_async("PyLimitedWorker", 0)

    taken = worker.fetcher.fetch()

    assert taken.job_id == job_id
    assert redis_conn.zrange(keys.slots("PyLimitedWorker"), 0, -1) == [
        f"{job_id}:test-process".encode()
    ]
