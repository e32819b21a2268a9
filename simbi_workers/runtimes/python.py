"""The in-process runtime for Python workers, with the job timeout enforced by SIGALRM."""

from __future__ import annotations

import importlib
import os
import signal
import traceback
from collections.abc import Callable
from typing import Any

from simbi_workers.errors import JobError, JobTimeout
from simbi_workers.runtimes.context import JobContext
from simbi_workers.runtimes.outcome import Failure, Outcome
from simbi_workers.wire import Job

# Extra worker modules (each with a WORKERS dict) for benchmarks and tests, comma-separated.
EXTRA_WORKERS_ENV = "SIMBI_PYTHON_EXTRA_WORKERS"


def load_workers() -> dict[str, Callable[..., Any]]:
    from simbi_workers.images import WORKERS

    workers = dict(WORKERS)
    for module_name in filter(None, os.environ.get(EXTRA_WORKERS_ENV, "").split(",")):
        workers.update(importlib.import_module(module_name.strip()).WORKERS)
    return workers


class PythonRuntime:
    name = "python"

    def __init__(self, services):
        self.services = services
        self.workers = load_workers()

    def names(self) -> list[str]:
        return sorted(self.workers)

    def run(self, job: Job, timeout_seconds: int) -> Outcome:
        ctx = JobContext(job.id, job.worker, job.queue, job.attempt + 1, self.services)
        function = self.workers[job.worker]

        previous = signal.signal(signal.SIGALRM, _raise_timeout(timeout_seconds))
        signal.setitimer(signal.ITIMER_REAL, timeout_seconds)
        try:
            value = function(ctx, *job.args)
        except JobError as exc:
            return Outcome(failure=_failure(exc, exc.retryable, exc.retry_after_seconds))
        except Exception as exc:
            # Unexpected errors are retryable: the retry policy decides, not the worker.
            return Outcome(failure=_failure(exc, True, None))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return Outcome(value=value, skipped=ctx.skipped)


def _raise_timeout(timeout_seconds: int):
    def handler(_signum, _frame):
        raise JobTimeout(f"timed out after {timeout_seconds} s")

    return handler


def _failure(exc: BaseException, retryable: bool, retry_after: float | None) -> Failure:
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    backtrace = "".join(frames).rstrip().splitlines()[-40:]
    return Failure(type(exc).__name__, str(exc), retryable, retry_after, backtrace)
