"""The dead set: list, show, retry, delete, through the module and `simbi-workers failed`,
with jobs buried the real way (a worker process running PyFailWorker "permanent", or a
fetched job's Unit.bury) on a real Redis."""

import json
import time
import zlib

import pytest

from simbi_workers import catalog, keys, stats
from simbi_workers.config import Settings
from simbi_workers.dead_set import DeadJobNotFoundError, DeadSet
from simbi_workers.fetch import Fetcher
from tests.harness import run_cli

FAILURE_TTL_SECONDS = 7 * 86_400


@pytest.fixture
def loaded(worker_env):
    return catalog.load(Settings().queues_file)


@pytest.fixture
def dead_set(redis_conn, loaded):
    return DeadSet(redis_conn, loaded)


def run_one(worker):
    fetched = worker.fetcher.fetch()
    assert fetched is not None, "no job was waiting"
    worker.process(fetched)
    return fetched.job_id


def bury_permanent(worker, client, count=1):
    """PyFailWorker "permanent" through the worker: straight to the dead set."""
    ids = [client.perform_async("PyFailWorker", "permanent") for _ in range(count)]
    for _ in ids:
        run_one(worker)
    return ids


def bury_by_hand(redis_conn, client, worker_name, *args):
    """Fetch a job the real way and bury it as the worker would (a job that would succeed
    if run again, as after an outage that has since been fixed)."""
    job_id = client.perform_async(worker_name, *args)
    fetcher = Fetcher(redis_conn, "operator", "operator-rq-name", ["default"])
    fetched = fetcher.fetch()
    assert fetched.job_id == job_id
    fetcher.unit(fetched).bury(worker_name, "ProviderDown: 503\nmore", 6, 12.5, FAILURE_TTL_SECONDS)
    return job_id


