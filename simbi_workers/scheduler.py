"""Moves perform_in / perform_at jobs and retries into their queues when due.

Every supervisor runs a scheduler thread, but only the one holding the Redis lock moves
jobs; the others wait to take over if the holder dies (the lock expires in LOCK_SECONDS).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime

import redis
from redis.exceptions import LockError

from simbi_workers import keys, lua, wire
from simbi_workers.cron import CronTicker

LOCK_SECONDS = 10
TICK_SECONDS = 0.2
MOVE_LIMIT = 1000

log = logging.getLogger("simbi_workers.scheduler")


class Scheduler:
    def __init__(self, connection: redis.Redis, queues: list[str], cron: CronTicker | None = None):
        self.connection = connection
        self.queues = queues
        self.cron = cron
        self.lock = connection.lock(keys.SCHEDULER_LOCK, timeout=LOCK_SECONDS)
        self._move = lua.script(connection, "schedule")
        self.leader = False

    def tick(self) -> int:
        """One pass: keep or take the lock, then move what is due. Returns jobs moved."""
        if not self._hold_lock():
            return 0
        queue_keys = []
        for queue in self.queues:
            queue_keys += [keys.scheduled(queue), keys.queue(queue)]
        moved = self._move(
            keys=[keys.WAKEUP, *queue_keys], args=[time.time(), wire.utc_now_text(), MOVE_LIMIT]
        )
        if self.cron is not None:
            self.cron.tick(datetime.now(UTC))  # after the move: cron never delays due jobs
        return moved

    def run(self, stopping: threading.Event) -> None:
        failing = False
        while not stopping.is_set():
            try:
                moved = self.tick()
                if moved:
                    log.debug("moved %d due jobs", moved)
                if failing:
                    log.warning("scheduler reaches Redis again")
                    failing = False
            except Exception as exc:
                if not isinstance(exc, redis.RedisError):
                    # A bug must not end the thread that every delayed job depends on.
                    log.exception("scheduler tick failed")
                    stopping.wait(1)
                    continue
                # One line per state change, not one per tick.
                if not failing:
                    log.warning("scheduler cannot reach Redis: %s; retrying every second", exc)
                    failing = True
                self.leader = False
                stopping.wait(1)
            stopping.wait(TICK_SECONDS)
        self.release()

    def release(self) -> None:
        if self.leader:
            with contextlib.suppress(LockError, redis.RedisError):
                self.lock.release()
            self.leader = False

    def _hold_lock(self) -> bool:
        if self.leader:
            try:
                self.lock.reacquire()
                return True
            except LockError:
                log.warning("scheduler lost its lock; another host schedules now")
                self.leader = False
        if self.lock.acquire(blocking=False):
            self.leader = True
            log.info("this host now runs the scheduler")
        return self.leader
