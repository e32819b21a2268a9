"""Redis trouble: stopped for a while under a running `simbi-workers start`, and killed
right after enqueues returned. Each test has a redis-server of its own (its own port and
data directory, AOF with appendfsync always), so stopping it disturbs no other test."""

import re
import subprocess
import sys
import threading
import time

import pytest
import redis

from simbi_workers import catalog, keys
from simbi_workers.client import Client
from simbi_workers.config import Settings
from simbi_workers.fetch import Fetcher
from simbi_workers.worker import WorkerProcess
from tests import harness
from tests.harness import (
    CuttableProxy,
    RedisServer,
    free_port,
    get_json,
    status,
    supervisor,
    wait_for,
)

OUTAGE_SECONDS = 12
# One line each when a process loses Redis and when it is back; the heartbeat thread and
# the scheduler say so once each too. Logging per attempt would exceed this many times.
TROUBLE = re.compile(r"lost Redis|heartbeat failed|scheduler cannot reach Redis|cannot put back")


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def outage_env(own_redis, test_catalog_path, tmp_path, monkeypatch):
    """The test workers' environment on this test's own Redis, here and in subprocesses."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env = harness.test_env(test_catalog_path, own_redis.url, var_dir)
    for name in ("REDIS_URL", "SIMBI_VAR_DIR", "SIMBI_QUEUES_FILE"):
        monkeypatch.setenv(name, env[name])
    return env


SLEEPERS = ("PySleepWorker", "RbSleepWorker", "JsSleepWorker")


def enqueue_across_runtimes(client: Client, rounds: int) -> list[str]:
    """Sleeping jobs in each runtime (some run when Redis goes, the rest wait), and echo
    jobs due a few seconds later, when Redis is away."""
    ids = []
    for n in range(rounds):
        ids += [client.perform_async(worker, 1) for worker in SLEEPERS]
        ids.append(client.perform_in(3, "PyEchoWorker", f"later-{n}"))
    return ids


def health(port: int) -> tuple[int, dict]:
    return get_json(f"http://127.0.0.1:{port}/health")


def worker_pids(body: dict) -> set[int]:
    return {entry["pid"] for entry in body["processes"].values()}


def test_redis_stopped_for_a_while_leaves_every_process_up_and_every_job_done(
    own_redis, outage_env, tmp_path
):
    log_path, port = tmp_path / "start.log", free_port()
    client = Client(connection=redis.Redis.from_url(own_redis.url))
    with supervisor(outage_env, port, "--processes", "2", log_path=log_path) as process:
        pids = worker_pids(health(port)[1])
        ids = enqueue_across_runtimes(client, rounds=3)
        wait_for(lambda: any(status(client.connection, i) == "started" for i in ids))

        own_redis.stop()
        code, body = wait_for(lambda: (answer := health(port))[0] == 503 and answer)
        assert body["redis"].startswith("unreachable"), body

        time.sleep(OUTAGE_SECONDS)  # away for a while: nothing exits, nothing is restarted
        assert process.poll() is None
        code, body = health(port)
        assert code == 503 and body["redis"].startswith("unreachable"), body
        assert worker_pids(body) == pids
        assert all(entry["state"] == "alive" for entry in body["processes"].values()), body

        own_redis.start()
        connection = redis.Redis.from_url(own_redis.url)
        wait_for(lambda: all(status(connection, i) == "finished" for i in ids), timeout=60)
        wait_for(lambda: health(port)[0] == 200, timeout=30)
        assert worker_pids(health(port)[1]) == pids

    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Fatal Python error" not in log
    trouble = TROUBLE.findall(log)
    assert 2 <= len(trouble) <= 3 * len(pids) + 2, trouble
    for pid in pids:
        assert len(re.findall(rf"\[{pid}\] \S+: lost Redis", log)) == 1, log
        assert len(re.findall(rf"\[{pid}\] \S+: Redis is back", log)) == 1, log


def test_jobs_enqueued_before_redis_is_killed_survive_its_restart_and_run(own_redis, outage_env):
    client = Client(connection=redis.Redis.from_url(own_redis.url))
    ids = [client.perform_async("PyEchoWorker", n) for n in range(100)]
    ids += client.perform_bulk("RbEchoWorker", [[n] for n in range(100)])
    ids += [client.perform_in(1, "JsEchoWorker", n) for n in range(100)]

    own_redis.kill()  # right after the enqueues returned: no shutdown, no flush
    own_redis.start()

    connection = redis.Redis.from_url(own_redis.url)
    assert all(status(connection, i) in ("queued", "scheduled") for i in ids)
    with supervisor(outage_env, free_port(), "--processes", "2"):
        wait_for(lambda: all(status(connection, i) == "finished" for i in ids), timeout=60)


def test_a_fetch_whose_reply_was_lost_hands_the_same_job_over_again(redis_conn, client):
    first = client.perform_async("PyEchoWorker", "first")
    second = client.perform_async("PyEchoWorker", "second")
    fetcher = Fetcher(redis_conn, "lossy", "lossy-rq-name", ["default"])

    fetcher.fetch()  # Redis moved the job, but say the reply never reached the process
    again = fetcher.fetch()

    assert again.job_id == first
    assert redis_conn.lrange(keys.processing("lossy"), 0, -1) == [first.encode()]
    assert redis_conn.lrange(keys.queue("default"), 0, -1) == [second.encode()]


def test_an_acknowledgement_retried_after_its_reply_was_lost_counts_once(
    worker_env, redis_conn, client
):
    settings = Settings()
    loaded = catalog.load(settings.queues_file)
    process = WorkerProcess(settings, loaded, redis_conn, "lossy", ["default"])
    job_id = client.perform_async("PyEchoWorker", "once")
    unit = process.fetcher.unit(process.fetcher.fetch())

    def ack():
        unit.done("PyEchoWorker", "once", 1.0, 60)

    process._fenced(unit, ack)  # applied by Redis; say the reply was lost
    process._fenced(unit, ack, unsure=True)  # the retry

    assert status(redis_conn, job_id) == "finished"
    assert redis_conn.hget(keys.worker_stats("PyEchoWorker"), "processed") == b"1"


def test_a_process_whose_link_to_redis_goes_silent_stops_its_job_before_its_heartbeat_expires(
    worker_env, redis_conn, redis_url
):
    """Packets dropped, no error: without socket timeouts every Redis call, the heartbeat's
    too, would wait forever, and the job would still run here when another supervisor hands
    it out again."""
    proxy = CuttableProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    env = {**worker_env, "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0"}
    env["SIMBI_HEARTBEAT_TTL"] = "15"
    argv = [sys.executable, "-m", "simbi_workers.worker", "--process-id", "silent"]
    worker = subprocess.Popen([*argv, "--queues", "default"], env=env, stderr=subprocess.PIPE)
    lines = LineLog(worker.stderr)
    try:
        Client(connection=redis_conn).perform_async("PyCountWorker", "silent", 60)
        wait_for(lambda: redis_conn.hget("simbi:app:runs", "silent") == b"1", timeout=30)

        proxy.stall()
        last_beat = float(redis_conn.hget(keys.process("silent"), "heartbeat"))
        stopped_at = wait_for(lambda: lines.time_of("stopping it"), timeout=30)
    finally:
        worker.kill()
        worker.wait()

    assert stopped_at < last_beat + 15  # before its heartbeat hash expires


class LineLog:
    """A process's stderr, read in a thread, each line with the time it arrived."""

    def __init__(self, stream):
        self.lines: list[tuple[float, str]] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.append((time.time(), line.decode(errors="replace")))

    def time_of(self, text: str) -> float | None:
        return next((at for at, line in self.lines if text in line), None)