def cli_json(env, *args):
    result = run_cli(env, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# Listing and showing


def test_list_gives_each_dead_job_newest_first(worker, client, dead_set):
    first, second = bury_permanent(worker, client, 2)
    time.sleep(0.01)
    echo = bury_by_hand(worker.connection, client, "PyEchoWorker", "hi")

    entries = dead_set.list()

    assert [entry.id for entry in entries] == [echo, second, first]
    newest = entries[0]
    assert (newest.worker, newest.queue, newest.attempts) == ("PyEchoWorker", "default", 6)
    assert newest.error == "ProviderDown: 503"
    assert newest.failed_at.endswith("Z")
    assert entries[1].error == "PermanentJobError: cannot ever work"
    assert entries[1].attempts == 1


def test_list_keeps_one_workers_jobs_and_honours_the_limit(worker, client, dead_set):
    bury_permanent(worker, client, 3)
    echo = bury_by_hand(worker.connection, client, "PyEchoWorker", 1)

    assert [entry.id for entry in dead_set.list(worker="PyEchoWorker")] == [echo]
    assert len(dead_set.list(worker="PyFailWorker")) == 3
    assert len(dead_set.list(worker="PyFailWorker", limit=2)) == 2


def test_failed_list_agrees_with_stats_per_queue_and_per_worker(
    worker, client, worker_env, redis_conn, loaded
):
    bury_permanent(worker, client, 2)
    bury_by_hand(redis_conn, client, "PyEchoWorker", 1)
    client.perform_async("PyEchoWorker", "waiting")  # queued, not dead

    listed = cli_json(worker_env, "failed", "list", "--json")
    numbers = cli_json(worker_env, "stats", "--json")

    assert listed["total"] == 3 == numbers["totals"]["dead"]
    by_queue = {queue: 0 for queue in numbers["queues"]}
    by_worker = {name: 0 for name in numbers["workers"]}
    for job in listed["jobs"]:
        by_queue[job["queue"]] += 1
        by_worker[job["worker"]] += 1
    assert by_queue == {name: queue["failed"] for name, queue in numbers["queues"].items()}
    assert by_worker == {name: w["dead"] for name, w in numbers["workers"].items()}
    assert stats.collect(redis_conn, loaded)["queues"]["default"]["failed"] == 3


def test_failed_list_prints_a_table_and_says_when_it_is_empty(worker, client, worker_env):
    empty = run_cli(worker_env, "failed", "list")
    assert empty.returncode == 0 and "no dead jobs" in empty.stdout

    (job_id,) = bury_permanent(worker, client)
    result = run_cli({**worker_env, "COLUMNS": "200"}, "failed", "list")

    assert result.returncode == 0, result.stderr
    assert "dead set: 1 job(s)" in result.stdout
    line = next(line for line in result.stdout.splitlines() if job_id in line)
    for cell in ("PyFailWorker", "default", "PermanentJobError: cannot ever work"):
        assert cell in line


def test_show_decodes_the_arguments_and_gives_the_traceback(worker, client, dead_set, worker_env):
    (job_id,) = bury_permanent(worker, client)

    job = dead_set.show(job_id)
    assert job.args == ["permanent"]
    assert job.payload_error is None
    assert job.status == "failed"
    assert job.description == 'PyFailWorker("permanent")'
    assert "PermanentJobError: cannot ever work" in job.traceback

    result = run_cli(worker_env, "failed", "show", job_id)
    assert result.returncode == 0, result.stderr
    assert 'args         ["permanent"]' in result.stdout
    assert "traceback:" in result.stdout and "cannot ever work" in result.stdout


def test_show_of_a_broken_payload_still_shows_the_job_and_why(worker, redis_conn, worker_env):
    redis_conn.hset(
        keys.job("broken"),
        mapping={"data": b"not zlib at all", "origin": "default", "simbi_worker": "PyEchoWorker"},
    )
    redis_conn.rpush(keys.queue("default"), "broken")
    run_one(worker)  # the worker buries it as a broken job

    result = run_cli(worker_env, "failed", "show", "broken")

    assert result.returncode == 0, result.stderr
    assert "args         cannot be decoded: job broken: its payload is not RQ JSON data" in (
        result.stdout
    )
    assert "payload      b'not zlib at all'" in result.stdout
    shown = cli_json(worker_env, "failed", "show", "broken", "--json")
    assert shown["args"] is None and shown["worker"] == "PyEchoWorker"


def test_show_of_an_id_not_in_the_dead_set_names_it(worker, client, dead_set, worker_env):
    queued = client.perform_async("PyEchoWorker", 1)

    with pytest.raises(DeadJobNotFoundError, match=f"job {queued} is not in the dead set"):
        dead_set.show(queued)
    result = run_cli(worker_env, "failed", "show", "no-such-job")
    assert result.returncode == 1
    assert "error: job no-such-job is not in the dead set" in result.stderr


# Retrying


def test_a_retried_job_goes_back_to_its_queue_and_runs_to_finished(
    worker, client, redis_conn, worker_env
):
    job_id = bury_by_hand(redis_conn, client, "PyEchoWorker", {"fixed": True})
    redis_conn.delete(keys.WAKEUP)

    result = run_cli(worker_env, "failed", "retry", job_id)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"retried {job_id}"
    fields = redis_conn.hgetall(keys.job(job_id))
    assert fields[b"status"] == b"queued"
    assert fields[b"simbi_attempt"] == b"0"
    assert b"exc_info" not in fields and b"simbi_error" not in fields
    assert redis_conn.ttl(keys.job(job_id)) == -1  # the failure TTL is gone
    assert redis_conn.zscore(keys.failed("default"), job_id) is None
    assert redis_conn.lrange(keys.queue("default"), 0, -1) == [job_id.encode()]
    assert redis_conn.lrange(keys.WAKEUP, 0, -1) == [job_id.encode()]

    assert run_one(worker) == job_id
    fields = redis_conn.hgetall(keys.job(job_id))
    assert fields[b"status"] == b"finished"
    assert json.loads(fields[b"result"]) == {"fixed": True}


def test_retry_names_an_unknown_id_and_still_retries_the_others(
    worker, client, redis_conn, worker_env
):
    job_id = bury_by_hand(redis_conn, client, "PyEchoWorker", 1)

    result = run_cli(worker_env, "failed", "retry", "no-such-job", job_id)

    assert result.returncode == 1
    assert f"retried {job_id}" in result.stdout
    assert "error: job no-such-job is not in the dead set" in result.stderr
    assert redis_conn.hget(keys.job(job_id), "status") == b"queued"


def test_retrying_one_job_twice_queues_it_once(worker, client, redis_conn, dead_set):
    job_id = bury_by_hand(redis_conn, client, "PyEchoWorker", 1)

    first = dead_set.retry([job_id])
    second = dead_set.retry([job_id, job_id])

    assert (first.done, first.missing) == ([job_id], [])
    assert (second.done, second.missing) == ([], [job_id])
    assert redis_conn.llen(keys.queue("default")) == 1


def test_retry_all_for_one_worker_leaves_the_other_workers_dead(
    worker, client, redis_conn, worker_env, dead_set
):
    fails = bury_permanent(worker, client, 2)
    echoes = [bury_by_hand(redis_conn, client, "PyEchoWorker", n) for n in range(3)]

    result = run_cli(worker_env, "failed", "retry", "--all", "--worker", "PyEchoWorker")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "retried 3 dead job(s) of PyEchoWorker"
    assert sorted(entry.id for entry in dead_set.list()) == sorted(fails)
    assert sorted(redis_conn.lrange(keys.queue("default"), 0, -1)) == sorted(
        job_id.encode() for job_id in echoes
    )
    for _ in echoes:
        run_one(worker)
    assert {redis_conn.hget(keys.job(j), "status") for j in echoes} == {b"finished"}


def test_retry_all_empties_the_dead_set(worker, client, dead_set):
    ids = bury_permanent(worker, client, 3)

    report = dead_set.retry_all()

    assert sorted(report.done) == sorted(ids) and report.missing == []
    assert dead_set.list() == []


# Deleting


def test_delete_removes_the_entry_and_the_job_hash(worker, client, redis_conn, worker_env):
    gone, kept = bury_permanent(worker, client, 2)

    result = run_cli(worker_env, "failed", "delete", gone, "no-such-job")

    assert result.returncode == 1
    assert result.stdout.strip() == f"deleted {gone}"
    assert "error: job no-such-job is not in the dead set" in result.stderr
    assert not redis_conn.exists(keys.job(gone))
    assert redis_conn.zscore(keys.failed("default"), gone) is None
    assert redis_conn.zscore(keys.failed("default"), kept) is not None


def test_delete_all_for_one_worker(worker, client, redis_conn, worker_env, dead_set):
    fails = bury_permanent(worker, client, 2)
    echo = bury_by_hand(redis_conn, client, "PyEchoWorker", 1)

    result = run_cli(worker_env, "failed", "delete", "--all", "--worker", "PyFailWorker")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deleted 2 dead job(s) of PyFailWorker"
    assert [entry.id for entry in dead_set.list()] == [echo]
    assert not any(redis_conn.exists(keys.job(job_id)) for job_id in fails)


def test_a_job_retried_a_moment_ago_is_not_deleted(worker, client, redis_conn, dead_set):
    job_id = bury_by_hand(redis_conn, client, "PyEchoWorker", 1)
    dead_set.retry([job_id])

    report = dead_set.delete([job_id])

    assert report.missing == [job_id]
    assert redis_conn.hget(keys.job(job_id), "status") == b"queued"


# Expired entries and refusals


def test_expired_entries_are_skipped_and_cleaned(worker, client, redis_conn, dead_set):
    old, fresh = bury_permanent(worker, client, 2)
    redis_conn.zadd(keys.failed("default"), {old: time.time() - 1})  # its time is up
    redis_conn.zadd(keys.failed("default"), {"hashless": time.time() + 60})

    assert dead_set.retry([old]).missing == [old]
    assert [entry.id for entry in dead_set.list()] == [fresh]
    assert redis_conn.zrange(keys.failed("default"), 0, -1) == [fresh.encode()]
    with pytest.raises(DeadJobNotFoundError):
        dead_set.show(old)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("retry", "some-id", "--all"), "give job ids or --all, not both"),
        (("delete", "some-id", "--all"), "give job ids or --all, not both"),
        (("retry",), "name the jobs to retry by id, or give --all"),
        (("delete", "some-id", "--worker", "PyEchoWorker"), "--worker goes with --all"),
    ],
)
def test_ambiguous_selections_are_refused(worker_env, args, message):
    result = run_cli(worker_env, "failed", *args)

    assert result.returncode == 2
    assert message in result.stderr


def test_a_misspelt_worker_is_named_with_a_suggestion(worker_env):
    result = run_cli(worker_env, "failed", "retry", "--all", "--worker", "PyFailWorkr")

    assert result.returncode == 1
    assert "no dead jobs for worker 'PyFailWorkr'" in result.stderr
    assert "did you mean PyFailWorker?" in result.stderr


def test_a_job_failed_by_rq_itself_is_listed_from_its_traceback(redis_conn, dead_set):
    traceback = "Traceback (most recent call last):\n  ...\nValueError: bad input\n"
    redis_conn.hset(
        keys.job("from-rq"),
        mapping={
            "status": "failed",
            "origin": "default",
            "exc_info": zlib.compress(traceback.encode()),
        },
    )
    redis_conn.zadd(keys.failed("default"), {"from-rq": time.time() + 60})

    (entry,) = dead_set.list()

    assert (entry.id, entry.worker, entry.error) == ("from-rq", "unknown", "ValueError: bad input")
