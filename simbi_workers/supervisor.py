"""`simbi-workers start`: the supervisor of one host.

It checks the runtimes against queues.yaml, starts N worker processes, restarts any that
die (putting their jobs back), runs the scheduler and the HTTP monitor, and on SIGTERM
stops fetching, gives running jobs --shutdown-timeout to finish, puts back the rest and
exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from simbi_workers import keys
from simbi_workers.catalog import Catalog
from simbi_workers.client import Client
from simbi_workers.config import Settings
from simbi_workers.cron import CronTicker
from simbi_workers.errors import ConfigError
from simbi_workers.http import MonitorServer
from simbi_workers.recovery import Recovery
from simbi_workers.redis_connection import LocalRedis, connect, describe
from simbi_workers.runtimes.child import describe_exit
from simbi_workers.runtimes.manager import Runtimes
from simbi_workers.scheduler import Scheduler
from simbi_workers.services import Services
from simbi_workers.sidekiq import Intake
from simbi_workers.worker import EXIT_CONFIG_ERROR

POLL_SECONDS = 0.5
QUICK_DEATH_SECONDS = 10
MAX_RESPAWN_DELAY_SECONDS = 30
STALE_HEARTBEAT_SECONDS = 15
ABANDON_GRACE_SECONDS = 5

log = logging.getLogger("simbi_workers.supervisor")


@dataclass
class Options:
    processes: int = 2
    queues: list[str] | None = None
    burst: bool = False
    host: str = "127.0.0.1"
    port: int = 9191
    shutdown_timeout: float = 25.0
    accept_sidekiq: bool = False  # or SIMBI_ACCEPT_SIDEKIQ; see sidekiq.py


@dataclass
class WorkerHandle:
    process_id: str
    popen: subprocess.Popen
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, settings: Settings, catalog: Catalog, options: Options):
        self.settings = settings
        self.catalog = catalog
        self.options = options
        self.queues = self._queues(options.queues)
        self.stopping = threading.Event()
        self.local_redis: LocalRedis | None = None
        self.workers: list[WorkerHandle] = []
        self.connection: redis.Redis | None = None
        self.monitor: MonitorServer | None = None
        self.recovery: Recovery | None = None
        self.quick_deaths = 0
        self.quiet = False

    def run(self) -> int:
        try:
            self._start_redis()
            self._preflight()
            self.recovery = Recovery(self.connection)
            self._start_monitor()
            cron = CronTicker(
                self.connection, self.catalog, Client(self.connection, self.catalog, self.settings)
            )
            scheduler = Scheduler(self.connection, self.catalog.queue_names(), cron)
            threading.Thread(
                target=scheduler.run, args=(self.stopping,), daemon=True, name="scheduler"
            ).start()
            self._start_sidekiq_intake()
            self.workers = [self._spawn(uuid.uuid4().hex) for _ in range(self.options.processes)]
            log.info(
                "started %d worker process%s on queues %s",
                len(self.workers),
                "" if len(self.workers) == 1 else "es",
                ",".join(self.queues),
            )
            self._watch()
            return 0
        finally:
            self._shutdown()

    def request_stop(self, *_args) -> None:
        if not self.stopping.is_set():
            log.info(
                "stopping: no new jobs; running jobs get %.0f s to finish",
                self.options.shutdown_timeout,
            )
        self.stopping.set()

    def request_quiet(self, *_args) -> None:
        """SIGTSTP, as in Sidekiq: finish running jobs, take no new ones, wait for SIGTERM."""
        if not self.quiet:
            log.info("quiet: no new jobs; send SIGTERM to stop")
        self.quiet = True
        for handle in self.workers:
            self._tell(handle, "quiet")

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": True, "redis": "ok", "quiet": self.quiet, "processes": {}}
        try:
            self.connection.ping()
        except redis.RedisError as exc:
            body.update(ok=False, redis=f"unreachable: {exc}")
        for handle in self.workers:
            entry = self._process_health(handle, redis_up=body["redis"] == "ok")
            body["processes"][handle.process_id] = entry
            children = entry["children"]
            if (
                entry["state"] != "alive"
                or children in ("starting", "unknown")
                or "down" in children
            ):
                body["ok"] = False
        return body

    def _process_health(self, handle: WorkerHandle, redis_up: bool) -> dict[str, Any]:
        """A process as this host sees it; its children and heartbeat are in Redis, so while
        Redis is away only whether the process lives is known."""
        state = "alive" if handle.popen.poll() is None else "dead"
        entry = {"pid": handle.popen.pid, "state": state, "children": "unknown"}
        if not redis_up:
            return entry
        try:
            children, age = self._process_state(handle.process_id)
        except redis.RedisError:
            return entry  # Redis went away since the ping; the body already says so
        entry["children"] = children
        if age is not None and age > STALE_HEARTBEAT_SECONDS:
            entry["state"] = f"no heartbeat for {age:.0f} s"
        return entry

    def _queues(self, wanted: list[str] | None) -> list[str]:
        names = self.catalog.queue_names()
        if not wanted:
            return names
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ConfigError(
                f"--queues: unknown queue(s) {', '.join(unknown)} (known: {', '.join(names)})"
            )
        return [name for name in names if name in wanted]  # keep priority order

    def _start_redis(self) -> None:
        if not self.settings.redis_url:
            self.local_redis = LocalRedis(self.settings)
            self.local_redis.start()
        self.connection = connect(self.settings)
        self.connection.ping()
        log.info("Redis at %s", describe(self.settings))

    def _preflight(self) -> None:
        """Refuse to start on a database URL that cannot work, or when a runtime does not
        serve exactly its catalogue workers."""
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        from simbi_workers.services.db import Database

        try:
            Database(self.settings.database_url_or_default)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ConfigError(f"DATABASE_URL is not usable: {exc}") from None
        runtimes = Runtimes(self.settings, self.catalog, Services(self.settings, self.connection))
        runtimes.start()
        runtimes.stop()

    def _start_monitor(self) -> None:
        self.monitor = MonitorServer(
            self.options.host, self.options.port, self.connection, self.catalog, self.health
        )
        self.monitor.start()

    def _start_sidekiq_intake(self) -> None:
        if not (self.options.accept_sidekiq or self.settings.accept_sidekiq):
            return
        intake = Intake(self.connection, self.catalog, self.settings)
        threading.Thread(
            target=intake.run, args=(self.stopping,), daemon=True, name="sidekiq-intake"
        ).start()

    def _spawn(self, process_id: str) -> WorkerHandle:
        argv = [
            sys.executable,
            "-m",
            "simbi_workers.worker",
            "--process-id",
            process_id,
            "--queues",
            ",".join(self.queues),
        ]
        argv.append("--control-stdin")
        if self.options.burst:
            argv.append("--burst")
        # stdin is the control channel: a line per command, and EOF when we are gone.
        popen = subprocess.Popen(argv, env=os.environ.copy(), stdin=subprocess.PIPE)
        handle = WorkerHandle(process_id, popen)
        if self.quiet:
            self._tell(handle, "quiet")
        return handle

    @staticmethod
    def _tell(handle: WorkerHandle, command: str) -> None:
        try:
            handle.popen.stdin.write(f"{command}\n".encode())
            handle.popen.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the process is gone; _watch replaces it

    def _watch(self) -> None:
        while not self.stopping.wait(POLL_SECONDS):
            for index, handle in enumerate(self.workers):
                code = handle.popen.poll()
                if code is None or (self.options.burst and code == 0):
                    continue
                if code == EXIT_CONFIG_ERROR:
                    raise ConfigError("a worker process refused its configuration (see above)")
                self.workers[index] = self._replace(handle, code)
            self.recovery.retry_pending()
            self.recovery.scan_orphans()
            if self.options.burst and all(h.popen.poll() is not None for h in self.workers):
                log.info("burst: the queues are empty, exiting")
                return

    def _replace(self, handle: WorkerHandle, code: int) -> WorkerHandle:
        log.warning(
            "worker process %s %s; starting a new one", handle.popen.pid, describe_exit(code)
        )
        self.recovery.reclaim(handle.process_id)
        if time.monotonic() - handle.started < QUICK_DEATH_SECONDS:
            # Dying right after start (Redis away, a broken install): back off, don't spin.
            self.quick_deaths += 1
            delay = min(2**self.quick_deaths, MAX_RESPAWN_DELAY_SECONDS)
            log.warning(
                "worker processes keep dying within %d s of starting; next start in %d s",
                QUICK_DEATH_SECONDS,
                delay,
            )
            self.stopping.wait(delay)
        else:
            self.quick_deaths = 0
        return self._spawn(uuid.uuid4().hex)

    def _process_state(self, process_id: str) -> tuple[str, float | None]:
        children, beat = self.connection.hmget(keys.process(process_id), "children", "heartbeat")
        age = time.time() - float(beat) if beat else None
        return (children.decode() if children else "starting"), age

    def _shutdown(self) -> None:
        self.stopping.set()
        self._stop_workers()
        if self.monitor is not None:
            self.monitor.stop()
        if self.local_redis is not None:
            self.local_redis.stop()
        if self.workers:
            log.info("stopped")  # a start refused before any worker process says why instead

    def _stop_workers(self) -> None:
        running = [h for h in self.workers if h.popen.poll() is None]
        for handle in running:
            handle.popen.send_signal(signal.SIGTERM)
        self._wait(running, self.options.shutdown_timeout)

        late = [h for h in running if h.popen.poll() is None]
        for handle in late:
            log.warning(
                "worker process %s still busy after %.0f s: putting its job back",
                handle.popen.pid,
                self.options.shutdown_timeout,
            )
            handle.popen.send_signal(signal.SIGUSR1)
        self._wait(late, ABANDON_GRACE_SECONDS)

        for handle in self.workers:
            if handle.popen.poll() is None:
                handle.popen.kill()
                handle.popen.wait()
            if self.recovery is not None:
                # Whatever is left was put back unfinished by the shutdown: not an attempt.
                self.recovery.reclaim(handle.process_id, died=False)

    @staticmethod
    def _wait(handles: list[WorkerHandle], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        for handle in handles:
            with contextlib.suppress(subprocess.TimeoutExpired):
                handle.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
