"""Putting back the jobs of worker processes that are gone.

A worker process keeps each job it has taken in its processing list until it records the
outcome. When the process dies, those jobs go back to the front of their queues: at once
by its own supervisor, or, when the whole host died, by any supervisor that sees the
process's heartbeat hash expired (registration.TTL_SECONDS after its last beat).
"""

from __future__ import annotations

import logging
import time

import redis

from simbi_workers import keys, lua

ORPHAN_SCAN_SECONDS = 10

log = logging.getLogger("simbi_workers.recovery")


class Recovery:
    def __init__(self, connection: redis.Redis):
        self.connection = connection
        self._requeue = lua.script(connection, "requeue")
        # process id -> whether its jobs' runs count as attempts (False for a shutdown)
        self.pending: dict[str, bool] = {}
        self._failing = False
        self._next_scan = 0.0

    def reclaim(self, process_id: str, died: bool = True) -> None:
        """Put back the jobs of a process this supervisor knows is gone (now or later).
        `died`: it was killed or crashed, so each job's interrupted run was an attempt."""
        self.pending[process_id] = self.pending.get(process_id, False) or died
        self.retry_pending()

    def retry_pending(self) -> None:
        """Try again what Redis refused before; one log line per state change."""
        for process_id in sorted(self.pending):
            try:
                self._put_back(process_id, self.pending[process_id])
            except redis.RedisError as exc:
                if not self._failing:
                    log.warning(
                        "cannot put back jobs of dead processes yet (Redis: %s); retrying", exc
                    )
                self._failing = True
                return
            del self.pending[process_id]
        if self._failing:
            log.warning("put back the jobs of dead processes now that Redis answers")
        self._failing = False

    def scan_orphans(self) -> None:
        """Every ORPHAN_SCAN_SECONDS: reclaim processes whose heartbeat hash expired, such
        as those of a host that died with its supervisor."""
        if time.monotonic() < self._next_scan:
            return
        self._next_scan = time.monotonic() + ORPHAN_SCAN_SECONDS
        try:
            process_ids = [pid.decode() for pid in self.connection.smembers(keys.PROCESSES)]
            pipe = self.connection.pipeline(transaction=False)
            for process_id in process_ids:
                pipe.exists(keys.process(process_id))
            alive = pipe.execute()
        except redis.RedisError:
            return  # retry_pending reports Redis trouble; the next scan tries again
        for process_id, exists in zip(process_ids, alive, strict=True):
            if not exists:
                log.warning("process %s lost its heartbeat; putting its jobs back", process_id)
                self.reclaim(process_id)

    def _put_back(self, process_id: str, died: bool) -> None:
        moved = self._requeue(
            keys=[keys.processing(process_id), keys.WAKEUP],
            args=[f":{process_id}", "1" if died else "0"],
        )
        pipe = self.connection.pipeline(transaction=True)
        pipe.delete(keys.process(process_id))
        pipe.srem(keys.PROCESSES, process_id)
        pipe.execute()
        if moved:
            ids = ", ".join(job_id.decode() for job_id in moved)
            log.warning("put back %d job(s) of process %s: %s", len(moved), process_id, ids)
