"""A worker process's presence in Redis: our process hash (for /stats and /health) and
RQ's worker hash (so that `rq info` and rq-dashboard list our processes)."""

from __future__ import annotations

import os
import socket
import time

import redis

from simbi_workers import keys, wire

TTL_SECONDS = 30


class Registration:
    def __init__(
        self,
        connection: redis.Redis,
        process_id: str,
        queues: list[str],
        ttl_seconds: int = TTL_SECONDS,
    ):
        self.connection = connection
        self.ttl_seconds = ttl_seconds
        self.process_id = process_id
        self.queues = queues
        self.hostname = socket.gethostname()
        self.rq_name = f"simbi.{self.hostname}.{os.getpid()}.{process_id[:8]}"

    def register(self) -> None:
        self.started = time.time()
        self.birth = wire.utc_now_text()
        self._write(None, "starting")

    def heartbeat(self, job_id: str | None, children: dict[str, bool]) -> None:
        states = ",".join(f"{name}={'up' if up else 'down'}" for name, up in children.items())
        self._write(job_id, states or "none")

    def _write(self, job_id: str | None, children: str) -> None:
        """Every field, every time: a hash that expired while Redis was away or this process
        was stopped comes back whole at the next beat."""
        now = wire.utc_now_text()
        pipe = self.connection.pipeline(transaction=True)
        pipe.hset(
            keys.process(self.process_id),
            mapping={
                "host": self.hostname,
                "pid": os.getpid(),
                "started": self.started,
                "heartbeat": time.time(),
                "queues": ",".join(self.queues),
                "job": job_id or "",
                "children": children,
            },
        )
        pipe.expire(keys.process(self.process_id), self.ttl_seconds)
        pipe.sadd(keys.PROCESSES, self.process_id)
        pipe.hset(
            keys.rq_worker(self.rq_name),
            mapping={
                "birth": self.birth,
                "last_heartbeat": now,
                "queues": ",".join(self.queues),
                "pid": os.getpid(),
                "hostname": self.hostname,
                "state": "busy" if job_id else "idle",
                "version": "simbi-workers",
                "python_version": "",
            },
        )
        # No current_job: RQ's tools would fetch and unpickle it (rq-dashboard 0.9 does,
        # whatever its serializer setting); our own process hash names the job.
        pipe.hdel(keys.rq_worker(self.rq_name), "current_job")
        pipe.expire(keys.rq_worker(self.rq_name), self.ttl_seconds)
        pipe.sadd(keys.RQ_WORKERS, keys.rq_worker(self.rq_name))
        for queue in self.queues:
            pipe.sadd(keys.rq_queue_workers(queue), keys.rq_worker(self.rq_name))
        if job_id:
            # RQ's tools read a job's liveness from here.
            pipe.hset(keys.job(job_id), "last_heartbeat", now)
        pipe.execute()

    def deregister(self) -> None:
        pipe = self.connection.pipeline(transaction=True)
        pipe.delete(keys.process(self.process_id))
        pipe.srem(keys.PROCESSES, self.process_id)
        pipe.delete(keys.rq_worker(self.rq_name))
        pipe.srem(keys.RQ_WORKERS, keys.rq_worker(self.rq_name))
        for queue in self.queues:
            pipe.srem(keys.rq_queue_workers(queue), keys.rq_worker(self.rq_name))
        pipe.execute()
