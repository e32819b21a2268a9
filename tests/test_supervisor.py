"""`simbi-workers start` as an operator runs it: a real subprocess, real Redis, real children,
HTTP on a free port, signals."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from simbi_workers import keys
from simbi_workers.client import Client
from tests.conftest import free_port
from tests.harness import get_json, run_cli, status, supervisor, wait_for


def cli(env, *args, check=True):
    result = run_cli(env, *args)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_slack_job_from_the_cli_is_done_within_a_second_and_visible(
    worker_env, redis_conn, tmp_path
):
    port = free_port()
    with supervisor(worker_env, port, log_path=tmp_path / "start.log"):
        job_id = cli(
            worker_env, "enqueue", "SlackNotifierWorker", '"signups"', "null", '"hello"'
        ).stdout.strip()
        enqueued = time.monotonic()

        wait_for(lambda: status(redis_conn, job_id) == "finished", timeout=5)
        assert time.monotonic() - enqueued < 1.0

        outbox = (tmp_path / "var" / "outbox" / "slack.jsonl").read_text().splitlines()
        assert [json.loads(line)["text"] for line in outbox] == ["hello"]
        code, stats = get_json(f"http://127.0.0.1:{port}/stats")
        assert code == 200
        assert stats["workers"]["SlackNotifierWorker"]["processed"] == 1
        assert len(stats["processes"]) == 1 and len(next(iter(stats["processes"].values()))) == 2
        code, health = get_json(f"http://127.0.0.1:{port}/health")
        assert code == 200 and health["ok"] is True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = response.read().decode()
        assert (
            'simbi_jobs_processed_total{queue="slack",runtime="ruby",'
            'worker="SlackNotifierWorker"} 1.0'
        ) in metrics
        assert 'simbi_queue_size{queue="critical"} 0.0' in metrics


def test_a_perform_in_job_runs_after_its_delay_and_not_before(worker_env, redis_conn):
    with supervisor(worker_env, free_port()):
        client = Client(connection=redis_conn)
        job_id = client.perform_in(2, "PyEchoWorker", "later")
        enqueued = time.time()

        time.sleep(1.5)
        assert status(redis_conn, job_id) == "scheduled"
        wait_for(lambda: status(redis_conn, job_id) == "finished", timeout=5)

        started_at = redis_conn.hget(keys.job(job_id), "started_at").decode()
        from datetime import datetime

        started = datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()
        assert started - enqueued >= 2.0


def test_sigterm_lets_a_running_job_finish_within_the_shutdown_timeout(
    worker_env, redis_conn, tmp_path
):
    log_path = tmp_path / "start.log"
    with supervisor(
        worker_env, free_port(), "--processes", "1", "--shutdown-timeout", "10", log_path=log_path
    ) as process:
        job_id = Client(connection=redis_conn).perform_async("PySleepWorker", 2)
        wait_for(lambda: status(redis_conn, job_id) == "started")

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=20) == 0
        assert status(redis_conn, job_id) == "finished"
    # The worker process exits cleanly too (it once aborted on its stdin reader's lock).
    log = log_path.read_text()
    assert "stopped" in log
    assert "Fatal Python error" not in log and "Traceback" not in log


def test_sigterm_past_the_shutdown_timeout_puts_the_job_back(worker_env, redis_conn):
    with supervisor(
        worker_env, free_port(), "--processes", "1", "--shutdown-timeout", "0.5"
    ) as process:
        job_id = Client(connection=redis_conn).perform_async("RbSleepWorker", 2.5)
        wait_for(lambda: status(redis_conn, job_id) == "started")

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=20) == 0
        assert status(redis_conn, job_id) == "queued"
        assert redis_conn.lrange(keys.queue("default"), 0, -1) == [job_id.encode()]
        assert redis_conn.hget(keys.job(job_id), "simbi_attempt") == b"0"
        assert redis_conn.zcard(keys.started("default")) == 0


def test_a_killed_worker_process_is_replaced_and_its_job_put_back(worker_env, redis_conn):
    with supervisor(worker_env, free_port(), "--processes", "1"):
        job_id = Client(connection=redis_conn).perform_async("PySleepWorker", 1)
        wait_for(lambda: status(redis_conn, job_id) == "started")
        pid = int(redis_conn.hget(keys.job(job_id), "worker_name").decode().split(".")[2])

        subprocess.run(["kill", "-9", str(pid)], check=True)

        wait_for(lambda: status(redis_conn, job_id) == "finished", timeout=30)


def test_a_ruby_worker_file_with_a_syntax_error_stops_start(worker_env, tmp_path):
    broken = tmp_path / "broken_ruby"
    broken.mkdir()
    (broken / "broken_worker.rb").write_text(
        "class BrokenWorker < SimbiWorker::Base\n  def perform(\nend\n"
    )
    env = {**worker_env, "SIMBI_RUBY_EXTRA_WORKERS": str(broken)}

    result = cli(env, "start", "--port", str(free_port()), check=False)

    assert result.returncode == 1
    assert "the ruby child failed to start" in result.stderr
    assert "broken_worker.rb" in result.stderr
    assert "syntax error" in result.stderr


def test_start_refuses_when_a_runtime_does_not_match_the_catalogue(worker_env, tmp_path):
    text = tmp_path / "catalog.yaml"
    original = Path(worker_env["SIMBI_QUEUES_FILE"]).read_text()
    text.write_text(original.replace("RbEchoWorker:", "RbEchoWorkerRenamed:"))
    env = {**worker_env, "SIMBI_QUEUES_FILE": str(text)}

    result = cli(env, "start", "--port", str(free_port()), check=False)

    assert result.returncode == 1
    assert (
        "error: the ruby runtime does not match the catalogue: missing (in catalog.yaml, "
        "not served): RbEchoWorkerRenamed; unknown (served, not in catalog.yaml): "
        "RbEchoWorker"
    ) in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "NoSuchWorker"], "error: unknown worker 'NoSuchWorker'"),
        (["enqueue", "PyEchoWorker", "signups"], "argument 1 ('signups') is not JSON"),
        (["enqueue", "PyEchoWorker", "1", "--in", "soon"], "'soon': expected a number"),
        (["enqueue", "PyEchoWorker", "1", "--at", "2030-01-01T00:00"], "has no time zone"),
        (["start", "--queues", "critical,urgent"], "unknown queue(s) urgent"),
    ],
)
def test_bad_command_lines_get_one_clear_message(worker_env, args, message):
    result = cli(worker_env, *args, check=False)

    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_head_requests_and_unreachable_redis_get_clear_answers(worker_env, redis_conn):
    port = free_port()
    with supervisor(worker_env, port):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/health", method="HEAD")
        with urllib.request.urlopen(request) as response:
            assert response.status == 200
            assert response.read() == b""
        post = urllib.request.Request(f"http://127.0.0.1:{port}/stats", b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(post)
        assert (refused.value.code, refused.value.headers["Allow"]) == (405, "GET, HEAD")

    result = cli({**worker_env, "REDIS_URL": "redis://127.0.0.1:1/0"}, "stats", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Redis at redis://127.0.0.1:1/0 did not answer")
    assert "Traceback" not in result.stderr


def test_sigtstp_makes_the_supervisor_quiet_until_sigterm(worker_env, redis_conn):
    port = free_port()
    with supervisor(worker_env, port, "--processes", "1") as process:
        process.send_signal(signal.SIGTSTP)
        wait_for(lambda: get_json(f"http://127.0.0.1:{port}/health")[1].get("quiet"))
        time.sleep(1.5)  # a worker already waiting for work must not take the next job
        job_id = Client(connection=redis_conn).perform_async("PyEchoWorker", "later")

        time.sleep(2)
        assert status(redis_conn, job_id) == "queued"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert status(redis_conn, job_id) == "queued"


def test_worker_processes_stop_when_their_supervisor_is_killed(worker_env, redis_conn):
    with supervisor(worker_env, free_port(), "--processes", "1") as process:
        process_id = next(iter(redis_conn.smembers(keys.PROCESSES))).decode()
        pid = int(redis_conn.hget(keys.process(process_id), "pid"))
        process.kill()
        process.wait()

        def gone():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for(gone, timeout=15)
