"""Running the real thing from tests and benchmarks: a catalogue with the test workers,
the environment that loads them into every runtime, and `simbi-workers start` as a
subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def write_test_catalog(path: Path) -> Path:
    """queues.yaml plus the test workers of tests/fixtures/test_workers.yaml."""
    catalog = yaml.safe_load((ROOT / "queues.yaml").read_text())
    catalog["workers"].update(yaml.safe_load((FIXTURES / "test_workers.yaml").read_text()))
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    return path


def test_env(catalog_path: Path, redis_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": redis_url,
            "SIMBI_VAR_DIR": str(var_dir),
            "SIMBI_QUEUES_FILE": str(catalog_path),
            "SIMBI_PYTHON_EXTRA_WORKERS": "tests.fixtures.pyworkers",
            "SIMBI_RUBY_EXTRA_WORKERS": str(FIXTURES / "ruby"),
            "SIMBI_NODE_EXTRA_WORKERS": str(FIXTURES / "node" / "test_workers.js"),
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
            **extra,
        }
    )
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`simbi-workers ARGS…` as a user runs it, with its exit status and both streams."""
    argv = [sys.executable, "-m", "simbi_workers.cli", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)


def wait_for(predicate, timeout: float = 10.0):
    """The predicate's first truthy value, polled every 50 ms until the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def status(redis_conn, job_id: str) -> str:
    from simbi_workers import keys

    return (redis_conn.hget(keys.job(job_id), "status") or b"").decode()


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@contextmanager
def supervisor(env: dict[str, str], port: int, *args: str, log_path: Path | None = None):
    """`simbi-workers start` until /health says every process and child is up."""
    log_file = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    argv = [sys.executable, "-m", "simbi_workers.cli", "start", "--port", str(port), *args]
    process = subprocess.Popen(argv, env=env, stdout=log_file, stderr=log_file, cwd=ROOT)
    try:
        wait_healthy(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
        if log_path:
            log_file.close()


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"simbi-workers start exited with {process.returncode}")
        try:
            status, body = get_json(f"http://127.0.0.1:{port}/health")
            children = [p["children"] for p in body.get("processes", {}).values()]
            if status == 200 and children and all("up" in c for c in children):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("simbi-workers start did not become healthy in time")
