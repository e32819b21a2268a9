"""`simbi-workers start` as the demo runs it: the real supervisor in a subprocess, its logs
in a file, ready once /health says every worker process and its children are up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simbi_workers.config import Settings
from simbi_workers.errors import InfrastructureError

HEALTHY_TIMEOUT_SECONDS = 60  # each process starts a Ruby and a Node child first
SHUTDOWN_TIMEOUT_SECONDS = 10  # what running jobs get to finish; demo jobs take ms
STOP_TIMEOUT_SECONDS = SHUTDOWN_TIMEOUT_SECONDS + 20
POLL_SECONDS = 0.1
LOG_NAME = "demo-start.log"  # under var/
LOG_TAIL_LINES = 15


@dataclass
class Supervisor:
    process: subprocess.Popen
    port: int
    log_path: Path

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise InfrastructureError(
                f"`simbi-workers start` exited with status {code}; its log "
                f"({self.log_path}) ends with:\n{log_tail(self.log_path)}"
            )


@contextmanager
def running(settings: Settings, processes: int, log_path: Path) -> Iterator[Supervisor]:
    """The supervisor from healthy to stopped: SIGTERM and a wait on the way out, also on
    Ctrl-C or an exception."""
    port = free_port()
    argv = [sys.executable, "-m", "simbi_workers.cli", "start", "--processes", str(processes)]
    argv += ["--port", str(port), "--shutdown-timeout", str(SHUTDOWN_TIMEOUT_SECONDS)]
    with log_path.open("wb") as log_file:
        # A session of its own: Ctrl-C reaches only the demo, which then stops the
        # supervisor in order instead of every process getting SIGINT at once.
        process = subprocess.Popen(
            argv,
            env=environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        supervisor = Supervisor(process, port, log_path)
        try:
            wait_healthy(supervisor)
            yield supervisor
        finally:
            stop(process)


def environment(settings: Settings) -> dict[str, str]:
    """The current environment, pinned to the demo's settings so that the supervisor and
    the demo find the same var/ directory, Redis, database and queues.yaml."""
    env = dict(os.environ)
    env["SIMBI_VAR_DIR"] = str(settings.var_dir.resolve())
    env["SIMBI_QUEUES_FILE"] = str(Path(settings.queues_file).resolve())
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    return env


def wait_healthy(supervisor: Supervisor) -> None:
    url = f"http://127.0.0.1:{supervisor.port}/health"
    deadline = time.monotonic() + HEALTHY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        supervisor.check_alive()
        if _healthy(url):
            return
        time.sleep(POLL_SECONDS)
    raise InfrastructureError(
        f"`simbi-workers start` was not healthy after {HEALTHY_TIMEOUT_SECONDS} s; its log "
        f"({supervisor.log_path}) ends with:\n{log_tail(supervisor.log_path)}"
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        # A second Ctrl-C, or a supervisor that hangs: it must not outlive the demo.
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty)"


def _healthy(url: str) -> bool:
    """200, and every worker process reports its children up (not still starting)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False  # not listening yet, or 503 while processes start
    children = [entry["children"] for entry in body.get("processes", {}).values()]
    return bool(children) and all("up" in text and "down" not in text for text in children)
