"""The runtimes of one worker process: Python in-process, one Ruby and one Node child."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from simbi_workers.catalog import Catalog, WorkerSpec
from simbi_workers.config import Settings
from simbi_workers.errors import ChildError, ConfigError
from simbi_workers.runtimes.child import Child
from simbi_workers.runtimes.outcome import Failure, Outcome
from simbi_workers.runtimes.python import PythonRuntime
from simbi_workers.wire import REDACTED, Job

ROOT = Path(__file__).resolve().parents[2]
RUBY_MAIN = ROOT / "workers" / "ruby" / "main.rb"
NODE_MAIN = ROOT / "workers" / "typescript" / "dist" / "src" / "main.js"

log = logging.getLogger(__name__)

# A child that fails to start (a broken deploy) is tried again after 2, 4, 8 … seconds, at
# most this long apart, and its jobs wait in the scheduled registry meanwhile.
MAX_RESTART_BACKOFF_SECONDS = 60.0


def child_argv(runtime: str, settings: Settings) -> list[str]:
    if runtime == "ruby":
        return [settings.ruby_bin, str(RUBY_MAIN)]
    return [settings.node_bin, str(NODE_MAIN)]


class Runtimes:
    def __init__(self, settings: Settings, catalog: Catalog, services):
        self.catalog = catalog
        self.python = PythonRuntime(services)
        self.children = {
            runtime: Child(
                runtime,
                child_argv(runtime, settings),
                services,
                ROOT,
                {"SIMBI_APP_URL": settings.app_base_url},
            )
            for runtime in ("ruby", "node")
            if catalog.workers_for(runtime)
        }
        self._failed_starts: dict[str, int] = {}
        self._next_start: dict[str, float] = {}

    def start(self) -> None:
        """Start every child and check each runtime serves exactly its catalogue workers."""
        self._check("python", self.python.names())
        for runtime, child in self.children.items():
            self._check(runtime, child.start())

    def stop(self) -> None:
        for child in self.children.values():
            child.stop()

    def alive(self) -> dict[str, bool]:
        return {runtime: child.alive() for runtime, child in self.children.items()}

    def revive(self) -> None:
        """Replace a child that died while idle, so /health recovers before the next job."""
        for runtime, child in self.children.items():
            if child.process is None or child.alive() or self._waiting(runtime):
                continue
            if not self._failed_starts.get(runtime):
                log.warning(
                    "%s child %s %s while idle; starting a new one",
                    runtime,
                    child.pid,
                    child.exit_description(),
                )
            self._restart(runtime)

    def kill_children(self) -> None:
        for child in self.children.values():
            child.kill()

    def run(self, job: Job, spec: WorkerSpec) -> Outcome:
        return _without_secrets(self._run(job, spec), job, spec)

    def _run(self, job: Job, spec: WorkerSpec) -> Outcome:
        if spec.runtime == "python":
            return self.python.run(job, spec.timeout_seconds)

        child = self.children[spec.runtime]
        if not child.alive() and (self._waiting(spec.runtime) or not self._restart(spec.runtime)):
            # The job never reached a child: it waits out the backoff in the scheduled
            # registry, uncounted, so a broken deploy does not use up every job's retries.
            wait = max(self._next_start[spec.runtime] - time.monotonic(), 1.0)
            message = f"the {spec.runtime} child is down (it failed to start); trying again"
            return Outcome(failure=Failure("ChildDown", message, True, wait, uncounted=True))
        outcome = child.run(job, spec.timeout_seconds)
        if not child.alive():
            log.warning("%s child died during job %s; starting a new one", spec.runtime, job.id)
            self._restart(spec.runtime)
        return outcome

    def _waiting(self, runtime: str) -> bool:
        return time.monotonic() < self._next_start.get(runtime, 0.0)

    def _restart(self, runtime: str) -> bool:
        """Start the child again; after a failure, back off and log only the first."""
        failures = self._failed_starts.get(runtime, 0)
        try:
            self.children[runtime].start()
        except ChildError as exc:
            if not failures:
                log.error("could not restart the %s child: %s", runtime, exc)
            backoff = min(2.0 ** (failures + 1), MAX_RESTART_BACKOFF_SECONDS)
            self._failed_starts[runtime] = failures + 1
            self._next_start[runtime] = time.monotonic() + backoff
            return False
        if failures:
            log.warning("the %s child started again after %d failed start(s)", runtime, failures)
        self._failed_starts[runtime] = 0
        return True

    def _check(self, runtime: str, served: list[str]) -> None:
        expected = set(self.catalog.workers_for(runtime))
        missing = sorted(expected - set(served))
        unknown = sorted(set(served) - expected)
        if missing or unknown:
            self.stop()
            parts = []
            if missing:
                parts.append(
                    f"missing (in {self.catalog.path.name}, not served): " + ", ".join(missing)
                )
            if unknown:
                parts.append(
                    f"unknown (served, not in {self.catalog.path.name}): " + ", ".join(unknown)
                )
            raise ConfigError(
                f"the {runtime} runtime does not match the catalogue: " + "; ".join(parts)
            )


def _without_secrets(outcome: Outcome, job: Job, spec: WorkerSpec) -> Outcome:
    """A worker's error or skip reason with its secret_args' values blanked: the text goes
    to the job hash, the dead set and the log, where no token may appear. The worker
    should never quote them; this holds even if it does."""
    secrets = [
        job.args[index]
        for index in spec.secret_positions
        if index < len(job.args) and isinstance(job.args[index], str) and job.args[index]
    ]
    if not secrets:
        return outcome
    if outcome.failure is not None:
        failure = outcome.failure
        failure.message = _blank(failure.message, secrets)
        failure.backtrace = [_blank(line, secrets) for line in failure.backtrace]
    if outcome.skipped:
        outcome.skipped = _blank(outcome.skipped, secrets)
    return outcome


def _blank(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
