"""Delivery guarantees when processes die or freeze, each from a real report against a
peer system: a worker process killed while its job is in a child, a unique job killed
mid-run, schedulers racing while one is frozen, a poison job that kills its process every
time, and a process cut off from Redis that stops its job before anyone else may take it.
Real `simbi-workers start` subprocesses, real Redis, real children."""

import os
import signal
import subprocess
import sys
import time

from simbi_workers import keys
from simbi_workers.client import Client
from simbi_workers.recovery import Recovery
from tests.conftest import free_port
from tests.harness import ROOT, CuttableProxy, status, supervisor, wait_for

RUNS = "simbi:app:runs"


def runs(redis_conn, name):
    return int(redis_conn.hget(RUNS, name) or 0)


def running_pid(redis_conn, job_id):
    """The pid of the worker process running the job (RQ's worker name holds it)."""
    return int(redis_conn.hget(keys.job(job_id), "worker_name").decode().split(".")[2])


def attempts(redis_conn, job_id):
    return int(redis_conn.hget(keys.job(job_id), "simbi_attempt") or 0)


def test_a_process_killed_while_its_job_is_in_a_child_runs_the_job_exactly_once_more(
    worker_env, redis_conn
):
    with supervisor(worker_env, free_port(), "--processes", "1"):
        job_id = Client(connection=redis_conn).perform_async("RbCountWorker", "in-child", 2)
        wait_for(lambda: runs(redis_conn, "in-child") == 1)

        os.kill(running_pid(redis_conn, job_id), signal.SIGKILL)

        wait_for(lambda: status(redis_conn, job_id) == "finished", timeout=30)
        time.sleep(2.5)  # the orphaned child's sleep ends: it must not count a third run
    assert runs(redis_conn, "in-child") == 2
    assert attempts(redis_conn, job_id) == 1  # the killed run counted as an attempt


def test_a_unique_job_killed_mid_run_runs_again_and_then_frees_its_lock(worker_env, redis_conn):
    client = Client(connection=redis_conn)
    with supervisor(worker_env, free_port(), "--processes", "1"):
        job_id = client.perform_async("PyUniqueCountWorker", "u", 1)
        wait_for(lambda: runs(redis_conn, "u") == 1)

        os.kill(running_pid(redis_conn, job_id), signal.SIGKILL)
        assert client.perform_async("PyUniqueCountWorker", "u", 1) == job_id  # still held

        wait_for(lambda: status(redis_conn, job_id) == "finished", timeout=30)
        assert runs(redis_conn, "u") == 2
        assert redis_conn.keys("simbi:unique:*") == []

        next_id = client.perform_async("PyUniqueCountWorker", "u", 1)
        assert next_id != job_id
        wait_for(lambda: status(redis_conn, next_id) == "finished", timeout=10)
    assert runs(redis_conn, "u") == 3


def test_a_job_that_kills_its_process_every_time_ends_dead_after_its_attempts(
    worker_env, redis_conn
):
    with supervisor(worker_env, free_port(), "--processes", "1"):
        job_id = Client(connection=redis_conn).perform_async("PyDieWorker", "poison")

        wait_for(lambda: status(redis_conn, job_id) == "failed", timeout=40)

        # retry: 1 allows two runs; the process died in both, and the third fetch buries it.
        assert runs(redis_conn, "poison") == 2
        assert attempts(redis_conn, job_id) == 2
        error = redis_conn.hget(keys.job(job_id), "simbi_error").decode()
        assert error.startswith("ProcessDied: the worker process died while running it")
        assert redis_conn.zscore(keys.failed("default"), job_id) is not None

        after = Client(connection=redis_conn).perform_async("PyEchoWorker", "still working")
        wait_for(lambda: status(redis_conn, after) == "finished", timeout=20)


def test_racing_schedulers_with_one_frozen_past_its_lock_run_each_job_once(worker_env, redis_conn):
    client = Client(connection=redis_conn)
    with (
        supervisor(worker_env, free_port(), "--processes", "1") as first,
        supervisor(worker_env, free_port(), "--processes", "1"),
    ):
        due = time.time() + 3
        ids = [client.perform_at(due, "PyCountWorker", f"at-{n}", 0) for n in range(300)]

        # Freeze one supervisor (its scheduler, maybe the leader) past the lock's lifetime.
        first.send_signal(signal.SIGSTOP)
        time.sleep(12)
        first.send_signal(signal.SIGCONT)

        wait_for(lambda: all(status(redis_conn, i) == "finished" for i in ids), timeout=60)
        time.sleep(1)  # anything scheduled twice would run now
    counts = redis_conn.hgetall(RUNS)
    assert len(counts) == 300
    assert set(counts.values()) == {b"1"}


def test_a_process_cut_off_from_redis_stops_its_job_before_its_heartbeat_expires(
    worker_env, redis_conn, redis_url
):
    proxy = CuttableProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    env = {**worker_env, "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
    env["SIMBI_HEARTBEAT_TTL"] = "15"  # stops its job 5 s without a beat (15 - 2 * 5)
    argv = [sys.executable, "-m", "simbi_workers.worker", "--process-id", "cut", "--queues"]
    worker = subprocess.Popen([*argv, "default"], env=env, cwd=ROOT)
    try:
        job_id = Client(connection=redis_conn).perform_async("PyCountWorker", "cut", 60)
        wait_for(lambda: runs(redis_conn, "cut") == 1, timeout=30)

        proxy.sever()
        severed = time.monotonic()
        worker.wait(timeout=30)
        stopped_after = time.monotonic() - severed
    finally:
        if worker.poll() is None:
            worker.kill()

    # It stopped before its heartbeat hash expired (15 s after the last beat), so by the
    # time another supervisor may take the job, nothing runs it here.
    assert stopped_after < 15
    assert redis_conn.lrange(keys.processing("cut"), 0, -1) == [job_id.encode()]
    wait_for(lambda: not redis_conn.exists(keys.process("cut")), timeout=20)
    recovery = Recovery(redis_conn)
    recovery.scan_orphans()
    assert redis_conn.lrange(keys.queue("default"), 0, -1) == [job_id.encode()]
    assert attempts(redis_conn, job_id) == 1
