"""The acknowledgement matrix, through a real worker process object, real Redis and real
Ruby and Node children: success, failure with retries left, retries exhausted, permanent,
timeout, crash, and broken payloads that fail alone."""

import json
import os
import signal
import threading
import time
import zlib

import pytest

from simbi_workers import keys, wire


def run_one(worker):
    fetched = worker.fetcher.fetch()
    assert fetched is not None, "no job was waiting"
    worker.process(fetched)
    return fetched.job_id


def job_hash(redis_conn, job_id):
    return {k.decode(): v for k, v in redis_conn.hgetall(keys.job(job_id)).items()}


def error_text(fields):
    return zlib.decompress(fields["exc_info"]).decode()


def test_a_successful_job_is_finished_with_its_result_and_counted(worker, client, redis_conn):
    job_id = client.perform_async("PyEchoWorker", {"x": [1, "two"]})

    run_one(worker)

    fields = job_hash(redis_conn, job_id)
    assert fields["status"] == b"finished"
    assert fields["result"] == b'{"x": [1, "two"]}'
    assert redis_conn.zscore(keys.finished("default"), job_id) is not None
    assert redis_conn.llen(keys.processing("test-process")) == 0
    assert redis_conn.zcard(keys.started("default")) == 0
    assert redis_conn.hget(keys.worker_stats("PyEchoWorker"), "processed") == b"1"


@pytest.mark.parametrize("worker_name", ["RbEchoWorker", "JsEchoWorker"])
def test_an_argument_at_the_depth_limit_reaches_each_child_and_comes_back(
    worker, client, redis_conn, worker_name
):
    # 32 levels, the most a client takes: Ruby's parser stops at 100 once the line's
    # own wrapping is added, so the limit must leave a child room, not just the host.
    value = "bottom"
    for level in range(wire.MAX_DEPTH):
        value = {"k": value} if level % 2 else [value, level]
    job_id = client.perform_async(worker_name, value)

    run_one(worker)

    fields = job_hash(redis_conn, job_id)
    assert fields["status"] == b"finished", fields.get("simbi_error")
    assert json.loads(fields["result"]) == value


def test_a_failure_with_retries_left_is_scheduled_on_the_ladder(worker, client, redis_conn):
    job_id = client.perform_async("PyFailWorker", "boom")
    before = time.time()

    run_one(worker)

    fields = job_hash(redis_conn, job_id)
    assert fields["status"] == b"scheduled"
    assert fields["simbi_attempt"] == b"1"
    assert "RuntimeError: failed on purpose: boom" in error_text(fields)
    delay = redis_conn.zscore(keys.scheduled("default"), job_id) - before
    assert 15 <= delay <= 25  # 0⁴ + 15 + rand(0..9)·1


def test_a_failure_carrying_retry_after_waits_that_long(worker, client, redis_conn):
    job_id = client.perform_async("PyFailWorker", "retry_after")
    before = time.time()

    run_one(worker)

    delay = redis_conn.zscore(keys.scheduled("default"), job_id) - before
    assert 41.5 <= delay <= 42.5


def test_retries_exhausted_sends_the_job_to_the_dead_set(worker, client, redis_conn):
    job_id = client.perform_async("PyFailWorker", "boom")
    redis_conn.hset(keys.job(job_id), "simbi_attempt", 2)  # PyFailWorker has retry: 2

    run_one(worker)

    fields = job_hash(redis_conn, job_id)
    assert fields["status"] == b"failed"
    assert fields["simbi_attempt"] == b"3"
    assert redis_conn.zscore(keys.failed("default"), job_id) is not None
    assert redis_conn.zcard(keys.scheduled("default")) == 0
    assert redis_conn.hget(keys.worker_stats("PyFailWorker"), "dead") == b"1"


def test_a_permanent_error_skips_the_ladder(worker, client, redis_conn):
    job_id = client.perform_async("PyFailWorker", "permanent")

    run_one(worker)

    fields = job_hash(redis_conn, job_id)
    assert fields["status"] == b"failed"
    assert fields["simbi_error"] == b"PermanentJobError: cannot ever work"


def test_a_python_job_past_its_timeout_is_stopped_and_retried(worker, client, redis_conn):
    job_id = client.perform_async("PySleepWorker", 10)  # timeout: 3
    started = time.monotonic()

    run_one(worker)

    assert time.monotonic() - started < 6
    fields = job_hash(redis_conn, job_id)
    assert fields["status"] == b"scheduled"
    assert fields["simbi_error"] == b"JobTimeout: timed out after 3 s"


