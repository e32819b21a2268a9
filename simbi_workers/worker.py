"""A worker process: fetch by priority, run in the right runtime, acknowledge, repeat.

Run by the supervisor as `python -m simbi_workers.worker --process-id ID --queues a,b`.
SIGTERM: finish the running job, then exit. SIGUSR1 (the supervisor, when the shutdown
timeout passes): abandon the running job, put it back at the front of its queue, exit.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

import redis

from simbi_workers import catalog as catalog_module
from simbi_workers import retry, wire
from simbi_workers.catalog import Catalog
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
MAX_BACKOFF_SECONDS = 5
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
        self.registration = Registration(connection, process_id, queues)
        self.fetcher = Fetcher(connection, process_id, self.registration.rq_name, queues)
        self.services = Services(settings, connection)
        self.runtimes = Runtimes(settings, catalog, self.services)
        self.stopping = threading.Event()
        self.current: Unit | None = None

    def run(self, burst: bool = False) -> None:
        self.runtimes.start()
        self.registration.register()
        self.registration.heartbeat(None, self.runtimes.alive())
        threading.Thread(target=self._heartbeat, daemon=True, name="heartbeat").start()
        try:
            self._loop(burst)
        finally:
            self.stopping.set()
            self.runtimes.stop()
            self.registration.deregister()

    def _loop(self, burst: bool) -> None:
        backoff = 0.0
        while not self.stopping.is_set():
            try:
                fetched = self.fetcher.fetch()
                if backoff:
                    log.warning("Redis is back; fetching again")
                    backoff = 0.0
                if fetched is None:
                    if burst:
                        break
                    self.fetcher.wait_for_work()
                    continue
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # Nothing was taken: the job, if any, is still in its queue. Wait and retry.
                if not backoff:
                    log.critical("lost Redis: %s; retrying with backoff", exc)
                backoff = min(max(backoff * 2, 0.5), MAX_BACKOFF_SECONDS)
                self.stopping.wait(backoff)
                continue
            self.process(fetched)

    def process(self, fetched: Fetched) -> None:
        unit = self.fetcher.unit(fetched)
        try:
            job = wire.decode(fetched.job_id, fetched.fields)
            spec = self.catalog.worker(job.worker)
            check_arguments(spec, job.args, max_payload_bytes=None)
        except SimbiError as exc:
            # A broken or unknown job fails alone, straight to the dead set; we keep going.
            log.warning("dead job=%s queue=%s: %s", fetched.job_id, fetched.queue, exc)
            worker = (fetched.fields.get(b"simbi_worker") or b"unknown").decode()
            unit.bury(
                worker, f"{type(exc).__name__}: {exc}", 1, 0, self.settings.failure_ttl_seconds
            )
            return

        self.current = unit
        try:
            self._perform(unit, job, spec)
        except Abandon:
            # Shutdown timeout: the job goes back to the front of its queue, uncounted.
            log.warning("put back job=%s worker=%s: shutdown timeout", job.id, job.worker)
            self.runtimes.kill_children()
            unit.put_back()
            raise
        finally:
            self.current = None

    def _perform(self, unit: Unit, job: wire.Job, spec) -> None:
        attempt = job.attempt + 1
        log.info(
            "start worker=%s queue=%s job=%s attempt=%d", job.worker, job.queue, job.id, attempt
        )
        started = time.perf_counter()
        outcome = self.runtimes.run(job, spec)
        elapsed_ms = (time.perf_counter() - started) * 1000

        if outcome.ok:
            self._succeed(unit, job, outcome, elapsed_ms)
        else:
            self._fail(unit, job, spec, outcome.failure, elapsed_ms)

    def _succeed(self, unit: Unit, job: wire.Job, outcome: Outcome, elapsed_ms: float) -> None:
        unit.done(job.worker, outcome.value, elapsed_ms, self.settings.result_ttl_seconds)
        if outcome.skipped:
            log.info(
                "skip worker=%s job=%s %.1f ms: %s", job.worker, job.id, elapsed_ms, outcome.skipped
            )
        else:
            log.info("done worker=%s job=%s %.1f ms", job.worker, job.id, elapsed_ms)

    def _fail(self, unit: Unit, job: wire.Job, spec, failure: Failure, elapsed_ms: float):
        attempts = job.attempt + 1
        delay = retry.next_delay(failure, attempts, spec.retry)
        if delay is not None:
            # Stays in Redis: the scheduled registry runs it again after the delay.
            unit.retry(job.worker, failure.text(), attempts, delay, elapsed_ms)
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
        unit.bury(
            job.worker, failure.text(), attempts, elapsed_ms, self.settings.failure_ttl_seconds
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

    def _heartbeat(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            unit = self.current
            try:
                self.registration.heartbeat(unit.job_id if unit else None, self.runtimes.alive())
            except redis.RedisError as exc:
                log.warning("heartbeat failed: %s", exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simbi_workers.worker")
    parser.add_argument("--process-id", required=True)
    parser.add_argument("--queues", required=True)
    parser.add_argument("--burst", action="store_true")
    options = parser.parse_args(argv)

    settings = load_settings()
    setup_logging(settings)
    try:
        catalog = catalog_module.load(settings.queues_file)
        worker = WorkerProcess(
            settings, catalog, connect(settings), options.process_id, options.queues.split(",")
        )
        _install_signals(worker)
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

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR1, abandon)


if __name__ == "__main__":
    sys.exit(main())
