"""rq-dashboard (the installed package, run as an operator runs it) pointed at our Redis:
its JSON endpoints show our queues, their counts, our processes and a dead job the way
/stats and `simbi-workers failed` do."""

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from simbi_workers import catalog, keys, stats
from simbi_workers.client import Client
from simbi_workers.config import Settings
from simbi_workers.dead_set import DeadSet
from simbi_workers.worker import WorkerProcess
from tests.conftest import free_port
from tests.harness import get_json


@pytest.fixture(scope="module")
def dashboard(redis_server):
    """`rq-dashboard --json` on a free port. --json (RQ_DASHBOARD_JSON=true) makes it read
    job payloads with RQ's JSONSerializer, which is what we write; --show-full-args reads
    them, so this fails if the payloads are not what RQ expects."""
    port = free_port()
    argv = [sys.executable, "-m", "rq_dashboard", "--bind", "127.0.0.1", "--port", str(port)]
    argv += ["--redis-url", redis_server, "--json", "--show-full-args"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_ready(process: subprocess.Popen, base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rq-dashboard exited: {process.stderr.read().decode()}")
        try:
            if get_json(f"{base}/0/data/queues.json")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("rq-dashboard did not answer in time")


@pytest.fixture
def marketplace(worker_env, redis_conn):
    """Two jobs waiting in default, one in slack, one scheduled, one dead; one process."""
    settings = Settings()
    loaded = catalog.load(settings.queues_file)
    worker = WorkerProcess(settings, loaded, redis_conn, "dashboard-test", loaded.queue_names())
    client = Client(connection=redis_conn)

    dead_id = client.perform_async("PyFailWorker", "permanent")
    worker.process(worker.fetcher.fetch())  # Python only: no children needed
    waiting = [client.perform_async("PyEchoWorker", n) for n in (1, 2)]
    client.perform_async("SlackNotifierWorker", "signups", None, "hi")
    client.perform_in(3600, "PyEchoWorker", "later")
    worker.registration.register()
    yield {"dead": dead_id, "waiting": waiting, "worker": worker, "catalog": loaded}
    worker.registration.deregister()


def test_the_dashboard_counts_our_queues_as_stats_does(dashboard, marketplace, redis_conn):
    status, body = get_json(f"{dashboard}/0/data/queues.json")

    assert status == 200
    queues = {queue["name"]: queue for queue in body["queues"]}
    # RQ lists the queues that have had jobs (rq:queues), not every queue in queues.yaml.
    assert set(queues) == {"default", "slack"}
    numbers = stats.collect(redis_conn, marketplace["catalog"])["queues"]
    for name, queue in queues.items():
        ours = numbers[name]
        assert queue["count"] == ours["size"]
        assert queue["failed_job_registry_count"] == ours["failed"]
        assert queue["scheduled_job_registry_count"] == ours["scheduled"]
        assert queue["started_job_registry_count"] == ours["running"]
    assert (queues["default"]["count"], queues["default"]["failed_job_registry_count"]) == (2, 1)
    assert queues["default"]["scheduled_job_registry_count"] == 1
    assert queues["slack"]["count"] == 1


def test_the_dashboard_lists_the_dead_job_that_failed_list_shows(
    dashboard, marketplace, redis_conn
):
    dead_id = marketplace["dead"]

    status, body = get_json(f"{dashboard}/0/data/jobs/default/failed/8/asc/1.json")

    assert status == 200
    (job,) = body["jobs"]
    (entry,) = DeadSet(redis_conn, marketplace["catalog"]).list()
    assert job["id"] == entry.id == dead_id
    # --show-full-args decodes our JSON payload with RQ's own JSONSerializer.
    assert job["description"] == "simbi_workers.jobs.PyFailWorker('permanent')"
    assert job["ended_at"].startswith(entry.failed_at[:19])


def test_the_dashboard_shows_a_dead_jobs_detail(dashboard, marketplace):
    dead_id = marketplace["dead"]

    status, job = get_json(f"{dashboard}/0/data/job/{dead_id}.json")

    assert status == 200
    assert (job["id"], job["status"], job["origin"]) == (dead_id, "failed", "default")
    assert job["created_at"] and job["enqueued_at"] and job["ended_at"]


def test_the_dashboard_shows_a_dead_jobs_traceback(dashboard, marketplace):
    _status, job = get_json(f"{dashboard}/0/data/job/{marketplace['dead']}.json")

    assert "PermanentJobError: cannot ever work" in (job["exc_info"] or "")


def test_the_dashboard_lists_waiting_jobs_in_queue_order(dashboard, marketplace):
    status, body = get_json(f"{dashboard}/0/data/jobs/default/queued/8/asc/1.json")

    assert status == 200
    assert [job["id"] for job in body["jobs"]] == marketplace["waiting"]
    assert body["jobs"][0]["description"] == "simbi_workers.jobs.PyEchoWorker(1)"


def test_the_dashboard_lists_our_worker_process(dashboard, marketplace):
    status, body = get_json(f"{dashboard}/0/data/workers.json")

    assert status == 200
    (listed,) = body["workers"]
    assert listed["name"] == marketplace["worker"].registration.rq_name
    assert listed["queues"] == marketplace["catalog"].queue_names()


def test_a_dead_job_requeued_from_the_dashboard_runs_but_keeps_its_attempts(
    dashboard, worker_env, redis_conn
):
    settings = Settings()
    loaded = catalog.load(settings.queues_file)
    worker = WorkerProcess(settings, loaded, redis_conn, "dashboard-requeue", ["default"])
    job_id = Client(connection=redis_conn).perform_async("PyEchoWorker", "again")
    fetched = worker.fetcher.fetch()
    worker.fetcher.unit(fetched).bury("PyEchoWorker", "ProviderDown: 503", 6, 1.0, 3600)

    request = urllib.request.Request(f"{dashboard}/job/{job_id}/requeue", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response) == {"status": "OK"}
    worker.process(worker.fetcher.fetch())

    fields = redis_conn.hgetall(keys.job(job_id))
    assert (fields[b"status"], fields[b"result"]) == (b"finished", b'"again"')
    # Unlike `simbi-workers failed retry`, RQ's requeue does not know our attempt count.
    assert fields[b"simbi_attempt"] == b"6"
