"""A worker process: fetch by priority, run in the right runtime, acknowledge, repeat.

Run by the supervisor as `python -m simbi_workers.worker --process-id ID --queues a,b`.
SIGTERM: finish the running job, then exit. SIGUSR1 (the supervisor, when the shutdown
timeout passes): abandon the running job, put it back at the front of its queue, exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

import redis

from simbi_workers import catalog as catalog_module
from simbi_workers import retry, wire
from simbi_workers.catalog import Catalog, WorkerSpec
from simbi_workers.client import check_arguments
from simbi_workers.config import Settings
from simbi_workers.config import settings as load_settings
from simbi_workers.errors import ConfigError, SimbiError
from simbi_workers.fetch import Fetched, Fetcher, Unit
from simbi_workers.logs import setup_logging
from simbi_workers.redis_connection import connect
from simbi_workers.registration import Registration
from simbi_workers.runtimes.manager import Runtimes
from simbi_workers.runtimes.outcome import Failure, Outcome
from simbi_workers.services import Services

HEARTBEAT_SECONDS = 5
REDIS_DOWN = object()  # what _redis_step returns when Redis did not answer
MAX_BACKOFF_SECONDS = 5
QUIET_POLL_SECONDS = 1
EXIT_CONFIG_ERROR = 78  # EX_CONFIG: the supervisor does not restart a misconfigured process

log = logging.getLogger("simbi_workers.worker")


class Abandon(BaseException):
    """Raised in the main thread by SIGUSR1: stop the running job now (shutdown timeout)."""


class WorkerProcess:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        connection: redis.Redis,
        process_id: str,
        queues: list[str],
    ):
        self.settings = settings
        self.catalog = catalog
        self.connection = connection
        self.registration = Registration(
            connection, process_id, queues, settings.heartbeat_ttl_seconds
        )
        limits = {
            name: spec.concurrency for name, spec in catalog.workers.items() if spec.concurrency
        }
        self.fetcher = Fetcher(connection, process_id, self.registration.rq_name, queues, limits)
        self.services = Services(settings, connection)
        self.runtimes = Runtimes(settings, catalog, self.services)
        self.stopping = threading.Event()
        self.quiet = threading.Event()
        self.current: Unit | None = None
        self._backoff = 0.0
        self._last_beat = time.monotonic()
        # A process that has not reached Redis for this long stops its job: soon after, its
        # heartbeat hash expires and another supervisor may hand the job to someone else.
        self.stale_after_seconds = settings.heartbeat_ttl_seconds - 2 * HEARTBEAT_SECONDS

    def run(self, burst: bool = False) -> None:
        self.runtimes.start()
        while self._redis_step(self.registration.register) is REDIS_DOWN:
            if self.stopping.is_set():
                return
        threading.Thread(target=self._heartbeat, daemon=True, name="heartbeat").start()
        try:
            self._loop(burst)
        finally:
            self.stopping.set()
            self.runtimes.stop()
            self._deregister()

    def _loop(self, burst: bool) -> None:
        while not self.stopping.is_set():
            if self.quiet.is_set():
                # Quiet (SIGTSTP): take no new jobs, stay alive until SIGTERM.
                self.stopping.wait(QUIET_POLL_SECONDS)
                continue
            fetched = self._redis_step(self.fetcher.fetch)
            if fetched is REDIS_DOWN:
                continue
            self._last_beat = time.monotonic()  # Redis answered: as good as a beat
            if fetched is None:
                if burst:
                    break
                self.runtimes.revive()
                self._redis_step(self.fetcher.wait_for_work)
                continue
            self.process(fetched)

    def _redis_step(self, step):
        """Run one Redis step; while Redis is away, back off and say so once, not per try."""
        try:
            value = step()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if not self._backoff:
                log.critical("lost Redis: %s; retrying with backoff", exc)
            self._backoff = min(max(self._backoff * 2, 0.5), MAX_BACKOFF_SECONDS)
            # Once stopping, the event no longer waits: sleep, or an acknowledgement that
            # must outlast the outage would spin.
            if not self.stopping.wait(self._backoff):
                return REDIS_DOWN
            time.sleep(self._backoff)
            return REDIS_DOWN
        if self._backoff:
            log.warning("Redis is back")
            self._backoff = 0.0
        return value

    def process(self, fetched: Fetched) -> None:
        unit = self.fetcher.unit(fetched)
        try:
            job, spec = self._decode(fetched)
        except SimbiError as exc:
            # A broken or unknown job fails alone, straight to the dead set; we keep going.
            log.warning("dead job=%s queue=%s: %s", fetched.job_id, fetched.queue, exc)
            worker = fetched.fields.get(b"simbi_worker", b"unknown").decode("utf-8", "replace")
            error = f"{type(exc).__name__}: {exc}"
            failure_ttl = self.settings.failure_ttl_seconds
            self._acknowledge(unit, lambda: unit.bury(worker, error, 1, 0, failure_ttl))
            return

        if job.died and job.attempt > spec.retry:
            # Put back by recovery after its process died during each allowed attempt: a
            # job that kills its process must not loop forever. Dead, like an exhausted one.
            # (A dead job requeued by hand keeps its count but has no simbi_died: it runs.)
            error = (
                f"ProcessDied: the worker process died while running it; "
                f"{job.attempt} attempt(s) made, retry: {spec.retry}"
            )
            log.warning("dead job=%s worker=%s: %s", job.id, job.worker, error)
            failure_ttl = self.settings.failure_ttl_seconds
            self._acknowledge(
                unit, lambda: unit.bury(job.worker, error, job.attempt, 0, failure_ttl)
            )
            return

        self.current = unit
        try:
            outcome, elapsed_ms = self._perform(job, spec)
        except Abandon:
            # Shutdown timeout, or cut off from Redis: the job goes back to the front of its
            # queue. If Redis refuses, it stays in the processing list for the supervisor.
            log.warning("put back job=%s worker=%s: stopped unfinished", job.id, job.worker)
            self.current = None
            self.runtimes.kill_children()
            self._redis_step(unit.put_back)
            raise
        self._record(unit, job, spec, outcome, elapsed_ms)

    def _decode(self, fetched: Fetched) -> tuple[wire.Job, WorkerSpec]:
        # The client's limit, with room for a limit lowered after the job was enqueued.
        limit = 4 * self.settings.max_payload_bytes
        job = wire.decode(fetched.job_id, fetched.fields, fetched.queue, limit)
        spec = self.catalog.worker(job.worker)
        check_arguments(spec, job.args, max_payload_bytes=None)
        return job, spec

    def _perform(self, job: wire.Job, spec: WorkerSpec) -> tuple[Outcome, float]:
        log.info(
            "start worker=%s queue=%s job=%s attempt=%d",
            job.worker,
            job.queue,
            job.id,
            job.attempt + 1,
        )
        started = time.perf_counter()
        try:
            outcome = self.runtimes.run(job, spec)
        except Exception as exc:
            # Our bug, not the job's: fail this job for good rather than crash the process
            # and hand the same job to the next one.
            log.exception("internal error running job=%s worker=%s", job.id, job.worker)
            failure = Failure(type(exc).__name__, f"internal error: {exc}", retryable=False)
            outcome = Outcome(failure=failure)
        return outcome, (time.perf_counter() - started) * 1000

    def _record(
        self, unit: Unit, job: wire.Job, spec: WorkerSpec, outcome: Outcome, elapsed_ms: float
    ) -> None:
        if outcome.ok:
            self._succeed(unit, job, outcome, elapsed_ms)
        else:
            self._fail(unit, job, spec, outcome.failure, elapsed_ms)

    def _acknowledge(self, unit: Unit, ack) -> None:
        """Record the outcome, retrying while Redis is away. SIGUSR1 waits until it is
        recorded, so a shutdown can never put back a job that has already finished."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            if self._redis_step(lambda: self._fenced(unit, ack)) is REDIS_DOWN:
                # Redis may have applied that attempt and lost only its reply: from now on,
                # acknowledge only while the job is still in this process's list.
                while self._redis_step(lambda: self._fenced(unit, ack, True)) is REDIS_DOWN:
                    pass
            self.current = None
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})

    def _fenced(self, unit: Unit, ack, unsure: bool = False) -> None:
        """Acknowledge, unless the job has left this process's processing list: an earlier
        attempt of this acknowledgement was applied though its reply was lost (`unsure`),
        or this process was away from Redis so long (frozen, cut off) that its jobs may have
        been put back and taken by another process, which now owns the outcome."""
        stale = time.monotonic() - self._last_beat > self.stale_after_seconds
        if (unsure or stale) and not self._holds(unit.job_id):
            log.warning(
                "dropped the outcome of job=%s: recorded or put back meanwhile", unit.job_id
            )
            return
        ack()

    def _holds(self, job_id: str) -> bool:
        return self.connection.lpos(self.fetcher.processing_key, job_id) is not None

    def _deregister(self) -> None:
        try:
            self.registration.deregister()
        except redis.RedisError as exc:
            log.warning("could not deregister (Redis: %s); the entry expires by itself", exc)

    def _succeed(self, unit: Unit, job: wire.Job, outcome: Outcome, elapsed_ms: float) -> None:
        result_ttl = self.settings.result_ttl_seconds
        self._acknowledge(
            unit,
            lambda: unit.done(job.worker, outcome.value, elapsed_ms, result_ttl, outcome.skipped),
        )
        if outcome.skipped:
            log.info(
                "skip worker=%s job=%s %.1f ms: %s", job.worker, job.id, elapsed_ms, outcome.skipped
            )
        else:
            log.info("done worker=%s job=%s %.1f ms", job.worker, job.id, elapsed_ms)

    def _fail(self, unit: Unit, job: wire.Job, spec, failure: Failure, elapsed_ms: float):
        if failure.uncounted:
            attempts, delay = job.attempt, failure.retry_after_seconds or 0.0
        else:
            attempts = job.attempt + 1
            delay = retry.next_delay(failure, attempts, spec.retry)
        if delay is not None:
            # Stays in Redis: the scheduled registry runs it again after the delay.
            text = failure.text()
            self._acknowledge(
                unit, lambda: unit.retry(job.worker, text, attempts, delay, elapsed_ms)
            )
            log.info(
                "fail worker=%s job=%s attempt=%d %.1f ms, retry in %.0f s: %s: %s",
                job.worker,
                job.id,
                attempts,
                elapsed_ms,
                delay,
                failure.error_class,
                failure.message,
            )
            return
        # Stays in Redis: the dead set (RQ's failed registry), until retried or expired.
        text, failure_ttl = failure.text(), self.settings.failure_ttl_seconds
        self._acknowledge(
            unit, lambda: unit.bury(job.worker, text, attempts, elapsed_ms, failure_ttl)
        )
        why = "permanent" if not failure.retryable else f"retries exhausted ({spec.retry})"
        log.warning(
            "dead worker=%s job=%s attempt=%d %.1f ms, %s: %s: %s",
            job.worker,
            job.id,
            attempts,
            elapsed_ms,
            why,
            failure.error_class,
            failure.message,
        )

    def listen(self, stream) -> None:
        """The supervisor's commands, a line each on stdin; end of input means it is gone."""
        for line in stream:
            if line.strip() == b"quiet":
                log.info("quiet: no new jobs")
                self.quiet.set()
        if not self.stopping.is_set():
            log.warning("the supervisor is gone; stopping after the current job")
            self.stopping.set()

    def _heartbeat(self) -> None:
        failing = False
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            unit = self.current
            try:
                self.registration.heartbeat(unit.job_id if unit else None, self.runtimes.alive())
                self._last_beat = time.monotonic()
                failing = False
            except redis.RedisError as exc:
                if not failing:
                    log.warning("heartbeat failed: %s (the main loop retries)", exc)
                failing = True
                self._stop_if_stale(unit)

    def _stop_if_stale(self, unit: Unit | None) -> None:
        """Cut off from Redis with a job running: stop it before the heartbeat hash expires,
        so that it never runs here and on another process at the same time."""
        stale = time.monotonic() - self._last_beat
        if unit is None or unit is not self.current or stale < self.stale_after_seconds:
            return
        log.error(
            "no heartbeat for %.0f s while running job=%s: stopping it, it will be put back",
            stale,
            unit.job_id,
        )
        os.kill(os.getpid(), signal.SIGUSR1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simbi_workers.worker")
    parser.add_argument("--process-id", required=True)
    parser.add_argument("--queues", required=True)
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--control-stdin", action="store_true")
    options = parser.parse_args(argv)

    settings = load_settings()
    setup_logging(settings)
    try:
        catalog = catalog_module.load(settings.queues_file)
        worker = WorkerProcess(
            settings, catalog, connect(settings), options.process_id, options.queues.split(",")
        )
        _install_signals(worker)
        if options.control_stdin:
            # Unbuffered: a daemon thread blocked in a buffered stdin read holds its lock,
            # and the interpreter aborts at exit ("could not acquire lock for <stdin>").
            control = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
            threading.Thread(
                target=worker.listen, args=(control,), daemon=True, name="control"
            ).start()
        worker.run(burst=options.burst)
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG_ERROR
    except Abandon:
        return 0
    return 0


def _install_signals(worker: WorkerProcess) -> None:
    def stop(_signum, _frame):
        worker.stopping.set()

    def abandon(_signum, _frame):
        worker.stopping.set()
        if worker.current is not None:
            raise Abandon()

    def quiet(_signum, _frame):
        worker.quiet.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR1, abandon)
    signal.signal(signal.SIGTSTP, quiet)


if __name__ == "__main__":
    sys.exit(main())
