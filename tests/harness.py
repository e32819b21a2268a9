"""Running the real thing from tests and benchmarks: a catalogue with the test workers,
the environment that loads them into every runtime, and `simbi-workers start` as a
subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import redis
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of our own on loopback, with AOF on, that can be stopped, killed and
    started again on the same port and data directory, as in an outage.

    appendfsync: "always" writes every acknowledged command to disk before the reply, so
    even a SIGKILL loses nothing that a client was told; with "everysec" a machine crash
    may lose the last second or two.
    """

    def __init__(self, data_dir: Path, appendfsync: str = "always"):
        self.data_dir = data_dir
        self.port = free_port()
        self.appendfsync = appendfsync
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH: run `make install`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.data_dir), "--save", "", "--appendonly", "yes"]
        argv += ["--appendfsync", self.appendfsync, "--logfile", str(self.data_dir / "log")]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        wait_for(self.answers, timeout=20)  # loading the AOF back takes a moment

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """SIGTERM: Redis flushes its AOF and exits, as in a clean restart."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything; only what appendfsync wrote survives."""
        self._end(signal.SIGKILL)

    def _end(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(timeout=30)


class CuttableProxy:
    """A TCP relay to Redis that can be cut: open connections are dropped and new ones
    refused, as in a network partition of one host. Or stalled: connections stay open and
    nothing goes through, as when packets are silently dropped."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.stalled = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            client, _ = self.listener.accept()
            if self.cut.is_set():
                client.close()
                continue
            self.sockets.append(client)
            if self.stalled.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while data := src.recv(65536):
                if self.stalled.is_set():
                    continue  # dropped on the floor
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                sock.close()

    def sever(self):
        self.cut.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stall(self):
        self.stalled.set()