def test_a_ruby_child_killed_mid_job_is_replaced_and_the_job_retried(worker, client, redis_conn):
    job_id = client.perform_async("RbSleepWorker", 30)
    child = worker.runtimes.children["ruby"]
    old_pid = child.pid
    threading.Timer(0.5, os.kill, (old_pid, signal.SIGKILL)).start()

    run_one(worker)

    fields = job_hash(redis_conn, job_id)
    assert fields["status"] == b"scheduled"
    assert fields["simbi_error"] == b"ChildDied: killed by SIGKILL"
    assert child.alive() and child.pid != old_pid

    after_id = client.perform_async("RbEchoWorker", "still working")
    run_one(worker)
    assert job_hash(redis_conn, after_id)["result"] == b'"still working"'


def test_a_child_that_cannot_start_holds_its_jobs_back_uncounted_and_logs_once(
    worker, client, redis_conn, caplog, tmp_path
):
    # A broken deploy: the node child's entry file is gone when it has to be restarted.
    child = worker.runtimes.children["node"]
    child.argv = [child.argv[0], str(tmp_path / "missing" / "main.js")]
    os.kill(child.pid, signal.SIGKILL)
    child.process.wait()
    first = client.perform_async("JsEchoWorker", "one")
    second = client.perform_async("JsEchoWorker", "two")

    run_one(worker)
    run_one(worker)
    worker.runtimes.revive()  # the idle loop's restart, inside the backoff: no new try

    for job_id in (first, second):
        fields = job_hash(redis_conn, job_id)
        assert fields["status"] == b"scheduled"
        assert fields["simbi_attempt"] == b"0"  # the job never ran: not an attempt
        assert fields["simbi_error"].startswith(b"ChildDown: the node child is down")
    restarts = [r for r in caplog.records if "could not restart the node child" in r.message]
    assert len(restarts) == 1


def test_a_hung_node_child_is_killed_at_the_timeout(worker, client, redis_conn):
    job_id = client.perform_async("JsHangWorker")  # timeout: 1, retry: 0
    child = worker.runtimes.children["node"]
    old_pid = child.pid

    run_one(worker)

    fields = job_hash(redis_conn, job_id)
    assert fields["status"] == b"failed"
    assert fields["simbi_error"] == b"ChildDied: JsHangWorker timed out after 1 s"
    assert child.alive() and child.pid != old_pid


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not zlib at all", "its payload is not RQ JSON data"),
        (
            zlib.compress(b'["os.system", null, ["rm -rf /"], {}]'),
            "function 'os.system' is not a simbi_workers job",
        ),
        (
            zlib.compress(b'["simbi_workers.jobs.NoSuchWorker", null, [], {}]'),
            "unknown worker 'NoSuchWorker'",
        ),
        (
            zlib.compress(b'["simbi_workers.jobs.PyEchoWorker", null, [1, 2], {}]'),
            "PyEchoWorker takes 1 argument(s) (value), got 2",
        ),
    ],
)
def test_a_broken_payload_fails_alone_and_work_goes_on(worker, client, redis_conn, data, message):
    redis_conn.hset(keys.job("broken"), mapping={"data": data, "origin": "default"})
    redis_conn.rpush(keys.queue("default"), "broken")
    good_id = client.perform_async("PyEchoWorker", "fine")

    run_one(worker)
    run_one(worker)

    broken = job_hash(redis_conn, "broken")
    assert broken["status"] == b"failed"
    assert message in broken["simbi_error"].decode()
    assert redis_conn.zscore(keys.failed("default"), "broken") is not None
    assert job_hash(redis_conn, good_id)["status"] == b"finished"


def test_higher_priority_queues_are_served_first(worker, client, redis_conn):
    low = client.perform_async("MixpanelTrackWorker", "u1", "Viewed", {})
    mid = client.perform_async("PyEchoWorker", 1)
    high = client.perform_async("SlackNotifierWorker", "signups", None, "hi")

    order = [run_one(worker) for _ in range(3)]

    assert order == [high, mid, low]


@pytest.mark.parametrize("worker_name", ["PyEchoWorker", "RbEchoWorker", "JsEchoWorker"])
def test_large_and_tricky_text_arrives_byte_identical_in_every_runtime(
    worker, client, redis_conn, worker_name
):
    text = "emoji 👩‍👩‍👧 rtl שלום عربي combining é̀ n\u0303 " + "x" * 1_000_000
    job_id = client.perform_async(worker_name, text)

    run_one(worker)

    fields = job_hash(redis_conn, job_id)
    assert fields["status"] == b"finished"
    import json

    assert json.loads(fields["result"]) == text
