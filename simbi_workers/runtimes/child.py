"""A long-lived Ruby or Node child speaking the guest protocol (docs/protocol.md).

The host owns the child: it starts it with a clean environment, waits for `ready`, feeds
it one job at a time, answers its host calls, and kills and replaces it when it exits,
passes the job's deadline or writes a line that is not protocol.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from simbi_workers.errors import ChildError, JobError
from simbi_workers.runtimes.outcome import Failure, Outcome
from simbi_workers.wire import Job

PROTOCOL_VERSION = 1
READY_TIMEOUT_SECONDS = 10
KILL_GRACE_SECONDS = 2
READ_CHUNK = 1 << 16
# Only these variables reach a child: no credentials, no REDIS_URL, no DATABASE_URL.
PASSED_ENV = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "HOME",
    "SIMBI_RUBY_EXTRA_WORKERS",
    "SIMBI_NODE_EXTRA_WORKERS",
)

log = logging.getLogger("simbi_workers.child")


class ChildDied(ChildError):
    """The child stopped answering: exited, timed out or broke the protocol."""


class Child:
    def __init__(
        self,
        runtime: str,
        argv: list[str],
        services,
        cwd: Path,
        extra_env: dict[str, str] | None = None,
    ):
        self.runtime = runtime
        self.argv = argv
        self.services = services
        self.cwd = cwd
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen | None = None
        self.workers: list[str] = []
        self.current_job: str | None = None
        self._buffer = b""
        self._selector: selectors.BaseSelector | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exit_description(self) -> str:
        code = self.process.poll() if self.process else None
        return "is running" if code is None else describe_exit(code)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> list[str]:
        """Start the child and wait for `ready`; returns the worker names it serves."""
        env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
        env.update(self.extra_env)
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._stderr_lines: list[str] = []
        self._stderr_thread = threading.Thread(
            target=self._relay_stderr, daemon=True, name="child-stderr"
        )
        self._stderr_thread.start()

        try:
            ready = self._read_message(time.monotonic() + READY_TIMEOUT_SECONDS)
        except ChildDied as exc:
            self.kill()
            raise ChildError(f"the {self.runtime} child failed to start: {exc}") from None
        self._check_ready(ready)
        log.info(
            "child ready runtime=%s pid=%s workers=%d", self.runtime, self.pid, len(self.workers)
        )
        return self.workers

    def run(self, job: Job, timeout_seconds: int) -> Outcome:
        """Run one job. A dead, hung or confused child is killed; the job fails with why."""
        deadline = time.monotonic() + timeout_seconds
        self.current_job = job.id
        self._stderr_lines = []  # a failure quotes only what this job wrote
        try:
            self._send(
                {
                    "type": "job",
                    "job_id": job.id,
                    "worker": job.worker,
                    "args": job.args,
                    "attempt": job.attempt + 1,
                    "queue": job.queue,
                    "timeout_seconds": timeout_seconds,
                    "deadline_ms": int((time.time() + timeout_seconds) * 1000),
                }
            )
            return self._converse(job, deadline, timeout_seconds)
        except ChildDied as exc:
            self.kill()
            return Outcome(failure=Failure(type(exc).__name__, str(exc), retryable=True))
        finally:
            self.current_job = None

    def stop(self) -> None:
        """Close stdin so the child exits at end of input; kill it if it does not."""
        if not self.alive():
            return
        try:
            self.process.stdin.close()
            self.process.wait(timeout=KILL_GRACE_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _converse(self, job: Job, deadline: float, timeout_seconds: int) -> Outcome:
        while True:
            try:
                message = self._read_message(deadline)
            except TimeoutError:
                raise ChildDied(f"{job.worker} timed out after {timeout_seconds} s") from None
            kind = message.get("type")
            if kind == "call":
                self._send(self._answer(message))
                continue
            if kind == "done" and message.get("job_id") == job.id:
                return _outcome(message)
            raise ChildDied(f"the child sent {kind!r} while running job {job.id}: {message}")

    def _answer(self, call: dict[str, Any]) -> dict[str, Any]:
        reply: dict[str, Any] = {"type": "reply", "call_id": call.get("call_id")}
        try:
            reply["value"] = self.services.call(
                call.get("service"), call.get("method"), call.get("params") or {}
            )
        except JobError as exc:
            reply["error"] = {
                "class": type(exc).__name__,
                "message": str(exc),
                "retryable": exc.retryable,
                "retry_after_seconds": exc.retry_after_seconds,
            }
        except Exception as exc:
            log.exception("host call %s.%s failed", call.get("service"), call.get("method"))
            reply["error"] = {
                "class": type(exc).__name__,
                "message": str(exc),
                "retryable": True,
                "retry_after_seconds": None,
            }
        return reply

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self.process.stdin.write(data.encode("utf-8"))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ChildDied(self._exit_reason()) from None

    def _read_message(self, deadline: float) -> dict[str, Any]:
        line = self._read_line(deadline)
        try:
            message = json.loads(line)
        except ValueError:
            raise ChildDied(f"wrote a line that is not protocol: {line[:200]!r}") from None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ChildDied(f"wrote a line that is not protocol: {line[:200]!r}")
        return message

    def _read_line(self, deadline: float) -> str:
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not self._selector.select(timeout=remaining):
                continue
            chunk = os.read(fd, READ_CHUNK)
            if not chunk:
                raise ChildDied(self._exit_reason())
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace")

    def _exit_reason(self) -> str:
        try:
            code = self.process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            return "closed its stdout but did not exit"
        self._stderr_thread.join(timeout=1)
        stderr = " | ".join(self._stderr_lines[-5:])
        reason = describe_exit(code)
        return f"{reason}: {stderr}" if stderr else reason

    def _check_ready(self, ready: dict[str, Any]) -> None:
        if ready.get("type") != "ready":
            self.kill()
            raise ChildError(f"the {self.runtime} child's first line was not ready: {ready}")
        if ready.get("protocol") != PROTOCOL_VERSION:
            self.kill()
            raise ChildError(
                f"the {self.runtime} child speaks protocol {ready.get('protocol')!r}, "
                f"the host speaks {PROTOCOL_VERSION}"
            )
        self.workers = sorted(ready.get("workers") or [])

    def _relay_stderr(self) -> None:
        process = self.process
        for raw in process.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            self._stderr_lines = [*self._stderr_lines[-19:], line]
            job_id = self.current_job
            if job_id is None or line.startswith("["):
                # The child's own lines start with "[Worker job-id]"; this thread may read
                # them after the job ended, when current_job no longer names it.
                log.info("%s[%s] %s", self.runtime, process.pid, line)
            else:
                log.info("%s[%s] job=%s %s", self.runtime, process.pid, job_id, line)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _outcome(done: dict[str, Any]) -> Outcome:
    error = done.get("error")
    if not error:
        return Outcome(value=done.get("value"), skipped=done.get("skipped"))
    return Outcome(
        failure=Failure(
            error_class=str(error.get("class") or "Error"),
            message=str(error.get("message") or ""),
            retryable=bool(error.get("retryable", True)),
            retry_after_seconds=error.get("retry_after_seconds"),
            backtrace=[str(line) for line in error.get("backtrace") or []][:20],
        )
    )
